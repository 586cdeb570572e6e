"""Turn raw hardware counter readings into monotonic cumulative values.

Hardware energy counters misbehave in two ways, and the meter must never report negative
energy because of either:

* *wrap-around* (RAPL): ``energy_uj`` restarts from 0 after ``max_energy_range_uj``. The
  increment across a wrap is ``raw + range - last``; a wrap is only recoverable when reads are
  less than one wrap period apart, which is why RAPL samplers declare ``wrap_period_s``.
* *reset or glitch* (NVML, AMD SMI): a driver reload or GPU reset restarts the counter from
  0, and a flaky read can return one low value before the counter carries on. A backwards step
  counts nothing at first; the next reading decides: back above the pre-step value means the
  low value was a glitch (count from the pre-step value), still below means a reset (the new
  raw value is the energy since the reset). The cumulative value never decreases.
"""

from __future__ import annotations

from collections.abc import Sequence


class CounterTracker:
    """Cumulative, never-decreasing values from raw per-device counter readings."""

    def __init__(self, labels: Sequence[str], *, wrap_at: Sequence[float] | None = None) -> None:
        self._labels = tuple(labels)
        self._wrap_at = tuple(wrap_at) if wrap_at is not None else None
        n = len(self._labels)
        self._last: list[float | None] = [None] * n
        self._cum: list[float] = [0.0] * n
        # Raw value just before a backwards step, until the next reading resolves it.
        self._pending: list[float | None] = [None] * n
        self._low: list[float] = [0.0] * n
        self._notes: list[str] = []

    def update(self, raws: Sequence[float]) -> tuple[float, ...]:
        """Feed one raw reading per device; returns the cumulative value per device."""
        for i, value in enumerate(raws):
            raw = float(value)
            last = self._last[i]
            self._last[i] = raw
            if last is None:
                self._cum[i] = raw
                continue
            if self._wrap_at is not None:
                if raw >= last:
                    self._cum[i] += raw - last
                else:  # wrapped: routine for RAPL, so no note
                    self._cum[i] += raw + self._wrap_at[i] - last
                continue
            label = self._labels[i]
            pending = self._pending[i]
            if pending is not None:
                self._pending[i] = None
                if raw >= pending:
                    self._cum[i] += raw - pending
                    self._notes.append(
                        f"{label}: one energy counter reading went backwards and recovered; ignored"
                    )
                else:
                    # Reset: the energy since it is the raw value; a second backwards step
                    # means a second reset, after which the low reading's energy also counts.
                    low = self._low[i]
                    self._cum[i] += raw if raw >= low else low + raw
                    self._notes.append(
                        f"{label}: energy counter was reset (GPU reset or driver reload?); "
                        "energy counted from the reset on"
                    )
            elif raw < last:
                self._pending[i] = last
                self._low[i] = raw
            else:
                self._cum[i] += raw - last
        return tuple(self._cum)

    def drain_notes(self) -> tuple[str, ...]:
        notes, self._notes = tuple(self._notes), []
        return notes
