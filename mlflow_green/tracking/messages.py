"""What the training thread tells the sender thread: typed messages through one queue.

:class:`~mlflow_green.tracking.logger.AsyncLogger` reads them from its queue in order; nothing
else passes between the two threads but fields behind the logger's lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EpochMessage",
    "FlushMessage",
    "JournaledMessage",
    "Message",
    "RetryMessage",
    "StepRuns",
    "StopMessage",
    "TagsMessage",
]


# -- messages from the training thread to the sender thread (one queue, typed) ---------------


@dataclass(frozen=True)
class EpochMessage:
    """One epoch's batch held in memory (no journal, or a value the journal cannot keep)."""

    step: int
    metrics: dict[str, float]
    timestamp_ms: int
    resolve: dict[str, Any] | None = None
    # Maybe in the run already (an earlier job's): looked up before it is sent.
    uncertain: bool = False


@dataclass(frozen=True)
class JournaledMessage:
    """Wake-up: epochs were announced as journal lines (their steps are in ``_unread``)."""


@dataclass(frozen=True)
class TagsMessage:
    """Tags to send with or after the next batch."""

    tags: dict[str, str]


@dataclass(frozen=True)
class FlushMessage:
    """Handle everything queued before this, then set ``done``."""

    done: threading.Event


@dataclass(frozen=True)
class RetryMessage:
    """Try the backlog once more now (sent by ``close``)."""


@dataclass(frozen=True)
class StopMessage:
    """The last message: send what is left and end the thread."""


Message = EpochMessage | JournaledMessage | TagsMessage | FlushMessage | RetryMessage | StopMessage


class StepRuns:
    """Steps in arrival order as runs of consecutive numbers: O(1) memory for a backlog."""

    __slots__ = ("_count", "_runs")

    def __init__(self) -> None:
        self._runs: list[list[int]] = []  # [first, stop)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, step: int) -> None:
        if self._runs and self._runs[-1][1] == step:
            self._runs[-1][1] += 1
        else:
            self._runs.append([step, step + 1])
        self._count += 1

    def first(self) -> int | None:
        return self._runs[0][0] if self._runs else None

    def pop_first(self) -> None:
        run = self._runs[0]
        run[0] += 1
        if run[0] >= run[1]:
            del self._runs[0]
        self._count -= 1

    def __contains__(self, step: object) -> bool:
        return any(a <= step < b for a, b in self._runs)  # type: ignore[operator]

    def __iter__(self) -> Iterator[int]:
        for a, b in self._runs:
            yield from range(a, b)

    def clear(self) -> None:
        self._runs.clear()
        self._count = 0
