"""The plain-loop entry point ``for epoch in mlflow_green.epochs(n):`` and the adapters' guard.

:func:`guarded` runs one telemetry step of a framework adapter so that a failure stops the
measurement, never the training; :func:`abandon` closes a tracker whose measurement failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from mlflow_green import _settings
from mlflow_green.errors import ConfigError
from mlflow_green.tracking.record import EpochTable
from mlflow_green.tracking.tracker import GreenTracker

__all__ = ["Epochs", "TrackerSteps", "abandon", "epochs", "guarded"]

_log = logging.getLogger("mlflow_green")
T = TypeVar("T")


def guarded(what: str, fn: Callable[[], T], default: T) -> T:
    """Run a telemetry step for a framework adapter: an unexpected error never breaks training.

    It is logged once as a warning and ``default`` is returned, except under
    ``MLFLOW_GREEN_STRICT=1`` (the test suite), where it is raised. ConfigError (bad input)
    is always raised.
    """
    try:
        return fn()
    except ConfigError:
        raise
    except Exception as exc:
        if _settings.strict():
            raise
        _log.warning("mlflow_green: %s failed, measurement stopped for this run: %s", what, exc)
        return default


def abandon(tracker: GreenTracker) -> None:
    """Best-effort close of a tracker whose measurement failed (errors are only logged)."""
    try:
        tracker.close(status="FINISHED")
    except Exception:
        _log.debug("closing an abandoned tracker failed", exc_info=True)


class TrackerSteps:
    """For a framework callback holding a tracker: :meth:`_guard` runs one step on it; the first
    failure stops measuring (the tracker is abandoned), never the training."""

    tracker: GreenTracker | None = None

    def _guard(self, what: str, fn: Callable[[GreenTracker], object]) -> None:
        """Run a step on the tracker; a failure stops measuring, never the training."""
        tracker = self.tracker
        if tracker is None:
            return

        def step() -> bool:
            fn(tracker)
            return True

        if not guarded(what, step, False):
            self.tracker = None
            abandon(tracker)


class Epochs:
    """``for epoch in mlflow_green.epochs(n):`` — one measured window per epoch.

    Each iteration's body is one epoch; its window closes when the loop asks for the next
    epoch. Report the accuracy with :func:`mlflow_green.report_accuracy` (or log it to the
    run yourself with ``mlflow.log_metric``: the latest value of the accuracy metric is
    read back). Stops early, cleanly, when the budget says stop. Breaking out of the loop
    accounts the epoch in progress and finishes the run's report.

    Resuming a run (``mlflow.start_run(run_id=...)`` of a run that has green epochs already):
    ``epochs(n, start=k)`` yields ``k..n-1`` — training resumes at epoch ``k`` of ``n`` (a
    checkpoint's); ``epochs(n)`` yields ``n`` more epochs numbered after the run's last one.
    Either way the steps continue after the run's last logged step (never one already
    logged), the cumulative figures continue from the run's values, and the projection
    covers the whole run.
    """

    def __init__(self, n: int, *, start: int | None = None, **options: Any) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"epochs({n!r}): the number of epochs must be a whole number >= 1")
        if start is not None and (
            isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < n
        ):
            raise ConfigError(
                f"epochs({n}, start={start!r}): start must be a whole number from 0 to {n - 1} "
                "(the epoch training resumes at)"
            )
        self.n = n
        self.start = start
        if start is None:
            self.tracker = GreenTracker(**options)
            self.tracker._segment_epochs = n  # total: the run's epochs so far + n
        else:
            self.tracker = GreenTracker(total_epochs=n, start_epoch=start, **options)
        self._iterating = False

    def __iter__(self) -> Iterator[int]:
        if self._iterating:
            raise ConfigError("an epochs() iterator can be iterated only once")
        self._iterating = True
        return self._gen()

    def _gen(self) -> Iterator[int]:
        tracker = self.tracker
        def close_epoch() -> bool:
            tracker.epoch_end()
            return True

        measuring = guarded("starting the measurement", lambda: bool(tracker.start()), False)
        if self.start is not None:
            numbers = range(self.start, self.n)
        else:
            first = tracker.records.first_epoch if measuring else 0
            numbers = range(first, first + self.n)
        completed = False
        try:
            for epoch in numbers:
                yield epoch
                if measuring:
                    measuring = guarded("closing an epoch", close_epoch, False)
                    if not measuring:
                        abandon(tracker)
                if tracker.should_stop:
                    break
            completed = True
        except GeneratorExit:
            # The loop was left with break (or an exception) inside an epoch: it was spent.
            if measuring:
                guarded("finishing the run", lambda: tracker.close(record_partial=True), None)
            raise
        except Exception:
            # Our own step raised (MLFLOW_GREEN_STRICT=1): the run is still closed.
            abandon(tracker)
            raise
        finally:
            if completed and measuring:
                guarded("finishing the run", tracker.close, None)

    def __enter__(self) -> Epochs:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.tracker.close(status="FAILED" if exc_type else "FINISHED", record_partial=True)

    @property
    def should_stop(self) -> bool:
        return self.tracker.should_stop

    @property
    def records(self) -> EpochTable:
        """Every epoch's record so far (indexing gives :class:`EpochRecord`)."""
        return self.tracker.records


def epochs(n: int, *, start: int | None = None, **options: Any) -> Epochs:
    """Iterate over ``range(n)`` measuring each epoch (``range(start, n)`` when resuming at
    epoch ``start``); see :class:`Epochs`.

    Options are those of :func:`mlflow_green.autolog`; what is not given comes from the last
    ``autolog()`` call, then from the environment.
    """
    return Epochs(n, start=start, **options)
