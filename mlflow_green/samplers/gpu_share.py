"""This process's share of a shared NVIDIA GPU (``green.method.gpu`` = ``share:<basis>``).

NVML's energy counter belongs to the whole device: when a notebook, an inference server or
another job runs on the same GPU (time-slicing or MPS), the counter holds their energy too,
and a MIG instance has no counter of its own. :class:`GpuShareSampler` wraps the NVML sampler
and charges each interval between two reads ``device energy x share``, the share taken from
the best basis the device offers, chosen once when the sampler opens:

``utilization``
    ``nvmlDeviceGetProcessUtilization``: the driver's per-process SM utilisation samples
    since the previous read; share = this job's SM% summed over the samples / everyone's.
``accounting``
    where per-process samples are not supported but accounting mode is on
    (``nvidia-smi --accounting-mode=1``): ``nvmlDeviceGetAccountingStats`` per process, whose
    ``gpuUtilization x time`` is a cumulative busy time; share = this job's increase / all.
``memory``
    otherwise: the GPU memory this job holds over the memory all compute processes hold
    (``nvmlDeviceGetComputeRunningProcesses``), mean of the two reads.
``mig-slices``
    a MIG instance: its GPU slices (``nvmlDeviceGetAttributes(...).gpuInstanceSliceCount``)
    over the parent GPU's (``nvmlDeviceGetMaxMigDeviceCount``). NVML reports neither energy
    nor per-process samples per instance, so this is a fixed fraction of the parent's energy.

An interval in which no process used the SMs (utilisation or accounting all zero) falls back
to the memory share; an interval in which no process holds the GPU at all charges the whole
device, as the unshared method would. "This job" is this process and its descendants. In a
container with its own PID namespace NVML lists host PIDs, which match none of ours: until a
process of ours has been seen on the device, a share of 0 is replaced by the whole device and
a note says why (charging too much rather than nothing).

NVML keeps only a short history of per-process samples, so the meter's thread reads this
sampler every ``read_interval_s`` (1 s) between epoch edges; edge reads stay NVML calls of
microseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlflow_green.errors import SamplerError
from mlflow_green.samplers._base import Component
from mlflow_green.samplers.nvml import NvmlGpuSampler, _error_class
from mlflow_green.samplers.share import ProcessTree, ShareOf

__all__ = [
    "BASIS_ACCOUNTING",
    "BASIS_MEMORY",
    "BASIS_MIG",
    "BASIS_UTILIZATION",
    "GpuShareSampler",
    "foreign_gpu_processes",
]

BASIS_UTILIZATION = "utilization"
BASIS_ACCOUNTING = "accounting"
BASIS_MEMORY = "memory"
BASIS_MIG = "mig-slices"
_FEATURE_ENABLED = 1


@dataclass
class _Device:
    handle: Any
    uuid: str
    basis: str
    mig_fraction: float = 1.0
    last_ts: int = 0
    busy_ms: dict[int, float] = field(default_factory=dict)
    mem_share: float | None = None
    ours_seen: bool = False


def _running(nvml: Any, handle: Any) -> list[tuple[int, float]]:
    """(pid, used GPU bytes) of the compute processes on a device (None memory counts 0)."""
    out = []
    for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle) or ():
        used = getattr(p, "usedGpuMemory", None)
        out.append((int(p.pid), float(used) if isinstance(used, (int, float)) else 0.0))
    return out


def foreign_gpu_processes(inner: NvmlGpuSampler, ours: Collection[int]) -> list[int]:
    """PIDs on the metered GPUs that are not in ``ours`` (for the ``auto`` decision)."""
    err = _error_class(inner.nvml)
    found: list[int] = []
    for handle in inner.handles:
        try:
            found += [pid for pid, _ in _running(inner.nvml, handle) if pid not in ours]
        except (err, AttributeError):
            continue
    return found


class GpuShareSampler(ShareOf):
    """An NVML sampler whose energy is this job's share of each GPU (see module docstring).

    Args:
        inner: the NVML sampler of the GPUs to share.
        pids: the PIDs of this job (default: this process and its live descendants).
        read_interval_s: how often the meter's thread reads the shares between edges.
        bases: force a basis per device (tests, benchmarks); default: the best available.
    """

    component: Component = "gpu"
    problem: str | None = None  # a share that cannot open raises instead

    def __init__(
        self,
        inner: NvmlGpuSampler,
        *,
        pids: Callable[[], Collection[int]] | None = None,
        read_interval_s: float = 1.0,
        bases: Sequence[str] | None = None,
    ) -> None:
        self._inner: NvmlGpuSampler = inner
        self._nv = inner.nvml
        self._err = _error_class(self._nv)
        if pids is None:
            tree = ProcessTree()
            self._tree: ProcessTree | None = tree
            pids = lambda: tree.read().pids  # noqa: E731
        else:
            self._tree = None
        self._pids = pids
        self._read_interval_s = float(read_interval_s)
        self._devices: list[_Device] = []
        for i, handle in enumerate(inner.handles):
            migs = inner.mig_instances[i] if i < len(inner.mig_instances) else ()
            dev = _Device(handle=handle, uuid=str(inner.devices[i].uuid), basis=BASIS_MEMORY)
            if bases is not None:
                dev.basis = bases[i]
            elif migs:
                dev.basis = BASIS_MIG
            else:
                dev.basis = self._probe(handle)
            if dev.basis == BASIS_MIG:
                dev.mig_fraction = self._mig_fraction(handle, migs)
            self._devices.append(dev)
        self._notes: list[str] = []
        self._primed = False
        self._last_whole: list[float] | None = None
        self._cum: list[float] = [0.0] * len(self._devices)
        self._whole: list[float] = [0.0] * len(self._devices)
        self._prime()
        bases_used = list(dict.fromkeys(d.basis for d in self._devices))
        self.basis = "+".join(bases_used)
        self.description = (
            f"this job's share ({self.basis}) of the GPU energy from {inner.description}"
        )
        self.notes: tuple[str, ...] = tuple(inner.notes) + tuple(
            f"GPU {d.uuid}: energy is this job's share ({d.basis}) of the device's"
            + (f", a fixed {d.mig_fraction:.3g} of the parent GPU" if d.basis == BASIS_MIG else "")
            for d in self._devices
        )

    # -- set-up --------------------------------------------------------------------------

    def _probe(self, handle: Any) -> str:
        nv = self._nv
        try:
            nv.nvmlDeviceGetProcessUtilization(handle, 0)
            return BASIS_UTILIZATION
        except AttributeError:
            pass
        except self._err as exc:
            # "not found" means supported but no sample yet; anything else: unsupported.
            if getattr(exc, "value", None) == getattr(nv, "NVML_ERROR_NOT_FOUND", 6):
                return BASIS_UTILIZATION
        try:
            if int(nv.nvmlDeviceGetAccountingMode(handle)) == _FEATURE_ENABLED:
                return BASIS_ACCOUNTING
        except (self._err, AttributeError, TypeError, ValueError):
            pass
        return BASIS_MEMORY

    def _mig_fraction(self, parent: Any, migs: Sequence[str]) -> float:
        nv = self._nv
        try:
            total = int(nv.nvmlDeviceGetMaxMigDeviceCount(parent))
            slices = 0
            for uuid in migs:
                attrs = nv.nvmlDeviceGetAttributes(nv.nvmlDeviceGetHandleByUUID(uuid))
                slices += int(attrs.gpuInstanceSliceCount)
        except (self._err, AttributeError, TypeError, ValueError) as exc:
            raise SamplerError(f"cannot read the MIG slices of {list(migs)}: {exc}") from exc
        if total <= 0 or slices <= 0:
            raise SamplerError(f"MIG instances {list(migs)} report {slices} of {total} slices")
        return min(slices / total, 1.0)

    def _prime(self) -> None:
        ours = set(self._pids())
        for dev in self._devices:
            self._interval_share(dev, ours)  # sets the baselines: timestamps, busy times
        self._primed = True

    # -- shares --------------------------------------------------------------------------

    def _utilization(self, dev: _Device, ours: Collection[int]) -> tuple[float, float]:
        try:
            samples = self._nv.nvmlDeviceGetProcessUtilization(dev.handle, dev.last_ts) or ()
        except self._err as exc:
            if getattr(exc, "value", None) == getattr(self._nv, "NVML_ERROR_NOT_FOUND", 6):
                return 0.0, 0.0  # no sample since the last read
            raise
        mine = total = 0.0
        for s in samples:
            dev.last_ts = max(dev.last_ts, int(s.timeStamp))
            sm = float(s.smUtil)
            total += sm
            if int(s.pid) in ours:
                mine += sm
        return mine, total

    def _accounting(self, dev: _Device, ours: Collection[int]) -> tuple[float, float]:
        mine = total = 0.0
        for pid in self._nv.nvmlDeviceGetAccountingPids(dev.handle) or ():
            pid = int(pid)
            try:
                st = self._nv.nvmlDeviceGetAccountingStats(dev.handle, pid)
            except self._err:
                continue
            busy = float(st.gpuUtilization) / 100.0 * float(st.time)
            delta = max(busy - dev.busy_ms.get(pid, 0.0), 0.0)
            dev.busy_ms[pid] = busy
            total += delta
            if pid in ours:
                mine += delta
        return mine, total

    def _interval_share(self, dev: _Device, ours: Collection[int]) -> float:
        if dev.basis == BASIS_MIG:
            return dev.mig_fraction
        procs = _running(self._nv, dev.handle)
        if any(pid in ours for pid, _ in procs):
            dev.ours_seen = True
        held = sum(m for _, m in procs)
        if held > 0:
            mem_now = sum(m for pid, m in procs if pid in ours) / held
        elif procs:
            mem_now = sum(1 for pid, _ in procs if pid in ours) / len(procs)
        else:
            mem_now = 1.0  # nobody holds the GPU: its idle energy stays with the job
        mem_share = mem_now if dev.mem_share is None else (dev.mem_share + mem_now) / 2
        dev.mem_share = mem_now
        share = mem_share
        if dev.basis in (BASIS_UTILIZATION, BASIS_ACCOUNTING):
            reader = self._utilization if dev.basis == BASIS_UTILIZATION else self._accounting
            mine, total = reader(dev, ours)
            if total > 0:
                share = mine / total
        if share <= 0 and not dev.ours_seen:
            if self._primed:  # every interval says so (the meter keeps one per window)
                self._notes.append(
                    f"no process of this job is in NVML's process list of GPU {dev.uuid} "
                    "(a container's PID namespace hides host PIDs?): the whole device is "
                    "charged until one is"
                )
            share = 1.0
        return min(max(share, 0.0), 1.0)

    def _shares(self) -> list[float]:
        ours = set(self._pids())
        try:
            shares = [self._interval_share(dev, ours) for dev in self._devices]
        except (self._err, AttributeError) as exc:
            raise SamplerError(f"NVML process query failed: {exc}") from exc
        return shares

    # -- the Sampler protocol ------------------------------------------------------------

    @property
    def inner(self) -> NvmlGpuSampler:
        return self._inner

    @property
    def needs_polling(self) -> bool:
        return self._inner.needs_polling

    @property
    def wrap_period_s(self) -> float:
        """Read by the meter's thread every ``read_interval_s`` (a quarter of this)."""
        if all(d.basis == BASIS_MIG for d in self._devices):
            return 0.0  # a fixed fraction needs no reads between the edges
        return 4.0 * self._read_interval_s

    def read_energy_j(self) -> tuple[float, ...]:
        whole = self._inner.read_energy_j()
        shares = self._shares()
        if self._last_whole is not None:
            for i, (w0, w1) in enumerate(zip(self._last_whole, whole, strict=True)):
                delta = max(w1 - w0, 0.0)
                self._cum[i] += delta * shares[i]
                self._whole[i] += delta
        self._last_whole = list(whole)
        return tuple(self._cum)

    def whole_energy_j(self) -> tuple[float, ...]:
        """The unshared device energy over the same reads (for the window's share)."""
        return tuple(self._whole)

    def read_power_w(self) -> tuple[float, ...]:
        whole = self._inner.read_power_w()
        shares = self._shares()
        self.last_whole_power_w = tuple(whole)
        return tuple(p * s for p, s in zip(whole, shares, strict=True))

    def drain_notes(self) -> tuple[str, ...]:
        notes, self._notes = tuple(self._notes), []
        return notes + tuple(self._inner.drain_notes())

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            if self._tree is not None:
                self._tree.close()

