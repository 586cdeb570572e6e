"""Attempts on the gate's own API and its audit trail, against a real ``mlflow server --app-name green-gate``.

- The evaluation endpoint must promote and write nothing, whatever the body says (extra fields
  that look like a promotion, every HTTP method, the path variants Flask routes to it).
- The trail cannot be forged or deleted through the server: no route but the plugin's read-only
  ones reaches it (enumerated from the app's URL map), writing methods are refused, and the
  tags a client might use to fake an override are refused — and recorded as refusals.

After each attempt the state is read back straight from the server's SQLite store.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from mlflow_green.registry.events import EventLog
from tests._servers import MlflowServer, start_mlflow_server
from tests.registry._helpers import log_green_run, register
from tests.reliability._tally import Tally

pytestmark = pytest.mark.slow

BUDGET = "green.budget.total_co2eq_kg"


@dataclass
class Gated:
    server: MlflowServer
    client: Any
    store: Any  # straight on the server's SQLite database
    events: EventLog
    name: str
    over: str
    within: str

    def snapshot(self) -> tuple[Any, ...]:
        model = self.store.get_registered_model(self.name)
        versions = sorted(
            (str(v.version), str(v.current_stage), tuple(sorted(v.tags.items())))
            for v in self.store.search_model_versions(f"name='{self.name}'")
        )
        return dict(model.aliases), tuple(sorted(model.tags.items())), tuple(versions)

    def trail(self) -> list[tuple[str, str | None, str]]:
        return [(e.kind, e.model, e.message) for e in self.events.events(limit=10_000)]


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gated]:
    from mlflow import MlflowClient

    work = tmp_path_factory.mktemp("gate-audit")
    server = start_mlflow_server(work, app_name="green-gate", env={"MLFLOW_GREEN_ADMIN_TOKEN": "t0ken"})
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    store = MlflowClient(tracking_uri=server.backend_uri, registry_uri=server.backend_uri)
    exp = client.create_experiment(f"audit-{uuid.uuid4().hex[:6]}")
    name = f"audit-{uuid.uuid4().hex[:8]}"
    over = register(client, name, log_green_run(client, exp, 5.0), model_tags={BUDGET: "1"})
    within = register(client, name, log_green_run(client, exp, 0.5))
    events = EventLog.from_uri(server.backend_uri)
    try:
        yield Gated(server, client, store, events, name, over, within)
    finally:
        events.engine.dispose()
        server.kill()


CHECK_BODIES: list[dict[str, Any]] = [
    {"alias": "champion"},
    {"stage": "Production"},
    {"stage": "Production", "archive_existing_versions": True},
    {"alias": "champion", "verdict": "pass", "passed": True, "gated": False},
    {"alias": "champion", "tags": [{"key": "green.gate.verdict", "value": "pass"}]},
    {"alias": "champion", "key": "green.gate.verdict", "value": "pass"},
    {"alias": "champion", "new_name": "renamed"},
]


@pytest.mark.parametrize("extra", CHECK_BODIES, ids=[",".join(sorted(b)) for b in CHECK_BODIES])
@pytest.mark.parametrize("which", ["over", "within"])
def test_the_evaluation_endpoint_writes_nothing(gated: Gated, tally: Tally, extra: dict[str, Any], which: str) -> None:
    version = gated.over if which == "over" else gated.within
    before, trail = gated.snapshot(), gated.trail()
    tally.bypass(f"/green/api/check used as a promotion ({which}, {sorted(extra)})")
    resp = requests.post(
        gated.server.url + "/green/api/check", json={"name": gated.name, "version": version, **extra}, timeout=60
    )
    assert resp.status_code in (200, 400), resp.text
    if resp.status_code == 200:
        assert resp.json()["verdict"] == ("fail" if which == "over" else "pass")
    assert gated.snapshot() == before
    assert gated.trail() == trail  # asking is not a refusal: nothing recorded


@pytest.mark.parametrize("route", ["/green/api/check", "/green/api/audit", "/green/api/events", "/green"])
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_no_writing_method_reaches_the_plugin_routes(gated: Gated, tally: Tally, route: str, method: str) -> None:
    trail = gated.trail()
    tally.bypass(f"{method} {route} to rewrite the trail")
    resp = requests.request(method, gated.server.url + route, json={"events": [], "id": 1}, timeout=60)
    assert resp.status_code == 405, resp.text
    assert gated.trail() == trail


def test_only_the_plugins_read_only_routes_serve_the_trail(tally: Tally) -> None:
    """Walk every rule of MLflow's app with the plugin mounted: none but ours is under /green,
    ours take only GET/POST (reads), and none of MLflow's handlers is replaced."""
    from mlflow.server import app as flask_app
    from mlflow.server.handlers import HANDLERS

    from mlflow_green.registry.green_api import install_green_api
    from mlflow_green.registry.policy import Policy

    install_green_api(flask_app, Policy())
    views = {fn.__name__ for fn in HANDLERS.values()}
    rules = list(flask_app.url_map.iter_rules())
    tally.bypass(f"a route other than /green/api/* reaching the gate events ({len(rules)} rules walked)")
    ours = {r.rule: r for r in rules if r.endpoint.startswith("mlflow_green_")}
    assert set(ours) == {"/green/api/check", "/green/api/audit", "/green/api/events"}
    for rule in ours.values():
        assert set(rule.methods or ()) - {"HEAD", "OPTIONS"} <= {"GET", "POST"}, rule
    for rule in rules:
        if rule.endpoint in views:
            assert "green" not in rule.rule.lower(), rule.rule


FAKE_OVERRIDES: list[tuple[str, str, dict[str, Any]]] = [
    ("model-version tag", "/api/2.0/mlflow/model-versions/set-tag", {"key": "green.gate.override", "value": "forged"}),
    ("model tag", "/api/2.0/mlflow/registered-models/set-tag", {"key": "green.gate.override", "value": "forged"}),
    ("delete model tag", "/api/2.0/mlflow/registered-models/delete-tag", {"key": "green.gate.override"}),
    ("wrong token", "/api/2.0/mlflow/registered-models/alias", {"alias": "champion"}),
    ("empty token", "/api/2.0/mlflow/registered-models/alias", {"alias": "champion"}),
]


@pytest.mark.parametrize(("what", "path", "fields"), FAKE_OVERRIDES, ids=[f[0] for f in FAKE_OVERRIDES])
def test_a_faked_override_is_refused_and_recorded(
    gated: Gated, tally: Tally, what: str, path: str, fields: dict[str, Any]
) -> None:
    before = gated.snapshot()
    kinds_before = [k for k, _, _ in gated.trail()]
    tally.bypass(f"fake an override: {what}")
    token = {"wrong token": "t0ken-not", "empty token": ""}.get(what)
    headers = {"X-MLflow-Green-Override": token, "X-MLflow-Green-Override-Reason": "forged"} if token is not None else {}
    body = {"name": gated.name, "version": gated.over, **fields}
    method = "DELETE" if "delete" in path else "POST"
    resp = requests.request(method, gated.server.url + path, json=body, headers=headers, timeout=60)
    assert resp.status_code == 403, resp.text
    assert gated.snapshot() == before
    after = gated.trail()
    assert [k for k, _, _ in after] == [*kinds_before, "refusal"]  # recorded, and never as an override
    assert after[-1][1] == gated.name
