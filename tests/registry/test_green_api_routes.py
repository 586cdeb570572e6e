"""Where ``/green/api/*`` is mounted: under MLflow's ``--static-prefix`` too, once."""

from __future__ import annotations

import pytest

from mlflow_green.registry.green_api import green_api_routes, install_green_api
from mlflow_green.registry.policy import Policy


@pytest.mark.parametrize(("prefix", "root"), [("", ""), ("/mlflow", "/mlflow")])
def test_routes_follow_the_static_prefix(monkeypatch: pytest.MonkeyPatch, prefix: str, root: str) -> None:
    from flask import Flask
    from mlflow.server.handlers import STATIC_PREFIX_ENV_VAR

    if prefix:
        monkeypatch.setenv(STATIC_PREFIX_ENV_VAR, prefix)
    else:
        monkeypatch.delenv(STATIC_PREFIX_ENV_VAR, raising=False)
    app = Flask("green-api-routes")
    install_green_api(app, Policy())
    install_green_api(app, Policy())  # idempotent: every worker calls it
    rules = [r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("mlflow_green_")]
    assert sorted(rules) == sorted(f"{root}{p}" for p in ("/green", "/green/api/audit", "/green/api/check", "/green/api/events"))
    assert [path for path, _ in green_api_routes()] == [f"{root}/green/api/{p}" for p in ("check", "audit", "events")]
    response = app.test_client().put(f"{root}/green/api/check")
    assert response.status_code == 405
