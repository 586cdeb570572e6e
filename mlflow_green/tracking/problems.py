"""A run's problems: ``green.status`` (``ok`` or ``degraded: <why>``) and warnings said once.

Telemetry never breaks training and never silently lies: a degraded measurement is recorded
here, from whichever thread met it (the training loop, the sender), tagged on the run by the
tracker and logged once as a warning.
"""

from __future__ import annotations

import logging
import threading

from mlflow_green.tracking import schema

__all__ = ["RunProblems"]

_log = logging.getLogger("mlflow_green")


class RunProblems:
    """The problems of one run so far and the warnings already said (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status = schema.STATUS_OK
        self._problems: list[str] = []
        self._warned: set[str] = set()

    @property
    def status(self) -> str:
        """``ok`` or ``degraded: <why>; <why>...`` (the ``green.status`` tag)."""
        with self._lock:
            return self._status

    @property
    def degraded(self) -> bool:
        with self._lock:
            return bool(self._problems)

    def first_time(self, key: str) -> bool:
        """True the first time ``key`` is seen (then it is remembered)."""
        with self._lock:
            if key in self._warned:
                return False
            self._warned.add(key)
            return True

    def warn_once(self, key: str, message: str) -> None:
        """Log ``message`` as a warning, the first time ``key`` is seen only."""
        if self.first_time(key):
            _log.warning(message)

    def degrade(self, why: str) -> str | None:
        """Record a problem and warn once; the new status, or None when ``why`` was known."""
        with self._lock:
            if why in self._problems:
                return None
            self._problems.append(why)
            self._status = status = schema.degraded("; ".join(self._problems))
        self.warn_once(f"degraded:{why}", f"mlflow_green: measurement degraded: {why}")
        return status
