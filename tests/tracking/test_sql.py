"""The direct metric writer against MLflow's own ``log_batch``: same rows, same reads, same errors,
on SQLite, PostgreSQL and MariaDB/MySQL (the last two where they run on 127.0.0.1)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlflow_green.tracking._sql import MetricWriter, Point, read_histories
from mlflow_green.tracking.logger import ClientTransport, MetricPoint
from tests._servers import sql_store

# Batches sent one after the other: NaN and infinities, duplicates within a batch, steps out of
# order, an older step after a newer one (latest must not move back), the same step with a
# newer timestamp, and the same step and timestamp with a larger value (MLflow's tie-break).
BATCHES: list[list[Point]] = [
    [("green/a", 1.0, 1000, 0), ("green/b", float("nan"), 1000, 0), ("green/a", 1.0, 1000, 0)],
    [("green/a", 3.0, 1003, 2), ("green/a", 2.0, 1002, 1), ("green/b", float("inf"), 1002, 1)],
    [("green/a", 9.0, 1009, 1), ("green/b", -math.inf, 1001, 5), ("green/c", 0.5, 5, 0)],
    [("green/a", 3.5, 1004, 2), ("green/c", 0.25, 5, 0), ("green/c", 0.75, 5, 0)],
    [("green/b", 7.0, 900, 5), ("green/c", 0.1, 4, 0), ("green/d", -2.0, 0, 3)],
]


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with sql_store(request.param, tmp_path, "mlflow_green_sqlwrite") as uri:
        yield uri


def _store(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(uri)._tracking_client.store


def _mlflow_log(store: Any, run_id: str, points: list[Point], tags: dict[str, str]) -> None:
    from mlflow.entities import Metric, RunTag

    metrics = [Metric(k, v, t, s) for k, v, t, s in points]
    store.log_batch(run_id, metrics, [], [RunTag(k, v) for k, v in tags.items()])


def _as_read(store: Any, run_id: str) -> tuple[dict[str, Any], dict[str, list[tuple[Any, ...]]]]:
    """Latest metrics (NaN as a string, to compare) and each key's full history, sorted."""
    def norm(v: float) -> Any:
        return "nan" if math.isnan(v) else v

    run = store.get_run(run_id)
    latest = {k: norm(v) for k, v in run.data.metrics.items()}
    history = {
        key: sorted((m.step, m.timestamp, norm(m.value)) for m in store.get_metric_history(run_id, key))
        for key in latest
    }
    return latest, history


def test_the_writer_leaves_what_mlflows_log_batch_leaves(store_uri: str) -> None:
    store = _store(store_uri)
    assert MetricWriter.applies_to(store)
    writer = MetricWriter(store)
    exp = store.create_experiment("e")
    ours = store.create_run(exp, "u", 0, [], "ours").info.run_id
    theirs = store.create_run(exp, "u", 0, [], "theirs").info.run_id
    for i, batch in enumerate(BATCHES):
        tags = {"green.status": f"step {i}", f"green.t{i % 2}": "x" * (4000 * i)}
        assert writer.write(ours, batch, tags)
        _mlflow_log(store, theirs, batch, tags)
        assert _as_read(store, ours) == _as_read(store, theirs)
        assert store.get_run(ours).data.tags == {
            **store.get_run(theirs).data.tags, "mlflow.runName": "ours"
        }
    direct = read_histories(store, ours, ["green/a", "green/b", "green/c", "green/d", "green/none"])
    assert direct is not None and direct.pop("green/none") == []
    assert {k: sorted((s, t, "nan" if math.isnan(v) else v) for s, t, v in points)
            for k, points in direct.items()} == _as_read(store, theirs)[1]
    latest, history = _as_read(store, ours)  # -inf is stored as -max float, as MLflow does
    assert latest == {"green/a": 3.5, "green/b": -1.7976931348623157e308, "green/c": 0.75, "green/d": -2.0}
    assert len(history["green/a"]) == 5  # the in-batch duplicate stored once
    # Runs ordered by a metric: the same order whichever path wrote them.
    from mlflow.entities import ViewType

    for key in ("green/a", "green/c"):
        found = store.search_runs([exp], f"metrics.`{key}` > 0", ViewType.ALL, order_by=[f"metrics.`{key}` DESC"])
        assert {r.info.run_id for r in found} == {ours, theirs}
        assert len({r.data.metrics[key] for r in found}) == 1


def test_a_row_already_stored_goes_to_mlflow_which_keeps_one(store_uri: str) -> None:
    """A resend after an ambiguous failure: the writer stands aside, nothing is duplicated."""
    uri = store_uri
    transport = ClientTransport(uri)
    store = transport._client._tracking_client.store
    run_id = store.create_run(store.create_experiment("e"), "u", 0, [], "r").info.run_id
    points = [MetricPoint("green/a", float(i), 1000 + i, i) for i in range(3)]
    transport.log_batch(run_id, points, {})
    assert not MetricWriter(store).write(run_id, [("green/a", 0.0, 1000, 0), ("green/a", 5.0, 1005, 5)])
    assert len(store.get_metric_history(run_id, "green/a")) == 3  # rolled back, nothing half-written
    transport.log_batch(run_id, [*points, MetricPoint("green/a", 5.0, 1005, 5)], {"green.status": "ok"})
    assert sorted(m.step for m in store.get_metric_history(run_id, "green/a")) == [0, 1, 2, 5]
    run = store.get_run(run_id)
    assert run.data.metrics["green/a"] == 5.0 and run.data.tags["green.status"] == "ok"


def test_deleted_missing_runs_and_bad_keys_get_mlflows_own_errors(sqlite_uri: str) -> None:
    from mlflow.exceptions import MlflowException

    transport = ClientTransport(sqlite_uri)
    store = transport._client._tracking_client.store
    writer = MetricWriter(store)
    exp = store.create_experiment("e")
    run_id = store.create_run(exp, "u", 0, [], "r").info.run_id
    store.delete_run(run_id)
    point = MetricPoint("green/a", 1.0, 1000, 0)
    assert not writer.write(run_id, [("green/a", 1.0, 1000, 0)])
    with pytest.raises(MlflowException, match="active"):
        transport.log_batch(run_id, [point], {})
    assert not writer.write("0" * 32, [("green/a", 1.0, 1000, 0)])
    with pytest.raises(MlflowException, match="not found"):
        transport.log_batch("0" * 32, [point], {})
    live = store.create_run(exp, "u", 0, [], "live").info.run_id
    for bad in (("../a", 1.0, 1000, 0), ("green/a", 1.0, -1, 0), ("k" * 251, 1.0, 1, 0)):
        assert not writer.write(live, [bad])
    with pytest.raises(MlflowException):
        transport.log_batch(live, [MetricPoint("../a", 1.0, 1000, 0)], {})
    assert store.get_run(live).data.metrics == {}


def test_the_transport_writes_metrics_directly_and_tags_through_mlflow(
    sqlite_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = ClientTransport(sqlite_uri)
    store = transport._client._tracking_client.store
    run_id = store.create_run(store.create_experiment("e"), "u", 0, [], "r").info.run_id
    calls: list[tuple[int, int]] = []
    original = type(store).log_batch

    def counting(self: Any, run_id: str, metrics: Any, params: Any, tags: Any) -> None:
        calls.append((len(metrics), len(tags)))
        original(self, run_id, metrics, params, tags)

    monkeypatch.setattr(type(store), "log_batch", counting)
    points = [MetricPoint(f"green/k{i}", 0.1 * i, 1000 + s, s) for s in range(10) for i in range(18)]
    transport.log_batch(run_id, points, {"green.status": "ok", "green.pue": "1.2"})
    transport.log_batch(run_id, [MetricPoint("green/k0", 1.0, 2000, 10)], {"green.status": "degraded: x"})
    transport.log_batch(run_id, [], {"green.location": "FRA"})
    assert calls == []  # none of it through MLflow's ORM
    run = store.get_run(run_id)
    assert len(run.data.metrics) == 18 and run.data.metrics["green/k0"] == 1.0
    assert {k: v for k, v in run.data.tags.items() if k.startswith("green.")} == {
        "green.status": "degraded: x", "green.pue": "1.2", "green.location": "FRA"
    }
    # The run-name tag also renames the run: that one is MLflow's.
    transport.log_batch(run_id, [], {"mlflow.runName": "renamed", "green.x": "1"})
    assert calls == [(0, 2)]
    run = store.get_run(run_id)
    assert run.info.run_name == "renamed" and run.data.tags["green.x"] == "1"


def test_the_writer_stands_aside_for_stores_it_does_not_know(sqlite_uri: str) -> None:
    store = _store(sqlite_uri)

    class Customised(type(store)):  # type: ignore[misc]
        def _log_metrics(self, run_id: str, metrics: Any) -> None:
            super()._log_metrics(run_id, metrics)

    custom = Customised.__new__(Customised)
    custom.__dict__.update(store.__dict__)
    assert MetricWriter.applies_to(store)
    assert not MetricWriter.applies_to(custom)
    assert not MetricWriter.applies_to(None)
    assert not MetricWriter.applies_to(object())
    assert read_histories(custom, "0" * 32, ["green/a"]) is None
