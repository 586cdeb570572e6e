"""Where a finished epoch goes: the journal first (on the training thread), then the sender.

:class:`EpochSink` writes each epoch's batch to the run's :class:`~.journal.Journal` (flushed
to the OS at once, so a killed process loses at most the epoch in progress) and hands it to
the :class:`~.logger.AsyncLogger` as "journal lines up to this offset" — nothing of it stays
in memory here. A batch the journal cannot hold exactly (a NaN/inf, or no journal) is handed
over by value. With ``log_every_n_epochs > 1`` epochs wait here until n are journaled.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlflow_green import _settings
from mlflow_green.tracking.journal import Journal
from mlflow_green.tracking.logger import AsyncLogger

__all__ = ["EpochSink"]


@dataclass(frozen=True)
class _Waiting:
    """An epoch journaled (``end`` is its journal offset) or held by value (``end`` None)."""

    step: int
    end: int | None
    metrics: dict[str, float] | None = None
    timestamp_ms: int = 0
    resolve: dict[str, Any] | None = None


class EpochSink:
    """The journal and the sender of one run, as the epoch pipeline sees them."""

    def __init__(
        self,
        journal: Journal | None,
        sender: AsyncLogger | None,
        *,
        every_n: int,
        on_problem: Callable[[str], None],
    ) -> None:
        self.journal = journal
        self.sender = sender
        self._every_n = max(1, int(every_n))
        self._on_problem = on_problem
        self._waiting: list[_Waiting] = []

    def put(
        self,
        step: int,
        metrics: dict[str, float],
        timestamp_ms: int,
        *,
        resolve: dict[str, Any] | None = None,
        send_now: bool = False,
    ) -> None:
        """Journal one epoch and queue it (sent at once when n are waiting or ``send_now``)."""
        end: int | None = None
        journal = self.journal
        if journal is not None and journal.failed is None:
            try:
                end = journal.epoch(step, metrics, timestamp_ms, resolve=resolve)
            except (OSError, ValueError) as exc:
                if _settings.strict():
                    raise
                self._on_problem(f"journal write failed ({exc})")
        if end is not None and all(map(math.isfinite, metrics.values())):
            # The sender reads it back from the journal: nothing of it stays in memory here.
            self._waiting.append(_Waiting(step, end))
        else:
            # No journal, or a NaN/inf the journal keeps only as NaN: hand over the values.
            self._waiting.append(_Waiting(step, None, metrics, timestamp_ms, resolve))
        if len(self._waiting) >= self._every_n or send_now:
            self.send_waiting()

    def send_waiting(self) -> None:
        """Hand every waiting epoch to the sender, in step order."""
        sender = self.sender
        if sender is None:
            return
        steps: list[int] = []
        end = 0
        for item in self._waiting:
            if item.end is not None:
                steps.append(item.step)
                end = item.end
                continue
            if steps:
                sender.log_journaled(steps, end)
                steps = []
            assert item.metrics is not None
            sender.log_epoch(item.step, item.metrics, item.timestamp_ms, resolve=item.resolve)
        if steps:
            sender.log_journaled(steps, end)
        self._waiting.clear()

    def tags(self, tags: dict[str, str]) -> None:
        """Journal the tags and queue them for MLflow."""
        if self.journal is not None:
            try:
                self.journal.tags(tags)
            except (OSError, ValueError):
                pass  # the sender still sends them; the journal said why it failed
        if self.sender is not None:
            self.sender.set_tags(tags)

    @staticmethod
    def now_ms() -> int:
        """Wall-clock milliseconds (the ``before_ms`` of an accuracy read back from the run)."""
        return int(time.time() * 1000)
