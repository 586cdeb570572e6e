"""The gate inside real ``mlflow server`` processes: uvicorn on SQLite, gunicorn on PostgreSQL.

Both servers run the same tests; each is started once per module (server start costs ~10 s).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from mlflow_green.tracking import schema
from tests._servers import (
    MlflowServer,
    create_postgres_database,
    drop_postgres_database,
    start_mlflow_server,
)
from tests.registry._helpers import log_green_run, register, unique

pytestmark = pytest.mark.slow

ADMIN_TOKEN = "test-admin-token"
POLICY = """
defaults:
  gated_stages: [Staging, Production]
models:
  "lin-*":
    include_lineage: true
  "pol-*":
    budgets:
      total_co2eq_kg: 5
      champion: {total_co2eq_kg: 3}
  "all-*":
    gate_create: all
"""
PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")


@dataclass
class Gated:
    server: MlflowServer
    base: str  # URL including the static prefix
    client: Any
    experiment_id: str

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> requests.Response:
        return requests.post(self.base + path, json=body, headers=headers, timeout=60)

    def delete(self, path: str, body: dict[str, Any]) -> requests.Response:
        return requests.delete(self.base + path, json=body, timeout=60)

    def model(self, tags: dict[str, str], *totals: float | None, prefix: str = "m", **kw: Any) -> tuple[str, list[str]]:
        name = unique(prefix)
        versions = [
            register(self.client, name, log_green_run(self.client, self.experiment_id, t, **kw), model_tags=tags)
            for t in totals
        ]
        return name, versions


def _start(kind: str, work: Path) -> tuple[MlflowServer, str, str | None]:
    policy = work / "policy.yaml"
    policy.write_text(POLICY)
    env = {"MLFLOW_GREEN_POLICY": str(policy), "MLFLOW_GREEN_ADMIN_TOKEN": ADMIN_TOKEN}
    if kind == "gunicorn-postgres":
        pg_uri = create_postgres_database()
        server = start_mlflow_server(
            work, backend_uri=pg_uri, app_name="green-gate", gunicorn=True, static_prefix="/mlflow", env=env,
            # a short graceful timeout keeps teardown quick (the default waits 30 s)
            extra_args=["--gunicorn-opts", "--timeout 120 --graceful-timeout 2"],
        )
        return server, server.url + "/mlflow", pg_uri
    server = start_mlflow_server(work, app_name="green-gate", env=env)
    return server, server.url, None


@pytest.fixture(scope="module")
def _started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Gated]]:
    """Servers started on first use and shared by every test of the module."""
    from mlflow import MlflowClient

    pg_uris: list[str] = []

    class _Cache(dict):  # type: ignore[type-arg]
        def __missing__(self, kind: str) -> Gated:
            server, base, pg_uri = _start(kind, tmp_path_factory.mktemp(kind))
            if pg_uri:
                pg_uris.append(pg_uri)
            client = MlflowClient(tracking_uri=base, registry_uri=base)
            self[kind] = Gated(server, base, client, client.create_experiment(unique("exp")))
            return self[kind]

    cache = _Cache()
    try:
        yield cache
    finally:
        for g in cache.values():
            g.server.kill()  # a graceful stop waits on MLflow's job consumer; nothing to keep
        for uri in pg_uris:
            drop_postgres_database(uri)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("uvicorn-sqlite", id="uvicorn-sqlite"),
        pytest.param("gunicorn-postgres", id="gunicorn-postgres-prefix", marks=pytest.mark.postgres),
    ],
)
def gated(request: pytest.FixtureRequest, _started: dict[str, Gated]) -> Gated:
    """Each server kind in turn: the core tests run on both."""
    return _started[request.param]


@pytest.fixture
def primary(_started: dict[str, Gated]) -> Gated:
    """The uvicorn/SQLite server only, for policy details that do not depend on the server."""
    return _started["uvicorn-sqlite"]


def _denied(resp: requests.Response, *needles: str) -> None:
    assert resp.status_code == 403, resp.text
    body = resp.json()
    assert body["error_code"] == "PERMISSION_DENIED"
    for needle in needles:
        assert needle in body["message"], body["message"]


def _alias(g: Gated, name: str, alias: str) -> str | None:
    aliases = g.client.get_registered_model(name).aliases
    return str(aliases[alias]) if alias in aliases else None


# (budget tag, value, run kwargs, figure in the message)
BUDGET_KINDS = [
    ("green.budget.total_co2eq_kg", "2", {}, "total_co2eq_kg"),
    ("green.budget.co2eq_kg", "1.5", {"co2eq_kg": 2.4}, "co2eq_kg"),
    ("green.budget.energy_kwh", "5", {"energy_kwh": 7.5}, "energy_kwh"),
    ("green.budget.min_accuracy_per_kg", "0.4", {"accuracy": 0.9}, "min_accuracy_per_kg"),
]


@pytest.mark.parametrize(
    ("prefix", "tag", "limit", "kw", "key"),
    [(PREFIXES[i % 2], *kind) for i, kind in enumerate(BUDGET_KINDS)]
    + [(PREFIXES[(i + 1) % 2], *kind) for i, kind in enumerate(BUDGET_KINDS[:2])],
)
def test_alias_pass_and_fail_for_each_budget_kind_raw_http(
    gated: Gated, prefix: str, tag: str, limit: str, kw: dict[str, float], key: str
) -> None:
    name = unique("m")
    # 1 kg: within every budget above; 3 kg: over each of them (accuracy 0.9 / 3 kg = 0.3 < 0.4).
    good = register(gated.client, name, log_green_run(gated.client, gated.experiment_id, 1.0, energy_kwh=2.0, co2eq_kg=0.8, accuracy=0.9), model_tags={tag: limit})
    over = register(gated.client, name, log_green_run(gated.client, gated.experiment_id, 3.0, **{"energy_kwh": 2.0, "co2eq_kg": 0.8, "accuracy": 2.0, **kw}))
    resp = gated.post(f"{prefix}/registered-models/alias", {"name": name, "alias": "champion", "version": over})
    _denied(resp, key, tag)
    assert _alias(gated, name, "champion") is None
    resp = gated.post(f"{prefix}/registered-models/alias", {"name": name, "alias": "champion", "version": good})
    assert resp.status_code == 200, resp.text
    assert _alias(gated, name, "champion") == good
    tags = gated.client.get_model_version(name, good).tags
    assert tags[schema.GATE_VERDICT] == "pass"
    assert tags[schema.GATE_TOTAL_CO2EQ_KG] == "1" and tags[schema.GATE_ENERGY_KWH] == "2"
    assert tags[schema.GATE_CHECKED_AT] and tags[schema.GATE_REASONS]


def test_client_sees_the_message_with_budget_and_figure(primary: Gated) -> None:
    from mlflow.exceptions import MlflowException

    name, (v,) = primary.model({"green.budget.champion.total_co2eq_kg": "2"}, 2.75)
    with pytest.raises(MlflowException) as info:
        primary.client.set_registered_model_alias(name, "champion", v)
    assert info.value.error_code == "PERMISSION_DENIED"
    assert "2.75 kg CO2eq exceeds the total_co2eq_kg budget of 2 kg" in info.value.message
    primary.client.set_registered_model_alias(name, "other", v)  # the scoped budget binds champion only


@pytest.mark.parametrize("prefix", PREFIXES)
def test_stage_transitions(gated: Gated, prefix: str) -> None:
    name, (good,) = gated.model({"green.budget.energy_kwh": "10", "green.budget.production.energy_kwh": "4"}, 1.0)
    gated.client.set_model_version_tag(name, good, "note", "x")
    url = f"{prefix}/model-versions/transition-stage"
    # the good run logs energy 2.5 kWh (helper default: 2.5 x total), the other 6 kWh
    over = register(gated.client, name, log_green_run(gated.client, gated.experiment_id, 1.0, energy_kwh=6.0))
    _denied(gated.post(url, {"name": name, "version": over, "stage": "Production", "archive_existing_versions": False}), "energy_kwh", "6 kWh")
    _denied(gated.post(url, {"name": name, "version": over, "stage": "production", "archive_existing_versions": False}), "energy_kwh")
    assert gated.post(url, {"name": name, "version": over, "stage": "Staging", "archive_existing_versions": False}).status_code == 200
    assert gated.post(url, {"name": name, "version": over, "stage": "Archived", "archive_existing_versions": False}).status_code == 200
    resp = gated.post(url, {"name": name, "version": good, "stage": "Production", "archive_existing_versions": False})
    assert resp.status_code == 200, resp.text
    tags = gated.client.get_model_version(name, good).tags
    assert tags[schema.GATE_VERDICT] == "pass" and tags["green.gate.scope"] == "Production"


def test_path_variants_and_query_forms_do_not_bypass(gated: Gated) -> None:
    name, (good, over) = gated.model({"green.budget.total_co2eq_kg": "2"}, 1.0, 3.0)
    gated.client.set_registered_model_alias(name, "champion", good)
    body = {"name": name, "alias": "champion", "version": over}
    for path in (
        "/api/2.0/mlflow/registered-models/alias/",
        "//api/2.0/mlflow//registered-models/alias",
        "/api/2.0/mlflow/registered%2Dmodels/alias",
        "/api/2.0/mlflow/registered-models%2Falias",
        "/API/2.0/MLFLOW/registered-models/alias",
        "/api/2.0/preview/mlflow/registered-models/alias",
    ):
        resp = gated.post(path, body)
        assert resp.status_code != 200 and resp.status_code < 500, (path, resp.status_code)
    resp = requests.post(gated.base + "/api/2.0/mlflow/registered-models/alias", params=body, timeout=60)
    assert resp.status_code != 200 and resp.status_code < 500
    assert _alias(gated, name, "champion") == good


def test_gate_tags_are_written_by_the_gate_only(primary: Gated) -> None:
    name, (v,) = primary.model({"green.budget.total_co2eq_kg": "2"}, 3.0)
    for prefix in PREFIXES:
        _denied(primary.post(f"{prefix}/model-versions/set-tag", {"name": name, "version": v, "key": "green.gate.verdict", "value": "pass"}), "green.gate.verdict")
        _denied(primary.post(f"{prefix}/model-versions/set-tag", {"name": name, "version": v, "key": "Green.Gate.Verdict", "value": "pass"}))
        _denied(primary.delete(f"{prefix}/model-versions/delete-tag", {"name": name, "version": v, "key": "green.gate.verdict"}))
        _denied(primary.post(f"{prefix}/registered-models/set-tag", {"name": name, "key": "green.gate.verdict", "value": "pass"}))
    assert "green.gate.verdict" not in primary.client.get_model_version(name, v).tags


def test_budgets_may_tighten_but_not_loosen(primary: Gated) -> None:
    name, _ = primary.model({"green.budget.total_co2eq_kg": "5", "green.budget.min_accuracy_per_kg": "0.2"}, 1.0)
    url = "/api/2.0/mlflow/registered-models/set-tag"
    _denied(primary.post(url, {"name": name, "key": "green.budget.total_co2eq_kg", "value": "50"}), "loosens", "5", "50")
    _denied(primary.post(url, {"name": name, "key": "green.budget.min_accuracy_per_kg", "value": "0.1"}), "loosens")
    _denied(primary.delete("/ajax-api/2.0/mlflow/registered-models/delete-tag", {"name": name, "key": "green.budget.total_co2eq_kg"}), "removes a budget")
    assert primary.post(url, {"name": name, "key": "green.budget.total_co2eq_kg", "value": "4"}).status_code == 200
    assert primary.post(url, {"name": name, "key": "green.budget.champion.energy_kwh", "value": "9"}).status_code == 200
    # the administrator override is explicit and recorded on the model
    resp = primary.post(url, {"name": name, "key": "green.budget.total_co2eq_kg", "value": "40"},
                      headers={"X-MLflow-Green-Override": ADMIN_TOKEN, "X-MLflow-Green-Override-Reason": "new hardware"})
    assert resp.status_code == 200, resp.text
    tags = primary.client.get_registered_model(name).tags
    assert tags["green.budget.total_co2eq_kg"] == "40"
    assert "new hardware" in tags["green.gate.override"] and "loosens" in tags["green.gate.override"]


@pytest.mark.parametrize("bad", ["50kg", "-1", "nan", ""])
def test_malformed_budget_refuses_promotion_naming_the_tag(primary: Gated, bad: str) -> None:
    from mlflow import MlflowClient

    key = "green.budget.champion.total_co2eq_kg"
    # Refused at creation, as at set-tag ...
    _denied(primary.post("/api/2.0/mlflow/registered-models/create", {"name": unique("m"), "tags": [{"key": key, "value": bad}]}), key, "not a budget")
    # ... and one planted before the gate validated creations (straight in the store) fails every promotion.
    name, (v,) = primary.model({}, 0.1)
    MlflowClient(tracking_uri=primary.server.backend_uri, registry_uri=primary.server.backend_uri).set_registered_model_tag(name, key, bad)
    resp = primary.post("/api/2.0/mlflow/registered-models/alias", {"name": name, "alias": "champion", "version": v})
    _denied(resp, "green.budget.champion.total_co2eq_kg", "malformed")


def test_missing_and_simulated_evidence(primary: Gated) -> None:
    name, (bare,) = primary.model({"green.budget.total_co2eq_kg": "5"}, None)
    _denied(primary.post("/api/2.0/mlflow/registered-models/alias", {"name": name, "alias": "champion", "version": bare}), "no green/ metrics")
    sim_name, (sim,) = primary.model({"green.budget.total_co2eq_kg": "5"}, 1.0, method="simulated")
    _denied(primary.post("/api/2.0/mlflow/registered-models/alias", {"name": sim_name, "alias": "champion", "version": sim}), "simulated")


def test_policy_file_budgets_and_ungated_models(primary: Gated) -> None:
    name, (v,) = primary.model({}, 4.0, prefix="pol")  # policy: 5 model-wide, 3 for champion
    _denied(primary.post("/api/2.0/mlflow/registered-models/alias", {"name": name, "alias": "champion", "version": v}), "policy", "4 kg")
    assert primary.post("/api/2.0/mlflow/registered-models/alias", {"name": name, "alias": "beta", "version": v}).status_code == 200
    free, (fv,) = primary.model({}, 400.0)  # no budgets anywhere: not gated
    assert primary.post("/api/2.0/mlflow/registered-models/alias", {"name": free, "alias": "champion", "version": fv}).status_code == 200


def test_rename_out_of_a_policy_rule_and_gate_create_all(primary: Gated) -> None:
    name, _ = primary.model({"green.budget.total_co2eq_kg": "2"}, 3.0, prefix="pol")
    _denied(primary.post("/api/2.0/mlflow/registered-models/rename", {"name": name, "new_name": "escaped-" + name}), "renaming")
    same_rule = "pol-renamed-" + name
    # Any rename of a budgeted model frees its name (recreated without budgets): loosening.
    _denied(primary.post("/api/2.0/mlflow/registered-models/rename", {"name": name, "new_name": same_rule}), "renaming", "override")
    override = {"X-MLflow-Green-Override": ADMIN_TOKEN, "X-MLflow-Green-Override-Reason": "reorg"}
    assert primary.post("/api/2.0/mlflow/registered-models/rename", {"name": name, "new_name": same_rule}, override).status_code == 200
    # gate_create: all checks every new version against the model-wide budgets
    strict = unique("all")
    primary.client.create_registered_model(strict, tags={"green.budget.total_co2eq_kg": "2"})
    over_run = log_green_run(primary.client, primary.experiment_id, 3.0)
    resp = primary.post("/api/2.0/mlflow/model-versions/create", {"name": strict, "source": f"runs:/{over_run}/model", "run_id": over_run})
    _denied(resp, "3 kg CO2eq exceeds")
    ok_run = log_green_run(primary.client, primary.experiment_id, 1.0)
    resp = primary.post("/api/2.0/mlflow/model-versions/create", {"name": strict, "source": f"runs:/{ok_run}/model", "run_id": ok_run})
    assert resp.status_code == 200, resp.text


def test_lineage_counts_the_sweep(primary: Gated) -> None:
    c, exp = primary.client, primary.experiment_id
    parent = log_green_run(c, exp, None)
    log_green_run(c, exp, 2.0, parent_run_id=parent)
    best = log_green_run(c, exp, 1.5, parent_run_id=parent)
    name = unique("lin")
    v = register(c, name, best, model_tags={"green.budget.total_co2eq_kg": "3"})
    _denied(primary.post("/api/2.0/mlflow/registered-models/alias", {"name": name, "alias": "champion", "version": v}), "3.5 kg CO2eq exceeds")
    c.set_registered_model_tag(name, "green.budget.total_co2eq_kg", "3")  # same value: allowed
    plain = unique("m")  # the same run in a model whose policy does not include lineage
    pv = register(c, plain, best, model_tags={"green.budget.total_co2eq_kg": "3"})
    assert primary.post("/api/2.0/mlflow/registered-models/alias", {"name": plain, "alias": "champion", "version": pv}).status_code == 200


def test_copy_model_version_into_a_gated_model(gated: Gated) -> None:
    from mlflow.exceptions import MlflowException

    c = gated.client
    dev, (small, big) = gated.model({}, 1.0, 9.0, prefix="dev")
    prod = unique("prod")
    c.create_registered_model(prod, tags={"green.budget.total_co2eq_kg": "2"})
    with pytest.raises(MlflowException) as info:
        c.copy_model_version(f"models:/{dev}/{big}", prod)
    assert "9 kg CO2eq exceeds the total_co2eq_kg budget of 2" in info.value.message
    copy = c.copy_model_version(f"models:/{dev}/{small}", prod)
    tags = c.get_model_version(prod, str(copy.version)).tags
    assert tags[schema.GATE_VERDICT] == "pass" and tags[schema.GATE_TOTAL_CO2EQ_KG] == "1"
    # the copy carries its source's footprint at promotion too
    assert gated.post("/api/2.0/mlflow/registered-models/alias", {"name": prod, "alias": "champion", "version": str(copy.version)}).status_code == 200


def test_admin_override_on_alias_is_recorded(primary: Gated) -> None:
    name, (v,) = primary.model({"green.budget.total_co2eq_kg": "2"}, 3.0)
    url = "/api/2.0/mlflow/registered-models/alias"
    body = {"name": name, "alias": "champion", "version": v}
    _denied(primary.post(url, body, headers={"X-MLflow-Green-Override": "guess"}))
    resp = primary.post(url, body, headers={"X-MLflow-Green-Override": ADMIN_TOKEN, "X-MLflow-Green-Override-Reason": "incident 42"})
    assert resp.status_code == 200, resp.text
    tags = primary.client.get_model_version(name, v).tags
    assert tags[schema.GATE_VERDICT] == "fail"
    assert "incident 42" in tags["green.gate.override"]


def test_concurrent_promotions_alias_ends_on_the_version_within_budget(gated: Gated) -> None:
    name, (good, over) = gated.model({"green.budget.total_co2eq_kg": "2"}, 1.0, 3.0)
    barrier = threading.Barrier(2)
    results: dict[str, int] = {}

    def promote(version: str) -> None:
        barrier.wait()
        results[version] = gated.post("/api/2.0/mlflow/registered-models/alias", {"name": name, "alias": "champion", "version": version}).status_code

    threads = [threading.Thread(target=promote, args=(v,)) for v in (over, good)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == {good: 200, over: 403}
    assert _alias(gated, name, "champion") == good


def test_cli_promote_through_the_gate(gated: Gated, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.cli.test_check import cli

    name, (good, over) = gated.model({"green.budget.total_co2eq_kg": "2"}, 1.0, 3.0)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", gated.base)
    assert cli(["promote", "--model", name, "--version", good, "--alias", "champion"]) == 0
    # the gated server refuses client-written evidence; its own evidence is there
    assert gated.client.get_model_version(name, good).tags[schema.GATE_VERDICT] == "pass"
    assert cli(["promote", "--model", name, "--version", over, "--alias", "champion"]) == 1
    assert "total_co2eq_kg" in capsys.readouterr().err
    assert cli(["check", "--model", name, "--version", over, "--alias", "champion"]) == 1
    assert _alias(gated, name, "champion") == good


def test_green_page_is_served(gated: Gated) -> None:
    resp = requests.get(gated.base + "/green", timeout=60)
    assert resp.status_code == 200 and "<html" in resp.text.lower()


def test_invalid_policy_file_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("defaults:\n  budgets:\n    total_co2eq_kg: 50kg\n")
    with pytest.raises(RuntimeError) as info:
        start_mlflow_server(tmp_path / "srv", app_name="green-gate", env={"MLFLOW_GREEN_POLICY": str(bad)}, timeout=60)
    log = str(info.value)
    lines = [ln for ln in log.splitlines() if "mlflow-green" in ln]
    assert lines == [
        f"mlflow-green: the carbon gate refuses to start: policy file {bad}: "
        "defaults.budgets.total_co2eq_kg: '50kg' is not a plain number (write e.g. 50 for 50 kg, no unit)"
    ]
    assert "Traceback" not in log
