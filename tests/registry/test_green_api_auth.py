"""``/green/api/*`` under ``green-gate-auth``: READ permission, the recorded user, no override for MANAGE."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest
import requests

from tests._servers import MlflowServer, grant_model_permission, start_auth_server
from tests.registry._helpers import log_green_run, register, unique

pytestmark = pytest.mark.slow

ADMIN = ("admin", "green-api-Admin-pw-2026")
BOB = ("bob", "bob-Passw0rd-long-enough")
TOKEN = "green-api-auth-token"
BUDGET = "green.budget.total_co2eq_kg"


def _no_read() -> str:
    """The permission that takes READ away: DENY on newer MLflow, NO_PERMISSIONS on 3.0-3.x."""
    from mlflow.server.auth.permissions import ALL_PERMISSIONS

    return "DENY" if "DENY" in ALL_PERMISSIONS else "NO_PERMISSIONS"


@dataclass
class AuthServer:
    server: MlflowServer
    client: Any  # as admin
    experiment_id: str

    @property
    def url(self) -> str:
        return self.server.url

    def grant(self, name: str, permission: str) -> None:
        from mlflow.server.auth.client import AuthServiceClient

        with mock.patch.dict(os.environ, {"MLFLOW_TRACKING_USERNAME": ADMIN[0], "MLFLOW_TRACKING_PASSWORD": ADMIN[1]}):
            admin = AuthServiceClient(self.url)
            grant_model_permission(admin, BOB[0], name, permission)

    def model(self, total: float, budget: str = "2") -> tuple[str, str]:
        name = unique("m")
        return name, register(self.client, name, log_green_run(self.client, self.experiment_id, total), model_tags={BUDGET: budget})


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    from mlflow import MlflowClient
    from mlflow.server.auth.client import AuthServiceClient

    work = tmp_path_factory.mktemp("green-api-auth")
    server = start_auth_server(work, ADMIN[1], env={"MLFLOW_GREEN_ADMIN_TOKEN": TOKEN})
    creds = {"MLFLOW_TRACKING_USERNAME": ADMIN[0], "MLFLOW_TRACKING_PASSWORD": ADMIN[1]}
    try:
        with mock.patch.dict(os.environ, creds):
            AuthServiceClient(server.url).create_user(*BOB)
            client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
            yield AuthServer(server, client, client.create_experiment(unique("exp")))
    finally:
        server.kill()


def test_check_needs_authentication_and_read_permission(auth: AuthServer) -> None:
    name, version = auth.model(1.0)
    url = auth.url + "/green/api/check"
    body = {"name": name, "version": version, "alias": "champion"}
    assert requests.post(url, json=body, timeout=60).status_code == 401
    resp = requests.post(url, json=body, auth=BOB, timeout=60)  # default permission: READ
    assert resp.status_code == 200 and resp.json()["verdict"] == "pass"
    auth.grant(name, _no_read())
    resp = requests.post(url, json=body, auth=BOB, timeout=60)
    assert resp.status_code == 403 and "READ permission" in resp.json()["message"]
    assert requests.post(url, json=body, auth=ADMIN, timeout=60).status_code == 200
    for route in ("/green/api/audit", "/green/api/events"):
        resp = requests.post(auth.url + route, json={"model": name}, auth=BOB, timeout=60)
        assert resp.status_code == 403, (route, resp.text)


def test_audit_and_events_show_only_readable_models(auth: AuthServer) -> None:
    hidden, hv = auth.model(3.0, budget="5")
    shown, sv = auth.model(3.0, budget="5")
    for name, version in ((hidden, hv), (shown, sv)):
        auth.client.set_registered_model_alias(name, "champion", version)
        auth.client.set_registered_model_tag(name, BUDGET, "2")  # tightened after the promotion (admin)
        resp = requests.post(
            auth.url + "/api/2.0/mlflow/registered-models/alias",
            json={"name": name, "alias": "prod", "version": version}, auth=ADMIN, timeout=60,
        )
        assert resp.status_code == 403
    auth.grant(hidden, _no_read())
    as_bob = {v["model"] for v in requests.get(auth.url + "/green/api/audit", auth=BOB, timeout=60).json()["violations"]}
    as_admin = {v["model"] for v in requests.get(auth.url + "/green/api/audit", auth=ADMIN, timeout=60).json()["violations"]}
    assert shown in as_bob and hidden not in as_bob and {shown, hidden} <= as_admin
    events_bob = {e["model"] for e in requests.get(auth.url + "/green/api/events", auth=BOB, timeout=60).json()["events"]}
    assert shown in events_bob and hidden not in events_bob


def test_events_record_the_user_and_the_override_does_not_replace_manage(
    auth: AuthServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow_green.cli import main as cli_main

    name, version = auth.model(3.0)
    auth.grant(name, "EDIT")
    alias_url = auth.url + "/api/2.0/mlflow/registered-models/alias"
    resp = requests.post(alias_url, json={"name": name, "alias": "champion", "version": version}, auth=BOB, timeout=60)
    assert resp.status_code == 403
    # the administrator token does not stand in for MANAGE permission on budgets
    headers = {"X-MLflow-Green-Override": TOKEN, "X-MLflow-Green-Override-Reason": "loosen it"}
    resp = requests.post(
        auth.url + "/api/2.0/mlflow/registered-models/set-tag",
        json={"name": name, "key": BUDGET, "value": "100"}, auth=BOB, headers=headers, timeout=60,
    )
    assert resp.status_code == 403 and "MANAGE" in resp.json()["message"]
    assert auth.client.get_registered_model(name).tags[BUDGET] == "2"
    # a promotion override by bob is honoured and recorded under his name
    resp = requests.post(
        alias_url, json={"name": name, "alias": "champion", "version": version}, auth=BOB, headers=headers, timeout=60
    )
    assert resp.status_code == 200, resp.text
    capsys.readouterr()
    creds = {"MLFLOW_TRACKING_URI": auth.url, "MLFLOW_TRACKING_USERNAME": BOB[0], "MLFLOW_TRACKING_PASSWORD": BOB[1]}
    with mock.patch.dict(os.environ, creds):
        assert cli_main.main(["audit", "--events", "--model", name, "--json"]) == 0
        found = json.loads(capsys.readouterr().out)["events"]
        assert cli_main.main(["check", "--model", name, "--version", version, "--alias", "champion"]) == 1
    assert [(e["kind"], e["user"], e["operation"]) for e in found] == [
        ("refusal", "bob", "SetRegisteredModelAlias"),
        ("refusal", "bob", "SetRegisteredModelTag"),
        ("override", "bob", "SetRegisteredModelAlias"),
    ]
    assert "MANAGE" in found[1]["message"] and found[2]["override_reason"] == "loosen it"
