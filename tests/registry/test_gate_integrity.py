"""Issue 15's classes, judged by the gate in-process over a real SQLite store.

MLflow's routes with stand-in views (as in test_gate.py): the gate decides, the store holds the
state. The same attempts against real ``mlflow server`` processes are in
tests/reliability/test_gate_bypass.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlflow_green.registry._gate import Gate
from mlflow_green.registry.footprint import StoreBackend
from mlflow_green.registry.policy import Policy
from mlflow_green.tracking import schema
from tests.registry._helpers import log_green_run, register, unique
from tests.registry.test_gate import HANDLER_RAN, _routed_app

BUDGET = "green.budget.total_co2eq_kg"


def _backend(client: Any) -> StoreBackend:
    return StoreBackend(client._tracking_client.store, client._get_registry_client().store)


@pytest.fixture
def gate_app(client: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Gate, Any]:
    monkeypatch.setattr(Gate, "_backend", staticmethod(lambda: _backend(client)))
    gate = Gate(Policy(), admin_token="tok")
    flask_app = _routed_app(unique("integrity"))
    gate.install(flask_app)
    return gate, flask_app.test_client()


def _promote(http: Any, name: str, version: str, alias: str = "champion", **headers: str) -> Any:
    return http.post(
        "/api/2.0/mlflow/registered-models/alias", json={"name": name, "alias": alias, "version": version}, headers=headers
    )


def _denied(resp: Any, *needles: str) -> str:
    assert resp.status_code == 403, resp.get_data(as_text=True)
    message = str(resp.get_json()["message"])
    for needle in needles:
        assert needle in message, message
    return message


# -- class 1: a referent that disappears is a failed check -------------------------------------


@pytest.mark.parametrize("spelling", ["version", "alias"])
def test_a_copy_whose_source_version_was_deleted_is_refused(
    client: Any, experiment_id: str, gate_app: tuple[Gate, Any], spelling: str
) -> None:
    _, http = gate_app
    dev = unique("dev")
    v = register(client, dev, log_green_run(client, experiment_id, 9.0))
    client.set_registered_model_alias(dev, "best", v)
    src = f"models:/{dev}/{v}" if spelling == "version" else f"models:/{dev}@best"
    prod = unique("prod")
    client.create_registered_model(prod, tags={BUDGET: "2"})
    copy = str(client.copy_model_version(src, prod).version)  # no gate here: a legacy copy
    client.delete_model_version(dev, v)
    _denied(_promote(http, prod, copy), "does not exist")
    assert "champion" not in client.get_registered_model(prod).aliases


def test_a_frozen_copy_keeps_its_figures_when_the_source_goes(
    client: Any, experiment_id: str, gate_app: tuple[Gate, Any]
) -> None:
    gate, http = gate_app
    dev = unique("dev")
    v = register(client, dev, log_green_run(client, experiment_id, 9.0))
    prod = unique("prod")
    client.create_registered_model(prod, tags={BUDGET: "2"})
    copy = str(client.create_model_version(prod, f"models:/{dev}/{v}", None).version)
    backend = _backend(client)
    backend.set_model_version_tags(prod, copy, gate._freeze(backend, prod, copy))  # as at creation
    client.delete_registered_model(dev)
    _denied(_promote(http, prod, copy), "9 kg CO2eq exceeds")


def test_a_logged_model_that_disappears_is_a_failed_check(
    client: Any, experiment_id: str, gate_app: tuple[Gate, Any]
) -> None:
    _, http = gate_app
    run = log_green_run(client, experiment_id, 0.5)
    logged = client.create_logged_model(experiment_id, source_run_id=run)
    name = unique("lm")
    client.create_registered_model(name, tags={BUDGET: "2"})
    v = str(client.create_model_version(name, f"models:/{logged.model_id}", run, model_id=logged.model_id).version)
    client.delete_logged_model(logged.model_id)
    message = _denied(_promote(http, name, v))
    assert "logged model" in message or "does not exist" in message


def test_only_the_requests_own_target_missing_is_left_to_mlflow(client: Any, gate_app: tuple[Gate, Any]) -> None:
    _, http = gate_app
    name = unique("m")
    client.create_registered_model(name, tags={BUDGET: "2"})
    assert _promote(http, name, "7").get_data(as_text=True) == HANDLER_RAN  # MLflow answers 404
    assert _promote(http, unique("nobody"), "1").get_data(as_text=True) == HANDLER_RAN


@pytest.mark.parametrize("prefix", ["/api/2.0", "/ajax-api/2.0"])
def test_a_double_encoded_body_is_read_as_mlflow_reads_it(
    client: Any, experiment_id: str, gate_app: tuple[Gate, Any], prefix: str
) -> None:
    """Older MLflow clients post their JSON encoded twice (a JSON string); MLflow's handlers decode
    it again, so the gate judges it: over budget refused, within budget through to the handler."""
    _, http = gate_app
    name = unique("m")
    good = register(client, name, log_green_run(client, experiment_id, 0.5), model_tags={BUDGET: "2"})
    over = register(client, name, log_green_run(client, experiment_id, 9.0))

    def legacy(version: str) -> Any:
        body = json.dumps(json.dumps({"name": name, "alias": "champion", "version": version}))
        return http.post(f"{prefix}/mlflow/registered-models/alias", data=body, content_type="application/json")

    _denied(legacy(over), "exceeds")
    assert legacy(good).get_data(as_text=True) == HANDLER_RAN


def test_every_non_object_body_is_a_400_json_answer(gate_app: tuple[Gate, Any]) -> None:
    _, http = gate_app
    for body in ("[1, 2]", "3", "null", '"[1]"', '"not json"', "[" * 50_000 + "]" * 50_000):
        for path in ("/api/2.0/mlflow/registered-models/alias", "/api/2.0/mlflow/runs/log-batch"):
            resp = http.post(path, data=body, content_type="application/json")
            if body == "null":  # MLflow reads a JSON null as no body at all: its own answer
                assert resp.get_data(as_text=True) == HANDLER_RAN
                continue
            assert resp.status_code == 400, (body[:20], resp.get_data(as_text=True)[:200])
            assert resp.get_json()["error_code"] == "INVALID_PARAMETER_VALUE"


# -- class 3: figures later writes cannot improve -------------------------------------------------


def test_a_later_large_accuracy_per_kg_cannot_lift_a_version_over_the_floor(
    client: Any, experiment_id: str, gate_app: tuple[Gate, Any]
) -> None:
    _, http = gate_app
    run = client.create_run(experiment_id).info.run_id  # still running: no final record yet
    client.log_metric(run, schema.CUM_TOTAL_CO2EQ_KG, 1.0, step=0)
    client.log_metric(run, schema.ACCURACY_PER_KG, 0.9, step=0)
    name = unique("m")
    client.create_registered_model(name, tags={"green.budget.min_accuracy_per_kg": "50"})
    v = str(client.create_model_version(name, f"runs:/{run}/model", run).version)
    client.log_metric(run, schema.ACCURACY_PER_KG, 1e6, step=5)
    _denied(_promote(http, name, v), "min_accuracy_per_kg")


def test_metrics_logged_after_the_record_is_frozen_move_nothing(
    client: Any, experiment_id: str, gate_app: tuple[Gate, Any]
) -> None:
    gate, http = gate_app
    name = unique("m")
    v = register(client, name, log_green_run(client, experiment_id, 3.0), model_tags={BUDGET: "2"})
    backend = _backend(client)
    backend.set_model_version_tags(name, v, gate._freeze(backend, name, v))
    run = client.get_model_version(name, v).run_id
    client.log_metric(run, schema.CUM_TOTAL_CO2EQ_KG, 0.001, step=99)
    client.log_metric(run, schema.CUM_TOTAL_CO2EQ_KG, float("nan"), step=100)
    _denied(_promote(http, name, v), "3 kg CO2eq exceeds")
    record = json.loads(client.get_model_version(name, v).tags[schema.GATE_FOOTPRINT])
    assert record["final"] is True and record["footprint"]["total_co2eq_kg"] == pytest.approx(3.0)


# -- class 2: every spelling of the run -----------------------------------------------------------


@pytest.mark.parametrize("field", ["run_uuid", "runUuid", "runId", "run_id"])
def test_evidence_relabel_under_any_run_id_spelling_is_refused(
    client: Any, experiment_id: str, gate_app: tuple[Gate, Any], field: str
) -> None:
    _, http = gate_app
    name = unique("m")
    run = log_green_run(client, experiment_id, 1.0, method="simulated")
    register(client, name, run, model_tags={BUDGET: "5"})
    resp = http.post("/api/2.0/mlflow/runs/set-tag", json={field: run, "key": schema.TAG_METHOD_GPU, "value": "counter"})
    _denied(resp, "evidence tag")


# -- class 4: budget lifecycle ----------------------------------------------------------------


def test_budget_loosening_is_judged_against_the_strictest_value_ever(
    client: Any, experiment_id: str, gate_app: tuple[Gate, Any]
) -> None:
    _, http = gate_app
    name = unique("m")
    client.create_registered_model(name)
    client.set_registered_model_tag(name, BUDGET, "1 kg")  # planted before the gate validated it
    url = "/api/2.0/mlflow/registered-models/set-tag"
    _denied(http.post(url, json={"name": name, "key": BUDGET, "value": "100"}), "not a number")
    client.set_registered_model_tag(name, BUDGET, "5")
    assert http.post(url, json={"name": name, "key": BUDGET, "value": "2"}).get_data(as_text=True) == HANDLER_RAN
    assert client.get_registered_model(name).tags["green.gate.strictest.total_co2eq_kg"] == "2.0"
    client.set_registered_model_tag(name, BUDGET, "4")  # as if the tag were rewritten behind the gate
    _denied(http.post(url, json={"name": name, "key": BUDGET, "value": "3"}), "strictest value in force was 2")


@pytest.mark.parametrize("operation", ["rename", "delete"])
def test_rename_and_delete_of_a_budgeted_model_need_the_override(
    client: Any, gate_app: tuple[Gate, Any], operation: str
) -> None:
    _, http = gate_app
    name = unique("m")
    client.create_registered_model(name, tags={BUDGET: "2"})
    if operation == "rename":
        send = lambda **h: http.post("/api/2.0/mlflow/registered-models/rename", json={"name": name, "new_name": name + "x"}, headers=h)  # noqa: E731
    else:
        send = lambda **h: http.delete("/api/2.0/mlflow/registered-models/delete", json={"name": name}, headers=h)  # noqa: E731
    _denied(send(), "override")
    assert send(**{"X-MLflow-Green-Override": "tok"}).get_data(as_text=True) == HANDLER_RAN
    unbudgeted = unique("free")
    client.create_registered_model(unbudgeted)
    resp = http.post("/api/2.0/mlflow/registered-models/rename", json={"name": unbudgeted, "new_name": unbudgeted + "x"})
    assert resp.get_data(as_text=True) == HANDLER_RAN


def test_the_override_does_not_stand_in_for_manage(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Gate, "_backend", staticmethod(lambda: _backend(client)))
    gate = Gate(Policy(), admin_token="tok", can_manage_budgets=lambda: False)
    flask_app = _routed_app(unique("manage"))
    gate.install(flask_app)
    http = flask_app.test_client()
    name = unique("m")
    client.create_registered_model(name, tags={BUDGET: "2"})
    override = {"X-MLflow-Green-Override": "tok", "X-MLflow-Green-Override-Reason": "r"}
    for method, path, body in [
        ("post", "registered-models/set-tag", {"name": name, "key": BUDGET, "value": "9"}),
        ("delete", "registered-models/delete-tag", {"name": name, "key": BUDGET}),
        ("post", "registered-models/rename", {"name": name, "new_name": name + "x"}),
        ("delete", "registered-models/delete", {"name": name}),
    ]:
        resp = getattr(http, method)(f"/api/2.0/mlflow/{path}", json=body, headers=override)
        _denied(resp, "MANAGE")


# -- class 6: a budget that changes while a promotion is under way --------------------------------


def test_a_budget_tightened_during_the_promotion_undoes_it(
    client: Any, experiment_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler's write and a concurrent budget change interleave (here: inside the view):
    after the write, the gate reads the budgets in the database again and undoes the alias."""
    from mlflow.protos.model_registry_pb2 import SetRegisteredModelAlias
    from mlflow.server.handlers import HANDLERS

    monkeypatch.setattr(Gate, "_backend", staticmethod(lambda: _backend(client)))
    name = unique("m")
    old = register(client, name, log_green_run(client, experiment_id, 0.5), model_tags={BUDGET: "5"})
    v = register(client, name, log_green_run(client, experiment_id, 3.0))
    client.set_registered_model_alias(name, "champion", old)
    flask_app = _routed_app(unique("race"))

    def racing_view(**_: Any) -> str:
        client.set_registered_model_alias(name, "champion", v)  # what MLflow's handler does
        client.set_registered_model_tag(name, BUDGET, "2")  # another request commits meanwhile
        return HANDLER_RAN

    flask_app.view_functions[HANDLERS[SetRegisteredModelAlias].__name__] = racing_view
    Gate(Policy()).install(flask_app)
    _denied(_promote(flask_app.test_client(), name, v), "a budget changed", "3 kg CO2eq exceeds")
    assert str(client.get_registered_model(name).aliases["champion"]) == old


def _race_app(client: Any, name: str, v: str) -> Any:
    """MLflow's alias route whose view writes the alias as MLflow's handler does."""
    from mlflow.protos.model_registry_pb2 import SetRegisteredModelAlias
    from mlflow.server.handlers import HANDLERS

    flask_app = _routed_app(unique("race"))

    def view(**_: Any) -> str:
        client.set_registered_model_alias(name, "champion", v)
        return HANDLER_RAN

    flask_app.view_functions[HANDLERS[SetRegisteredModelAlias].__name__] = view
    Gate(Policy()).install(flask_app)
    return flask_app


@pytest.mark.parametrize("failing", ["registered_model_tags", "evaluate_with"])
def test_a_recheck_that_cannot_be_made_undoes_the_promotion(
    client: Any, experiment_id: str, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """Fail closed after the commit too: when the re-read of the budgets (or the judgement under
    them) raises, the alias goes back and the answer is a refusal, not a promotion that stands."""
    from mlflow_green.registry import _gate

    backend = _backend(client)
    monkeypatch.setattr(Gate, "_backend", staticmethod(lambda: backend))
    name = unique("m")
    old = register(client, name, log_green_run(client, experiment_id, 0.5), model_tags={BUDGET: "5"})
    v = register(client, name, log_green_run(client, experiment_id, 1.0))
    client.set_registered_model_alias(name, "champion", old)
    flask_app = _race_app(client, name, v)
    if failing == "registered_model_tags":

        def gone(self: StoreBackend, model: str) -> dict[str, str]:
            raise ConnectionError("database went away")  # the gate's first read is get_registered_model

        monkeypatch.setattr(StoreBackend, "registered_model_tags", gone)
    else:
        real_eval = _gate.evaluate_with

        def budget_changes_then_fails(*args: Any, **kwargs: Any) -> Any:
            if "model_version" not in kwargs:  # the re-check (the first judgement passes a version)
                raise TimeoutError("statement timeout")
            verdict = real_eval(*args, **kwargs)
            client.set_registered_model_tag(name, BUDGET, "4")  # another request, meanwhile
            return verdict

        monkeypatch.setattr(_gate, "evaluate_with", budget_changes_then_fails)
    _denied(_promote(flask_app.test_client(), name, v), "fail closed", "was undone")
    assert str(client.get_registered_model(name).aliases["champion"]) == old


def test_a_promotion_that_cannot_be_undone_is_still_refused_and_named(
    client: Any, experiment_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow_green.registry import _gate

    backend = _backend(client)
    monkeypatch.setattr(Gate, "_backend", staticmethod(lambda: backend))
    name = unique("m")
    v = register(client, name, log_green_run(client, experiment_id, 1.0), model_tags={BUDGET: "5"})
    flask_app = _race_app(client, name, v)

    def fail(*_: Any, **__: Any) -> None:
        raise ConnectionError("database went away")

    real_eval = _gate.evaluate_with
    monkeypatch.setattr(
        _gate, "evaluate_with", lambda *a, **k: real_eval(*a, **k) if "model_version" in k else fail()
    )
    monkeypatch.setattr(Gate, "_undo", lambda *_a, **_k: fail())
    real_tags = StoreBackend.registered_model_tags
    monkeypatch.setattr(
        StoreBackend, "registered_model_tags", lambda self, m: {**real_tags(self, m), BUDGET: "4"}
    )
    message = _denied(_promote(flask_app.test_client(), name, v), "could not be undone", "mlflow-green audit")
    assert f"--model {name}" in message
