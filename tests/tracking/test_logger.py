"""The background logger against fake transports: order, retries, backlog, no duplicates."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mlflow_green.tracking.failures import TransientError
from mlflow_green.tracking.journal import Journal, read_journal
from mlflow_green.tracking.logger import AsyncLogger
from mlflow_green.tracking.transport import MetricPoint


class FakeStore:
    """A tracking store in memory; ``down`` makes it unreachable, ``lose_ack`` loses answers."""

    def __init__(self) -> None:
        self.points: list[MetricPoint] = []
        self.tags: dict[str, str] = {}
        self.down = False
        self.lose_ack = 0  # the next n batches land, but the caller sees a timeout
        self.refuse = False
        self.calls = 0
        self.requests = 0  # log_batch and history reads
        self.lock = threading.Lock()

    def log_batch(self, run_id: str, metrics: list[MetricPoint], tags: dict[str, str]) -> None:
        with self.lock:
            self.calls += 1
            self.requests += 1
            if self.down:
                raise TransientError("connection refused")
            if self.refuse:
                raise ValueError("INVALID_PARAMETER_VALUE: bad metric")
            self.points += metrics
            self.tags.update(tags)
            if self.lose_ack and metrics:
                self.lose_ack -= 1
                raise TransientError("read timed out")

    def logged_steps(self, run_id: str, key: str) -> set[int]:
        self.requests += 1
        if self.down:
            raise TransientError("connection refused")
        return {p.step for p in self.points if p.key == key}

    def steps(self, key: str = "green/energy_kwh") -> list[int]:
        return sorted(p.step for p in self.points if p.key == key)


def _epoch(logger: AsyncLogger, step: int) -> None:
    logger.log_epoch(step, {"green/energy_kwh": 0.1 * step, "loss": 1.0}, int(time.time() * 1000))


def test_each_epoch_sent_once_in_order_at_most_one_call_per_epoch(tmp_path: Path) -> None:
    store = FakeStore()
    journal = Journal(tmp_path / "r.jsonl")
    logger = AsyncLogger("r", store, journal=journal, backoff_s=0)
    for step in range(4):
        journal.epoch(step, {"green/energy_kwh": 0.1 * step}, 0)
        _epoch(logger, step)
    logger.set_tags({"green.status": "ok"})
    assert logger.close(10)
    assert store.steps() == [0, 1, 2, 3]
    # Epochs waiting together share a call; the tags ride along or follow.
    assert 1 <= store.calls <= 5
    assert store.tags == {"green.status": "ok"}
    journal.close()
    assert read_journal(tmp_path / "r.jsonl").pending_steps == []


def test_unreachable_store_keeps_steps_pending_then_sends_the_backlog() -> None:
    problems: list[str] = []
    store = FakeStore()
    logger = AsyncLogger("r", store, backoff_s=0, on_problem=lambda msg, err: problems.append(msg))
    _epoch(logger, 0)
    assert logger.flush(5)
    store.down = True
    _epoch(logger, 1)
    _epoch(logger, 2)
    assert logger.flush(5)
    assert logger.unsent_steps == [1, 2] and not logger.reachable
    assert len(problems) == 1 and "unreachable" in problems[0]
    store.down = False
    _epoch(logger, 3)
    assert logger.close(5)
    assert store.steps() == [0, 1, 2, 3]
    assert logger.unsent_steps == [] and logger.reachable


def test_a_lost_answer_is_not_sent_twice() -> None:
    store = FakeStore()
    store.lose_ack = 1
    logger = AsyncLogger("r", store, backoff_s=0)
    _epoch(logger, 0)
    assert logger.close(5)
    # The batch landed, the answer was lost; the retry looked at the history first.
    assert store.steps() == [0]
    assert store.steps("loss") == [0]
    assert logger.acked_steps == [0]


def test_bounded_attempts_while_down() -> None:
    store = FakeStore()
    store.down = True
    logger = AsyncLogger("r", store, attempts=3, backoff_s=0)
    _epoch(logger, 0)
    assert logger.flush(5)
    assert store.requests == 3
    _epoch(logger, 1)
    assert logger.flush(5)
    # Once known down, a new epoch tries once (step 0 is first in line and fails).
    assert store.requests == 4
    assert logger.close(5)
    assert logger.unsent_steps == [0, 1]


def test_a_refused_batch_is_reported_and_dropped() -> None:
    store = FakeStore()
    store.refuse = True
    errors: list[BaseException | None] = []
    logger = AsyncLogger("r", store, backoff_s=0, on_problem=lambda msg, err: errors.append(err))
    _epoch(logger, 0)
    assert logger.close(5)
    assert len(logger.errors) == 1 and isinstance(errors[0], ValueError)
    assert logger.unsent_steps == []


def test_slow_store_does_not_block_the_caller() -> None:
    class Slow(FakeStore):
        def log_batch(self, run_id: str, metrics: list[MetricPoint], tags: dict[str, str]) -> None:
            time.sleep(0.5)
            super().log_batch(run_id, metrics, tags)

    logger = AsyncLogger("r", Slow(), backoff_s=0)
    started = time.monotonic()
    for step in range(3):
        _epoch(logger, step)
    assert time.monotonic() - started < 0.1
    assert logger.close(10)


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("http://127.0.0.1:5000", "RestTransport"),
        ("https://mlflow.example.com", "RestTransport"),
        ("sqlite:///tmp/x.db", "ClientTransport"),
    ],
)
def test_transport_choice(uri: str, kind: str) -> None:
    from mlflow_green.tracking.transport import make_transport

    assert type(make_transport(uri)).__name__ == kind


def test_rest_transport_gives_up_fast_on_a_dead_port() -> None:
    from mlflow_green.tracking.transport import RestTransport
    from tests._servers import free_port

    transport = RestTransport(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    started = time.monotonic()
    with pytest.raises(TransientError):
        transport.log_batch("r", [MetricPoint("k", 1.0, 0, 0)], {})
    assert time.monotonic() - started < 5


class HistoryStore(FakeStore):
    """A store that also answers a metric's history, and
    checks that the journal was fsynced before anything reached it."""

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__()
        self.user_points: list[tuple[str, int, int, float]] = []  # key, step, timestamp_ms, value
        self.journal = journal
        self.unsynced_sends = 0
        self.batch_sizes: list[int] = []
        # step -> the journal offset its line ends at (set by tests that write the journal):
        # a step may reach the store only once the journal is fsynced past its line. (The
        # journal as a whole may hold newer, unsynced lines meanwhile: the training thread
        # keeps appending while the logger sends.)
        self.line_ends: dict[int, int] = {}

    def log_batch(self, run_id: str, metrics: list[MetricPoint], tags: dict[str, str]) -> None:
        if self.journal is not None:
            sent_end = max((self.line_ends.get(m.step, self.journal.size) for m in metrics), default=0)
            if sent_end > self.journal._synced_size:
                self.unsynced_sends += 1
        self.batch_sizes.append(len(metrics))
        super().log_batch(run_id, metrics, tags)

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, int, float]]:
        return [(s, t, v) for k, s, t, v in self.user_points if k == key]


@pytest.mark.parametrize(("epochs", "keys_per_epoch"), [(5, 3), (120, 20), (3, 1200)])
def test_journaled_epochs_are_read_back_and_sent_once_in_batches(
    tmp_path: Path, epochs: int, keys_per_epoch: int
) -> None:
    journal = Journal(tmp_path / "r.jsonl")
    store = HistoryStore(journal)
    logger = AsyncLogger("r", store, journal=journal, backoff_s=0)
    for step in range(epochs):
        metrics = {f"green/k{i}": step + i / 10 for i in range(keys_per_epoch)}
        end = journal.epoch(step, metrics, 1000 + step)
        store.line_ends[step] = end
        logger.log_journaled([step], end)
    assert logger.close(30)
    assert store.steps("green/k0") == list(range(epochs))
    assert len(store.points) == epochs * keys_per_epoch
    assert {p.value for p in store.points if p.step == epochs - 1 and p.key == "green/k1"} == {epochs - 1 + 0.1}
    # Several epochs per call when they wait together, never more than MLflow's limit
    # (an epoch bigger than the limit goes alone, split by the transport).
    assert all(size <= 1000 for size in store.batch_sizes) or keys_per_epoch > 1000
    assert store.unsynced_sends == 0, "every send came after the journal's fsync"
    journal.close()
    assert read_journal(tmp_path / "r.jsonl").pending_steps == []


def test_a_backlog_is_sent_when_the_store_comes_back(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "r.jsonl")
    store = HistoryStore(journal)
    store.down = True
    logger = AsyncLogger("r", store, journal=journal, backoff_s=0, attempts=1)
    for step in range(300):
        logger.log_journaled([step], journal.epoch(step, {"green/energy_kwh": float(step)}, 0))
    assert logger.flush(10)
    assert logger.unsent_steps == list(range(300))
    store.down = False
    assert logger.close(30)
    assert store.steps() == list(range(300)) and logger.acked_steps == list(range(300))
    assert store.calls < 300


def test_accuracy_is_read_back_as_the_run_held_it_when_each_epoch_ended(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "r.jsonl")
    store = HistoryStore(journal)
    found: list[tuple[int, str, float]] = []
    logger = AsyncLogger(
        "r", store, journal=journal, backoff_s=0,
        accuracy_keys=("val_accuracy", "val_acc"), on_accuracy=lambda *a: found.append(a),
    )
    # The user logs val_acc for epochs 0 and 1 before each epoch ends; epoch 2 logs nothing
    # (it keeps epoch 1's value); epoch 1's value arrives after epoch 0 ended.
    store.user_points = [("val_acc", 0, 100, 0.5), ("val_acc", 1, 200, 0.7)]
    ends = {0: 150, 1: 250, 2: 350}
    for step, before_ms in ends.items():
        metrics = {"green/energy_kwh": 1.0, "green/cum_total_co2eq_kg": 2.0 * (step + 1)}
        resolve = {"accuracy": None, "before_ms": before_ms, "keys": ["val_acc"]}
        logger.log_journaled([step], journal.epoch(step, metrics, before_ms, resolve=resolve))
    assert logger.close(10)
    per_kg = {p.step: p.value for p in store.points if p.key == "green/accuracy_per_kg"}
    assert per_kg == pytest.approx({0: 0.5 / 2.0, 1: 0.7 / 4.0, 2: 0.7 / 6.0})
    assert found == [(0, "val_acc", 0.5), (1, "val_acc", 0.7), (2, "val_acc", 0.7)]
    journal.close()
    state = read_journal(tmp_path / "r.jsonl")
    assert not state.unresolved and state.epochs[2][1]["green/accuracy_per_kg"] == pytest.approx(0.7 / 6.0)


def test_one_history_read_serves_every_batch_of_a_drain(tmp_path: Path) -> None:
    """A backlog of read-back epochs goes in several batches (MLflow's metric limit), and
    the run's accuracy history is read once for all of them, not once per batch."""
    journal = Journal(tmp_path / "r.jsonl")
    store = HistoryStore(journal)
    reads: list[str] = []
    history = store.metric_history
    store.metric_history = lambda run_id, key: reads.append(key) or history(run_id, key)  # type: ignore[method-assign]
    logger = AsyncLogger("r", store, journal=journal, backoff_s=0, accuracy_keys=("val_acc",), send_interval_s=30.0)
    store.user_points = [("val_acc", step, 100 * step, 0.5 + step / 1000) for step in range(200)]
    for step in range(200):
        metrics = {f"green/k{i}": 1.0 for i in range(20)} | {"green/cum_total_co2eq_kg": 1.0}
        resolve = {"accuracy": None, "before_ms": 100 * step + 50, "keys": ["val_acc"]}
        logger.log_journaled([step], journal.epoch(step, metrics, 100 * step + 50, resolve=resolve))
    assert logger.close(10)
    assert len(store.batch_sizes) > 3  # several batches ...
    assert len(reads) <= 2  # ... one read per drain (the first epoch's, then the rest)
    per_kg = {p.step: p.value for p in store.points if p.key == "green/accuracy_per_kg"}
    assert per_kg[199] == pytest.approx(0.699)
    journal.close()


def test_no_accuracy_in_the_run_keeps_the_fallback(tmp_path: Path) -> None:
    store = HistoryStore()
    logger = AsyncLogger("r", store, backoff_s=0, accuracy_keys=("val_acc",))
    metrics = {"green/energy_kwh": 1.0, "green/cum_total_co2eq_kg": 4.0}
    logger.log_epoch(0, dict(metrics), 10, resolve={"accuracy": 0.8, "before_ms": 10})
    logger.log_epoch(1, dict(metrics), 20, resolve={"accuracy": None, "before_ms": 20})
    assert logger.close(10)
    per_kg = {p.step: p.value for p in store.points if p.key == "green/accuracy_per_kg"}
    assert per_kg == {0: pytest.approx(0.2)}
    assert store.steps() == [0, 1]


def test_epochs_within_the_send_interval_share_one_call_and_close_sends_at_once() -> None:
    store = FakeStore()
    logger = AsyncLogger("r", store, backoff_s=0, send_interval_s=30.0)
    _epoch(logger, 0)
    deadline = time.monotonic() + 10
    while store.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.steps() == [0]  # the first epoch goes at once: the run shows up
    for step in range(1, 6):
        _epoch(logger, step)
    time.sleep(0.5)
    assert store.steps() == [0]  # the next ones wait for the interval ...
    started = time.monotonic()
    assert logger.close(10)
    assert time.monotonic() - started < 5  # ... or for the end of the run, which does not wait
    assert store.steps() == [0, 1, 2, 3, 4, 5]
    assert store.calls == 2


class SlowStore(FakeStore):
    """Each send takes a while, and an epoch ends meanwhile (short epochs, a busy store)."""

    def __init__(self, on_send: object) -> None:
        super().__init__()
        self.on_send = on_send
        self.batches: list[list[int]] = []

    def log_batch(self, run_id: str, metrics: list[MetricPoint], tags: dict[str, str]) -> None:
        if metrics:
            self.batches.append(sorted({p.step for p in metrics}))
        super().log_batch(run_id, metrics, tags)
        time.sleep(0.02)
        self.on_send()  # type: ignore[operator]


@pytest.mark.parametrize("journaled", [False, True])
def test_epochs_that_end_during_a_send_wait_for_the_next_interval(tmp_path: Path, journaled: bool) -> None:
    """A drain sends what was announced when it began: an epoch ending while a send is in
    flight waits for the interval, instead of each epoch going out in a send of its own."""
    journal = Journal(tmp_path / "r.jsonl") if journaled else None
    next_step = [0]
    store: SlowStore

    def announce() -> None:
        step = next_step[0]
        if step >= 40:
            return
        next_step[0] += 1
        if journal is not None:
            logger.log_journaled([step], journal.epoch(step, {"green/energy_kwh": 0.1 * step}, 1000 + step))
        else:
            _epoch(logger, step)

    store = SlowStore(announce)
    logger = AsyncLogger("r", store, journal=journal, backoff_s=0, send_interval_s=30.0)
    announce()
    deadline = time.monotonic() + 10
    while next_step[0] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    # Epoch 0 went at once; epoch 1 ended during that send and waits (30-s interval).
    assert store.batches == [[0]]
    assert logger.close(10)
    assert store.batches == [[0], [1]] and store.steps() == [0, 1]
    if journal is not None:
        journal.close()


def test_a_zero_send_interval_sends_each_epoch_as_it_ends() -> None:
    store = FakeStore()
    logger = AsyncLogger("r", store, backoff_s=0, send_interval_s=0.0)
    for step in range(3):
        _epoch(logger, step)
        deadline = time.monotonic() + 10
        while step not in store.steps() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.steps() == list(range(step + 1))
    assert logger.close(10)
    assert store.calls == 3


def test_a_flush_sends_what_waits_for_the_interval() -> None:
    store = FakeStore()
    logger = AsyncLogger("r", store, backoff_s=0, send_interval_s=30.0)
    _epoch(logger, 0)
    _epoch(logger, 1)
    assert logger.flush(10)
    assert store.steps() == [0, 1]
    assert logger.close(10)


def test_close_cuts_a_retry_back_off_short() -> None:
    store = FakeStore()
    store.down = True
    logger = AsyncLogger("r", store, backoff_s=5.0, send_interval_s=0.0)
    _epoch(logger, 0)
    deadline = time.monotonic() + 10
    while store.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.01)  # the first attempt failed: the logger now waits out a 5-s back-off
    started = time.monotonic()
    assert logger.close(30)
    assert time.monotonic() - started < 2.5
    assert store.steps() == []  # still down: nothing sent, the epoch stays journaled/pending


def _held_when_ended(points: list[tuple[int, int, float]], deadline: int) -> float | None:
    """The rule, written out: the latest point (step, then timestamp) logged strictly before
    the epoch ended, else in its very millisecond; None when there is none."""
    for strict in (True, False):
        before = [p for p in points if p[1] < deadline or (not strict and p[1] == deadline)]
        if before:
            # max() keeps the first of equal keys; the rule wants the last logged of them.
            return max(reversed(sorted(before, key=lambda p: p[1])), key=lambda p: (p[0], p[1]))[2]
    return None


def test_the_accuracy_lookup_follows_the_rule_on_random_histories() -> None:
    import random

    from mlflow_green.tracking.accuracy import resolve_accuracies

    class Histories:
        def __init__(self, points: list[tuple[int, int, float]]) -> None:
            self.points = points

        def metric_history(self, run_id: str, key: str) -> list[tuple[int, int, float]]:
            return list(self.points) if key == "acc" else []

    rng = random.Random(7)
    for _ in range(200):
        points = [(rng.randint(0, 6), rng.randint(0, 30), float(i)) for i in range(rng.randint(0, 25))]
        deadlines = {step: rng.randint(0, 35) for step in range(8)}
        got = resolve_accuracies(Histories(points), "r", ["missing", "acc"], deadlines)
        for step, deadline in deadlines.items():
            want = _held_when_ended(sorted(points, key=lambda p: p[1]), deadline)
            assert got.get(step) == (None if want is None else ("acc", want)), (points, deadline)
