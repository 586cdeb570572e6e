"""Play back a recorded energy trace (method ``simulated``): ``MLFLOW_GREEN_SAMPLER=replay:<path>``.

Trace format: JSON Lines, one object per line, blank lines and lines starting with ``#``
ignored. An optional first object names the devices::

    {"mlflow_green_trace": 1, "devices": {"gpu": ["NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB"]}}

then one record per sample, times in seconds from the start of the trace, strictly
increasing, and for each component either cumulative energy in joules per device
(``<component>_j``) or power in watts per device (``<component>_w``)::

    {"t_s": 0.0, "gpu_j": [0, 0], "cpu_w": [35.0]}
    {"t_s": 1.0, "gpu_j": [251.5, 248.0], "cpu_w": [40.0]}

A component present in the trace must be present, with the same number of devices, in every
record; components are ``gpu``, ``cpu`` and ``ram``. Power is integrated by the trapezoid rule
when the trace is loaded. Playback starts when the sampler is created; between records the
energy is interpolated linearly (power linear for ``_w`` traces, so energy quadratic), and after the last record it stays at its final value (the
measurement then carries a note).
"""

from __future__ import annotations

import bisect
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow_green.errors import ConfigError, SamplerError
from mlflow_green.samplers._base import (
    COMPONENTS,
    METHOD_SIMULATED,
    Component,
    DeviceInfo,
    SamplerBase,
)

__all__ = ["ReplaySampler", "Trace", "load_trace", "write_trace"]


@dataclass(frozen=True)
class Trace:
    """A loaded trace: sample times and, per component, cumulative joules per device."""

    path: str
    times_s: tuple[float, ...]
    energy_j: dict[str, tuple[tuple[float, ...], ...]]  # component -> per sample -> per device
    device_names: dict[str, tuple[str, ...]]
    # component -> per sample -> per device, for components recorded as power
    power_w: dict[str, tuple[tuple[float, ...], ...]] = field(default_factory=dict)

    @property
    def components(self) -> tuple[Component, ...]:
        return tuple(c for c in COMPONENTS if c in self.energy_j)

    @property
    def duration_s(self) -> float:
        return self.times_s[-1] - self.times_s[0]


def _bad(path: str, line: int, what: str) -> ConfigError:
    return ConfigError(
        f"replay trace {path} line {line}: {what} (see docs/measurement.md for the format)"
    )


def _numbers(path: str, line: int, key: str, value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise _bad(path, line, f"{key} must be a non-empty list of numbers")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise _bad(path, line, f"{key} holds {v!r}; values must be finite numbers >= 0")
        out.append(float(v))
    return tuple(out)


def _read(path: str | Path) -> tuple[str, str]:
    p = Path(path).expanduser()
    name = str(p)
    try:
        return name, p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"replay trace {name} does not exist: fix the path in replay:<path>"
        ) from None
    except OSError as exc:
        raise ConfigError(f"replay trace {name} cannot be read: {exc.strerror or exc}") from None


def _json_object(name: str, lineno: int, line: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _bad(name, lineno, f"not JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise _bad(name, lineno, "each line must be a JSON object")
    return obj


def _device_names(name: str, lineno: int, header: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    devices = header.get("devices", {})
    if not isinstance(devices, dict):
        raise _bad(name, lineno, "devices must map a component to a list of names")
    return {str(k): tuple(str(n) for n in v) for k, v in devices.items() if isinstance(v, list)}


def _add_record(
    name: str,
    lineno: int,
    record: dict[str, Any],
    *,
    first: bool,
    kinds: dict[str, str],
    values: dict[str, list[tuple[float, ...]]],
) -> set[str]:
    """Append a record's values to ``values`` (``kinds``: component -> "j" | "w", set by the
    first record); the components it gave."""
    seen: set[str] = set()
    for key, value in record.items():
        if key == "t_s":
            continue
        comp, _, unit = key.rpartition("_")
        if comp not in COMPONENTS or unit not in ("j", "w"):
            raise _bad(
                name,
                lineno,
                f"unknown key {key!r}; use t_s, <gpu|cpu|ram>_j or <gpu|cpu|ram>_w",
            )
        if comp in seen:
            raise _bad(name, lineno, f"{comp} is given both as _j and _w")
        seen.add(comp)
        if first:
            kinds[comp] = unit
            values[comp] = []
        elif kinds.get(comp) != unit:
            raise _bad(name, lineno, f"{key} is not in the first record or changes its unit")
        numbers = _numbers(name, lineno, key, value)
        if values[comp] and len(numbers) != len(values[comp][0]):
            raise _bad(
                name,
                lineno,
                f"{key} has {len(numbers)} devices, earlier records {len(values[comp][0])}",
            )
        if (
            unit == "j"
            and values[comp]
            and any(a < b for a, b in zip(numbers, values[comp][-1], strict=True))
        ):
            raise _bad(name, lineno, f"{key} decreases; _j values are cumulative joules")
        values[comp].append(numbers)
    return seen


def _energy_series(
    times: list[float], values: dict[str, list[tuple[float, ...]]], kinds: dict[str, str]
) -> tuple[dict[str, tuple[tuple[float, ...], ...]], dict[str, tuple[tuple[float, ...], ...]]]:
    """``(energy_j, power_w)`` per component: power series integrated (trapezoids) to joules."""
    energy: dict[str, tuple[tuple[float, ...], ...]] = {}
    power: dict[str, tuple[tuple[float, ...], ...]] = {}
    for comp, series in values.items():
        if kinds[comp] == "j":
            energy[comp] = tuple(series)
            continue
        power[comp] = tuple(series)
        cum = [0.0] * len(series[0])
        rows = [tuple(cum)]
        for k in range(1, len(series)):
            dt = times[k] - times[k - 1]
            cum = [
                c + (a + b) / 2 * dt for c, a, b in zip(cum, series[k - 1], series[k], strict=True)
            ]
            rows.append(tuple(cum))
        energy[comp] = tuple(rows)
    return energy, power


def load_trace(path: str | Path) -> Trace:
    """Read and validate a trace file; problems raise ConfigError naming the line."""
    name, text = _read(path)
    names: dict[str, tuple[str, ...]] = {}
    times: list[float] = []
    kinds: dict[str, str] = {}  # component -> "j" | "w"
    values: dict[str, list[tuple[float, ...]]] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        obj = _json_object(name, lineno, stripped)
        if "mlflow_green_trace" in obj:
            if times:
                raise _bad(name, lineno, "the header must come before the records")
            names = _device_names(name, lineno, obj)
            continue
        t = obj.get("t_s")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise _bad(name, lineno, "t_s (seconds) is missing or not a number")
        if times and t <= times[-1]:
            raise _bad(name, lineno, f"t_s={t} does not increase")
        seen = _add_record(name, lineno, obj, first=not times, kinds=kinds, values=values)
        if times and seen != set(kinds):
            raise _bad(name, lineno, f"record has {sorted(seen)} but the trace has {sorted(kinds)}")
        if not times and not seen:
            raise _bad(name, lineno, "the first record has no <component>_j or _w values")
        times.append(float(t))
    if len(times) < 2:
        raise ConfigError(f"replay trace {name} needs at least two records")
    energy, power = _energy_series(times, values, kinds)
    return Trace(
        path=name, times_s=tuple(times), energy_j=energy, device_names=names, power_w=power
    )


def write_trace(
    path: str | Path,
    times_s: list[float],
    energy_j: dict[str, list[list[float]]],
    device_names: dict[str, list[str]] | None = None,
) -> None:
    """Write a trace of cumulative joules (the format above), e.g. from a recorded run."""
    with Path(path).open("w", encoding="utf-8") as fh:
        fh.write(json.dumps({"mlflow_green_trace": 1, "devices": device_names or {}}) + "\n")
        for k, t in enumerate(times_s):
            rec: dict[str, Any] = {"t_s": t}
            for comp, rows in energy_j.items():
                rec[f"{comp}_j"] = list(rows[k])
            fh.write(json.dumps(rec) + "\n")


class ReplaySampler(SamplerBase):
    """Plays one component of a trace on a monotonic clock, as a counter (no thread)."""

    def __init__(
        self,
        trace: Trace | str | Path,
        component: Component = "gpu",
        *,
        clock: Callable[[], float] = time.monotonic,
        origin_s: float | None = None,
    ) -> None:
        self.trace = trace if isinstance(trace, Trace) else load_trace(trace)
        if component not in self.trace.energy_j:
            raise ConfigError(f"replay trace {self.trace.path} has no {component} values")
        self.component: Component = component
        self._clock = clock
        self._origin = clock() if origin_s is None else origin_s
        self._rows = self.trace.energy_j[component]
        self._power = self.trace.power_w.get(component)
        n = len(self._rows[0])
        names = self.trace.device_names.get(component, ())
        self._devices = tuple(
            DeviceInfo(
                index=i,
                name=f"replayed {names[i] if i < len(names) else component.upper() + str(i)}",
            )
            for i in range(n)
        )
        self._ended_noted = False
        self._notes: list[str] = []
        self.description = (
            f"replay of {self.trace.path} ({self.trace.duration_s:g} s, {n} device(s))"
        )

    @property
    def method(self) -> str:
        return METHOD_SIMULATED

    def read_energy_j(self) -> tuple[float, ...]:
        times = self.trace.times_s
        t = times[0] + (self._clock() - self._origin)
        if t <= times[0]:
            return self._rows[0]
        if t >= times[-1]:
            if not self._ended_noted:
                self._ended_noted = True
                self._notes.append(
                    f"replay trace ended at {self.trace.duration_s:g} s; energy held at its final value"
                )
            return self._rows[-1]
        k = bisect.bisect_right(times, t)
        t0, t1 = times[k - 1], times[k]
        tau = t - t0
        if self._power is not None:
            # power is linear between samples, so energy is quadratic in time
            slope = [
                (b - a) / (t1 - t0) for a, b in zip(self._power[k - 1], self._power[k], strict=True)
            ]
            return tuple(
                e + p * tau + m * tau * tau / 2
                for e, p, m in zip(self._rows[k - 1], self._power[k - 1], slope, strict=True)
            )
        w = tau / (t1 - t0)
        return tuple(a + (b - a) * w for a, b in zip(self._rows[k - 1], self._rows[k], strict=True))

    def read_power_w(self) -> tuple[float, ...]:
        raise SamplerError("replay is read as energy")

    def drain_notes(self) -> tuple[str, ...]:
        notes, self._notes = tuple(self._notes), []
        return notes

    def close(self) -> None:
        return None
