"""The gate's request handling on a Flask app routed like MLflow's, without a server process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from mlflow_green.registry._gate import Gate
from mlflow_green.registry.policy import Policy

HANDLER_RAN = "HANDLER RAN"


def _stand_in(**_: Any) -> str:
    return HANDLER_RAN


def _routed_app(name: str) -> Any:
    from flask import Flask
    from mlflow.server.handlers import get_endpoints

    flask_app = Flask(name)
    for path, handler, methods in get_endpoints():
        flask_app.add_url_rule(path, handler.__name__, _stand_in, methods=methods)
    return flask_app


class _BrokenBackend:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("database is on fire")


@pytest.fixture(scope="module")
def app() -> Iterator[Any]:
    """MLflow's routes with stand-in views; the gate's store access fails."""
    flask_app = _routed_app("gate-test")
    gate = Gate(Policy())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Gate, "_backend", staticmethod(lambda: _BrokenBackend()))
        gate.install(flask_app)
        yield flask_app


ALIAS = {"name": "m", "alias": "champion", "version": "1"}


@pytest.mark.parametrize("prefix", ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"])
def test_internal_error_denies_fail_closed(app: Any, prefix: str) -> None:
    resp = app.test_client().post(f"{prefix}/registered-models/alias", json=ALIAS)
    assert resp.status_code == 403
    body = resp.get_json()
    assert body["error_code"] == "PERMISSION_DENIED"
    assert "fail closed" in body["message"] and "database is on fire" in body["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/2.0/mlflow/registered-models/alias",
        "/api/2.0/mlflow/registered-models/alias/",
        "//api/2.0/mlflow//registered-models/alias",
        "/api/2.0/mlflow/registered-models%2Falias",
        "/api/2.0/mlflow/registered%2Dmodels/alias",
        "/API/2.0/mlflow/registered-models/alias",
        "/api/2.0/mlflow/./registered-models/alias",
        "/api/2.0/mlflow/x/../registered-models/alias",
        "/ajax-api/2.0/mlflow/registered-models/alias?x=1",
        "/api/2.0/preview/mlflow/registered-models/alias",
    ],
)
def test_no_path_variant_reaches_the_handler_ungated(app: Any, path: str) -> None:
    client = app.test_client()
    resp = client.post(path, json=ALIAS, follow_redirects=True)
    assert HANDLER_RAN not in resp.get_data(as_text=True)
    assert resp.status_code != 200


@pytest.mark.parametrize(
    ("path", "method", "body"),
    [
        ("/api/2.0/mlflow/model-versions/transition-stage", "post", {"name": "m", "version": "1", "stage": "Production"}),
        ("/api/2.0/mlflow/model-versions/set-tag", "post", {"name": "m", "version": "1", "key": "green.gate.verdict", "value": "pass"}),
        ("/ajax-api/2.0/mlflow/model-versions/delete-tag", "delete", {"name": "m", "version": "1", "key": "GREEN.GATE.verdict"}),
        ("/api/2.0/mlflow/registered-models/set-tag", "post", {"name": "m", "key": "green.gate.x", "value": "1"}),
        ("/api/2.0/mlflow/registered-models/create", "post", {"name": "m", "tags": [{"key": "green.gate.verdict", "value": "pass"}]}),
        ("/api/2.0/mlflow/model-versions/create", "post", {"name": "m", "source": "runs:/r/model", "tags": [{"key": "green.gate.verdict", "value": "pass"}]}),
    ],
)
def test_gated_operations_never_reach_the_handler_when_denied(app: Any, path: str, method: str, body: dict[str, Any]) -> None:
    resp = getattr(app.test_client(), method)(path, json=body)
    assert resp.status_code == 403
    assert resp.get_json()["error_code"] == "PERMISSION_DENIED"


def test_reads_and_unrelated_writes_pass_through(app: Any) -> None:
    client = app.test_client()
    assert client.get("/api/2.0/mlflow/registered-models/get?name=m").get_data(as_text=True) == HANDLER_RAN
    resp = client.post("/api/2.0/mlflow/model-versions/set-tag", json={"name": "m", "version": "1", "key": "note", "value": "x"})
    assert resp.get_data(as_text=True) == HANDLER_RAN


def test_admin_override_token_must_match(monkeypatch: pytest.MonkeyPatch) -> None:
    flask_app = _routed_app("gate-override-test")
    Gate(Policy(), admin_token="s3cret").install(flask_app)
    recorded: list[Any] = []
    monkeypatch.setattr(Gate, "_write", lambda self, pending: recorded.append(pending))
    client = flask_app.test_client()
    body = {"name": "m", "key": "green.gate.verdict", "value": "pass"}
    url = "/api/2.0/mlflow/registered-models/set-tag"
    assert client.post(url, json=body, headers={"X-MLflow-Green-Override": "wrong"}).status_code == 403
    resp = client.post(url, json=body, headers={"X-MLflow-Green-Override": "s3cret", "X-MLflow-Green-Override-Reason": "audit fix"})
    assert resp.get_data(as_text=True) == HANDLER_RAN
    (pending,) = recorded
    assert pending.on_model and "audit fix" in pending.tags["green.gate.override"]


# -- what one gated request reads ---------------------------------------------------------------


class _CountingBackend:
    """The server-store backend over a local SQLite store, counting each read and write."""

    def __init__(self, client: Any) -> None:
        from mlflow_green.registry.footprint import StoreBackend

        self._inner = StoreBackend(client._tracking_client.store, client._get_registry_client().store)
        self.tracking_store = self._inner.tracking_store
        self.registry_store = self._inner.registry_store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return method(*args, **kwargs)

        return counted


def _gate_reads(
    monkeypatch: pytest.MonkeyPatch,
    client: Any,
    policy: Policy,
    body: dict[str, Any],
) -> tuple[Any, list[str]]:
    """One alias set through the gate: the response and the backend calls it made."""
    backend = _CountingBackend(client)
    monkeypatch.setattr(Gate, "_backend", staticmethod(lambda: backend))
    flask_app = _routed_app(f"gate-reads-{body['name']}")
    Gate(policy).install(flask_app)
    resp = flask_app.test_client().post("/api/2.0/mlflow/registered-models/alias", json=body)
    return resp, backend.calls


def _budgeted_version(client: Any, experiment_id: str) -> tuple[str, str]:
    """A new model with a 1-kg total budget and a version whose run logged 0.5 kg."""
    from tests.registry._helpers import log_green_run, register, unique

    name = unique("m")
    v = register(client, name, log_green_run(client, experiment_id, 0.5),
                 model_tags={"green.budget.total_co2eq_kg": "1"})
    return name, v


def test_a_version_without_a_record_is_frozen_on_its_first_promotion_then_judged_by_it(
    client: Any, experiment_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version made before the gate froze records (here: registered straight in the store):
    its first promotion computes its footprint, worst over the history, and freezes it; the
    next promotion judges the record and reads no run at all."""
    name, v = _budgeted_version(client, experiment_id)
    assert "green.gate.footprint" not in client.get_model_version(name, v).tags
    resp, calls = _gate_reads(monkeypatch, client, Policy(), {"name": name, "alias": "champion", "version": v})
    assert resp.get_data(as_text=True) == HANDLER_RAN
    assert "get_run" in calls and "metric_history" in calls
    tags = client.get_model_version(name, v).tags
    assert tags["green.gate.verdict"] == "pass" and tags["green.gate.scope"] == "champion"
    record = json.loads(tags["green.gate.footprint"])
    assert record["final"] is True and record["footprint"]["total_co2eq_kg"] == pytest.approx(0.5)
    resp, calls = _gate_reads(monkeypatch, client, Policy(), {"name": name, "alias": "prod", "version": v})
    assert resp.get_data(as_text=True) == HANDLER_RAN
    assert "get_run" not in calls and "metric_history" not in calls


def test_a_repeated_promotion_with_unchanged_evidence_writes_nothing(
    client: Any, experiment_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, v = _budgeted_version(client, experiment_id)
    body = {"name": name, "alias": "champion", "version": v}
    _gate_reads(monkeypatch, client, Policy(), body)
    first = client.get_model_version(name, v).tags
    client.set_model_version_tag(name, v, "green.gate.checked_at", "2020-01-01T00:00:00+00:00")
    resp, calls = _gate_reads(monkeypatch, client, Policy(), body)
    assert resp.get_data(as_text=True) == HANDLER_RAN
    assert "set_model_version_tags" not in calls  # same verdict, figures, reasons and scope
    again = client.get_model_version(name, v).tags
    assert again == {**first, "green.gate.checked_at": "2020-01-01T00:00:00+00:00"}
    # Another target cleared with the same figures joins the scope (written once) ...
    resp, calls = _gate_reads(monkeypatch, client, Policy(), {**body, "alias": "prod"})
    assert "set_model_version_tags" in calls
    tags = client.get_model_version(name, v).tags
    assert tags["green.gate.scope"] == "champion,prod"
    assert tags["green.gate.checked_at"] != "2020-01-01T00:00:00+00:00"
    for alias in ("champion", "prod"):
        resp, calls = _gate_reads(monkeypatch, client, Policy(), {**body, "alias": alias})
        assert "set_model_version_tags" not in calls
    # ... and a metric logged on the finished run afterwards moves nothing: the record is frozen.
    run_id = client.get_model_version(name, v).run_id
    client.log_metric(run_id, "green/cum_total_co2eq_kg", 0.01, step=50)
    resp, calls = _gate_reads(monkeypatch, client, Policy(), {**body, "alias": "prod"})
    assert "set_model_version_tags" not in calls
    assert float(client.get_model_version(name, v).tags["green.gate.total_co2eq_kg"]) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("policy_doc", "model_tags", "alias", "expect_calls"),
    [
        # No budget tag and no policy budget: only the model's tags are read.
        (None, {}, "champion", ["get_registered_model"]),
        # An alias the policy does not gate: nothing is read at all.
        ({"defaults": {"gated_aliases": ["champion"]}}, {"green.budget.total_co2eq_kg": "1"}, "canary", []),
    ],
)
def test_ungated_requests_skip_the_evaluation(
    client: Any,
    experiment_id: str,
    monkeypatch: pytest.MonkeyPatch,
    policy_doc: dict[str, Any] | None,
    model_tags: dict[str, str],
    alias: str,
    expect_calls: list[str],
) -> None:
    from mlflow_green.registry.policy import parse_policy
    from tests.registry._helpers import log_green_run, register, unique

    name = unique("m")
    v = register(client, name, log_green_run(client, experiment_id, 5.0), model_tags=model_tags)
    policy = parse_policy(policy_doc, "test.yaml") if policy_doc is not None else Policy()
    resp, calls = _gate_reads(monkeypatch, client, policy, {"name": name, "alias": alias, "version": v})
    assert resp.get_data(as_text=True) == HANDLER_RAN
    assert calls == expect_calls
    assert not any(k.startswith("green.gate.") for k in client.get_model_version(name, v).tags)
