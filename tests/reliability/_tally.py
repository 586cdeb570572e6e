"""The reliability suite's session counter: what was injected, tried and attempted, what was lost.

Every test of ``tests/reliability`` records what it did through the ``tally`` fixture; the
session ends with one line (printed by ``pytest_terminal_summary`` in this package's conftest)::

    reliability: 14 faults injected, 72 bad inputs tried, 41 bypasses attempted, 0 records lost (0 duplicated)

A count is recorded when the attempt is made, before its outcome is asserted, so a failing test
still shows what it tried. Records lost and duplicated are counted from MLflow's metric history
(per key, per step) by the fault tests; the suite fails when either is not zero.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field


@dataclass
class Tally:
    faults: int = 0
    bad_inputs: int = 0
    bypasses: int = 0
    lost: int = 0
    duplicated: int = 0
    ran: bool = False  # a test of tests/reliability ran in this session
    # What was done, for docs/reliability.md and for debugging a count.
    log: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def _add(self, kind: str, what: str, n: int) -> None:
        with self._lock:
            setattr(self, kind, getattr(self, kind) + n)
            self.log.append(f"{kind}: {what}")

    def fault(self, what: str, n: int = 1) -> None:
        """A fault injected (a failing sampler, a dead server, a full disk...)."""
        self._add("faults", what, n)

    def bad_input(self, what: str, n: int = 1) -> None:
        """A malformed argument, variable, flag, file, tag or API answer given to the product."""
        self._add("bad_inputs", what, n)

    def bypass(self, what: str, n: int = 1) -> None:
        """A request that tries to get past the carbon gate."""
        self._add("bypasses", what, n)

    def records(self, what: str, *, lost: int, duplicated: int = 0) -> None:
        """Epoch records missing from (or duplicated in) MLflow after a fault."""
        with self._lock:
            self.lost += lost
            self.duplicated += duplicated
            self.log.append(f"records: {what}: lost {lost}, duplicated {duplicated}")

    @property
    def touched(self) -> bool:
        return bool(self.faults or self.bad_inputs or self.bypasses or self.lost or self.duplicated)

    def line(self) -> str:
        return (
            f"reliability: {self.faults} faults injected, {self.bad_inputs} bad inputs tried, "
            f"{self.bypasses} bypasses attempted, {self.lost} records lost "
            f"({self.duplicated} duplicated)"
        )

    def state(self) -> dict[str, object]:
        """A plain copy of the counts, as a pytest-xdist worker hands it to the controller."""
        names = ("faults", "bad_inputs", "bypasses", "lost", "duplicated", "ran", "log")
        return {n: getattr(self, n) for n in names}

    def merge(self, state: dict[str, object]) -> None:
        """Add a worker's counts (see :meth:`state`)."""
        with self._lock:
            for n in ("faults", "bad_inputs", "bypasses", "lost", "duplicated"):
                setattr(self, n, getattr(self, n) + int(state.get(n, 0)))  # type: ignore[call-overload]
            self.ran = self.ran or bool(state.get("ran"))
            self.log.extend(state.get("log", []))  # type: ignore[arg-type]

    def to_json(self) -> str:
        names = ("faults", "bad_inputs", "bypasses", "lost", "duplicated", "log")
        return json.dumps({n: getattr(self, n) for n in names}, indent=2)


TALLY = Tally()
