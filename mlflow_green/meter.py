"""The energy meter: named measurement windows over a set of samplers.

A window (an epoch, a run, an evaluation pass) is opened with ``begin(name)`` and closed with
``end(name)``, which returns a :class:`~mlflow_green.samplers.Measurement`. Windows may
overlap or nest. At every window edge each sampler is read once and cumulative energy per
device is kept, so a window's energy is the difference of two snapshots.

Threads: none while every sampler is a counter (NVML energy, RAPL, estimates, simulated,
replay) -- an edge read costs microseconds. One background thread runs only when a sampler
must be polled for power (integrated with the trapezoid rule, and read at the edges too so
windows are aligned exactly), or when a counter can wrap around (RAPL) and must be read at
least four times per wrap period. ``close()`` joins it; nothing survives.

Telemetry never breaks training: a sampler that fails while reading is logged once as a
warning and dropped, its component keeps its method, the failure is recorded in
``problems`` and ``status`` becomes ``degraded: <why>``; the other components carry on.
When ``MLFLOW_GREEN_STRICT=1`` the failure is raised instead (in the caller's thread).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from mlflow_green import _settings
from mlflow_green.errors import ConfigError, SamplerError
from mlflow_green.samplers._base import (
    COMPONENTS,
    METHOD_NONE,
    METHOD_SIMULATED,
    Component,
    ComponentEnergy,
    Measurement,
    Sampler,
)

__all__ = ["EnergyMeter", "HardwareInfo", "WindowHandle"]

_logger = logging.getLogger("mlflow_green.meter")
_J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class HardwareInfo:
    """What the meter measures: the GPUs, and the method of each component."""

    gpu_model: str
    gpu_count: int
    gpu_names: tuple[str, ...]
    methods: dict[str, str]
    simulated: bool


@dataclass
class WindowHandle:
    """Returned by :meth:`EnergyMeter.window`; ``measurement`` is set when the block exits."""

    name: str
    measurement: Measurement | None = None


@dataclass
class _Source:
    sampler: Sampler
    component: Component
    method: str
    names: tuple[str, ...]
    polled: bool
    wrap_period_s: float
    standing_notes: tuple[str, ...]
    cum_j: list[float] = field(default_factory=list)
    last_power_w: tuple[float, ...] | None = None
    last_t: float | None = None
    last_read_t: float = 0.0
    samples: int = 0
    alive: bool = True
    failure: str | None = None


@dataclass
class _Window:
    name: str
    t0: float
    wall0: float
    cum0: dict[Component, tuple[float, ...]]
    samples0: dict[Component, int]
    alive0: dict[Component, bool]
    notes: dict[Component, list[str]]


class EnergyMeter:
    """Measures energy over named windows from one sampler per component.

    Args:
        samplers: at most one per component (``select()`` gives exactly that).
        poll_interval_s: the background thread's period when a sampler needs polling.
        clock: monotonic seconds (tests may inject one); ``wall_clock``: Unix seconds.
    """

    def __init__(
        self,
        samplers: Sequence[Sampler],
        *,
        poll_interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        interval = _settings.parse_float(poll_interval_s, "poll_interval_s", minimum=0.001)
        self._poll_interval_s = interval
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._closed = False
        self._windows: dict[str, _Window] = {}
        self._problems: list[str] = []
        self._pending_error: BaseException | None = None
        self._sources: dict[Component, _Source] = {}
        for sampler in samplers:
            _check_members(sampler)
            comp = sampler.component
            if comp not in COMPONENTS:
                raise ConfigError(
                    f"sampler component {comp!r} is not one of {', '.join(COMPONENTS)}"
                )
            if comp in self._sources:
                raise ConfigError(f"two samplers for component {comp!r}: pass one per component")
            self._sources[comp] = _Source(
                sampler=sampler,
                component=comp,
                method=sampler.method,
                names=tuple(d.name for d in sampler.devices),
                polled=bool(sampler.needs_polling),
                wrap_period_s=float(sampler.wrap_period_s or 0.0),
                standing_notes=tuple(sampler.notes),
            )
            problem = sampler.problem
            if problem:
                _logger.warning("mlflow_green: %s", problem)
                self._problems.append(str(problem))

    @classmethod
    def from_spec(
        cls,
        spec: str | None = None,
        *,
        components: Sequence[str] = COMPONENTS,
        gpu_indices: Sequence[int] | None = None,
        poll_interval_s: float = 0.1,
    ) -> EnergyMeter:
        """A meter over ``mlflow_green.samplers.select(spec, ...)``."""
        from mlflow_green.samplers import select

        return cls(
            select(spec, components=components, gpu_indices=gpu_indices),
            poll_interval_s=poll_interval_s,
        )

    # -- facts -------------------------------------------------------------------------

    @property
    def hardware(self) -> HardwareInfo:
        gpu = self._sources.get("gpu")
        names = gpu.names if gpu is not None else ()
        distinct = list(dict.fromkeys(names))
        model = (
            distinct[0] if len(distinct) == 1 else (" + ".join(distinct) if distinct else "none")
        )
        methods: dict[str, str] = {
            c: (self._sources[c].method if c in self._sources else METHOD_NONE) for c in COMPONENTS
        }
        return HardwareInfo(
            gpu_model=model,
            gpu_count=len(names),
            gpu_names=names,
            methods=methods,
            simulated=any(m == METHOD_SIMULATED for m in methods.values()),
        )

    @property
    def problems(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._problems)

    @property
    def status(self) -> str:
        problems = self.problems
        return "ok" if not problems else "degraded: " + "; ".join(problems)

    @property
    def polling(self) -> bool:
        """True while the background thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def open_windows(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._windows)

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> None:
        """Take the first readings and start the thread if one is needed. Idempotent."""
        with self._lock:
            if self._closed:
                raise ConfigError("this EnergyMeter is closed; create a new one")
            if self._started:
                return
            self._started = True
            now = self._clock()
            for src in self._sources.values():
                self._read(src, now)
            self._raise_pending()
            period = self._thread_period()
            if period is not None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, args=(period,), name="mlflow-green-meter", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Stop and join the thread, close the samplers, drop open windows. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        with self._lock:
            self._windows.clear()
            for src in self._sources.values():
                try:
                    src.sampler.close()
                except Exception as exc:  # closing must not mask the training's own outcome
                    _logger.debug("closing the %s sampler failed: %s", src.component, exc)

    def __enter__(self) -> EnergyMeter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- windows -----------------------------------------------------------------------

    def begin(self, name: str) -> None:
        """Open the window ``name`` (starting the meter if needed)."""
        self.start()
        with self._lock:
            self._raise_pending()
            if name in self._windows:
                raise ConfigError(f"measurement window {name!r} is already open; end it first")
            now, wall = self._clock(), self._wall_clock()
            self._refresh(now)
            self._open_window(name, now, wall)

    def end(self, name: str) -> Measurement:
        """Close the window ``name`` and return what it measured."""
        with self._lock:
            self._raise_pending()
            window = self._open_window_named(name)
            now = self._clock()
            self._refresh(now)
            self._raise_pending()
            return self._close_window(window, now)

    def lap(self, end_name: str, begin_name: str) -> Measurement:
        """``end(end_name)`` then ``begin(begin_name)`` at one reading of the samplers.

        The next window starts exactly where the previous one stopped (no gap, no overlap),
        and an epoch boundary costs one sampler read instead of two.
        """
        with self._lock:
            self._raise_pending()
            window = self._open_window_named(end_name)
            if begin_name in self._windows and begin_name != end_name:
                raise ConfigError(f"measurement window {begin_name!r} is already open; end it first")
            # Both clocks read at the same instant: the next window's wall-clock start is where
            # this one's duration ends, however long the sampler read and the accounting take.
            now, wall = self._clock(), self._wall_clock()
            self._refresh(now)
            self._raise_pending()
            measurement = self._close_window(window, now)
            self._open_window(begin_name, now, wall)
            return measurement

    def _open_window_named(self, name: str) -> _Window:
        window = self._windows.get(name)
        if window is None:
            raise ConfigError(
                f"measurement window {name!r} is not open; call begin({name!r}) first"
            )
        return window

    def _open_window(self, name: str, now: float, wall: float) -> None:
        self._windows[name] = _Window(
            name=name,
            t0=now,
            wall0=wall,
            cum0={c: tuple(s.cum_j) for c, s in self._sources.items()},
            samples0={c: s.samples for c, s in self._sources.items()},
            alive0={c: s.alive for c, s in self._sources.items()},
            notes={c: [] for c in self._sources},
        )

    def _close_window(self, window: _Window, now: float) -> Measurement:
        del self._windows[window.name]
        duration = max(now - window.t0, 0.0)
        parts = {c: self._component(c, window, duration) for c in COMPONENTS}
        problems = tuple(p for p in self._problems)
        return Measurement(
            name=window.name,
            start_unix_s=window.wall0,
            duration_s=duration,
            gpu=parts["gpu"],
            cpu=parts["cpu"],
            ram=parts["ram"],
            problems=problems,
        )

    @contextmanager
    def window(self, name: str) -> Iterator[WindowHandle]:
        """``with meter.window("epoch-0") as w: ...`` then ``w.measurement``."""
        handle = WindowHandle(name)
        self.begin(name)
        try:
            yield handle
        finally:
            if not self._closed:
                handle.measurement = self.end(name)

    # -- internals ---------------------------------------------------------------------

    def _component(self, comp: Component, window: _Window, duration: float) -> ComponentEnergy:
        src = self._sources.get(comp)
        if src is None:
            return ComponentEnergy(comp, METHOD_NONE)
        notes = list(src.standing_notes) + window.notes.get(comp, [])
        begin = window.cum0.get(comp, ())
        end = tuple(src.cum_j)
        per_device_j = tuple(max(b - a, 0.0) for a, b in zip(begin, end, strict=False))
        if not src.alive:
            if window.alive0.get(comp, False):
                notes.append(
                    f"{comp} sampler failed during this window ({src.failure}); energy after the failure is missing"
                )
            else:
                notes.append(f"{comp} sampler was dropped earlier ({src.failure}); not measured")
        period = float(src.sampler.update_period_s or 0.0)
        if src.alive and src.names and period > 0 and duration < period:
            notes.append(
                f"window {duration:.3g} s is shorter than the {comp} {src.method} update period "
                f"{period:g} s; its energy is approximate"
            )
        if src.polled and src.alive and src.names:
            samples = src.samples - window.samples0.get(comp, 0)
            if samples < 3:
                notes.append(
                    f"only {samples} power sample(s) in this window; lower poll_interval_s "
                    "for a better integral"
                )
        total_j = sum(per_device_j)
        return ComponentEnergy(
            component=comp,
            method=src.method,
            energy_kwh=total_j / _J_PER_KWH,
            per_device_kwh=tuple(j / _J_PER_KWH for j in per_device_j),
            mean_power_w=total_j / duration if duration > 0 else 0.0,
            device_names=src.names,
            notes=tuple(notes),
        )

    def _thread_period(self) -> float | None:
        periods = []
        for src in self._sources.values():
            if not src.alive:
                continue
            if src.polled:
                periods.append(self._poll_interval_s)
            elif src.wrap_period_s > 0:
                periods.append(max(src.wrap_period_s / 4, 0.01))
        return min(periods) if periods else None

    def _run(self, period: float) -> None:
        while not self._stop.wait(period):
            with self._lock:
                if self._closed:
                    return
                now = self._clock()
                for src in self._sources.values():
                    if not src.alive:
                        continue
                    if src.polled or (
                        src.wrap_period_s > 0 and now - src.last_read_t >= src.wrap_period_s / 4
                    ):
                        self._read(src, now)

    def _refresh(self, now: float) -> None:
        for src in self._sources.values():
            if src.alive:
                self._read(src, now)

    def _read(self, src: _Source, now: float) -> None:
        """Read one sampler into its cumulative energy; a failure drops it (or is raised)."""
        try:
            if src.polled:
                power = tuple(float(p) for p in src.sampler.read_power_w())
                self._check_len(src, power)
                if not src.cum_j:
                    src.cum_j = [0.0] * len(power)
                if src.last_power_w is not None and src.last_t is not None:
                    dt = max(now - src.last_t, 0.0)
                    for i, (p0, p1) in enumerate(zip(src.last_power_w, power, strict=True)):
                        src.cum_j[i] += (max(p0, 0.0) + max(p1, 0.0)) / 2 * dt
                src.last_power_w, src.last_t = power, now
                src.samples += 1
            else:
                energy = tuple(float(e) for e in src.sampler.read_energy_j())
                self._check_len(src, energy)
                if src.cum_j:
                    # A back end's counter is already monotonic; never let a window go negative.
                    energy = tuple(max(e, c) for e, c in zip(energy, src.cum_j, strict=True))
                src.cum_j = list(energy)
            src.last_read_t = now
        except Exception as exc:
            self._fail(src, exc)
            return
        for note in src.sampler.drain_notes():
            _logger.info("%s sampler: %s", src.component, note)
            for window in self._windows.values():
                window.notes.setdefault(src.component, []).append(note)

    @staticmethod
    def _check_len(src: _Source, values: tuple[float, ...]) -> None:
        if len(values) != len(src.names):
            raise SamplerError(
                f"{src.component} sampler returned {len(values)} values for {len(src.names)} devices"
            )

    def _fail(self, src: _Source, exc: BaseException) -> None:
        why = " ".join(str(exc).split()) or type(exc).__name__
        src.alive = False
        src.failure = why
        problem = f"{src.component} sampler failed: {why}"
        self._problems.append(problem)
        if _settings.strict():
            error = exc if isinstance(exc, SamplerError) else SamplerError(problem)
            if error is not exc:
                error.__cause__ = exc
            if threading.current_thread() is self._thread:
                self._pending_error = error
            else:
                raise error
            return
        _logger.warning(
            "mlflow_green: %s; %s energy is no longer measured (run marked degraded)",
            problem,
            src.component,
        )
        try:
            src.sampler.close()
        except Exception:
            pass

    def _raise_pending(self) -> None:
        error, self._pending_error = self._pending_error, None
        if error is not None:
            raise error


def _check_members(sampler: object) -> None:
    """A sampler must have every member of the Protocol (a ConfigError naming what is missing)."""
    from mlflow_green.samplers._base import Sampler

    if isinstance(sampler, Sampler):
        return
    missing = sorted(
        name
        for name in ("component", "method", "devices", "needs_polling", "update_period_s",
                     "read_energy_j", "read_power_w", "close", "wrap_period_s", "notes",
                     "problem", "drain_notes")
        if not hasattr(sampler, name)
    )
    raise ConfigError(
        f"sampler {type(sampler).__name__} lacks {', '.join(missing)}: derive it from "
        "mlflow_green.samplers.SamplerBase (defaults for the optional members)"
    )
