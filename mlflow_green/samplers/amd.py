"""AMD GPUs through AMD SMI (``amdsmi``, the ``amd`` extra).

Energy = ``amdsmi_get_energy_count`` accumulator x its ``counter_resolution`` (microjoules
per unit). The accumulator key is ``energy_accumulator`` in current amdsmi and ``power`` in
older releases; both are read. Where the counter is missing, socket power from
``amdsmi_get_power_info`` is polled and integrated by the meter (method ``power``).

GPUs visible to the process: the first of HIP_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES,
CUDA_VISIBLE_DEVICES that is set, as integer indices (the first invalid entry ends the list).
``amdsmi`` is imported lazily; tests pass a fake module as ``amdsmi=``.
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

__all__ = ["AmdGpuSampler", "amd_is_available"]

COUNTER_UPDATE_PERIOD_S = 0.001
POWER_UPDATE_PERIOD_S = 0.1
_VISIBLE_VARS = ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")


def _import_amdsmi() -> Any:
    try:
        import amdsmi
    except ImportError as exc:
        raise SamplerUnavailable(
            "amdsmi is not installed (pip install 'mlflow-green[amd]' on a ROCm machine)"
        ) from exc
    except Exception as exc:  # amdsmi raises when its shared library is missing
        raise SamplerUnavailable(f"amdsmi cannot load: {exc}") from exc
    return amdsmi


def _error_class(amdsmi: Any) -> type[BaseException]:
    cls = getattr(amdsmi, "AmdSmiException", None)
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else OSError


def _energy_uj(info: Mapping[str, Any]) -> float:
    acc = info.get("energy_accumulator", info.get("power"))
    resolution = info.get("counter_resolution")
    if acc is None or resolution is None:
        raise KeyError(f"amdsmi_get_energy_count returned {sorted(info)}")
    return float(acc) * float(resolution)


def _socket_power_w(info: Mapping[str, Any]) -> float:
    for key in ("average_socket_power", "current_socket_power", "socket_power"):
        value = info.get(key)
        if isinstance(value, (int, float)) and value >= 0:
            return float(value)
    raise KeyError(f"amdsmi_get_power_info returned no socket power ({sorted(info)})")


def _visible(env: Mapping[str, str], count: int) -> tuple[list[int], list[str]]:
    for var in _VISIBLE_VARS:
        value = env.get(var)
        if value is None:
            continue
        out: list[int] = []
        notes: list[str] = []
        if value.strip() == "":
            return [], []
        for entry in value.split(","):
            entry = entry.strip()
            if not entry.isdigit() or int(entry) >= count or int(entry) in out:
                notes.append(
                    f"{var} entry {entry!r} is not a usable index; it and the rest are ignored"
                )
                break
            out.append(int(entry))
        return out, notes
    return list(range(count)), []


def amd_is_available(amdsmi: Any = None) -> tuple[bool, str]:
    """Whether AMD SMI starts and sees at least one GPU, with the reason."""
    try:
        mod = amdsmi if amdsmi is not None else _import_amdsmi()
    except SamplerUnavailable as exc:
        return False, str(exc)
    err = _error_class(mod)
    try:
        mod.amdsmi_init()
        count = len(mod.amdsmi_get_processor_handles())
    except err as exc:
        return False, f"AMD SMI failed: {exc}"
    finally:
        try:
            mod.amdsmi_shut_down()
        except err:
            pass
    if count == 0:
        return False, "AMD SMI reports no GPU"
    return True, f"AMD SMI sees {count} GPU(s)"


class AmdGpuSampler(SamplerBase):
    """Energy of the AMD GPUs this process sees (``gpu_indices``: this process's ordinals)."""

    component: Component = "gpu"

    def __init__(
        self,
        gpu_indices: Sequence[int] | None = None,
        *,
        amdsmi: Any = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._smi = amdsmi if amdsmi is not None else _import_amdsmi()
        self._err = _error_class(self._smi)
        env = os.environ if environ is None else environ
        try:
            self._smi.amdsmi_init()
        except self._err as exc:
            raise SamplerUnavailable(f"AMD SMI failed to initialise: {exc}") from exc
        self._closed = False
        try:
            self._setup(gpu_indices, env)
        except self._err as exc:
            self.close()
            raise SamplerUnavailable(f"AMD SMI failed while listing GPUs: {exc}") from exc
        except BaseException:
            self.close()
            raise

    def _setup(self, gpu_indices: Sequence[int] | None, env: Mapping[str, str]) -> None:
        smi = self._smi
        try:
            handles = list(smi.amdsmi_get_processor_handles())
        except self._err as exc:
            raise SamplerUnavailable(f"AMD SMI cannot list GPUs: {exc}") from exc
        visible, notes = _visible(env, len(handles))
        if gpu_indices is not None:
            chosen = []
            for ordinal in gpu_indices:
                if not 0 <= int(ordinal) < len(visible):
                    raise SamplerUnavailable(
                        f"GPU ordinal {ordinal} was requested but this process sees {len(visible)} AMD GPU(s)"
                    )
                if visible[int(ordinal)] not in chosen:
                    chosen.append(visible[int(ordinal)])
            visible = chosen
        if not visible:
            raise SamplerUnavailable(
                "no AMD GPU selected (HIP_VISIBLE_DEVICES or CUDA_VISIBLE_DEVICES hides them all)"
            )
        self._handles = [handles[i] for i in visible]
        devices = []
        for n, (i, h) in enumerate(zip(visible, self._handles, strict=True)):
            name = "AMD GPU"
            try:
                name = str(smi.amdsmi_get_gpu_asic_info(h).get("market_name") or name)
            except (self._err, AttributeError):
                pass
            uuid = None
            try:
                uuid = str(smi.amdsmi_get_gpu_device_uuid(h))
            except (self._err, AttributeError):
                pass
            devices.append(DeviceInfo(index=n, name=name, uuid=uuid or f"amd-{i}"))
        self._devices = tuple(devices)
        has_counter = True
        for h in self._handles:
            try:
                _energy_uj(smi.amdsmi_get_energy_count(h))
            except (self._err, KeyError, AttributeError, TypeError) as exc:
                has_counter = False
                notes.append(
                    f"AMD energy counter unavailable ({exc}); socket power is polled instead"
                )
                break
        if not has_counter:
            for h in self._handles:
                try:
                    _socket_power_w(smi.amdsmi_get_power_info(h))
                except (self._err, KeyError, AttributeError) as exc:
                    raise SamplerUnavailable(
                        f"AMD SMI reads neither energy nor power: {exc}"
                    ) from exc
        self._method = METHOD_COUNTER if has_counter else METHOD_POWER
        self.needs_polling = self._method == METHOD_POWER  # power is integrated by polling
        self._tracker = CounterTracker([f"GPU {d.uuid}" for d in self._devices])
        self._notes = tuple(notes)
        self.description = (
            "AMD SMI energy counter x counter_resolution"
            if has_counter
            else "AMD SMI socket power polling"
        )

    @property
    def method(self) -> str:
        return self._method

    @property
    def update_period_s(self) -> float:
        return COUNTER_UPDATE_PERIOD_S if self._method == METHOD_COUNTER else POWER_UPDATE_PERIOD_S

    @property
    def notes(self) -> tuple[str, ...]:
        return self._notes

    def read_energy_j(self) -> tuple[float, ...]:
        raws = []
        for dev, h in zip(self._devices, self._handles, strict=True):
            try:
                raws.append(_energy_uj(self._smi.amdsmi_get_energy_count(h)))
            except (self._err, KeyError, TypeError) as exc:
                raise SamplerError(f"AMD SMI energy read failed on {dev.uuid}: {exc}") from exc
        return tuple(uj / 1e6 for uj in self._tracker.update(raws))

    def read_power_w(self) -> tuple[float, ...]:
        out = []
        for dev, h in zip(self._devices, self._handles, strict=True):
            try:
                out.append(_socket_power_w(self._smi.amdsmi_get_power_info(h)))
            except (self._err, KeyError) as exc:
                raise SamplerError(f"AMD SMI power read failed on {dev.uuid}: {exc}") from exc
        return tuple(out)

    def drain_notes(self) -> tuple[str, ...]:
        return self._tracker.drain_notes() if hasattr(self, "_tracker") else ()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._smi.amdsmi_shut_down()
        except self._err:
            pass
