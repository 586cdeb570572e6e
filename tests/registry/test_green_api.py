"""``/green/api/*`` on a real ``mlflow server --app-name green-gate``: one verdict, the audit, the trail.

The matrix test runs ``mlflow-green check`` and the real promotion side by side and requires the
same answer for every case (policy file and tags, aliases and stages, missing and simulated
evidence, per-alias budgets, a floor).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import requests

from mlflow_green.registry.events import EventLog
from mlflow_green.tracking import schema
from tests._servers import MlflowServer, start_mlflow_server
from tests.registry._helpers import log_green_run, register, unique

pytestmark = pytest.mark.slow

ADMIN_TOKEN = "green-api-admin-token"
POLICY = """
defaults:
  gated_aliases: [champion, prod]
  gated_stages: [Staging, Production]
models:
  "pol-*":
    budgets:
      total_co2eq_kg: 5
      champion: {total_co2eq_kg: 3}
  "open-*":
    on_missing: allow
    on_simulated: allow
"""


@dataclass
class Server:
    server: MlflowServer
    client: Any
    experiment_id: str

    @property
    def url(self) -> str:
        return self.server.url

    def post(self, path: str, body: Any, **kw: Any) -> requests.Response:
        return requests.post(self.url + path, json=body, timeout=60, **kw)

    def version(self, prefix: str, tags: dict[str, str], total: float | None, **kw: Any) -> tuple[str, str]:
        name = unique(prefix)
        run_id = log_green_run(self.client, self.experiment_id, total, **kw)
        return name, register(self.client, name, run_id, model_tags=tags)

    def state(self, name: str, version: str) -> tuple[dict[str, str], dict[str, str], str]:
        mv = self.client.get_model_version(name, version)
        model = self.client.get_registered_model(name)
        return dict(mv.tags), dict(model.aliases), str(mv.current_stage)


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from mlflow import MlflowClient

    work = tmp_path_factory.mktemp("green-api")
    (work / "policy.yaml").write_text(POLICY)
    env = {"MLFLOW_GREEN_POLICY": str(work / "policy.yaml"), "MLFLOW_GREEN_ADMIN_TOKEN": ADMIN_TOKEN}
    server = start_mlflow_server(work, app_name="green-gate", env=env)
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    try:
        yield Server(server, client, str(client.create_experiment(unique("exp"))))
    finally:
        server.kill()


def _cli(argv: list[str], uri: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from mlflow_green.cli import main as cli_main

    capsys.readouterr()  # MLflow's own "View run" lines from setting the case up
    with mock.patch.dict(os.environ, {"MLFLOW_TRACKING_URI": uri}):
        code = cli_main.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _promote(s: Server, name: str, version: str, target: tuple[str, str]) -> requests.Response:
    kind, value = target
    if kind == "alias":
        return s.post("/api/2.0/mlflow/registered-models/alias", {"name": name, "alias": value, "version": version})
    body = {"name": name, "version": version, "stage": value, "archive_existing_versions": False}
    return s.post("/api/2.0/mlflow/model-versions/transition-stage", body)


BUDGET = "green.budget.total_co2eq_kg"
# (model prefix, budget tags, total kg, run options, target, expected promotion status)
MATRIX: list[tuple[str, dict[str, str], float | None, dict[str, Any], tuple[str, str], int]] = [
    ("pol", {}, 2.0, {}, ("alias", "champion"), 200),
    ("pol", {}, 4.0, {}, ("alias", "champion"), 403),  # the policy's per-alias budget of 3
    ("pol", {}, 4.0, {}, ("alias", "prod"), 200),  # the policy's model budget of 5
    ("pol", {}, 4.0, {}, ("alias", "canary"), 200),  # an alias the policy does not gate
    ("pol", {}, 6.0, {}, ("stage", "Production"), 403),
    ("pol", {}, 4.0, {}, ("stage", "Staging"), 200),
    ("pol", {BUDGET: "1"}, 2.0, {}, ("alias", "prod"), 403),  # a tag tightens the policy
    ("m", {BUDGET: "5", "green.budget.champion.total_co2eq_kg": "1"}, 2.0, {}, ("alias", "champion"), 403),
    ("m", {BUDGET: "5", "green.budget.champion.total_co2eq_kg": "1"}, 2.0, {}, ("alias", "prod"), 200),
    ("m", {"green.budget.production.energy_kwh": "1"}, 2.0, {}, ("stage", "Production"), 403),
    ("m", {BUDGET: "5"}, None, {}, ("alias", "champion"), 403),  # no evidence
    ("m", {BUDGET: "5"}, None, {}, ("alias", "canary"), 200),  # no evidence, ungated alias
    ("m", {BUDGET: "5"}, None, {}, ("stage", "Staging"), 403),
    ("m", {BUDGET: "5"}, 1.0, {"method": "simulated"}, ("alias", "champion"), 403),
    ("m", {BUDGET: "5"}, 1.0, {"method": "simulated"}, ("alias", "canary"), 200),
    ("m", {}, 9.0, {}, ("alias", "champion"), 200),  # no budget anywhere
    ("m", {"green.budget.min_accuracy_per_kg": "100"}, 1.0, {"accuracy": 0.5}, ("alias", "champion"), 403),
    ("open", {BUDGET: "5"}, None, {}, ("alias", "champion"), 200),  # on_missing: allow
    ("open", {BUDGET: "5"}, 1.0, {"method": "simulated"}, ("alias", "champion"), 200),
]


@pytest.mark.parametrize(("prefix", "tags", "total", "run_kw", "target", "status"), MATRIX)
def test_check_gives_the_servers_verdict(
    gated: Server, capsys: pytest.CaptureFixture[str],
    prefix: str, tags: dict[str, str], total: float | None, run_kw: dict[str, Any],
    target: tuple[str, str], status: int,
) -> None:
    name, version = gated.version(prefix, tags, total, **run_kw)
    before = gated.state(name, version)
    code, out, err = _cli(
        ["check", "--model", name, "--version", version, f"--{target[0]}", target[1], "--json"], gated.url, capsys
    )
    assert code in (0, 1), err
    assert gated.state(name, version) == before  # the endpoint promotes and writes nothing
    data = json.loads(out)
    direct = gated.post("/green/api/check", {"name": name, "version": version, target[0]: target[1]}).json()
    assert {k: v for k, v in data.items() if k != "checked_at"} == {
        k: v for k, v in direct.items() if k != "checked_at"
    }
    response = _promote(gated, name, version, target)
    assert response.status_code == status, response.text
    assert (code == 0) == (response.status_code == 200), (out, response.text)
    if code == 1:
        assert data["reasons"] and err.startswith("mlflow-green: FAIL:")


def test_endpoint_answers_errors_as_json(gated: Server) -> None:
    name, version = gated.version("m", {BUDGET: "5"}, 1.0)
    cases: list[tuple[Any, int, str]] = [
        ({"version": version}, 400, "'name'"),
        ({"name": name}, 400, "'version'"),
        ({"name": name, "version": version, "alias": "a", "stage": "Staging"}, 400, "not both"),
        ({"name": name, "version": {"x": 1}}, 400, "'version'"),
        ({"name": unique("absent"), "version": "1"}, 404, ""),
        ({"name": name, "version": "999"}, 404, ""),
    ]
    for body, status, needle in cases:
        resp = gated.post("/green/api/check", body)
        assert resp.status_code == status, (body, resp.text)
        assert needle in resp.json()["message"]
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        assert requests.request(method, gated.url + "/green/api/check", timeout=60).status_code == 405
    resp = requests.post(gated.url + "/green/api/check", data="[1]", headers={"Content-Type": "application/json"}, timeout=60)
    assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    # an int version, as MLflow's own handlers accept it
    assert gated.post("/green/api/check", {"name": name, "version": int(version)}).json()["verdict"] == "pass"


def test_refusals_and_overrides_are_recorded(gated: Server, capsys: pytest.CaptureFixture[str]) -> None:
    name, version = gated.version("m", {BUDGET: "2"}, 3.0)
    assert _promote(gated, name, version, ("alias", "champion")).status_code == 403
    assert _promote(gated, name, version, ("stage", "Production")).status_code == 403
    headers = {"X-MLflow-Green-Override": ADMIN_TOKEN, "X-MLflow-Green-Override-Reason": "incident 42"}
    resp = gated.post(
        "/api/2.0/mlflow/registered-models/alias", {"name": name, "alias": "champion", "version": version}, headers=headers
    )
    assert resp.status_code == 200, resp.text
    code, out, _ = _cli(["audit", "--events", "--model", name, "--json"], gated.url, capsys)
    assert code == 0
    found = json.loads(out)["events"]
    assert [(e["kind"], e["operation"]) for e in found] == [
        ("refusal", "SetRegisteredModelAlias"),
        ("refusal", "TransitionModelVersionStage"),
        ("override", "SetRegisteredModelAlias"),
    ]
    first = found[0]
    assert first["model"] == name and first["version"] == version and first["target"] == "alias=champion"
    assert first["path"] == "/api/2.0/mlflow/registered-models/alias" and first["method"] == "POST"
    assert first["user"] is None  # no authentication on this server
    assert first["figures"]["total_co2eq_kg"] == pytest.approx(3.0)
    assert {"budget": "total_co2eq_kg", "limit": 2.0, "passed": False} .items() <= found[0]["budgets"][0].items()
    assert "total_co2eq_kg" in first["message"] and found[1]["target"] == "stage=Production"
    assert found[2]["override_reason"] == "incident 42"
    # durable and shared by every worker: the rows are in the server's own database
    in_db = EventLog.from_uri(gated.server.backend_uri).events(model=name)
    assert [e.kind for e in in_db] == ["refusal", "refusal", "override"]
    # --since filters; the /green page shows them
    code, out, _ = _cli(["audit", "--events", "--model", name, "--since", "2999-01-01", "--json"], gated.url, capsys)
    assert json.loads(out) == {"events": []}
    page = requests.get(gated.url + "/green", timeout=60).text
    assert "Gate events" in page and "incident 42" in page


def test_audit_lists_what_a_later_budget_breaks(gated: Server, capsys: pytest.CaptureFixture[str]) -> None:
    name, version = gated.version("m", {BUDGET: "5"}, 3.0)
    assert _promote(gated, name, version, ("alias", "champion")).status_code == 200
    assert _cli(["audit", "--model", name], gated.url, capsys)[0] == 0
    assert gated.post("/api/2.0/mlflow/registered-models/set-tag", {"name": name, "key": BUDGET, "value": "2"}).status_code == 200
    code, out, err = _cli(["audit", "--model", name, "--json"], gated.url, capsys)
    assert code == 1, err
    (violation,) = json.loads(out)["violations"]
    assert (violation["alias"], violation["version"]) == ("champion", version)
    assert "exceeds the total_co2eq_kg budget of 2" in violation["reasons"][0]
    # the whole registry, as the server sees it; and the /green page
    code, out, _ = _cli(["audit", "--json"], gated.url, capsys)
    assert code == 1 and any(v["model"] == name for v in json.loads(out)["violations"])
    page = requests.get(gated.url + "/green", timeout=60).text
    assert "Budget audit" in page and f">{name}<" in page and "exceeds the total_co2eq_kg budget of 2" in page
    assert _cli(["audit", "--model", name, "--policy", "x.yaml"], gated.url, capsys)[0] == 2


def test_check_refuses_client_options_that_would_not_be_the_servers_verdict(
    gated: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, version = gated.version("pol", {}, 4.0)
    policy = tmp_path / "loose.yaml"
    policy.write_text("defaults:\n  budgets: {total_co2eq_kg: 100}\n")
    code, _, err = _cli(["check", "--model", name, "--version", version, "--alias", "champion", "--policy", str(policy)], gated.url, capsys)
    assert code == 2 and "its own policy" in err and "--local" in err
    code, _, err = _cli(["check", "--model", name, "--version", version, "--write-evidence"], gated.url, capsys)
    assert code == 2 and "--write-evidence" in err
    # --local says, every time, that it is not the server's verdict
    code, _, err = _cli(
        ["check", "--model", name, "--version", version, "--alias", "champion", "--policy", str(policy), "--local"],
        gated.url, capsys,
    )
    assert code == 0 and "not the server's verdict" in err
    assert _cli(["check", "--model", name, "--version", version, "--alias", "champion"], gated.url, capsys)[0] == 1


def test_plain_server_has_no_verdict_to_give(mlflow_server: MlflowServer, capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    exp = client.create_experiment(unique("exp"))
    name = unique("m")
    version = register(client, name, log_green_run(client, exp, 3.0), model_tags={BUDGET: "2"})
    code, _, err = _cli(["check", "--model", name, "--version", version], mlflow_server.url, capsys)
    assert code == 2 and "not a gated server" in err and "--local" in err and len(err.splitlines()) == 1
    code, out, err = _cli(["check", "--model", name, "--version", version, "--local"], mlflow_server.url, capsys)
    assert code == 1 and out.startswith("FAIL:") and "not the server's verdict" in err
    code, _, err = _cli(["audit"], mlflow_server.url, capsys)
    assert code == 2 and "not a gated server" in err
    assert schema.GATE_VERDICT not in client.get_model_version(name, version).tags


@pytest.mark.postgres
def test_every_worker_writes_one_trail_on_postgres(tmp_path: Path) -> None:
    """Two uvicorn workers on PostgreSQL: each creates the table on its first refusal (racing),
    every refusal lands in the one table, and any worker lists all of them."""
    import threading

    from mlflow import MlflowClient

    from tests._servers import create_postgres_database, drop_postgres_database, postgres_available

    if not postgres_available():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    uri = create_postgres_database("green_trail")
    server = start_mlflow_server(tmp_path, backend_uri=uri, app_name="green-gate", extra_args=["--workers", "2"])
    try:
        client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        exp = client.create_experiment(unique("exp"))
        name = unique("m")
        version = register(client, name, log_green_run(client, exp, 3.0), model_tags={BUDGET: "1"})
        statuses: list[int] = []

        def promote(alias: str) -> None:
            body = {"name": name, "alias": alias, "version": version}
            statuses.append(requests.post(server.url + "/api/2.0/mlflow/registered-models/alias", json=body, timeout=120).status_code)

        threads = [threading.Thread(target=promote, args=(f"a{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)
        assert statuses == [403] * 8
        log = EventLog.from_uri(uri)
        assert sorted(e.target or "" for e in log.events(model=name)) == sorted(f"alias=a{i}" for i in range(8))
        log.engine.dispose()
        for _ in range(4):  # whichever worker answers
            listed = requests.get(server.url + "/green/api/events", params={"model": name}, timeout=60).json()["events"]
            assert len(listed) == 8
    finally:
        server.kill()
        drop_postgres_database(uri)


def test_promote_takes_the_servers_verdict_not_the_clients_policy(
    gated: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    strict = tmp_path / "strict.yaml"
    strict.write_text("defaults:\n  budgets: {total_co2eq_kg: 0.1}\n")  # the client's, not the server's
    name, version = gated.version("pol", {}, 4.0)  # the server's policy: 5 model-wide, 3 at champion
    with mock.patch.dict(os.environ, {"MLFLOW_GREEN_POLICY": str(strict)}):
        code, out, err = _cli(["promote", "--model", name, "--version", version, "--alias", "prod", "--json"], gated.url, capsys)
        assert code == 0, err
        assert json.loads(out)["promoted"] is True
        assert gated.client.get_model_version_by_alias(name, "prod").version == version
        code, out, err = _cli(["promote", "--model", name, "--version", version, "--alias", "champion"], gated.url, capsys)
    assert code == 1 and err.startswith("mlflow-green: promotion refused: FAIL:") and "budget of 3" in err
    assert "champion" not in gated.client.get_registered_model(name).aliases
