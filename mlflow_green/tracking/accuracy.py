"""The accuracy an epoch had, read back from the run's metric history (off the training thread).

When the user logs the accuracy to the run themselves (``mlflow.log_metric``), the sender reads
it back before sending the epoch: :func:`resolve_accuracies` gives, for each epoch, the latest
value the run held when the epoch ended. ``recover`` uses the same function for journaled epochs.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence
from typing import Any

from mlflow_green.errors import ConfigError
from mlflow_green.tracking import schema

__all__ = ["HistoryReads", "RunAccuracy", "accuracy_per_kg_of", "resolve_accuracies"]


class RunAccuracy:
    """The accuracy a tracker applies to its epochs, and where it came from.

    Given (``report_accuracy``, ``accuracy=``, a metric of the epoch) or read back from the run
    by the sender thread; :meth:`tag` is the ``green.accuracy_metric`` tag.
    """

    def __init__(self) -> None:
        self.value: float | None = None
        self.key: str | None = None
        # True when the accuracy was given during the current epoch (not read back from the run).
        self.fresh = False
        # Set when an accuracy was given (report_accuracy, accuracy=, the user's metrics).
        self.given = False
        # Epochs handed to the sender with "read the accuracy back from the run".
        self.deferred = False
        self._lock = threading.Lock()  # the sender thread writes _run_key
        self._run_key: str | None = None

    def give(self, value: Any, name: str | None = None) -> None:
        """The model's latest accuracy (a number, or a tensor of one), from the current epoch on."""
        try:
            number = float(value.item() if hasattr(value, "item") else value)
        except (TypeError, ValueError):
            raise ConfigError(f"accuracy={value!r} is not a number") from None
        self.value = number
        self.fresh = True
        self.given = True
        if name:
            self.key = name

    def read_back(self, key: str) -> None:
        """The sender thread read an epoch's accuracy from the run's metric ``key``."""
        with self._lock:
            self._run_key = key

    def tag(self) -> str | None:
        """The metric the accuracy came from; ``reported`` when given without a name."""
        with self._lock:
            key = self.key or self._run_key
        if key:
            return key
        return "reported" if self.given else None


def resolve_accuracies(
    transport: Any, run_id: str, keys: Sequence[str], before_ms: dict[int, int]
) -> dict[int, tuple[str, float]]:
    """For each step, the accuracy the run held when that epoch ended: ``{step: (key, value)}``.

    As at the end of the epoch the run's latest metrics would say: the first of ``keys``
    with a point logged before ``before_ms[step]`` (in that very millisecond only when none
    is earlier), and its latest such point (highest step, then latest timestamp, as MLflow's
    latest metric). Steps with none are left out.
    One history read per key tried (one for all keys where the transport reads several at
    once), for a whole batch of epochs.
    """
    if not before_ms or not keys:
        return {}
    out: dict[int, tuple[str, float]] = {}
    todo = dict(before_ms)
    # A missing key answers an empty list. Far fewer SQL statements than reading the whole
    # run, which matters to a training loop that shares the interpreter lock with this thread.
    several = getattr(transport, "metric_histories", None)
    histories = several(run_id, list(keys)) if several is not None else None
    for key in keys:
        if not todo:
            break
        history = histories[key] if histories is not None else transport.metric_history(run_id, key)
        points = sorted(history, key=lambda p: p[1])
        times = [p[1] for p in points]
        # best[i]: the latest point (highest step, then latest timestamp; the later one of equal
        # pairs) among points[0..i]: each epoch's answer is one binary search, not a scan.
        best: list[tuple[int, int, float]] = []
        for point in points:
            best.append(point if not best or (point[0], point[1]) >= (best[-1][0], best[-1][1]) else best[-1])
        for step, deadline in list(todo.items()):
            # Timestamps are whole milliseconds: a point of the epoch's very millisecond may
            # have been logged just after it ended (the next epoch's, in a sub-ms epoch), so
            # it counts only when nothing was logged strictly before.
            n = bisect.bisect_left(times, deadline) or bisect.bisect_right(times, deadline)
            if n:
                out[step] = (key, best[n - 1][2])
                del todo[step]
    return out


def accuracy_per_kg_of(accuracy: float, metrics: dict[str, float]) -> float | None:
    """``green/accuracy_per_kg`` of an epoch's batch (from its cumulative total), if defined."""
    from mlflow_green.tracking.record import _accuracy_per_kg as compute

    cum_total = metrics.get(schema.CUM_TOTAL_CO2EQ_KG)
    return None if cum_total is None else compute(accuracy, cum_total)


class HistoryReads:
    """A transport's history reads, each made once (for one drain). It has ``metric_histories``
    only where the transport has it (resolve_accuracies otherwise reads key by key)."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._read: dict[tuple[str, ...], Any] = {}

    def _once(self, key: tuple[str, ...], read: Callable[[], Any]) -> Any:
        if key not in self._read:
            self._read[key] = read()
        return self._read[key]

    def __getattr__(self, name: str) -> Any:
        if name == "metric_histories" and hasattr(self._transport, "metric_histories"):
            return lambda run_id, keys: self._once(
                ("*", run_id, *keys), lambda: self._transport.metric_histories(run_id, list(keys))
            )
        raise AttributeError(name)

    def metric_history(self, run_id: str, key: str) -> Any:
        return self._once(("1", run_id, key), lambda: self._transport.metric_history(run_id, key))
