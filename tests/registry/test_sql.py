"""The gate's single-statement reads against MLflow's own ORM reads, on SQLite, PostgreSQL and
MariaDB/MySQL (the last two where they run on 127.0.0.1)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlflow_green.registry._sql import read_model_and_version, read_model_version_and_run, read_run
from mlflow_green.registry.footprint import (
    _CUMULATIVE,
    _RUN_LATEST,
    StoreBackend,
    model_version_footprint,
)
from mlflow_green.tracking import schema
from tests._servers import sql_store
from tests.registry._helpers import log_green_run, register, unique


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    from mlflow import MlflowClient

    with sql_store(request.param, tmp_path, "mlflow_green_gateread") as uri:
        yield MlflowClient(tracking_uri=uri, registry_uri=uri)


def _stores(client: Any) -> tuple[Any, Any]:
    return client._tracking_client.store, client._get_registry_client().store


def _norm(run: Any) -> tuple[Any, ...]:
    """A RunView comparable across reads (NaN as a string)."""
    metrics = {k: "nan" if math.isnan(v) else v for k, v in run.data.metrics.items()}
    return (
        run.info.run_id,
        str(run.info.experiment_id),
        run.info.lifecycle_stage,
        metrics,
        run.data.tags,
        run.maxima,
    )


def _versions(client: Any) -> tuple[str, dict[str, str], str]:
    """A model with versions of every kind the gate meets; (name, {label: version}, run id)."""
    experiment_id = client.create_experiment(unique("exp"))
    rid = log_green_run(client, experiment_id, 2.0, accuracy=0.8, tags={"green.lineage": "abc"})
    client.log_metric(
        rid, schema.CUM_TOTAL_CO2EQ_KG, 0.001, step=99
    )  # later, smaller: the max counts
    client.log_metric(rid, schema.ACCURACY_PER_KG, float("nan"), step=99)  # latest NaN
    gone = log_green_run(client, experiment_id, 1.0)
    name = unique("m")
    versions = {"run": register(client, name, rid, model_tags={"green.budget.total_co2eq_kg": "5"})}
    client.set_model_version_tag(name, versions["run"], "green.gate.verdict", "pass")
    versions["deleted-run"] = register(client, name, gone)
    client.delete_run(gone)
    versions["no-run"] = str(client.create_model_version(name, "s3://bucket/model").version)
    doomed = register(client, name, rid)
    client.delete_model_version(name, doomed)
    versions["deleted-version"] = doomed
    versions["absent"] = "99"
    return name, versions, rid


def test_one_statement_reads_what_the_two_read(client: Any) -> None:
    _, registry = _stores(client)
    name, versions, rid = _versions(client)
    with registry.ManagedSessionMaker() as session:
        for label, version in versions.items():
            tags, view, run = read_model_version_and_run(
                registry, session, name, version, _RUN_LATEST, _CUMULATIVE
            )
            assert (tags, view) == read_model_and_version(registry, session, name, version), label
            if label in ("deleted-version", "absent"):
                assert view is None and run is None
                continue
            if label == "no-run":
                assert view.run_id is None and run is None
                continue
            assert run is not None
            assert _norm(run) == _norm(read_run(session, view.run_id, _RUN_LATEST, _CUMULATIVE)), (
                label
            )
        _, _, run = read_model_version_and_run(
            registry, session, name, versions["run"], _RUN_LATEST, _CUMULATIVE
        )
    assert run.info.run_id == rid and run.data.tags["green.lineage"] == "abc"
    assert math.isnan(run.data.metrics[schema.ACCURACY_PER_KG])
    assert run.maxima[schema.CUM_TOTAL_CO2EQ_KG] == pytest.approx(2.0)


def test_a_missing_model_is_mlflows_own_error(client: Any) -> None:
    from mlflow.exceptions import MlflowException

    _, registry = _stores(client)
    with registry.ManagedSessionMaker() as session, pytest.raises(MlflowException) as info:
        read_model_version_and_run(
            registry, session, unique("absent"), "1", _RUN_LATEST, _CUMULATIVE
        )
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_the_gate_reads_the_database_once_and_judges_as_before(client: Any) -> None:
    from sqlalchemy import event

    tracking, registry = _stores(client)
    name, versions, _ = _versions(client)
    expected = {
        label: model_version_footprint(StoreBackend(tracking, registry), name, versions[label])
        for label in ("run", "deleted-run", "no-run")
    }
    engine = registry.engine
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("PRAGMA", "SELECT 1", "SET ")):
            statements.append(statement)

    for label, footprint in expected.items():
        backend = StoreBackend(tracking, registry)
        event.listen(engine, "before_cursor_execute", seen)
        try:
            with backend.reading():
                _, view = backend.model_and_version(name, versions[label])
                got = model_version_footprint(backend, name, versions[label], model_version=view)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert got == footprint, label
        if label == "run":
            assert len(statements) == 1, statements  # model, version and run together
        statements.clear()


def test_figures_read_back_exactly_as_mlflow_stores_them(client: Any) -> None:
    """On SQLite the read comes back as one packed JSON row: every double must survive it."""
    tracking, _ = _stores(client)
    experiment_id = client.create_experiment(unique("exp"))
    rid = client.create_run(experiment_id, tags={"green.status": "ok", "note": "é" * 300}).info.run_id
    hard = {
        schema.CUM_TOTAL_CO2EQ_KG: 0.30000000000000004,
        schema.CUM_CO2EQ_KG: 1 / 3,
        schema.CUM_ENERGY_KWH: float("inf"),  # MLflow stores the largest double
        schema.CUM_EMBODIED_KG: 2.2250738585072014e-308,
        schema.ACCURACY_PER_KG: 123456.789e-12,
    }
    for key, value in hard.items():
        client.log_metric(rid, key, value, step=0)
    with tracking.ManagedSessionMaker() as session:
        view = read_run(session, rid, _RUN_LATEST, _CUMULATIVE)
    mlflow_run = tracking.get_run(rid)
    assert view.data.metrics == mlflow_run.data.metrics
    assert view.data.tags == mlflow_run.data.tags
    assert str(view.info.experiment_id) == str(mlflow_run.info.experiment_id)
    assert view.data.metrics[schema.CUM_TOTAL_CO2EQ_KG] == 0.30000000000000004
    assert view.maxima == {k: v for k, v in view.data.metrics.items() if k in _CUMULATIVE}


def test_on_sqlite_the_read_is_one_packed_row() -> None:
    import sqlalchemy as sa

    from mlflow_green.registry._sql import _packed, _run_statement, _sqlite_packs_exactly

    assert _sqlite_packs_exactly()
    sql = str(_packed(_run_statement()).compile(dialect=sa.dialects.sqlite.dialect()))
    assert sql.startswith("SELECT json_group_array(json_array(")
