"""SIGTERM (a spot reclaim, a SLURM time limit, ``kill``): keep the figures of the epoch in progress.

While a tracker measures on the main thread, a SIGTERM handler is installed. On SIGTERM the
tracker accounts the epoch in progress as a last, partial epoch, journals it, sends what it
can (bounded) and ends the run as ``KILLED``; then the previous handler runs — the default
one ends the process by SIGTERM as if nothing had been installed, a Python handler is called,
an ignored signal stays ignored. A signal that arrives while the tracker is inside an epoch
boundary waits for the boundary to finish (the handler runs between two bytecodes of the
main thread, which may hold the tracker's locks). The previous handler is put back when the
tracker closes.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Protocol

__all__ = ["KILLED", "Closable", "boundary", "install_sigterm", "uninstall_sigterm"]

_log = logging.getLogger("mlflow_green")
KILLED = "KILLED"


class Closable(Protocol):
    """What the handler asks of a tracker (a ``GreenTracker``, which imports this module)."""

    def close(self, *, status: str = ..., record_partial: bool = ...) -> None: ...


class _Guard:
    """The handler of one tracker, the handler it replaced, and a deferred signal."""

    def __init__(self, tracker: Closable, previous: Any) -> None:
        self.tracker = tracker
        self.previous = previous
        self.busy = 0
        self.deferred: tuple[int, FrameType | None] | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.busy:
            self.deferred = (signum, frame)
            return
        self.terminate(signum, frame)

    def terminate(self, signum: int, frame: FrameType | None) -> None:
        previous = self.previous
        try:
            self.tracker.close(status=KILLED, record_partial=True)
        except Exception:
            _log.warning("mlflow_green: finishing the run on SIGTERM failed", exc_info=True)
        finally:
            uninstall_sigterm(self.tracker)
        if callable(previous):
            previous(signum, frame)
        elif previous in (signal.SIG_DFL, None):
            # What the default action would have done: end the process by this signal.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)


_GUARDS: dict[int, _Guard] = {}


def install_sigterm(tracker: Closable) -> None:
    """Handle SIGTERM for ``tracker`` (only from the main thread; elsewhere, nothing)."""
    if threading.current_thread() is not threading.main_thread() or id(tracker) in _GUARDS:
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
        guard = _Guard(tracker, previous)
        signal.signal(signal.SIGTERM, guard.handle)
    except (ValueError, OSError):  # not the main interpreter, or no signals here
        return
    _GUARDS[id(tracker)] = guard


def uninstall_sigterm(tracker: Closable) -> None:
    """Put back the handler ``tracker`` replaced (when its own is still the current one)."""
    guard = _GUARDS.pop(id(tracker), None)
    if guard is None or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) == guard.handle:
            signal.signal(signal.SIGTERM, guard.previous if guard.previous is not None else signal.SIG_DFL)
    except (ValueError, OSError):
        pass


@contextmanager
def boundary(tracker: Closable) -> Iterator[None]:
    """An epoch boundary: a SIGTERM arriving inside waits until it is over."""
    guard = _GUARDS.get(id(tracker))
    if guard is None:
        yield
        return
    guard.busy += 1
    try:
        yield
    finally:
        guard.busy -= 1
        if not guard.busy and guard.deferred is not None:
            signum, frame = guard.deferred
            guard.deferred = None
            guard.terminate(signum, frame)
