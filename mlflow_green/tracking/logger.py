"""Batched, asynchronous logging to MLflow, off the training thread.

A single background thread sends the queued epochs in step order, each epoch exactly once:
one ``log_batch`` per epoch at most — when several epochs are waiting (a slow store, tiny
epochs, a backlog after an outage) they go together, within MLflow's limits of 1000 metrics
and 100 tags per call. Each send has a short timeout of mlflow_green's own and a bounded
number of attempts, whatever MLflow's retry settings are (its HTTP client would otherwise
retry with backoff for minutes). When the tracking server cannot be reached the epochs stay
pending (they are in the journal already) and the next epochs try once; as soon as a send
succeeds the backlog is sent too. A batch whose delivery is unknown (a timeout after the
request left) is re-sent only after the run's metric history shows that its steps are
absent, so no step is ever logged twice.

Journaled epochs are handed over as "lines up to this offset of the journal": the logger
thread reads them back from the journal file a batch at a time, so a backlog of any length
costs a few bytes of memory per epoch. Before each send the journal is fsynced. Epochs whose
accuracy is to be read back from the run (the user logs it with ``mlflow.log_metric``) get it
here: the latest value logged before the epoch ended, from the run's metric history; the
resolved ``green/accuracy_per_kg`` is journaled (``amend``) before it is sent.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mlflow_green.tracking import schema
from mlflow_green.tracking.accuracy import HistoryReads, accuracy_per_kg_of, resolve_accuracies
from mlflow_green.tracking.config import DEFAULT_SEND_INTERVAL_S
from mlflow_green.tracking.failures import is_transient
from mlflow_green.tracking.journal import SYNC_INTERVAL_S, Journal, parse_epoch_event, read_events
from mlflow_green.tracking.messages import (
    EpochMessage,
    FlushMessage,
    JournaledMessage,
    Message,
    RetryMessage,
    StepRuns,
    StopMessage,
    TagsMessage,
)
from mlflow_green.tracking.schema import PREFIX
from mlflow_green.tracking.transport import MetricPoint, Transport

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_BACKOFF_S",
    "DEFAULT_SEND_INTERVAL_S",
    "AsyncLogger",
]

_log = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_S = 0.5
_MAX_TAGS_PER_BATCH = 100

# Epochs waiting together are sent together up to this many metrics per call: half of
# MLflow's limit, since a SQLAlchemy store builds ~1 kB of ORM objects per metric it is sent
# (a transient of ~0.5 MB per call), while each call's fixed cost is already shared by ~30
# epochs of ~17 metrics.
_COALESCE_METRICS = 500
# Journal bytes read back per read (a batch is ~500 metrics, ~20 kB of JSON).
_READ_CHUNK_BYTES = 64 * 1024


@dataclass
class _Epoch:
    timestamp_ms: int
    metrics: dict[str, float]
    # {"accuracy": fallback, "before_ms": t}: read the accuracy back from the run first.
    resolve: dict[str, Any] | None = None


class AsyncLogger:
    """One background thread that sends epochs and tags of one run, in order.

    ``on_problem(message, error)`` is called from the logger thread the first time the store
    cannot be reached (``error`` is None) or refuses a batch (``error`` is the exception).

    ``run_id`` may be None when the run does not exist yet (the server was down at start):
    then ``create_run()`` is tried before each send, once per drain, and as soon as it
    returns the run id everything queued goes to that run; ``on_run_created(run_id)`` is
    called from the logger thread. Until then the epochs wait (they are journaled).

    ``accuracy_keys`` are the metric names an epoch's accuracy is read back from (see
    :func:`resolve_accuracies`); ``on_accuracy(step, key, value)`` is called from the logger
    thread with each accuracy found.
    """

    def __init__(
        self,
        run_id: str | None,
        transport: Transport,
        *,
        journal: Journal | None = None,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff_s: float = DEFAULT_BACKOFF_S,
        on_problem: Callable[[str, BaseException | None], None] | None = None,
        create_run: Callable[[], str] | None = None,
        on_run_created: Callable[[str], None] | None = None,
        accuracy_keys: Sequence[str] = (),
        on_accuracy: Callable[[int, str, float], None] | None = None,
        on_journal_problem: Callable[[str], None] | None = None,
        send_interval_s: float = DEFAULT_SEND_INTERVAL_S,
    ) -> None:
        self.run_id = run_id
        self._send_interval_s = max(0.0, float(send_interval_s))
        self._epochs_taken = False  # logger thread only: the current batch holds epochs
        self._closing = threading.Event()
        self._create_run = create_run
        self._on_run_created = on_run_created
        self._transport = transport
        self._journal = journal
        self._attempts = max(1, attempts)
        self._backoff_s = backoff_s
        self._on_problem = on_problem
        self._accuracy_keys = tuple(accuracy_keys)
        self._on_accuracy = on_accuracy
        self._on_journal_problem = on_journal_problem
        self._queue: queue.Queue[Message] = queue.Queue()
        # Epochs in memory, ready to send: given in memory, or read back from the journal.
        self._mem: dict[int, _Epoch] = {}
        # Journaled epochs not read back yet: their steps, and the journal bytes they are in.
        self._unread = StepRuns()
        self._read_pos = journal.size if journal is not None else 0
        self._known_end = self._read_pos
        self._wake_queued = False
        self._uncertain: set[int] = set()
        self._pending_tags: dict[str, str] = {}
        self._acked = StepRuns()
        self._healthy = True
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._closed = False
        self._drain_reads: HistoryReads | None = None  # logger thread only, during a drain
        self._thread = threading.Thread(target=self._run, name="mlflow-green-logger", daemon=True)
        self._thread.start()

    # -- training-thread side -------------------------------------------------------------

    def log_epoch(
        self,
        step: int,
        metrics: dict[str, float],
        timestamp_ms: int,
        *,
        resolve: dict[str, Any] | None = None,
    ) -> None:
        """Queue one epoch's batch held in memory; returns at once."""
        self._queue.put(EpochMessage(int(step), metrics, int(timestamp_ms), resolve))

    def log_recovered(self, step: int, metrics: dict[str, float], timestamp_ms: int) -> None:
        """Queue an epoch an earlier job journaled but may not have sent: it goes only if the
        run's history does not have its step already."""
        self._queue.put(EpochMessage(int(step), metrics, int(timestamp_ms), None, uncertain=True))

    def log_journaled(self, steps: Sequence[int], end_offset: int) -> None:
        """Queue epochs already in the journal, whose lines end at or before ``end_offset``;
        returns at once. Only for the journal given to this logger."""
        if not steps:
            return
        # No object per epoch: the steps join runs of numbers and the logger is woken once.
        with self._lock:
            for step in steps:
                self._unread.add(int(step))
            self._known_end = max(self._known_end, int(end_offset))
            wake = not self._wake_queued
            self._wake_queued = True
        if wake:
            self._queue.put(JournaledMessage())

    def set_tags(self, tags: dict[str, str]) -> None:
        """Queue tags (sent with or after the next batch); returns at once."""
        if tags:
            self._queue.put(TagsMessage({k: str(v) for k, v in tags.items()}))

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until everything queued so far was handled; False on timeout."""
        done = threading.Event()
        self._queue.put(FlushMessage(done))
        return done.wait(timeout_s)

    def close(self, timeout_s: float | None = 30.0) -> bool:
        """Send what is left (one last try for a backlog) and stop the thread.

        Returns False when the thread did not finish in time; it is a daemon and is left behind.
        """
        if self._closed:
            return not self._thread.is_alive()
        self._closed = True
        self._closing.set()  # a retry waiting out its back-off goes at once
        self._queue.put(RetryMessage())
        self._queue.put(StopMessage())
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def acked_steps(self) -> list[int]:
        with self._lock:
            return sorted(self._acked)

    @property
    def unsent_steps(self) -> list[int]:
        """Steps not (yet) acknowledged by the store."""
        with self._lock:
            return sorted(set(self._mem) | set(self._unread))

    @property
    def unsent_tags(self) -> dict[str, str]:
        with self._lock:
            return dict(self._pending_tags)

    @property
    def reachable(self) -> bool:
        return self._healthy

    @property
    def errors(self) -> list[BaseException]:
        """Non-transient errors met by the thread (a refused batch, a bug)."""
        with self._lock:
            return list(self._errors)

    # -- logger-thread side ---------------------------------------------------------------

    def _take(self, item: Message, flushes: list[threading.Event]) -> tuple[bool, bool]:
        """Apply one queued message; ``(stop, has something to send)``."""
        if isinstance(item, StopMessage):
            return True, False
        if isinstance(item, FlushMessage):
            flushes.append(item.done)
            return False, False
        if isinstance(item, EpochMessage):
            self._epochs_taken = True
            with self._lock:
                self._mem[item.step] = _Epoch(item.timestamp_ms, item.metrics, item.resolve)
            if item.uncertain:
                self._uncertain.add(item.step)
        elif isinstance(item, JournaledMessage):
            self._epochs_taken = True
            with self._lock:
                self._wake_queued = False
        elif isinstance(item, TagsMessage):
            with self._lock:
                self._pending_tags.update(item.tags)
        return False, True

    def _run(self) -> None:
        last_send = -math.inf
        while True:
            journal = self._journal
            try:
                item = self._queue.get(timeout=SYNC_INTERVAL_S if journal and journal.unsynced else None)
            except queue.Empty:
                self._sync()  # nothing sent for a while: make the journal durable anyway
                continue
            flushes: list[threading.Event] = []
            self._epochs_taken = False
            stop, send = self._take(item, flushes)
            # Take everything already queued, then (short epochs) keep gathering until the
            # send interval has passed since the last send: epochs waiting together go in
            # one batch, so the store's per-call cost is paid once per interval, not per epoch.
            # A flush or the end of the run sends at once.
            while not stop:
                # Only epochs wait for the interval (tags alone go at once and do not start it).
                pace = self._epochs_taken and not flushes
                wait = self._send_interval_s - (time.monotonic() - last_send) if pace else 0.0
                try:
                    item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                more_stop, more_send = self._take(item, flushes)
                stop, send = stop or more_stop, send or more_send
            try:
                if send:
                    if self._epochs_taken:
                        last_send = time.monotonic()
                    self._drain(attempts=self._attempts if self._healthy else 1)
            except BaseException as exc:  # the thread must survive anything
                self._record_error(exc)
            for done in flushes:
                done.set()
            if stop:
                self._sync()
                return

    def _sync(self) -> None:
        if self._journal is None:
            return
        try:
            self._journal.sync()
        except (OSError, ValueError) as exc:
            # The epochs still go to MLflow (they are read back from the page cache); the run
            # says its local copy is not durable, and the strict test suite raises at close.
            with self._lock:
                self._errors.append(exc)
            if self._on_journal_problem is not None:
                try:
                    self._on_journal_problem(str(exc))
                except Exception:
                    _log.debug("on_journal_problem callback failed", exc_info=True)

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)
        if self._on_problem is not None:
            try:
                self._on_problem(f"MLflow refused green metrics of run {self.run_id}: {exc}", exc)
            except Exception:
                _log.debug("on_problem callback failed", exc_info=True)

    def _mark_unreachable(self, why: str) -> None:
        if self._healthy:
            self._healthy = False
            if self._on_problem is not None:
                try:
                    self._on_problem(f"MLflow tracking store unreachable ({why})", None)
                except Exception:
                    _log.debug("on_problem callback failed", exc_info=True)

    def _ensure_run(self, attempts: int) -> bool:
        """True when the run exists (creating it if it is still pending)."""
        if self.run_id is not None:
            return True
        if self._create_run is None:
            return False
        create = self._create_run
        created: list[str] = []
        result = self._attempt(lambda: created.append(create()), attempts)
        if result is None:
            # Refused for good (a deleted experiment...): `mlflow-green recover` will say why.
            self._create_run = None
        if not created:
            return False
        self.run_id = created[0]
        if self._on_run_created is not None:
            try:
                self._on_run_created(created[0])
            except Exception as exc:
                self._record_error(exc)
        return True

    def _read_back(self, want_metrics: int) -> None:
        """Read journaled epochs into memory until ``want_metrics`` points are there (or none
        are left), a few tens of kB at a time: a backlog stays on disk, not in memory."""
        journal = self._journal
        chunk = _READ_CHUNK_BYTES
        ready = self._ready_metrics()
        while len(self._unread) and ready < want_metrics:
            if journal is None or self._read_pos >= self._known_end:
                # Announced but not found in the journal (it failed): nothing to send.
                self._drop_unread(
                    f"{len(self._unread)} journaled epoch(s) not found in "
                    f"{getattr(journal, 'path', 'the journal')}"
                )
                return
            end = min(self._known_end, self._read_pos + chunk)
            wanted = self._unread
            found: dict[int, _Epoch] = {}
            consumed = self._read_pos
            for offset, event in read_events(journal.path, self._read_pos, end):
                consumed = offset
                if event.get("kind") == "epoch" and int(event.get("step", -1)) in wanted:
                    step, ts, metrics, resolve = parse_epoch_event(event)
                    found[step] = _Epoch(ts, metrics, resolve)
                    ready += len(metrics)
                    if ready >= want_metrics:
                        break
            if consumed == self._read_pos:
                if end == self._known_end:
                    self._drop_unread(f"journal {journal.path} unreadable after byte {self._read_pos}")
                    return
                chunk *= 2  # one line longer than the chunk
                continue
            chunk = _READ_CHUNK_BYTES
            self._read_pos = consumed
            with self._lock:
                self._mem.update(found)
                # Steps are announced in the order they were journaled.
                while len(self._unread) and self._unread.first() in found:
                    self._unread.pop_first()

    def _ready_metrics(self) -> int:
        """Points in memory that may go before the first journaled epoch not read yet."""
        with self._lock:
            limit = self._unread.first()
            return sum(len(e.metrics) for s, e in self._mem.items() if limit is None or s < limit)

    def _drop_unread(self, why: str) -> None:
        with self._lock:
            self._unread.clear()
        self._record_error(RuntimeError(why))

    def _next_batch(self, limit: int | None = None) -> list[int]:
        """The next steps to send together: in step order, within the metrics limit, at most
        ``limit`` of them."""
        self._read_back(_COALESCE_METRICS)
        with self._lock:
            first_unread = self._unread.first()
            steps = sorted(s for s in self._mem if first_unread is None or s < first_unread)
            batch: list[int] = []
            count = 0
            for step in steps:
                size = len(self._mem[step].metrics)
                if (batch and count + size > _COALESCE_METRICS) or len(batch) == limit:
                    break
                batch.append(step)
                count += size
            return batch

    def _drain(self, *, attempts: int) -> None:
        """Send the steps pending when the drain begins, in order, then pending tags; stop at the
        first failure."""
        if not self._ensure_run(attempts):
            return
        # Only the epochs announced by now: those the training loop announces while this drain
        # sends wait for the next interval. (Picking them up at once turned a drain of short
        # epochs into one send per epoch, each with its own accuracy read: the send interval
        # defeated, and the logger's CPU growing with the square of the run's length.)
        with self._lock:
            left = len(self._mem) + len(self._unread)
        # Every epoch of this drain ended before it began: one read of the run's accuracy
        # history serves all its batches.
        self._drain_reads = HistoryReads(self._transport)
        try:
            self._send_drain(left, attempts)
        finally:
            self._drain_reads = None

    def _send_drain(self, left: int, attempts: int) -> None:
        while left > 0:
            steps = self._next_batch(limit=left)
            if not steps:
                break
            left -= len(steps)
            result = self._send_steps(steps, attempts=attempts)
            if result is False:
                return
            # The store answered: the backlog goes out with full attempts from now on.
            attempts = self._attempts
        with self._lock:
            tags = dict(self._pending_tags)
        run_id = self.run_id
        assert run_id is not None
        if tags:
            self._sync()
            if self._attempt(lambda: self._transport.log_batch(run_id, [], tags), attempts):
                self._tags_sent(tags)

    def _tags_sent(self, tags: dict[str, str]) -> None:
        with self._lock:
            for k, v in tags.items():
                if self._pending_tags.get(k) == v:
                    del self._pending_tags[k]

    def _resolve(self, steps: list[int]) -> bool:
        """Read back the accuracy of the epochs that need it; False when the store is down."""
        todo = {s: self._mem[s] for s in steps if self._mem[s].resolve is not None}
        if not todo:
            return True
        run_id = self.run_id
        assert run_id is not None
        found: dict[int, tuple[str, float]] = {}
        try:
            found = resolve_accuracies(
                self._drain_reads if self._drain_reads is not None else self._transport,
                run_id,
                self._accuracy_keys,
                {s: int(e.resolve["before_ms"]) for s, e in todo.items() if e.resolve is not None},
            )
        except Exception as exc:
            if is_transient(exc):
                return False
            # The epochs go without the run's accuracy rather than not at all.
            _log.debug("reading the run's accuracy failed: %s", exc)
        for step, epoch in todo.items():
            resolve = epoch.resolve or {}
            key, accuracy = found.get(step, (None, resolve.get("accuracy")))
            amended: dict[str, float] = {}
            if accuracy is not None:
                per_kg = accuracy_per_kg_of(float(accuracy), epoch.metrics)
                if per_kg is not None:
                    amended[schema.ACCURACY_PER_KG] = per_kg
            if self._journal is not None:
                # Journaled before it is sent (and before recovery would resolve it again).
                try:
                    self._journal.amend(step, amended, accuracy=accuracy, accuracy_key=key)
                except (OSError, ValueError) as exc:
                    _log.debug("journal amend failed: %s", exc)
            epoch.metrics.update(amended)
            epoch.resolve = None
            if key is not None and accuracy is not None and self._on_accuracy is not None:
                try:
                    self._on_accuracy(step, key, float(accuracy))
                except Exception as exc:
                    self._record_error(exc)
        return True

    def _send_steps(self, steps: list[int], *, attempts: int, with_tags: bool = True) -> bool | None:
        """Send these steps in one call (True), or learn the store is down (False).

        A batch refused for good is retried step by step, so that one bad epoch does not
        drop the others; the refused ones leave the queue (the journal keeps them).
        """
        run_id = self.run_id
        assert run_id is not None  # _drain made sure
        if not self._resolve(steps):
            self._mark_unreachable("could not read the run's accuracy")
            return False
        with self._lock:
            epochs = {s: self._mem[s] for s in steps}
            tags = (
                dict(self._pending_tags)
                if with_tags and len(self._pending_tags) <= _MAX_TAGS_PER_BATCH
                else {}
            )

        def send() -> None:
            todo = list(steps)
            uncertain = [s for s in todo if s in self._uncertain]
            if uncertain:
                # A previous try may have landed: look before sending again.
                first = epochs[uncertain[0]].metrics
                key = next((k for k in first if k.startswith(PREFIX)), next(iter(first), None))
                if key is not None:
                    logged = self._transport.logged_steps(run_id, key)
                    todo = [s for s in todo if s not in logged]
            points = [
                MetricPoint(k, float(v), epochs[s].timestamp_ms, s)
                for s in todo
                for k, v in epochs[s].metrics.items()
            ]
            if not points and not tags:
                return
            self._uncertain.update(todo)
            self._transport.log_batch(run_id, points, tags)

        self._sync()  # nothing reaches MLflow before it is durable in the journal
        result = self._attempt(send, attempts)
        if result is None:
            if len(steps) > 1:
                for step in steps:
                    if self._send_steps([step], attempts=attempts, with_tags=False) is False:
                        return False
                return True
            with self._lock:
                self._mem.pop(steps[0], None)
            return True
        if result:
            self._uncertain.difference_update(steps)
            if tags:
                self._tags_sent(tags)
            with self._lock:
                for step in steps:
                    self._mem.pop(step, None)
                for step in steps:
                    self._acked.add(step)
            if self._journal is not None:
                try:
                    self._journal.ack(steps)
                except Exception as exc:
                    self._record_error(exc)
        return result

    def _attempt(self, fn: Callable[[], None], attempts: int) -> bool | None:
        """True on success, False when the store is unreachable, None when it refused."""
        for i in range(attempts):
            try:
                fn()
            except Exception as exc:
                if not is_transient(exc):  # refused for good
                    self._record_error(exc)
                    return None
                if i + 1 < attempts:
                    self._closing.wait(self._backoff_s * (2**i))  # close() cuts it short
                    continue
                self._mark_unreachable(str(exc)[:200])
                return False
            self._healthy = True
            return True
        return False

