"""The trackers measuring now (innermost last), and ``report_accuracy`` which talks to one."""

from __future__ import annotations

import threading
from typing import Protocol

from mlflow_green import _settings
from mlflow_green.errors import ConfigError

__all__ = [
    "Measuring",
    "active_tracker",
    "pop_active",
    "push_active",
    "report_accuracy",
    "report_tokens",
]


class Measuring(Protocol):
    """What this module asks of a tracker (a ``GreenTracker``; the tracker imports this
    module, not the other way round)."""

    def log_accuracy(self, value: float) -> None: ...

    def report_tokens(self, n: int) -> None: ...


_ACTIVE: list[Measuring] = []
_ACTIVE_LOCK = threading.Lock()


def active_tracker() -> Measuring | None:
    """The innermost tracker currently measuring, if any."""
    with _ACTIVE_LOCK:
        return _ACTIVE[-1] if _ACTIVE else None


def report_accuracy(value: float) -> None:
    """Tell the running tracker the model's latest accuracy (used for ``green/accuracy_per_kg``).

    Call it inside ``for epoch in mlflow_green.epochs(n):`` (or while a ``GreenTracker`` is
    open), typically after evaluating; the value applies to the epoch in progress.
    """
    tracker = active_tracker()
    if tracker is None:
        if _settings.disabled():
            return
        raise ConfigError(
            "report_accuracy() needs a running tracker: call it inside "
            "'for epoch in mlflow_green.epochs(n)' or a GreenTracker block"
        )
    tracker.log_accuracy(value)


def push_active(tracker: Measuring) -> None:
    """``tracker`` starts measuring (it becomes the innermost)."""
    with _ACTIVE_LOCK:
        _ACTIVE.append(tracker)


def pop_active(tracker: Measuring) -> None:
    """``tracker`` stopped measuring."""
    with _ACTIVE_LOCK:
        if tracker in _ACTIVE:
            _ACTIVE.remove(tracker)


def report_tokens(n: int) -> None:
    """Tell the running tracker how many training tokens it processed since the last call.

    The run then logs ``green/g_per_mtoken`` (total g CO2eq per million training tokens,
    cumulative, after the SCI for AI). Call it in the loop body, e.g. with each batch's token
    count, or once per epoch; ``epoch_end(tokens=n)`` does the same.
    """
    tracker = active_tracker()
    if tracker is None:
        if _settings.disabled():
            return
        raise ConfigError(
            "report_tokens() needs a running tracker: call it inside "
            "'for epoch in mlflow_green.epochs(n)' or a GreenTracker block"
        )
    tracker.report_tokens(n)
