"""NVIDIA GPUs through NVML (the ``pynvml`` module of the ``nvidia-ml-py`` package).

Energy is the difference of ``nvmlDeviceGetTotalEnergyConsumption`` (millijoules since the
driver loaded; Volta and newer): reading it at the edges of a window costs microseconds and
needs no thread (method ``counter``). Where a GPU lacks the counter (older GPUs, some vGPU
set-ups), ``nvmlDeviceGetPowerUsage`` (milliwatts) is polled by the meter's thread and
integrated (method ``power``).

The GPUs metered are the ones the CUDA process sees: CUDA_VISIBLE_DEVICES and
CUDA_DEVICE_ORDER are applied (see ``_cuda.py``). A MIG instance has no energy counter of
its own: its parent GPU's energy is reported, and every measurement says so.

NVML is initialised through the library directly (no ``nvidia-smi`` needed). ``pynvml`` is
imported lazily; tests pass a fake module as ``nvml=``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from mlflow_green.errors import SamplerError, SamplerUnavailable
from mlflow_green.samplers._base import (
    METHOD_COUNTER,
    METHOD_POWER,
    Component,
    DeviceInfo,
    SamplerBase,
)
from mlflow_green.samplers._counter import CounterTracker
from mlflow_green.samplers._cuda import GpuRecord, VisibleGpu, cuda_order, visible_gpus

__all__ = ["NvmlGpuSampler", "nvml_is_available"]

# The NVML energy counter refreshes about every 100 ms; a shorter window is flagged.
COUNTER_UPDATE_PERIOD_S = 0.1
# nvmlDeviceGetPowerUsage: "On Ampere (except GA100) or newer GPUs, the API returns power
# averaged over 1 sec interval. On GA100 and older architectures, instantaneous power is
# returned." (NVML API reference).
AVERAGED_POWER_PERIOD_S = 1.0
INSTANT_POWER_PERIOD_S = 0.1
_NOT_SUPPORTED = 3  # NVML_ERROR_NOT_SUPPORTED


def _import_pynvml() -> Any:
    try:
        import pynvml
    except ImportError as exc:
        raise SamplerUnavailable("the pynvml module is missing: pip install nvidia-ml-py") from exc
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _error_class(nvml: Any) -> type[BaseException]:
    cls = getattr(nvml, "NVMLError", None)
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else OSError


def _is_not_supported(nvml: Any, exc: BaseException) -> bool:
    code = getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", _NOT_SUPPORTED)
    return getattr(exc, "value", None) == code


def _init_reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if "library not found" in low:
        return (
            "NVML library not found: the pynvml module is installed but libnvidia-ml.so "
            "(part of the NVIDIA driver) is not, so there is no NVIDIA GPU driver here"
        )
    if "driver not loaded" in low:
        return f"NVIDIA driver not loaded ({text})"
    return f"NVML failed to initialise: {text}"


def nvml_is_available(nvml: Any = None) -> tuple[bool, str]:
    """Whether NVML can be initialised and sees at least one GPU, with the reason."""
    try:
        mod = nvml if nvml is not None else _import_pynvml()
    except SamplerUnavailable as exc:
        return False, str(exc)
    err = _error_class(mod)
    try:
        mod.nvmlInit()
    except err as exc:
        return False, _init_reason(exc)
    try:
        count = int(mod.nvmlDeviceGetCount())
    except err as exc:
        return False, f"NVML cannot count GPUs: {exc}"
    finally:
        try:
            mod.nvmlShutdown()
        except err:
            pass
    if count == 0:
        return False, "NVML runs but reports no GPU"
    return True, f"NVML sees {count} GPU(s)"


class NvmlGpuSampler(SamplerBase):
    """Energy of the NVIDIA GPUs this process sees, by NVML counter or power polling.

    Args:
        gpu_indices: CUDA device ordinals of this process (e.g. ``[local_rank]``) to meter;
            None meters every visible GPU.
        nvml: the ``pynvml`` module, or a fake with the same functions (tests).
        environ: where CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER are read (default
            ``os.environ``).
        use_counter: False forces power polling even where the counter exists.

    Raises:
        SamplerUnavailable: NVML cannot start, or no GPU is selected, or ``gpu_indices``
            asks for an ordinal this process does not have.
    """

    component: Component = "gpu"

    def __init__(
        self,
        gpu_indices: Sequence[int] | None = None,
        *,
        nvml: Any = None,
        environ: Mapping[str, str] | None = None,
        use_counter: bool = True,
    ) -> None:
        self._nvml = nvml if nvml is not None else _import_pynvml()
        self._err = _error_class(self._nvml)
        env = os.environ if environ is None else environ
        try:
            self._nvml.nvmlInit()
        except self._err as exc:
            raise SamplerUnavailable(
                _init_reason(exc) + "; install the NVIDIA driver or choose another sampler "
                "(MLFLOW_GREEN_SAMPLER=none or simulated:<watts>)"
            ) from exc
        self._closed = False
        try:
            self._setup(gpu_indices, env, use_counter)
        except self._err as exc:
            self.close()
            raise SamplerUnavailable(f"NVML failed while listing GPUs: {exc}") from exc
        except BaseException:
            self.close()
            raise

    def _setup(
        self, gpu_indices: Sequence[int] | None, env: Mapping[str, str], use_counter: bool
    ) -> None:
        nv = self._nvml
        notes: list[str] = []
        visible = self._select(self._enumerate(), gpu_indices, env, notes)

        # Several MIG slices of one GPU share its energy: meter the physical GPU once.
        physical: list[VisibleGpu] = []
        for vis in visible:
            if vis.mig_uuid is not None:
                notes.append(
                    f"{vis.mig_uuid} is a MIG instance: NVML has no energy counter per "
                    f"instance, so the energy of its whole parent GPU {vis.record.uuid} "
                    "is reported (other instances' work included)"
                )
            if all(p.record.nvml_index != vis.record.nvml_index for p in physical):
                physical.append(vis)
        self._gpus = physical
        self._migs_of = tuple(
            tuple(v.mig_uuid for v in visible if v.mig_uuid and v.record.nvml_index == p.record.nvml_index)
            for p in physical
        )
        self._handles = [nv.nvmlDeviceGetHandleByIndex(v.record.nvml_index) for v in physical]
        self._devices = tuple(
            DeviceInfo(index=i, name=v.record.name, uuid=v.mig_uuid or v.record.uuid)
            for i, v in enumerate(physical)
        )
        has_counter = self._probe_counter(physical, use_counter, notes)
        self._method = METHOD_COUNTER if has_counter else METHOD_POWER
        self.needs_polling = self._method == METHOD_POWER  # power is integrated by polling
        if has_counter:
            self._update_period_s = COUNTER_UPDATE_PERIOD_S
        else:
            averaged = any(v.record.compute_capability >= (8, 6) for v in physical)
            self._update_period_s = AVERAGED_POWER_PERIOD_S if averaged else INSTANT_POWER_PERIOD_S
        self._tracker = CounterTracker([f"GPU {v.record.uuid}" for v in physical])
        self._notes = tuple(notes)

    def _enumerate(self) -> list[GpuRecord]:
        """Every GPU NVML sees, in NVML's order."""
        nv = self._nvml
        try:
            count = int(nv.nvmlDeviceGetCount())
            records = []
            for i in range(count):
                handle = nv.nvmlDeviceGetHandleByIndex(i)
                try:
                    cc = tuple(int(x) for x in nv.nvmlDeviceGetCudaComputeCapability(handle))
                except self._err:
                    cc = (0, 0)
                records.append(
                    GpuRecord(
                        nvml_index=i,
                        uuid=_text(nv.nvmlDeviceGetUUID(handle)),
                        name=_text(nv.nvmlDeviceGetName(handle)),
                        compute_capability=(cc[0], cc[1]) if len(cc) >= 2 else (0, 0),
                    )
                )
        except self._err as exc:
            raise SamplerUnavailable(f"NVML cannot enumerate GPUs: {exc}") from exc
        return records

    def _select(
        self,
        records: list[GpuRecord],
        gpu_indices: Sequence[int] | None,
        env: Mapping[str, str],
        notes: list[str],
    ) -> list[VisibleGpu]:
        """The GPUs this process uses: CUDA's order and CUDA_VISIBLE_DEVICES, then the
        requested ordinals; none raises SamplerUnavailable."""
        ordered, order_notes = cuda_order(records, env.get("CUDA_DEVICE_ORDER"))
        notes += order_notes
        cvd = env.get("CUDA_VISIBLE_DEVICES")
        visible, cvd_notes = visible_gpus(cvd, ordered, mig_parent_uuid=self._mig_parent_uuid)
        notes += cvd_notes
        if gpu_indices is not None:
            chosen: list[VisibleGpu] = []
            for ordinal in gpu_indices:
                if not 0 <= int(ordinal) < len(visible):
                    raise SamplerUnavailable(
                        f"GPU ordinal {ordinal} was requested but this process sees "
                        f"{len(visible)} GPU(s) (CUDA_VISIBLE_DEVICES={cvd!r}); "
                        "pass ordinals of this process's CUDA devices"
                    )
                if visible[int(ordinal)] not in chosen:
                    chosen.append(visible[int(ordinal)])
            visible = chosen
        if not visible:
            why = (
                f"CUDA_VISIBLE_DEVICES={cvd!r} hides every GPU"
                if cvd is not None
                else "NVML reports no GPU"
            )
            raise SamplerUnavailable(f"no GPU selected: {why}")
        return visible

    def _probe_counter(self, physical: list[VisibleGpu], use_counter: bool, notes: list[str]) -> bool:
        """True when every GPU has a readable energy counter (and ``use_counter``); else
        power must be readable on each, or SamplerUnavailable."""
        nv = self._nvml
        has_counter = use_counter
        if use_counter:
            for vis, handle in zip(physical, self._handles, strict=True):
                try:
                    nv.nvmlDeviceGetTotalEnergyConsumption(handle)
                except self._err as exc:
                    has_counter = False
                    if _is_not_supported(nv, exc):
                        notes.append(
                            f"{vis.record.name} ({vis.record.uuid}) has no NVML energy counter "
                            "(pre-Volta GPU or vGPU); power is polled and integrated instead"
                        )
                    else:
                        notes.append(
                            f"NVML energy counter unreadable on {vis.record.uuid} ({exc}); "
                            "power is polled and integrated instead"
                        )
        if not has_counter:
            for vis, handle in zip(physical, self._handles, strict=True):
                try:
                    nv.nvmlDeviceGetPowerUsage(handle)
                except self._err as exc:
                    raise SamplerUnavailable(
                        f"NVML can read neither energy nor power of {vis.record.name} "
                        f"({vis.record.uuid}): {exc}"
                    ) from exc
        return has_counter

    def _mig_parent_uuid(self, mig_uuid: str) -> str | None:
        nv = self._nvml
        try:
            handle = nv.nvmlDeviceGetHandleByUUID(mig_uuid)
            parent = nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
            return _text(nv.nvmlDeviceGetUUID(parent))
        except (self._err, AttributeError):
            pass
        # CUDA also accepts a unique prefix of a MIG UUID: search the MIG instances.
        matches: list[str] = []
        try:
            for i in range(int(nv.nvmlDeviceGetCount())):
                parent = nv.nvmlDeviceGetHandleByIndex(i)
                try:
                    slots = int(nv.nvmlDeviceGetMaxMigDeviceCount(parent))
                except self._err:
                    continue
                for j in range(slots):
                    try:
                        mig = nv.nvmlDeviceGetMigDeviceHandleByIndex(parent, j)
                    except self._err:
                        continue
                    if _text(nv.nvmlDeviceGetUUID(mig)).lower().startswith(mig_uuid.lower()):
                        matches.append(_text(nv.nvmlDeviceGetUUID(parent)))
        except (self._err, AttributeError):
            return None
        return matches[0] if len(matches) == 1 else None

    @property
    def method(self) -> str:
        return self._method

    @property
    def update_period_s(self) -> float:
        return self._update_period_s

    @property
    def notes(self) -> tuple[str, ...]:
        """Standing facts every measurement of this sampler should carry (MIG, ordering)."""
        return self._notes

    @property
    def nvml(self) -> Any:
        """The NVML module this sampler reads (the share wrapper asks it about processes)."""
        return self._nvml

    @property
    def handles(self) -> tuple[Any, ...]:
        """NVML handles of the metered physical GPUs, in ``devices`` order."""
        return tuple(self._handles)

    @property
    def mig_instances(self) -> tuple[tuple[str, ...], ...]:
        """Per metered GPU, the UUIDs of the MIG instances this process sees on it (or ())."""
        return self._migs_of

    @property
    def description(self) -> str:
        if self._method == METHOD_COUNTER:
            return "NVML energy counter (nvmlDeviceGetTotalEnergyConsumption)"
        return "NVML power polling (nvmlDeviceGetPowerUsage), integrated by the meter"

    def read_energy_j(self) -> tuple[float, ...]:
        if self._method != METHOD_COUNTER:
            raise SamplerError("this NVML sampler polls power; it has no energy counter")
        raws = []
        for dev, handle in zip(self._devices, self._handles, strict=True):
            try:
                raws.append(float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)))
            except self._err as exc:
                raise SamplerError(f"NVML energy read failed on GPU {dev.uuid}: {exc}") from exc
        return tuple(mj / 1000.0 for mj in self._tracker.update(raws))

    def read_power_w(self) -> tuple[float, ...]:
        out = []
        for dev, handle in zip(self._devices, self._handles, strict=True):
            try:
                out.append(float(self._nvml.nvmlDeviceGetPowerUsage(handle)) / 1000.0)
            except self._err as exc:
                raise SamplerError(f"NVML power read failed on GPU {dev.uuid}: {exc}") from exc
        return tuple(out)

    def drain_notes(self) -> tuple[str, ...]:
        """Notes that arose while reading (counter resets), each returned once."""
        return self._tracker.drain_notes() if hasattr(self, "_tracker") else ()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._nvml.nvmlShutdown()
        except self._err:
            pass
