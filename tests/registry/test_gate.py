"""The gate's request handling on a Flask app routed like MLflow's, without a server process."""

from __future__ import annotations

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
