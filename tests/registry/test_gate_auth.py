"""``green-gate-auth``: MLflow basic-auth first, then the carbon gate (uvicorn, SQLite)."""

from __future__ import annotations

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

ADMIN = ("admin", "green-gate-Admin-pw-2026")
BOB = ("bob", "bob-Passw0rd-long-enough")


@dataclass
class AuthServer:
    server: MlflowServer
    client: Any  # MlflowClient authenticated as admin
    experiment_id: str


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    from mlflow import MlflowClient
    from mlflow.server.auth.client import AuthServiceClient

    work = tmp_path_factory.mktemp("gate-auth")
    server = start_auth_server(work, ADMIN[1])
    creds = {"MLFLOW_TRACKING_USERNAME": ADMIN[0], "MLFLOW_TRACKING_PASSWORD": ADMIN[1]}
    try:
        with mock.patch.dict(os.environ, creds):
            AuthServiceClient(server.url).create_user(*BOB)
            client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
            yield AuthServer(server, client, client.create_experiment(unique("exp")))
    finally:
        server.stop()


def _alias_url(s: AuthServer) -> str:
    return s.server.url + "/api/2.0/mlflow/registered-models/alias"


def test_unauthenticated_calls_are_refused_before_the_gate(auth_server: AuthServer) -> None:
    c = auth_server.client
    name = unique("m")
    v = register(c, name, log_green_run(c, auth_server.experiment_id, 9.0), model_tags={"green.budget.total_co2eq_kg": "1"})
    resp = requests.post(_alias_url(auth_server), json={"name": name, "alias": "champion", "version": v}, timeout=60)
    assert resp.status_code == 401
    assert "carbon gate" not in resp.text
    assert requests.get(auth_server.server.url + "/green", timeout=60).status_code == 401
    page = requests.get(auth_server.server.url + "/green", auth=ADMIN, timeout=60)
    assert page.status_code == 200


def test_authenticated_promotions_meet_the_gate(auth_server: AuthServer) -> None:
    c = auth_server.client
    name = unique("m")
    tags = {"green.budget.total_co2eq_kg": "2"}
    good = register(c, name, log_green_run(c, auth_server.experiment_id, 1.0), model_tags=tags)
    over = register(c, name, log_green_run(c, auth_server.experiment_id, 3.0))
    resp = requests.post(_alias_url(auth_server), json={"name": name, "alias": "champion", "version": over}, auth=ADMIN, timeout=60)
    assert resp.status_code == 403 and "total_co2eq_kg" in resp.json()["message"]
    resp = requests.post(_alias_url(auth_server), json={"name": name, "alias": "champion", "version": good}, auth=ADMIN, timeout=60)
    assert resp.status_code == 200, resp.text
    assert c.get_model_version(name, good).tags["green.gate.verdict"] == "pass"


def test_budgets_need_manage_permission(auth_server: AuthServer) -> None:
    from mlflow.server.auth.client import AuthServiceClient

    c = auth_server.client
    name = unique("m")
    register(c, name, log_green_run(c, auth_server.experiment_id, 1.0), model_tags={"green.budget.total_co2eq_kg": "5"})
    url = auth_server.server.url + "/api/2.0/mlflow/registered-models/set-tag"
    tighten = {"name": name, "key": "green.budget.total_co2eq_kg", "value": "4"}
    note = {"name": name, "key": "team", "value": "search"}
    # READ (the default permission): basic-auth itself refuses any tag write
    assert requests.post(url, json=note, auth=BOB, timeout=60).status_code == 403
    admin = AuthServiceClient(auth_server.server.url)
    with mock.patch.dict(os.environ, {"MLFLOW_TRACKING_USERNAME": ADMIN[0], "MLFLOW_TRACKING_PASSWORD": ADMIN[1]}):
        grant_model_permission(admin, BOB[0], name, "EDIT")
    # EDIT lets basic-auth through for tags, but not for budgets: the gate asks for MANAGE
    assert requests.post(url, json=note, auth=BOB, timeout=60).status_code == 200
    resp = requests.post(url, json=tighten, auth=BOB, timeout=60)
    assert resp.status_code == 403 and "needs MANAGE permission" in resp.json()["message"]
    with mock.patch.dict(os.environ, {"MLFLOW_TRACKING_USERNAME": ADMIN[0], "MLFLOW_TRACKING_PASSWORD": ADMIN[1]}):
        grant_model_permission(admin, BOB[0], name, "MANAGE")
    assert requests.post(url, json=tighten, auth=BOB, timeout=60).status_code == 200
    # even with MANAGE, loosening is the gate's to refuse
    loosen = {**tighten, "value": "50"}
    resp = requests.post(url, json=loosen, auth=BOB, timeout=60)
    assert resp.status_code == 403 and "loosens" in resp.json()["message"]
