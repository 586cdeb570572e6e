"""``green-gate-auth``: attacks on authentication and on budget permissions.

MLflow's basic-auth answers first (401 before the gate reads anything); the gate then asks for
MANAGE permission on the registered model before any ``green.budget.*`` tag changes — EDIT is
enough for other tags. Each attempt is followed by a read of the state straight from the
server's SQLite store.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest
import requests

from tests._servers import MlflowServer, grant_model_permission, start_auth_server
from tests.registry._helpers import log_green_run, register
from tests.reliability._tally import Tally

pytestmark = pytest.mark.slow

ADMIN = ("admin", "reliability-Admin-pw-2026")
EDITOR = ("eve", "eve-Passw0rd-long-enough")  # EDIT on the model: may tag it, not budget it
READER = ("rita", "rita-Passw0rd-long-enough")  # the default READ permission only
BUDGET_TAG = "green.budget.total_co2eq_kg"


@dataclass
class AuthServer:
    server: MlflowServer
    client: Any  # as admin, through the server
    store: Any  # the server's SQLite store, directly
    name: str  # a registered model: budget 1 kg; version `bad` 5 kg, `good` 0.5 kg
    bad: str
    good: str

    def url(self, path: str) -> str:
        return self.server.url + path

    def tags(self) -> dict[str, str]:
        return dict(self.store.get_registered_model(self.name).tags)

    def aliases(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.store.get_registered_model(self.name).aliases.items()}


def _as_admin() -> Any:
    return mock.patch.dict(os.environ, {"MLFLOW_TRACKING_USERNAME": ADMIN[0], "MLFLOW_TRACKING_PASSWORD": ADMIN[1]})


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    from mlflow import MlflowClient
    from mlflow.server.auth.client import AuthServiceClient

    work = tmp_path_factory.mktemp("reliability-gate-auth")
    server = start_auth_server(work, ADMIN[1])
    try:
        with _as_admin():
            admin = AuthServiceClient(server.url)
            admin.create_user(*EDITOR)
            admin.create_user(*READER)
            client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
            exp = client.create_experiment(f"auth-{uuid.uuid4().hex[:6]}")
            name = f"auth-{uuid.uuid4().hex[:8]}"
            bad = register(client, name, log_green_run(client, exp, 5.0), model_tags={BUDGET_TAG: "1"})
            good = register(client, name, log_green_run(client, exp, 0.5))
            grant_model_permission(admin, EDITOR[0], name, "EDIT")
        store = MlflowClient(tracking_uri=server.backend_uri, registry_uri=server.backend_uri)
        yield AuthServer(server, client, store, name, bad, good)
    finally:
        server.stop()


GATED_CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "registered-models/alias", {"alias": "champion", "version": "{bad}"}),
    ("POST", "model-versions/transition-stage", {"version": "{bad}", "stage": "Production", "archive_existing_versions": False}),
    ("POST", "registered-models/set-tag", {"key": BUDGET_TAG, "value": "100"}),
    ("DELETE", "registered-models/delete-tag", {"key": BUDGET_TAG}),
    ("POST", "model-versions/set-tag", {"version": "{bad}", "key": "green.gate.verdict", "value": "pass"}),
]
BAD_CREDENTIALS: list[Any] = [
    ("none", {}),
    ("wrong-password", {"Authorization": "Basic " + base64.b64encode(f"{ADMIN[0]}:nope".encode()).decode()}),
    ("unknown-user", {"Authorization": "Basic " + base64.b64encode(b"mallory:whatever-password").decode()}),
    ("garbage-basic", {"Authorization": "Basic !!!not-base64!!!"}),
    ("no-colon", {"Authorization": "Basic " + base64.b64encode(b"admin").decode()}),
    ("bearer", {"Authorization": "Bearer forged-token"}),
    ("override-header-only", {"X-MLflow-Green-Override": "guess"}),
]


def _body(auth: AuthServer, template: dict[str, Any]) -> dict[str, Any]:
    body = {"name": auth.name}
    for key, value in template.items():
        body[key] = auth.bad if value == "{bad}" else value
    return body


@pytest.mark.parametrize("prefix", ["/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/"])
@pytest.mark.parametrize(
    ("cred_id", "headers"), BAD_CREDENTIALS, ids=[getattr(c, "values", c)[0] for c in BAD_CREDENTIALS]
)
def test_unauthenticated_calls_are_refused_before_the_gate(
    auth: AuthServer, prefix: str, cred_id: str, headers: dict[str, str], tally: Tally
) -> None:
    before_tags, before_aliases = auth.tags(), auth.aliases()
    for method, path, template in GATED_CALLS:
        tally.bypass(f"{method} {prefix}{path} with credentials: {cred_id}")
        resp = requests.request(method, auth.url(prefix + path), json=_body(auth, template), headers=headers, timeout=60)
        assert resp.status_code == 401, (path, resp.status_code, resp.text[:300])
        assert "carbon gate" not in resp.text  # refused before the gate ran
    assert auth.tags() == before_tags and auth.aliases() == before_aliases
    assert auth.store.get_model_version(auth.name, auth.bad).current_stage == "None"


BUDGET_CHANGES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("tighten", "POST", "registered-models/set-tag", {"key": BUDGET_TAG, "value": "0.5"}),
    ("loosen", "POST", "registered-models/set-tag", {"key": BUDGET_TAG, "value": "100"}),
    ("upper-case-key", "POST", "registered-models/set-tag", {"key": "GREEN.BUDGET.TOTAL_CO2EQ_KG", "value": "100"}),
    ("padded-key", "POST", "registered-models/set-tag", {"key": " green.budget.total_co2eq_kg", "value": "100"}),
    ("new-scoped-budget", "POST", "registered-models/set-tag", {"key": "green.budget.champion.total_co2eq_kg", "value": "100"}),
    ("new-energy-budget", "POST", "registered-models/set-tag", {"key": "green.budget.energy_kwh", "value": "1"}),
    ("malformed", "POST", "registered-models/set-tag", {"key": BUDGET_TAG, "value": "50kg"}),
    ("delete", "DELETE", "registered-models/delete-tag", {"key": BUDGET_TAG}),
    ("delete-upper-case", "DELETE", "registered-models/delete-tag", {"key": "GREEN.BUDGET.TOTAL_CO2EQ_KG"}),
]


@pytest.mark.parametrize("prefix", ["/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/"])
@pytest.mark.parametrize(("change", "method", "path", "body"), BUDGET_CHANGES, ids=[c[0] for c in BUDGET_CHANGES])
def test_editor_without_manage_cannot_change_budgets(
    auth: AuthServer, prefix: str, change: str, method: str, path: str, body: dict[str, Any], tally: Tally
) -> None:
    before = auth.tags()
    tally.bypass(f"EDIT-only user changes a budget: {change} via {prefix}")
    resp = requests.request(method, auth.url(prefix + path), json={"name": auth.name, **body}, auth=EDITOR, timeout=60)
    assert resp.status_code in (400, 403), (change, resp.status_code, resp.text[:300])
    assert auth.tags() == before


def test_editor_may_still_write_other_tags(auth: AuthServer) -> None:
    """The premise of the test above: EDIT is enough for a tag that is not a budget."""
    resp = requests.post(
        auth.url("/api/2.0/mlflow/registered-models/set-tag"),
        json={"name": auth.name, "key": "team", "value": "search"},
        auth=EDITOR,
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    assert auth.tags()["team"] == "search"


@pytest.mark.parametrize("who", ["editor", "reader"])
def test_authenticated_promotion_over_budget_is_refused(auth: AuthServer, who: str, tally: Tally) -> None:
    creds = EDITOR if who == "editor" else READER
    for prefix in ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/"):
        tally.bypass(f"{who} sets an alias on the version over budget via {prefix}")
        resp = requests.post(
            auth.url(prefix + "registered-models/alias"),
            json={"name": auth.name, "alias": "champion", "version": auth.bad},
            auth=creds,
            headers={"X-MLflow-Green-Override": "guess"},
            timeout=60,
        )
        assert resp.status_code == 403, resp.text[:300]
    assert auth.bad not in auth.aliases().values()


def test_reader_cannot_change_anything(auth: AuthServer, tally: Tally) -> None:
    before = auth.tags()
    for method, path, template in GATED_CALLS:
        tally.bypass(f"READ-only user: {method} {path}")
        resp = requests.request(method, auth.url("/api/2.0/mlflow/" + path), json=_body(auth, template), auth=READER, timeout=60)
        assert resp.status_code == 403, (path, resp.text[:300])
    assert auth.tags() == before
