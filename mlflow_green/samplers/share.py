"""This process's share of a shared host: CPU time and resident memory of its process tree.

On a shared machine (a notebook server, inference beside training, a VM with other jobs)
the machine-wide CPU and RAM figures (RAPL, or the utilisation estimate) belong to every
process on it. :class:`HostShareSampler` wraps the machine-wide sampler and charges a window
``machine energy x share``:

- CPU (basis ``cpu-time``): the CPU seconds of this process and its descendants over the
  machine's busy CPU seconds, both read from ``/proc`` between the same two reads. A process's
  ``utime + stime`` plus ``cutime + cstime`` (the time of its children that exited and were
  waited for) is summed over the live tree, so DataLoader workers count whether they are still
  running or already gone.
- RAM (basis ``rss``): the resident memory of the tree over the machine's memory in use
  (MemTotal - MemAvailable), mean of the two edges. Pages shared between a parent and its
  forked children count in each (RSS, not PSS), so the share is capped at 1.

The tree is rooted at this process, whose own CPU time is read at nanosecond resolution
(``CLOCK_PROCESS_CPUTIME_ID`` and ``getrusage(RUSAGE_CHILDREN)``); its descendants' comes from
their ``stat`` files in clock ticks (10 ms). Live descendants are found through
``/proc/<pid>/task/<pid>/children`` (children forked by the main thread, which is where
DataLoader and multiprocessing start them); a child forked by another thread counts once it
has exited and been waited for. The files are kept open and re-read with ``pread``: an edge
costs a few microseconds per process of the tree.

``share_mode()`` reads the setting (``share=`` argument, else ``MLFLOW_GREEN_SHARE``:
``auto``, ``on``, ``off``); see docs/measurement.md for when sharing is on by default.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mlflow_green import _settings
from mlflow_green.errors import ConfigError, SamplerError
from mlflow_green.samplers._base import Component, DeviceInfo, Sampler
from mlflow_green.samplers.estimate import (
    _open_fast,
    _proc_meminfo_in_use,
    _proc_stat_cpu_seconds,
    _ProcFile,
)

__all__ = [
    "BASIS_CPU_TIME",
    "BASIS_RSS",
    "HostShareSampler",
    "ProcessTree",
    "ShareOf",
    "TreeReading",
    "share_method",
    "share_mode",
]

BASIS_CPU_TIME = "cpu-time"
BASIS_RSS = "rss"
SHARE_PREFIX = "share:"
SHARE_MODES = ("auto", "on", "off")


def share_method(basis: str) -> str:
    """The ``green.method.*`` value of a shared component: ``share:<basis>``."""
    return f"{SHARE_PREFIX}{basis}"


def share_mode(share: bool | str | None = None) -> str:
    """``auto``, ``on`` or ``off`` from the argument, else ``MLFLOW_GREEN_SHARE``, else auto.

    Raises:
        ConfigError: a value that is none of those (or a boolean spelling of on/off).
    """
    source = "share"
    if share is None:
        share = _settings.env_str(_settings.ENV_SHARE)
        source = _settings.ENV_SHARE
        if share is None:
            return "auto"
    if isinstance(share, bool):
        return "on" if share else "off"
    low = str(share).strip().lower()
    if low in SHARE_MODES:
        return low
    if low in ("1", "true", "yes"):
        return "on"
    if low in ("0", "false", "no"):
        return "off"
    raise ConfigError(f"{source}={share!r} is not a share setting: use auto, on or off")


@dataclass(frozen=True)
class TreeReading:
    """One read of the process tree: its CPU seconds (live and reaped) and resident bytes."""

    cpu_s: float
    rss_bytes: float
    pids: tuple[int, ...]


_TICK = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
_PAGE = float(os.sysconf("SC_PAGE_SIZE")) if hasattr(os, "sysconf") else 4096.0


def _parse_stat(raw: bytes) -> tuple[float, float]:
    """(utime + stime + cutime + cstime seconds, rss bytes) from a /proc/<pid>/stat line."""
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    # fields[0] is field 3 (state): utime..cstime are fields 14..17, rss is field 24.
    ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return ticks / _TICK, int(fields[21]) * _PAGE


def _own_cpu_seconds() -> float:
    """This process's CPU time (all threads, ns) plus its waited-for children's (us)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


class ProcessTree:
    """CPU time and RSS of a process and its live descendants, from ``/proc``.

    Args:
        root: the tree's root pid (default: this process).
        proc_root: where procfs is mounted (tests keep the default).
    """

    def __init__(self, root: int | None = None, *, proc_root: str = "/proc") -> None:
        self._root = os.getpid() if root is None else int(root)
        self._proc_root = proc_root
        self._stat: dict[int, _ProcFile] = {}
        self._children: dict[int, _ProcFile] = {}
        self._pid_at_open = os.getpid()
        self._own = os.getpid() if proc_root == "/proc" else -1
        self._cached: tuple[float, TreeReading] | None = None
        self.users = 0
        self.read()  # fail now (the caller falls back) rather than at the first window

    @property
    def root(self) -> int:
        return self._root

    def _file(self, cache: dict[int, _ProcFile], pid: int, path: str) -> _ProcFile | None:
        f = cache.get(pid)
        if f is None:
            try:
                f = _ProcFile(path)
            except OSError:
                return None
            cache[pid] = f
        return f

    def _kids(self, pid: int) -> list[int]:
        f = self._file(self._children, pid, f"{self._proc_root}/{pid}/task/{pid}/children")
        if f is None:
            return []
        try:
            return [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            self._drop(pid)
            return []

    def _drop(self, pid: int) -> None:
        for cache in (self._stat, self._children):
            f = cache.pop(pid, None)
            if f is not None:
                f.close()

    def read(self, max_age_s: float = 0.0) -> TreeReading:
        """The tree now (or the reading taken less than ``max_age_s`` ago, for the CPU and
        RAM samplers read at one edge). Raises SamplerError when the root cannot be read."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < max_age_s:
            return self._cached[1]
        reading = self._read()
        self._cached = (time.monotonic(), reading)
        return reading

    def _read(self) -> TreeReading:
        if os.getpid() != self._pid_at_open:  # a forked child measures its own tree
            self.close()
            self._root = self._pid_at_open = self._own = os.getpid()
        cpu = rss = 0.0
        seen: list[int] = []
        stack = [self._root]
        while stack and len(seen) < 4096:
            pid = stack.pop()
            if pid in seen:
                continue
            f = self._file(self._stat, pid, f"{self._proc_root}/{pid}/stat")
            try:
                if f is None:
                    raise OSError("gone")
                c, r = _parse_stat(f.read())
            except (OSError, ValueError, IndexError) as exc:
                if pid == self._root:
                    raise SamplerError(f"cannot read /proc/{pid}/stat: {exc}") from exc
                self._drop(pid)  # exited: its time is in its parent's cutime once waited for
                continue
            if pid == self._own:
                c = _own_cpu_seconds()  # the same sum at ns/us resolution, not clock ticks
            cpu += c
            rss += r
            seen.append(pid)
            stack.extend(self._kids(pid))
        for pid in [p for p in self._stat if p not in seen]:
            self._drop(pid)
        return TreeReading(cpu_s=cpu, rss_bytes=rss, pids=tuple(seen))

    def close(self) -> None:
        for pid in list(self._stat) + list(self._children):
            self._drop(pid)


# The CPU and RAM samplers are read one after the other at an edge: one tree read serves both.
_SAME_EDGE_S = 0.002
_TREE_LOCK = threading.Lock()
_TREE: ProcessTree | None = None


def _shared_tree() -> ProcessTree:
    """This process's tree, shared by the host share samplers of one process."""
    global _TREE
    with _TREE_LOCK:
        if _TREE is None or _TREE.root != os.getpid():
            _TREE = ProcessTree()
        _TREE.users += 1
        return _TREE


def _release_tree(tree: ProcessTree) -> None:
    global _TREE
    with _TREE_LOCK:
        tree.users -= 1
        if tree.users <= 0:
            tree.close()
            if _TREE is tree:
                _TREE = None


def _machine_reader(component: Component) -> tuple[_ProcFile | None, Callable[[], tuple[float, float]] | None]:
    if component == "cpu":
        return _open_fast("/proc/stat", _proc_stat_cpu_seconds)
    return _open_fast("/proc/meminfo", _proc_meminfo_in_use)


class ShareOf:
    """What a share sampler passes through from the sampler whose energy it divides
    (``self._inner``), and its ``share:<basis>`` method."""

    _inner: Sampler
    basis: str

    @property
    def inner(self) -> Sampler:
        return self._inner

    @property
    def method(self) -> str:
        return share_method(self.basis)

    @property
    def devices(self) -> tuple[DeviceInfo, ...]:
        return self._inner.devices

    @property
    def update_period_s(self) -> float:
        return self._inner.update_period_s


class HostShareSampler(ShareOf):
    """A machine-wide CPU or RAM sampler charged at this process tree's share (a counter).

    Args:
        inner: the machine-wide sampler (RAPL, estimate, replay...); a counter sampler.
        tree: the process tree to charge (default: this process and its descendants).
        machine: (busy CPU seconds, total) for ``cpu``, (bytes in use, total) for ``ram``;
            default read from /proc.

    Raises:
        SamplerError: ``inner`` is polled, or /proc cannot be read (callers fall back to the
            unwrapped sampler).
    """

    def __init__(
        self,
        inner: Sampler,
        *,
        tree: ProcessTree | None = None,
        machine: Callable[[], tuple[float, float]] | None = None,
    ) -> None:
        if inner.component not in ("cpu", "ram"):
            raise SamplerError(f"a host share is for cpu or ram, not {inner.component}")
        if inner.needs_polling:
            raise SamplerError("a host share wraps an energy-counter sampler only")
        self._inner = inner
        self.component: Component = inner.component
        self.problem: str | None = getattr(inner, "problem", None)
        self.basis = BASIS_CPU_TIME if inner.component == "cpu" else BASIS_RSS
        self._proc: _ProcFile | None = None
        # The estimate samplers read the same /proc file at the same instant: reuse it.
        self._reuse = machine is None and hasattr(inner, "last_reading")
        if machine is None and not self._reuse:
            self._proc, machine = _machine_reader(inner.component)
            if machine is None:
                raise SamplerError("/proc/stat and /proc/meminfo are needed for a host share")
        self._machine = machine
        self._own_tree = tree is None
        self._tree = tree if tree is not None else _shared_tree()
        self._last: tuple[float, float, float] | None = None  # (inner J, tree, machine)
        self._cum_j = 0.0
        self._whole_j = 0.0
        self.last_share: float | None = None
        inner_desc = str(getattr(inner, "description", inner.method))
        what = (
            "CPU seconds of this process tree over the machine's busy CPU seconds"
            if self.component == "cpu"
            else "resident memory of this process tree over the machine's memory in use"
        )
        self.description = f"share ({what}) of the machine's {inner.method}: {inner_desc}"
        self.notes: tuple[str, ...] = (
            *getattr(inner, "notes", ()),
            f"{self.component} energy is this process tree's share ({self.basis}) of the "
            f"machine's {inner.method} figure; share=False charges the whole machine",
        )

    @property
    def needs_polling(self) -> bool:
        return False

    @property
    def wrap_period_s(self) -> float:
        return float(getattr(self._inner, "wrap_period_s", 0.0) or 0.0)

    def _share(self, tree0: float, tree1: float, mach0: float, mach1: float) -> float:
        if self.component == "cpu":
            busy = mach1 - mach0
            used = tree1 - tree0
            if busy <= 0:
                # /proc/stat moves in clock ticks: an interval shorter than one keeps the last
                # share (before any, the job's whole if it ran at all: never charge nobody).
                if self.last_share is not None:
                    return self.last_share
                return 1.0 if used > 0 else 0.0
            share = used / busy
        else:
            mean_used = (mach0 + mach1) / 2
            share = (tree0 + tree1) / 2 / mean_used if mean_used > 0 else 0.0
        return min(max(share, 0.0), 1.0)

    def read_energy_j(self) -> tuple[float, ...]:
        whole = sum(self._inner.read_energy_j())
        try:
            reading = self._tree.read(max_age_s=_SAME_EDGE_S)
            last = getattr(self._inner, "last_reading", None) if self._reuse else None
            if last is not None:
                mach = float(last[0])
            elif self._machine is not None:
                mach, _total = self._machine()
            else:
                raise SamplerError(f"the {self.component} sampler gave no machine reading")
        except SamplerError:
            raise
        except Exception as exc:
            raise SamplerError(f"cannot read this process tree's {self.basis}: {exc}") from exc
        own = reading.cpu_s if self.component == "cpu" else reading.rss_bytes
        if self._last is not None:
            whole0, own0, mach0 = self._last
            share = self._share(own0, own, mach0, mach)
            delta = max(whole - whole0, 0.0)
            self._cum_j += delta * share
            self._whole_j += delta
            self.last_share = share
        self._last = (whole, own, mach)
        return (self._cum_j,)

    def whole_energy_j(self) -> tuple[float, ...]:
        """The unshared machine energy over the same reads (for the window's share)."""
        return (self._whole_j,)

    def read_power_w(self) -> tuple[float, ...]:
        raise SamplerError("a host share is read as energy")

    def drain_notes(self) -> tuple[str, ...]:
        drain = getattr(self._inner, "drain_notes", None)
        return tuple(drain()) if drain is not None else ()

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            if self._own_tree:
                _release_tree(self._tree)
            else:
                self._tree.close()
            if self._proc is not None:
                self._proc.close()
