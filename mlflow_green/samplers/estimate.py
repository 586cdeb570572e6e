"""CPU and RAM energy estimated from utilisation, where RAPL is absent (method ``estimate``).

CPU model
    ``P = TDP x f(u)`` where ``u`` is the machine's CPU utilisation and ``f`` the load curve
    published by Teads and used by Boavizta (fraction of TDP at 0 %, 10 %, 50 %, 100 % load:
    0.12, 0.32, 0.75, 1.02; linear in between). It is concave like measured server CPUs,
    where CodeCarbon's ``max(TDP x u, 0.1 TDP)`` is linear and undercounts mid loads.

    ``u`` comes from ``psutil.cpu_times()``: busy time / (busy + idle) between two reads,
    which is the exact mean utilisation over that interval, so no thread samples it. Reads
    happen at window edges, so ``f`` is applied to each window's mean utilisation; steal
    time (another VM's work) is left out. Utilisation is the whole machine's, like RAPL's
    package energy (and DataLoader workers, which are other processes, count).

    TDP comes from CodeCarbon's CPU table (``codecarbon/data/hardware/cpu_power.csv``, read
    from the installed package without importing it) times the number of sockets. Where the
    model is not in the table, 3.5 W per logical CPU is used: the median TDP per hardware
    thread of current parts (EPYC 9654 1.9 W, EPYC 7763 2.2 W, Xeon 8480+ 3.1 W, i7-1185G7
    3.5 W, Xeon 6248 3.75 W, i9-13900K 3.9 W, Ryzen 7950X 5.3 W). In a virtual machine the
    guest sees a slice of the host's package, so the table TDP is capped at 3.5 W per
    visible logical CPU (CodeCarbon charges a 2-vCPU VM the whole 64-core package).

RAM model
    ``P = 0.3725 W per GB of memory in use`` (Green Algorithms, Lannelongue et al. 2021,
    from DDR4 data), memory in use = total - available, averaged (trapezoid) between reads.
    It scales with the memory the workloads hold rather than with installed DIMMs, so a
    1.5 TB host running one job is not charged for its idle memory the way CodeCarbon's
    5 W per DIMM does.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import itertools
import os
import platform
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlflow_green.errors import SamplerError, SamplerUnavailable
from mlflow_green.samplers._base import METHOD_ESTIMATE, Component, DeviceInfo, SamplerBase

__all__ = [
    "CPU_LOAD_CURVE",
    "RAM_W_PER_GB",
    "W_PER_LOGICAL_CPU",
    "CpuEstimateSampler",
    "CpuInfo",
    "RamEstimateSampler",
    "cpu_power_fraction",
    "estimate_is_available",
    "host_cpu_info",
    "lookup_tdp_w",
]

# (utilisation 0..1, fraction of TDP): Teads/Boavizta CPU consumption profile.
CPU_LOAD_CURVE: tuple[tuple[float, float], ...] = (
    (0.0, 0.12),
    (0.1, 0.32),
    (0.5, 0.75),
    (1.0, 1.02),
)
W_PER_LOGICAL_CPU = 3.5
RAM_W_PER_GB = 0.3725
_GB = 1e9
_CLOCK_TICK_S = 0.01  # cpu_times resolution (USER_HZ = 100 on Linux)


def cpu_power_fraction(utilization: float) -> float:
    """Fraction of TDP drawn at ``utilization`` (0..1, clamped) on the load curve."""
    u = min(max(float(utilization), 0.0), 1.0)
    for (u0, f0), (u1, f1) in itertools.pairwise(CPU_LOAD_CURVE):
        if u <= u1:
            return f0 + (f1 - f0) * (u - u0) / (u1 - u0)
    return CPU_LOAD_CURVE[-1][1]


def _normalize(name: str) -> str:
    low = name.lower()
    low = re.sub(r"\((r|tm)\)|®|™", " ", low)
    low = re.sub(r"@.*$", " ", low)
    low = re.sub(r"\b(cpu|processor|\d+-core|with radeon graphics|graphics)\b", " ", low)
    return " ".join(low.replace(",", " ").split())


@functools.lru_cache(maxsize=1)
def _codecarbon_rows() -> tuple[tuple[str, float], ...]:
    """CodeCarbon's CPU table as it is: ``(name, TDP watts)`` rows (names not normalised)."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        return ()
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "hardware" / "cpu_power.csv"
        if path.is_file():
            with path.open(newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                header = next(reader, [])
                if "Name" not in header or "TDP" not in header:
                    return ()
                at_name, at_tdp = header.index("Name"), header.index("TDP")
                rows = []
                for row in reader:
                    try:
                        rows.append((row[at_name], float(row[at_tdp])))
                    except (IndexError, ValueError):
                        continue
                return tuple(rows)
    return ()


def _candidates(target: str) -> tuple[tuple[str, float], ...]:
    """The normalised CodeCarbon rows that can match ``target`` (a normalised model name).

    A row matches only with all its words in the target and a digit among them (or exactly,
    see :func:`lookup_tdp_w`), so it contains one of the target's words that carry a digit:
    a substring test on the raw name keeps the few such rows, and only those are normalised
    (normalising all ~5,000 rows was most of a run's start-up cost). Every normalised word is
    a substring of the lower-cased raw name, so the test drops no row that could match."""
    words = target.split()
    keys = [w for w in words if any(ch.isdigit() for ch in w)]
    if keys:
        kept = [r for r in _codecarbon_rows() if any(k in r[0].lower() for k in keys)]
    else:  # no digit in the target: only an exact match can be found, holding every word
        kept = [r for r in _codecarbon_rows() if all(w in r[0].lower() for w in words)]
    return tuple((_normalize(name), tdp) for name, tdp in kept)


@functools.lru_cache(maxsize=8)
def _lookup_in_codecarbon(target: str) -> tuple[float, str] | None:
    return _match(target, _candidates(target))


def lookup_tdp_w(
    model: str, table: tuple[tuple[str, float], ...] | None = None
) -> tuple[float, str] | None:
    """TDP of a CPU model from CodeCarbon's table: ``(watts, matched entry)`` or None.

    An exact match of the normalised name wins; otherwise the longest table entry whose
    words all occur in the model name, when no other entry of that length also matches.
    ``table`` (normalised names) replaces CodeCarbon's.
    """
    target = _normalize(model)
    if not target:
        return None
    return _lookup_in_codecarbon(target) if table is None else _match(target, table)


def _match(target: str, rows: tuple[tuple[str, float], ...]) -> tuple[float, str] | None:
    for name, tdp in rows:
        if name == target:
            return tdp, name
    words = set(target.split())
    best: list[tuple[str, float]] = []
    best_len = 0
    for name, tdp in rows:
        parts = name.split()
        if len(parts) >= 2 and any(ch.isdigit() for ch in name) and set(parts) <= words:
            if len(parts) > best_len:
                best, best_len = [(name, tdp)], len(parts)
            elif len(parts) == best_len:
                best.append((name, tdp))
    if len({tdp for _, tdp in best}) == 1:
        return best[0][1], best[0][0]
    return None


@dataclass(frozen=True)
class CpuInfo:
    """What the estimate needs to know about this machine's CPUs."""

    model: str
    logical_cpus: int
    sockets: int = 1
    virtualized: bool = False


def host_cpu_info(cpuinfo_path: str | Path = "/proc/cpuinfo") -> CpuInfo:
    """This machine's CPU model, logical CPUs usable by this process, sockets, VM flag."""
    model, sockets, virtualized = "", set(), False
    try:
        text = Path(cpuinfo_path).read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and not model:
            model = value
        elif key == "physical id":
            sockets.add(value)
        elif key == "flags" and "hypervisor" in value.split():
            virtualized = True
    if not model:
        model = platform.processor() or platform.machine() or "unknown CPU"
    try:
        logical = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        logical = os.cpu_count() or 1
    return CpuInfo(
        model=model,
        logical_cpus=max(logical, 1),
        sockets=max(len(sockets), 1),
        virtualized=virtualized,
    )


def _import_psutil():  # type: ignore[no-untyped-def]
    try:
        import psutil
    except ImportError as exc:
        raise SamplerUnavailable("the estimate needs psutil: pip install psutil") from exc
    return psutil


def estimate_is_available() -> tuple[bool, str]:
    try:
        _import_psutil()
    except SamplerUnavailable as exc:
        return False, str(exc)
    return True, "psutil reads CPU times and memory"


def _gil_holding_pread() -> Callable[[int, int], bytes] | None:
    """``os.pread`` that keeps the interpreter lock (libc through ``ctypes.PyDLL``), or None.

    A /proc read takes microseconds and never blocks; ``os.pread`` drops the lock around it,
    and a busy background thread (the MLflow logger) then takes it for up to the switch
    interval (5 ms) before the training thread gets it back. Keeping it avoids that convoy.
    """
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.PyDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        pread = libc.pread
        pread.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
        pread.restype = ctypes.c_ssize_t
    except (OSError, AttributeError):
        return None
    buffer = ctypes.create_string_buffer(4096)
    lock = threading.Lock()

    def read(fd: int, size: int) -> bytes:
        with lock:  # one shared buffer
            n = pread(fd, buffer, min(size, len(buffer)), 0)
            if n < 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            return buffer.raw[:n]

    return read


_PREAD = _gil_holding_pread() if sys.platform.startswith("linux") else None


class _ProcFile:
    """A /proc file re-read through a descriptor kept open: ``pread`` at offset 0 costs a
    fifth of psutil's open/read/parse of the same file, and is read at every window edge."""

    def __init__(self, path: str) -> None:
        self._fd: int | None = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self._pid = os.getpid()

    def read(self) -> bytes:
        if self._fd is None:
            raise OSError("closed")
        if os.getpid() != self._pid:  # a forked child: reopen rather than share
            path = os.readlink(f"/proc/self/fd/{self._fd}")
            self._fd, self._pid = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)), os.getpid()
        if _PREAD is not None:
            return _PREAD(self._fd, 4096)
        return os.pread(self._fd, 4096, 0)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


# /proc/stat's "cpu" line: user nice system idle iowait irq softirq steal guest guest_nice.
_BUSY_FIELDS = (0, 1, 2, 5, 6)
_IDLE_FIELDS = (3, 4)


def _proc_stat_cpu_seconds(proc: _ProcFile) -> Callable[[], tuple[float, float]]:
    """``_system_cpu_seconds`` from /proc/stat directly (Linux); same fields, same sums."""
    tick = float(os.sysconf("SC_CLK_TCK"))

    def read() -> tuple[float, float]:
        line = proc.read().split(b"\n", 1)[0].split()
        if not line or line[0] != b"cpu" or len(line) < 8:
            raise SamplerError(f"unexpected /proc/stat line: {line[:3]!r}")
        values = [int(v) / tick for v in line[1:]]
        busy = sum(values[i] for i in _BUSY_FIELDS)
        idle = sum(values[i] for i in _IDLE_FIELDS)
        return busy, busy + idle

    read()  # fail now (and fall back to psutil) rather than at the first window
    return read


def _proc_meminfo_in_use(proc: _ProcFile) -> Callable[[], tuple[float, float]]:
    """``_memory_in_use_bytes`` from /proc/meminfo directly (Linux, MemAvailable present)."""

    def read() -> tuple[float, float]:
        total = available = None
        for line in proc.read().split(b"\n"):
            if line.startswith(b"MemTotal:"):
                total = int(line.split()[1]) * 1024
            elif line.startswith(b"MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
        if total is None or available is None:
            raise SamplerError("/proc/meminfo has no MemTotal/MemAvailable")
        return float(total - available), float(total)

    read()
    return read


def _open_fast(path: str, make: Callable[[_ProcFile], Callable[[], tuple[float, float]]]) -> tuple[_ProcFile | None, Callable[[], tuple[float, float]] | None]:
    """A fast reader of a /proc file, or (None, None) where there is none (not Linux...)."""
    if not os.path.exists(path):
        return None, None
    try:
        proc = _ProcFile(path)
    except OSError:
        return None, None
    try:
        return proc, make(proc)
    except Exception:
        proc.close()
        return None, None


def _system_cpu_seconds() -> tuple[float, float]:
    """(busy, busy + idle) CPU seconds of the whole machine since boot."""
    t = _import_psutil().cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    # guest time is already inside user/nice on Linux; steal is another VM's work.
    skip = {"idle", "iowait", "steal", "guest", "guest_nice"}
    busy = sum(getattr(t, f) for f in t._fields if f not in skip)
    return busy, busy + idle


class CpuEstimateSampler(SamplerBase):
    """CPU energy from TDP and the load curve (see module docstring). A counter: no thread."""

    component: Component = "cpu"

    def __init__(
        self,
        *,
        tdp_w: float | None = None,
        cpu_info: CpuInfo | None = None,
        cpu_seconds: Callable[[], tuple[float, float]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        table: tuple[tuple[str, float], ...] | None = None,
    ) -> None:
        self._proc: _ProcFile | None = None
        if cpu_seconds is None:
            self._proc, cpu_seconds = _open_fast("/proc/stat", _proc_stat_cpu_seconds)
        self._cpu_seconds = cpu_seconds or _system_cpu_seconds
        self._clock = clock
        info = cpu_info or host_cpu_info()
        self.cpu_info = info
        per_thread_w = W_PER_LOGICAL_CPU * info.logical_cpus
        if tdp_w is not None:
            self.tdp_w, why = float(tdp_w), "TDP given"
        else:
            found = lookup_tdp_w(info.model, table)
            if found is None:
                self.tdp_w = per_thread_w
                why = (
                    f"model not in CodeCarbon's TDP table: {W_PER_LOGICAL_CPU:g} W x "
                    f"{info.logical_cpus} logical CPUs"
                )
            else:
                tdp, matched = found
                self.tdp_w = tdp * info.sockets
                why = (
                    f"TDP {tdp:g} W ({matched!r} in CodeCarbon's table) x {info.sockets} socket(s)"
                )
                if info.virtualized and per_thread_w < self.tdp_w:
                    self.tdp_w = per_thread_w
                    why += (
                        f", capped for a virtual machine at {W_PER_LOGICAL_CPU:g} W x "
                        f"{info.logical_cpus} visible logical CPUs"
                    )
        self.description = (
            f"{info.model}, {self.tdp_w:.1f} W at full load ({why}), "
            "scaled by machine CPU utilisation on the Teads/Boavizta load curve"
        )
        self._devices = (DeviceInfo(index=0, name=info.model),)
        self._energy_j = 0.0
        self._last: tuple[float, float, float] | None = None
        # (busy, total) CPU seconds of the latest read: a host share reuses it (one /proc/stat read).
        self.last_reading: tuple[float, float] | None = None

    @property
    def method(self) -> str:
        return METHOD_ESTIMATE

    @property
    def update_period_s(self) -> float:
        return _CLOCK_TICK_S

    def read_energy_j(self) -> tuple[float, ...]:
        now = self._clock()
        try:
            busy, total = self._cpu_seconds()
        except SamplerUnavailable:
            raise
        except Exception as exc:
            raise SamplerError(f"cannot read CPU times: {exc}") from exc
        self.last_reading = (busy, total)
        if self._last is not None:
            t0, busy0, total0 = self._last
            d_total = total - total0
            utilization = (busy - busy0) / d_total if d_total > 0 else 0.0
            self._energy_j += self.tdp_w * cpu_power_fraction(utilization) * max(now - t0, 0.0)
        self._last = (now, busy, total)
        return (self._energy_j,)

    def read_power_w(self) -> tuple[float, ...]:
        raise SamplerError("the CPU estimate is read as energy")

    def close(self) -> None:
        if self._proc is not None:
            self._proc.close()


def _memory_in_use_bytes() -> tuple[float, float]:
    vm = _import_psutil().virtual_memory()
    return float(vm.total - vm.available), float(vm.total)


class RamEstimateSampler(SamplerBase):
    """RAM energy from the memory in use (see module docstring). A counter: no thread."""

    component: Component = "ram"

    def __init__(
        self,
        *,
        w_per_gb: float = RAM_W_PER_GB,
        memory: Callable[[], tuple[float, float]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._proc: _ProcFile | None = None
        if memory is None:
            self._proc, memory = _open_fast("/proc/meminfo", _proc_meminfo_in_use)
        self._memory = memory or _memory_in_use_bytes
        self._clock = clock
        self.w_per_gb = float(w_per_gb)
        try:
            used, total = self._memory()
        except SamplerUnavailable:
            raise
        except Exception as exc:
            raise SamplerUnavailable(f"cannot read memory use: {exc}") from exc
        self._devices = (DeviceInfo(index=0, name=f"{total / _GB:.1f} GB RAM"),)
        self.description = (
            f"{self.w_per_gb:g} W per GB of memory in use "
            f"({used / _GB:.1f} of {total / _GB:.1f} GB now)"
        )
        self._energy_j = 0.0
        self._last: tuple[float, float] | None = None
        # (in use, total) bytes of the latest read: a host share reuses it.
        self.last_reading: tuple[float, float] | None = None

    @property
    def method(self) -> str:
        return METHOD_ESTIMATE

    def read_energy_j(self) -> tuple[float, ...]:
        now = self._clock()
        try:
            used, _total = self._memory()
        except SamplerUnavailable:
            raise
        except Exception as exc:
            raise SamplerError(f"cannot read memory use: {exc}") from exc
        self.last_reading = (used, _total)
        if self._last is not None:
            t0, used0 = self._last
            mean_gb = (used + used0) / 2 / _GB
            self._energy_j += self.w_per_gb * mean_gb * max(now - t0, 0.0)
        self._last = (now, used)
        return (self._energy_j,)

    def read_power_w(self) -> tuple[float, ...]:
        raise SamplerError("the RAM estimate is read as energy")

    def close(self) -> None:
        if self._proc is not None:
            self._proc.close()
