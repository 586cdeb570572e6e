from __future__ import annotations

from typing import Any

import pytest

from mlflow_green.registry.footprint import ClientBackend, model_version_footprint
from mlflow_green.tracking import schema
from tests.registry._helpers import log_green_run, register, unique


def footprint(client: Any, name: str, version: str, lineage: bool = False) -> Any:
    return model_version_footprint(ClientBackend(client), name, version, include_lineage=lineage)


def test_final_cumulative_metrics_of_the_source_run(client: Any, experiment_id: str) -> None:
    rid = log_green_run(client, experiment_id, 4.0, energy_kwh=10.0, co2eq_kg=3.0, accuracy=0.8, steps=4)
    name = unique("m")
    v = register(client, name, rid)
    f = footprint(client, name, v)
    assert f.source_run_id == rid
    assert f.total_co2eq_kg == pytest.approx(4.0)
    assert f.co2eq_kg == pytest.approx(3.0)
    assert f.energy_kwh == pytest.approx(10.0)
    assert f.embodied_kg == pytest.approx(1.0)
    assert f.accuracy_per_kg == pytest.approx(0.2)
    assert f.missing == ()


def test_a_later_smaller_value_cannot_shrink_the_total(client: Any, experiment_id: str) -> None:
    rid = log_green_run(client, experiment_id, 4.0)
    client.log_metric(rid, schema.CUM_TOTAL_CO2EQ_KG, 0.001, step=99)
    name = unique("m")
    f = footprint(client, name, register(client, name, rid))
    assert f.total_co2eq_kg == pytest.approx(4.0)


def test_run_without_green_metrics_is_missing_evidence(client: Any, experiment_id: str) -> None:
    rid = log_green_run(client, experiment_id, None)
    name = unique("m")
    f = footprint(client, name, register(client, name, rid))
    assert not f.measured
    assert f.total_co2eq_kg is None
    assert "has no green/ metrics" in f.missing[0]


def test_lineage_parent_siblings_children_and_tag_without_double_counting(
    client: Any, experiment_id: str
) -> None:
    parent = log_green_run(client, experiment_id, None)  # a sweep's container run
    trial_a = log_green_run(client, experiment_id, 1.0, parent_run_id=parent)
    extra = log_green_run(client, experiment_id, 0.5)  # e.g. data preparation
    child_of_best = log_green_run(client, experiment_id, 0.25)
    best = log_green_run(
        client, experiment_id, 2.0, parent_run_id=parent,
        # trial_a listed again: counted once
        tags={schema.TAG_LINEAGE: f"{extra}, {trial_a}"},
    )
    client.set_tag(child_of_best, "mlflow.parentRunId", best)
    name = unique("m")
    v = register(client, name, best)

    alone = footprint(client, name, v)
    assert alone.total_co2eq_kg == pytest.approx(2.0)

    full = footprint(client, name, v, lineage=True)
    roles = {r.run_id: r.role for r in full.runs}
    assert roles == {best: "source", parent: "parent", trial_a: "sibling", child_of_best: "child", extra: "lineage"}
    assert full.total_co2eq_kg == pytest.approx(2.0 + 1.0 + 0.5 + 0.25)
    assert full.missing == ()  # the container parent is a note, not missing evidence
    assert any(parent in n for n in full.notes)


def test_lineage_tag_naming_a_missing_run_is_missing_evidence(client: Any, experiment_id: str) -> None:
    rid = log_green_run(client, experiment_id, 1.0, tags={schema.TAG_LINEAGE: "0" * 32})
    name = unique("m")
    f = footprint(client, name, register(client, name, rid), lineage=True)
    assert any("does not exist" in m for m in f.missing)


def test_copy_model_version_carries_the_source_footprint(client: Any, experiment_id: str) -> None:
    rid = log_green_run(client, experiment_id, 3.0)
    dev = unique("dev")
    v = register(client, dev, rid)
    prod = unique("prod")
    client.create_registered_model(prod)
    copy = client.copy_model_version(f"models:/{dev}/{v}", prod)
    assert copy.source.startswith("models:/")
    f = footprint(client, prod, str(copy.version))
    assert f.copied_from == (f"{dev}/{v}",)
    assert f.source_run_id == rid
    assert f.total_co2eq_kg == pytest.approx(3.0)


def test_mlflow3_logged_model_source_resolves_its_run(client: Any, experiment_id: str) -> None:
    rid = log_green_run(client, experiment_id, 6.0)
    cheap = log_green_run(client, experiment_id, 0.1)
    logged = client.create_logged_model(experiment_id, source_run_id=rid)
    name = unique("m")
    client.create_registered_model(name)
    # A client may send any run_id next to the source: the logged model's own run decides.
    mv = client.create_model_version(name, f"models:/{logged.model_id}", run_id=cheap)
    f = footprint(client, name, str(mv.version))
    assert f.source_run_id == rid
    assert f.total_co2eq_kg == pytest.approx(6.0)


# -- the version's source run ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "run_id_field", "expect", "note"),
    [
        # A store written directly (no server) can hold a runs:/ source that disagrees with
        # run_id; the version's run_id is its recorded lineage and decides.
        ("runs:/{other}/model", "{rid}", "{rid}", "names run {other}"),
        ("runs:/{rid}/model", "{rid}", "{rid}", None),
        # No run_id: the runs:/ source names the run.
        ("runs:/{rid}/model", "", "{rid}", None),
        ("s3://bucket/path/model", "{rid}", "{rid}", None),
    ],
)
def test_run_id_decides_and_runs_uri_is_the_fallback(
    client: Any, experiment_id: str, source: str, run_id_field: str, expect: str, note: str | None
) -> None:
    rid = log_green_run(client, experiment_id, 2.0)
    other = "0" * 32  # e.g. a placeholder source, as seeding scripts write
    fill = {"rid": rid, "other": other}
    name = unique("m")
    client.create_registered_model(name)
    mv = client.create_model_version(name, source.format(**fill), run_id=run_id_field.format(**fill) or None)
    f = footprint(client, name, str(mv.version))
    assert f.source_run_id == expect.format(**fill)
    assert f.missing == ()
    assert f.total_co2eq_kg == pytest.approx(2.0)
    if note is None:
        assert f.notes == ()
    else:
        assert any(note.format(**fill) in n for n in f.notes)


# -- the client and the server-store backends ---------------------------------------------------


def _backend(client: Any, kind: str) -> Any:
    from mlflow_green.registry.footprint import StoreBackend

    if kind == "client":
        return ClientBackend(client)
    return StoreBackend(client._tracking_client.store, client._get_registry_client().store)


BACKENDS = ["client", "store"]
STORE_BACKENDS = ["store"]


@pytest.mark.parametrize("kind", STORE_BACKENDS)
def test_model_and_version_reads_agree_on_every_store_path(client: Any, experiment_id: str, kind: str) -> None:
    from mlflow.exceptions import MlflowException

    rid = log_green_run(client, experiment_id, 2.0, tags={"green.lineage": "abc"})
    name = unique("m")
    v = register(client, name, rid, model_tags={"green.budget.total_co2eq_kg": "5", "team": "nlp"})
    client.set_model_version_tag(name, v, "green.gate.verdict", "pass")
    doomed = register(client, name, rid)
    client.delete_model_version(name, doomed)
    backend = _backend(client, kind)
    with backend.reading():
        tags, mv = backend.model_and_version(name, v)
        assert tags == {"green.budget.total_co2eq_kg": "5", "team": "nlp"}
        assert (mv.source, mv.run_id, str(mv.version)) == (f"runs:/{rid}/model", rid, v)
        assert mv.tags == {"green.gate.verdict": "pass"}
        assert backend.model_and_version(name, "99")[1] is None  # no such version
        assert backend.model_and_version(name, doomed)[1] is None  # deleted
        with pytest.raises(MlflowException) as info:
            backend.model_and_version(unique("absent"), "1")
        assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
        run = backend.get_run(rid)
        assert run.info.run_id == rid and str(run.info.experiment_id) == str(experiment_id)
        assert run.data.tags["green.lineage"] == "abc"
        with pytest.raises(MlflowException) as info:
            backend.get_run("0" * 32)
        assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_nan_latest_value_and_a_run_without_green_metrics_read_alike(
    client: Any, experiment_id: str, kind: str
) -> None:
    nan_run = log_green_run(client, experiment_id, 3.0, accuracy=0.9)
    client.log_metric(nan_run, schema.ACCURACY_PER_KG, float("nan"), step=99)
    bare = client.create_run(experiment_id).info.run_id
    client.log_metric(bare, "val_acc", 0.5)
    backend = _backend(client, kind)
    name = unique("m")
    f = model_version_footprint(backend, name, register(client, name, nan_run))
    assert f.total_co2eq_kg == pytest.approx(3.0) and f.accuracy_per_kg is None
    f = model_version_footprint(backend, name, register(client, name, bare))
    assert f.total_co2eq_kg is None and not f.measured
    assert any("no green/ metrics" in m for m in f.missing)


@pytest.mark.parametrize("kind", BACKENDS)
def test_metric_maxima_ignore_later_smaller_and_nan_values(client: Any, experiment_id: str, kind: str) -> None:
    rid = log_green_run(client, experiment_id, 4.0, energy_kwh=10.0)
    client.log_metric(rid, schema.CUM_TOTAL_CO2EQ_KG, 0.001, step=99)
    client.log_metric(rid, schema.CUM_ENERGY_KWH, float("nan"), step=99)
    backend = _backend(client, kind)
    keys = [schema.CUM_TOTAL_CO2EQ_KG, schema.CUM_ENERGY_KWH, "green/never_logged"]
    maxima = backend.metric_maxima(rid, keys)
    assert maxima == {
        schema.CUM_TOTAL_CO2EQ_KG: pytest.approx(4.0),
        schema.CUM_ENERGY_KWH: pytest.approx(10.0),
    }
    name = unique("m")
    f = model_version_footprint(backend, name, register(client, name, rid))
    assert f.total_co2eq_kg == pytest.approx(4.0)
    assert f.energy_kwh == pytest.approx(10.0)


@pytest.mark.parametrize("kind", STORE_BACKENDS)
def test_evidence_tags_are_written_and_overwritten(client: Any, experiment_id: str, kind: str) -> None:
    name = unique("m")
    v = register(client, name, log_green_run(client, experiment_id, 1.0))
    client.set_model_version_tag(name, v, "green.gate.verdict", "fail")
    client.set_model_version_tag(name, v, "note", "kept")
    backend = _backend(client, kind)
    tags = {"green.gate.verdict": "pass", "green.gate.total_co2eq_kg": "1", "green.gate.scope": ""}
    backend.set_model_version_tags(name, v, tags)
    assert client.get_model_version(name, v).tags == {**tags, "note": "kept"}


@pytest.mark.parametrize("kind", STORE_BACKENDS)
def test_evidence_on_a_missing_version_raises_and_writes_nothing(client: Any, experiment_id: str, kind: str) -> None:
    from mlflow.exceptions import MlflowException

    name = unique("m")
    register(client, name, log_green_run(client, experiment_id, 1.0))
    backend = _backend(client, kind)
    with pytest.raises(MlflowException) as info:
        backend.set_model_version_tags(name, "7", {"green.gate.verdict": "pass"})
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.parametrize("kind", STORE_BACKENDS)
def test_evidence_write_that_loses_an_insert_race_is_retried(
    client: Any, experiment_id: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two promotions of one version at once both insert the same new evidence rows: the second
    transaction's UNIQUE violation is retried (the rows now exist and are updated), not refused."""
    import threading

    from mlflow.entities.model_registry import ModelVersionTag
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    name = unique("m")
    v = register(client, name, log_green_run(client, experiment_id, 1.0))
    backend = _backend(client, kind)
    store = client._get_registry_client().store
    raced: list[str] = []

    def concurrent_insert(session: Any, *_: Any) -> None:
        if raced or not any(getattr(o, "key", "") == "green.gate.verdict" for o in session.new):
            return
        raced.append("inserted")
        # Another request's transaction commits the same row between this one's read and insert.
        other = threading.Thread(
            target=store.set_model_version_tag, args=(name, v, ModelVersionTag("green.gate.verdict", "fail"))
        )
        other.start()
        other.join()

    event.listen(Session, "before_flush", concurrent_insert)
    try:
        backend.set_model_version_tags(name, v, {"green.gate.verdict": "pass", "green.gate.scope": "champion"})
    finally:
        event.remove(Session, "before_flush", concurrent_insert)
    assert raced == ["inserted"]
    tags = client.get_model_version(name, v).tags
    assert tags["green.gate.verdict"] == "pass" and tags["green.gate.scope"] == "champion"
