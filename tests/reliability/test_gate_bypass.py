"""Attempts to get past the carbon gate of a real ``mlflow server --app-name green-gate``.

Every attempt is a raw HTTP request (or an MLflow client call) that a user could make. After
each one the state is read back *through the store* — a second MlflowClient on the server's
SQLite file, not through the server — to confirm that nothing changed: no alias, no stage, no
version, no tag the attempt wanted. No attempt may get a 5xx (MLflow clients retry those).

Also here: malformed budget tags (bad input: the check fails, never passes) and malformed
request bodies to the gated endpoints (4xx, never 5xx).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from mlflow_green.tracking import schema
from tests._servers import MlflowServer, start_mlflow_server
from tests.registry._helpers import log_green_run, register
from tests.reliability._tally import Tally

pytestmark = pytest.mark.slow

BUDGET_TAG = "green.budget.total_co2eq_kg"
ADMIN_TOKEN = "reliability-admin-token"


@dataclass
class Gated:
    server: MlflowServer
    client: Any  # through the server
    store: Any  # straight on the server's SQLite store
    experiment_id: str

    @property
    def url(self) -> str:
        return self.server.url

    def model(self, tags: dict[str, str], *totals: float, **run_kw: Any) -> tuple[str, list[str]]:
        """A registered model with budget ``tags`` and one version per total (kg CO2eq)."""
        name = f"bypass-{uuid.uuid4().hex[:8]}"
        versions = [
            register(self.client, name, log_green_run(self.client, self.experiment_id, t, **run_kw), model_tags=tags)
            for t in totals
        ]
        return name, versions

    def planted(self, tags: dict[str, str], *totals: float) -> tuple[str, list[str]]:
        """A model whose budget ``tags`` were written straight in the store (as by a release
        before the gate validated them at creation), with one version per total."""
        name, versions = self.model({}, *totals)
        for key, value in tags.items():
            self.store.set_registered_model_tag(name, key, value)
        return name, versions

    def aliases(self, name: str) -> dict[str, str]:
        return {k: str(v) for k, v in self.store.get_registered_model(name).aliases.items()}

    def stage(self, name: str, version: str) -> str:
        return str(self.store.get_model_version(name, version).current_stage)

    def version_tags(self, name: str, version: str) -> dict[str, str]:
        return dict(self.store.get_model_version(name, version).tags)

    def model_tags(self, name: str) -> dict[str, str]:
        return dict(self.store.get_registered_model(name).tags)

    def versions(self, name: str) -> list[str]:
        return sorted(str(v.version) for v in self.store.search_model_versions(f"name='{name}'"))


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gated]:
    from mlflow import MlflowClient

    work = tmp_path_factory.mktemp("gated")
    server = start_mlflow_server(work, app_name="green-gate", env={"MLFLOW_GREEN_ADMIN_TOKEN": ADMIN_TOKEN})
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    store = MlflowClient(tracking_uri=server.backend_uri, registry_uri=server.backend_uri)
    try:
        yield Gated(server, client, store, client.create_experiment(f"bypass-{uuid.uuid4().hex[:6]}"))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def over(gated: Gated) -> tuple[str, str, str]:
    """(model, version over budget: 5 kg, version within: 0.5 kg) under a 1 kg budget."""
    name, (bad, good) = gated.model({BUDGET_TAG: "1"}, 5.0, 0.5)
    return name, bad, good


def _not_5xx(resp: requests.Response) -> None:
    assert resp.status_code < 500, f"{resp.status_code} {resp.text[:500]}"


def _send(gated: Gated, method: str, path: str, **kw: Any) -> requests.Response:
    # A prepared request keeps the path exactly as written (no normalisation by requests).
    req = requests.Request(method, gated.url + "/", **kw).prepare()
    req.url = gated.url + path
    with requests.Session() as s:
        return s.send(req, timeout=60)


# -- alias sets ----------------------------------------------------------------------------------

ALIAS_PATHS = [
    "/api/2.0/mlflow/registered-models/alias",
    "/ajax-api/2.0/mlflow/registered-models/alias",
    "/api/2.0/mlflow/registered-models/alias/",
    "/ajax-api/2.0/mlflow/registered-models/alias/",
    "//api/2.0/mlflow/registered-models/alias",
    "/api/2.0//mlflow/registered-models/alias",
    "/api/2.0/mlflow//registered-models/alias",
    "/api/2.0/mlflow/registered-models//alias",
    "/api/2.0/mlflow/./registered-models/alias",
    "/api/2.0/mlflow/x/../registered-models/alias",
    "/api/2.0/mlflow/registered-models%2Falias",
    "/api/2.0/mlflow/registered%2Dmodels/alias",
    "/api/2.0/mlflow/registered-models/%61lias",
    "/%61pi/2.0/mlflow/registered-models/alias",
    "/API/2.0/mlflow/registered-models/alias",
    "/api/2.0/MLFLOW/registered-models/alias",
    "/api/2.0/mlflow/Registered-Models/Alias",
    "/api/2.0/preview/mlflow/registered-models/alias",
    "/ajax-api/2.0/preview/mlflow/registered-models/alias",
    "/api/2.1/mlflow/registered-models/alias",
    "/api/3.0/mlflow/registered-models/alias",
    "/ajax-api/3.0/mlflow/registered-models/alias",
    "/api/2.0/mlflow/registered-models/alias;x=1",
    "/api/2.0/mlflow/registered-models/alias%00",
]


@pytest.mark.parametrize("path", ALIAS_PATHS)
def test_alias_set_path_variants(gated: Gated, over: tuple[str, str, str], path: str, tally: Tally) -> None:
    name, bad, _ = over
    tally.bypass(f"alias set via POST {path}")
    resp = _send(gated, "POST", path, json={"name": name, "alias": "champion", "version": bad})
    _not_5xx(resp)
    assert gated.aliases(name).get("champion") != bad, resp.text


BODY_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("query-string-no-body", {"params": {"name": "{name}", "alias": "champion", "version": "{bad}"}}),
    ("query-string-and-empty-json", {"params": {"name": "{name}", "alias": "champion", "version": "{bad}"}, "json": {}}),
    ("form-encoded", {"data": {"name": "{name}", "alias": "champion", "version": "{bad}"}}),
    ("text-plain-json", {"data": '{{"name": "{name}", "alias": "champion", "version": "{bad}"}}', "headers": {"Content-Type": "text/plain"}}),
    ("duplicate-keys", {"data": '{{"name": "{name}", "alias": "other", "alias": "champion", "version": "{bad}"}}', "headers": {"Content-Type": "application/json"}}),
    ("version-as-int", {"json": {"name": "{name}", "alias": "champion", "version": "#bad"}}),
    ("version-padded", {"json": {"name": "{name}", "alias": "champion", "version": " {bad} "}}),
    ("version-leading-zero", {"json": {"name": "{name}", "alias": "champion", "version": "0{bad}"}}),
    ("alias-upper-case", {"json": {"name": "{name}", "alias": "CHAMPION", "version": "{bad}"}}),
    ("alias-padded", {"json": {"name": "{name}", "alias": " champion ", "version": "{bad}"}}),
    ("extra-fields", {"json": {"name": "{name}", "alias": "champion", "version": "{bad}", "force": True, "override": True}}),
    ("forged-override-header", {"json": {"name": "{name}", "alias": "champion", "version": "{bad}"}, "headers": {"X-MLflow-Green-Override": "guess", "X-MLflow-Green-Override-Reason": "trust me"}}),
    ("empty-override-header", {"json": {"name": "{name}", "alias": "champion", "version": "{bad}"}, "headers": {"X-MLflow-Green-Override": ""}}),
    ("charset-json", {"data": '{{"name": "{name}", "alias": "champion", "version": "{bad}"}}', "headers": {"Content-Type": "application/json; charset=utf-16"}}),
]


def _fill(value: Any, name: str, bad: str) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, name, bad) for k, v in value.items()}
    if value == "#bad":
        return int(bad)
    if isinstance(value, str):
        return value.replace("{name}", name).replace("{bad}", bad).replace("{{", "{").replace("}}", "}")
    return value


@pytest.mark.parametrize("prefix", ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"])
@pytest.mark.parametrize(("variant", "spec"), BODY_VARIANTS, ids=[v[0] for v in BODY_VARIANTS])
def test_alias_set_body_variants(
    gated: Gated, over: tuple[str, str, str], prefix: str, variant: str, spec: dict[str, Any], tally: Tally
) -> None:
    name, bad, _ = over
    tally.bypass(f"alias set via {prefix} with {variant}")
    kw = _fill(spec, name, bad)
    resp = requests.post(f"{gated.url}{prefix}/registered-models/alias", timeout=60, **kw)
    _not_5xx(resp)
    aliases = gated.aliases(name)
    assert bad not in aliases.values(), (variant, resp.status_code, resp.text, aliases)


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
def test_alias_set_other_methods(gated: Gated, over: tuple[str, str, str], method: str, tally: Tally) -> None:
    name, bad, _ = over
    tally.bypass(f"alias set via {method}")
    params = {"name": name, "alias": "champion", "version": bad}
    resp = requests.request(method, f"{gated.url}/api/2.0/mlflow/registered-models/alias", params=params, json=params, timeout=60)
    _not_5xx(resp)
    assert bad not in gated.aliases(name).values()


def test_delete_and_recreate_alias(gated: Gated, tally: Tally) -> None:
    name, (bad, good) = gated.model({BUDGET_TAG: "1"}, 5.0, 0.5)
    url = f"{gated.url}/api/2.0/mlflow/registered-models/alias"
    assert requests.post(url, json={"name": name, "alias": "champion", "version": good}, timeout=60).status_code == 200
    tally.bypass("delete the alias, then set it again on the version over budget")
    assert requests.delete(url, json={"name": name, "alias": "champion"}, timeout=60).status_code == 200
    resp = requests.post(url, json={"name": name, "alias": "champion", "version": bad}, timeout=60)
    assert resp.status_code == 403, resp.text
    assert "champion" not in gated.aliases(name)
    tally.bypass("delete the alias, then set it with another case")
    resp = requests.post(url, json={"name": name, "alias": "Champion", "version": bad}, timeout=60)
    _not_5xx(resp)
    assert bad not in gated.aliases(name).values()


# -- stage transitions -----------------------------------------------------------------------------

STAGES = ["Production", "production", "PRODUCTION", "Staging", " Production", "Production ", "prod\u200buction"]


@pytest.mark.parametrize("prefix", ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow", "/api/2.0/preview/mlflow", "/api/2.0/mlflow/databricks"])
@pytest.mark.parametrize("stage", STAGES)
def test_stage_transition_variants(gated: Gated, over: tuple[str, str, str], prefix: str, stage: str, tally: Tally) -> None:
    name, bad, _ = over
    tally.bypass(f"stage transition to {stage!r} via {prefix}")
    body = {"name": name, "version": bad, "stage": stage, "archive_existing_versions": False}
    resp = requests.post(f"{gated.url}{prefix}/model-versions/transition-stage", json=body, timeout=60)
    _not_5xx(resp)
    assert gated.stage(name, bad) in ("None", "Archived"), (stage, resp.status_code, resp.text)


def test_stage_transition_query_string(gated: Gated, over: tuple[str, str, str], tally: Tally) -> None:
    name, bad, _ = over
    tally.bypass("stage transition with the fields in the query string")
    params = {"name": name, "version": bad, "stage": "Production", "archive_existing_versions": "false"}
    resp = requests.post(f"{gated.url}/api/2.0/mlflow/model-versions/transition-stage", params=params, timeout=60)
    _not_5xx(resp)
    assert gated.stage(name, bad) == "None"


# -- copies into a gated model -------------------------------------------------------------------


def test_copy_model_version_into_a_gated_model(gated: Gated, tally: Tally) -> None:
    from mlflow.exceptions import MlflowException

    src, (heavy,) = gated.model({}, 5.0)  # an unbudgeted model: anything may be registered there
    dst, _ = gated.model({BUDGET_TAG: "1"}, 0.5)
    before = gated.versions(dst)
    tally.bypass("copy_model_version of a 5 kg version into a 1 kg model")
    # MLflow's client reports the server's 403 as its own INTERNAL_ERROR ("Failed to create
    # model version copy"); what matters is that no version was created.
    with pytest.raises(MlflowException):
        gated.client.copy_model_version(f"models:/{src}/{heavy}", dst)
    assert gated.versions(dst) == before
    for source in (f"MODELS:/{src}/{heavy}", f"models:/{src}/{heavy}/", f" models:/{src}/{heavy}", f"models:///{src}/{heavy}"):
        tally.bypass(f"model-versions/create with source {source!r}")
        resp = requests.post(
            f"{gated.url}/ajax-api/2.0/mlflow/model-versions/create",
            json={"name": dst, "source": source, "run_id": ""},
            timeout=60,
        )
        _not_5xx(resp)
        if resp.status_code == 200:
            # Registered (a version may enter): it must not be promotable past the budget.
            version = str(resp.json()["model_version"]["version"])
            promote = requests.post(
                f"{gated.url}/api/2.0/mlflow/registered-models/alias",
                json={"name": dst, "alias": "champion", "version": version},
                timeout=60,
            )
            assert promote.status_code == 403, (source, promote.text)
    assert "champion" not in gated.aliases(dst)
    assert all(gated.version_tags(dst, v).get(schema.GATE_VERDICT) != "pass" for v in gated.versions(dst) if v not in before)


# -- green.gate.* evidence written by clients ------------------------------------------------------

GATE_KEYS = [
    "green.gate.verdict",
    "Green.Gate.Verdict",
    "GREEN.GATE.VERDICT",
    " green.gate.verdict",
    "green.gate.verdict ",
    "green.gate.total_co2eq_kg",
    "green.gate.override",
]


@pytest.mark.parametrize("key", GATE_KEYS)
def test_gate_tags_cannot_be_written(gated: Gated, over: tuple[str, str, str], key: str, tally: Tally) -> None:
    name, bad, _ = over
    for prefix in ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow"):
        tally.bypass(f"set version tag {key!r} via {prefix}")
        resp = requests.post(
            f"{gated.url}{prefix}/model-versions/set-tag",
            json={"name": name, "version": bad, "key": key, "value": "pass"},
            timeout=60,
        )
        assert resp.status_code in (400, 403), resp.text  # MLflow may refuse an odd key first
        tally.bypass(f"set model tag {key!r} via {prefix}")
        resp = requests.post(
            f"{gated.url}{prefix}/registered-models/set-tag",
            json={"name": name, "key": key, "value": "pass"},
            timeout=60,
        )
        assert resp.status_code in (400, 403), resp.text
    assert key not in gated.version_tags(name, bad) and key not in gated.model_tags(name)


def test_gate_evidence_cannot_be_deleted_or_planted_at_creation(gated: Gated, tally: Tally) -> None:
    name, (bad, good) = gated.model({BUDGET_TAG: "1"}, 5.0, 0.5)
    url = f"{gated.url}/api/2.0/mlflow"
    assert requests.post(f"{url}/registered-models/alias", json={"name": name, "alias": "champion", "version": good}, timeout=60).status_code == 200
    evidence = gated.version_tags(name, good)
    assert evidence[schema.GATE_VERDICT] == "pass"
    tally.bypass("delete the gate's evidence tag")
    resp = requests.delete(f"{url}/model-versions/delete-tag", json={"name": name, "version": good, "key": schema.GATE_VERDICT}, timeout=60)
    assert resp.status_code == 403, resp.text
    assert gated.version_tags(name, good) == evidence
    tally.bypass("create a version carrying green.gate.verdict=pass")
    run_id = gated.store.get_model_version(name, bad).run_id
    resp = requests.post(
        f"{url}/model-versions/create",
        json={"name": name, "source": f"runs:/{run_id}/model", "run_id": run_id, "tags": [{"key": schema.GATE_VERDICT, "value": "pass"}]},
        timeout=60,
    )
    assert resp.status_code == 403, resp.text
    assert gated.versions(name) == sorted([bad, good])
    tally.bypass("create a registered model carrying green.gate.* tags")
    fresh = f"bypass-{uuid.uuid4().hex[:8]}"
    resp = requests.post(
        f"{url}/registered-models/create",
        json={"name": fresh, "tags": [{"key": "green.gate.verdict", "value": "pass"}]},
        timeout=60,
    )
    assert resp.status_code == 403, resp.text


# -- budgets loosened -----------------------------------------------------------------------------


LOOSENING: list[Any] = [
    ("raise", [(BUDGET_TAG, "100")]),
    ("raise-exponent", [(BUDGET_TAG, "1e9")]),
    ("raise-padded", [(BUDGET_TAG, " 100 ")]),
    ("raise-upper-case-key", [("GREEN.BUDGET.TOTAL_CO2EQ_KG", "100")]),
    ("scoped-higher-budget", [("green.budget.champion.total_co2eq_kg", "100")]),
    ("scoped-upper-case", [("green.budget.CHAMPION.total_co2eq_kg", "100")]),
    # A malformed value is allowed (it fails every check: stricter); it must not be a stepping
    # stone to a higher valid one.
    pytest.param("via-malformed-inf", [(BUDGET_TAG, "inf"), (BUDGET_TAG, "100")]),
    pytest.param("via-malformed-unit", [(BUDGET_TAG, "100kg"), (BUDGET_TAG, "100")]),
    pytest.param("via-empty", [(BUDGET_TAG, ""), (BUDGET_TAG, "100")]),
    ("via-upper-case-then-delete", [("GREEN.BUDGET.TOTAL_CO2EQ_KG", "1"), ("delete", BUDGET_TAG), ("GREEN.BUDGET.TOTAL_CO2EQ_KG", "100")]),
]


@pytest.mark.parametrize(
    ("what", "steps"), LOOSENING, ids=[getattr(c, "values", c)[0] for c in LOOSENING]
)
def test_budget_cannot_be_loosened(gated: Gated, what: str, steps: list[tuple[str, str]], tally: Tally) -> None:
    from mlflow_green.registry import api

    name, (bad,) = gated.model({BUDGET_TAG: "1"}, 5.0)
    tally.bypass(f"loosen the budget: {what}")
    base = f"{gated.url}/api/2.0/mlflow/registered-models"
    for key, value in steps:
        if key == "delete":
            resp = requests.delete(f"{base}/delete-tag", json={"name": name, "key": value}, timeout=60)
        else:
            resp = requests.post(f"{base}/set-tag", json={"name": name, "key": key, "value": value}, timeout=60)
        _not_5xx(resp)
    resp = requests.post(f"{base}/alias", json={"name": name, "alias": "champion", "version": bad}, timeout=60)
    assert resp.status_code == 403, (what, gated.model_tags(name), resp.text)
    assert "champion" not in gated.aliases(name)
    assert not api.evaluate(name, bad, alias="champion", client=gated.client).passed


@pytest.mark.parametrize("key", [BUDGET_TAG, "Green.Budget.Total_CO2eq_kg"])
def test_budget_cannot_be_deleted(gated: Gated, key: str, tally: Tally) -> None:
    name, (bad,) = gated.model({BUDGET_TAG: "1"}, 5.0)
    tally.bypass(f"delete the budget tag ({key})")
    resp = requests.delete(f"{gated.url}/ajax-api/2.0/mlflow/registered-models/delete-tag", json={"name": name, "key": key}, timeout=60)
    _not_5xx(resp)
    assert gated.model_tags(name).get(BUDGET_TAG) == "1"
    resp = requests.post(f"{gated.url}/api/2.0/mlflow/registered-models/alias", json={"name": name, "alias": "champion", "version": bad}, timeout=60)
    assert resp.status_code == 403, resp.text


# -- the evidence itself rewritten on the source run ------------------------------------------------


def test_lowering_the_runs_cumulative_metric_does_not_pass(gated: Gated, tally: Tally) -> None:
    name, (bad,) = gated.model({BUDGET_TAG: "1"}, 5.0)
    run_id = gated.store.get_model_version(name, bad).run_id
    tally.bypass("log a small green/cum_total_co2eq_kg at a later step of the source run")
    for prefix in ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow"):
        requests.post(
            f"{gated.url}{prefix}/runs/log-metric",
            json={"run_id": run_id, "key": schema.CUM_TOTAL_CO2EQ_KG, "value": 0.01, "timestamp": 0, "step": 999},
            timeout=60,
        )
    resp = requests.post(f"{gated.url}/api/2.0/mlflow/registered-models/alias", json={"name": name, "alias": "champion", "version": bad}, timeout=60)
    assert resp.status_code == 403, resp.text
    assert "champion" not in gated.aliases(name)


def test_rewriting_the_runs_method_tag_does_not_pass(gated: Gated, tally: Tally) -> None:
    """Simulated evidence is refused on gated aliases; relabelling it `counter` must not help."""
    name, (sim,) = gated.model({BUDGET_TAG: "10"}, 0.5, method="simulated")
    run_id = gated.store.get_model_version(name, sim).run_id
    resp = requests.post(f"{gated.url}/api/2.0/mlflow/registered-models/alias", json={"name": name, "alias": "champion", "version": sim}, timeout=60)
    assert resp.status_code == 403, resp.text  # the premise: simulated evidence is refused
    tally.bypass("rewrite green.method.* from simulated to measured on the source run")
    for key, value in ((schema.TAG_METHOD_GPU, "counter"), (schema.TAG_METHOD_CPU, "rapl")):
        relabel = requests.post(f"{gated.url}/api/2.0/mlflow/runs/set-tag", json={"run_id": run_id, "key": key, "value": value}, timeout=60)
        assert relabel.status_code == 403, relabel.text
    batch = requests.post(f"{gated.url}/api/2.0/mlflow/runs/log-batch", json={"run_id": run_id, "tags": [{"key": schema.TAG_METHOD_GPU, "value": "counter"}]}, timeout=60)
    assert batch.status_code == 403, batch.text
    assert gated.store.get_run(run_id).data.tags[schema.TAG_METHOD_GPU] == "simulated"
    resp = requests.post(f"{gated.url}/api/2.0/mlflow/registered-models/alias", json={"name": name, "alias": "champion", "version": sim}, timeout=60)
    assert resp.status_code == 403, resp.text
    assert "champion" not in gated.aliases(name)


# -- concurrent promotions -------------------------------------------------------------------------


def test_concurrent_promotions(gated: Gated, tally: Tally) -> None:
    name, (bad, good) = gated.model({BUDGET_TAG: "1"}, 5.0, 0.5)
    url = f"{gated.url}/api/2.0/mlflow/registered-models/alias"
    results: dict[str, list[int]] = {bad: [], good: []}
    messages: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def promote(version: str) -> None:
        barrier.wait()
        resp = requests.post(url, json={"name": name, "alias": "champion", "version": version}, timeout=120)
        with lock:
            results[version].append(resp.status_code)
            if resp.status_code != 200:
                messages.append(f"{version}: {resp.status_code} {resp.text[:300]}")

    threads = [threading.Thread(target=promote, args=(bad if i % 2 else good,)) for i in range(8)]
    tally.bypass("8 concurrent promotions (4 over budget, 4 within) to one alias", n=4)
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert results[bad] == [403] * 4, (results, messages)
    assert results[good] == [200] * 4, (results, messages)
    assert gated.aliases(name)["champion"] == good


# -- malformed budget tags (bad input): a failed check, never a pass ----------------------------

MALFORMED_BUDGETS = ["50kg", "-1", "nan", "", "inf", " ", "1e999", "0x10", "5 kg", "null", "NaN", "-inf", "1,5", "½"]


@pytest.mark.parametrize("value", MALFORMED_BUDGETS)
def test_malformed_budget_tag_is_never_a_pass(gated: Gated, value: str, tally: Tally) -> None:
    from mlflow_green.registry import api

    tally.bad_input(f"budget tag {BUDGET_TAG}={value!r}")
    fresh = f"bypass-{uuid.uuid4().hex[:8]}"
    tally.bypass(f"registered-models/create planting {BUDGET_TAG}={value!r}")
    resp = requests.post(f"{gated.url}/api/2.0/mlflow/registered-models/create", json={"name": fresh, "tags": [{"key": BUDGET_TAG, "value": value}]}, timeout=60)
    assert resp.status_code == 403 and BUDGET_TAG in resp.json()["message"], resp.text
    assert not gated.store.search_registered_models(f"name = '{fresh}'")
    name, (light,) = gated.planted({BUDGET_TAG: value}, 0.01)  # well within any sane budget
    resp = requests.post(f"{gated.url}/api/2.0/mlflow/registered-models/alias", json={"name": name, "alias": "champion", "version": light}, timeout=60)
    assert resp.status_code == 403, resp.text
    assert BUDGET_TAG in resp.json()["message"]
    assert "champion" not in gated.aliases(name)
    verdict = api.evaluate(name, light, alias="champion", client=gated.client)
    assert not verdict.passed
    assert any(BUDGET_TAG in r for r in verdict.reasons), verdict.reasons


def test_malformed_budget_from_the_cli_is_exit_1(gated: Gated, tally: Tally) -> None:
    from tests.reliability._util import run_cli

    name, (light,) = gated.planted({BUDGET_TAG: "50kg"}, 0.01)
    tally.bad_input("mlflow-green check on a model whose budget is '50kg'")
    result = run_cli("check", "--model", name, "--version", light, "--alias", "champion", "--tracking-uri", gated.url)
    assert result.returncode == 1, str(result)
    assert "Traceback" not in result.stderr and BUDGET_TAG in result.stdout + result.stderr


# -- malformed request bodies to the gated endpoints: 4xx, never 5xx ------------------------------

BAD_BODIES = [
    ("truncated-json", '{"name": "x", "alias": "champion", "vers'),
    ("json-array", "[1, 2, 3]"),
    ("json-string", '"champion"'),
    ("json-null", "null"),
    ("wrong-types", '{"name": 5, "alias": ["champion"], "version": {"v": 1}}'),
    ("missing-fields", "{}"),
    ("nul-bytes", '{"name": "x\\u0000y", "alias": "champion", "version": "1"}'),
    ("huge-alias", '{"name": "x", "alias": "' + "a" * 100_000 + '", "version": "1"}'),
    ("unknown-model", '{"name": "no-such-model-anywhere", "alias": "champion", "version": "1"}'),
    ("version-text", '{"name": "{name}", "alias": "champion", "version": "latest"}'),
    ("not-utf8", b'{"name": "\xff\xfe", "alias": "champion", "version": "1"}'),
]
BAD_BODY_ENDPOINTS = [
    "/api/2.0/mlflow/registered-models/alias",
    "/ajax-api/2.0/mlflow/model-versions/transition-stage",
    "/api/2.0/mlflow/model-versions/create",
    "/api/2.0/mlflow/registered-models/set-tag",
    "/api/2.0/mlflow/model-versions/set-tag",
]


@pytest.mark.parametrize("endpoint", BAD_BODY_ENDPOINTS)
@pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_malformed_request_is_never_5xx(
    gated: Gated,
    over: tuple[str, str, str],
    endpoint: str,
    case: str,
    body: str | bytes,
    tally: Tally,
    request: pytest.FixtureRequest,
) -> None:
    name = over[0]
    data = body.replace("{name}", name) if isinstance(body, str) else body
    tally.bad_input(f"{case} body to {endpoint}")
    resp = requests.post(gated.url + endpoint, data=data, headers={"Content-Type": "application/json"}, timeout=60)
    assert 400 <= resp.status_code < 500, f"{resp.status_code} {resp.text[:300]}"
    assert "champion" not in gated.aliases(name)


# -- issue 15: the classes, against real servers with several worker processes -----------------
# One server per database (SQLite, PostgreSQL), each with ``--workers 4``: the gate's state must
# live in the database, not in one worker's memory.


@pytest.fixture(
    scope="module",
    params=[pytest.param("sqlite", id="sqlite-4-workers"), pytest.param("postgresql", id="postgres-4-workers", marks=pytest.mark.postgres)],
)
def multi(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gated]:
    from mlflow import MlflowClient

    from tests._servers import create_postgres_database, drop_postgres_database, postgres_available

    work = tmp_path_factory.mktemp(f"multi-{request.param}")
    uri = None
    if request.param == "postgresql":
        if not postgres_available():
            pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
        uri = create_postgres_database()
    server = start_mlflow_server(
        work, backend_uri=uri, app_name="green-gate", env={"MLFLOW_GREEN_ADMIN_TOKEN": ADMIN_TOKEN}, extra_args=["--workers", "4"]
    )
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    store = MlflowClient(tracking_uri=server.backend_uri, registry_uri=server.backend_uri)
    try:
        yield Gated(server, client, store, client.create_experiment(f"multi-{uuid.uuid4().hex[:6]}"))
    finally:
        server.kill()
        if uri is not None:
            drop_postgres_database(uri)


def _alias_post(g: Gated, name: str, version: Any, alias: str = "champion", **kw: Any) -> requests.Response:
    return requests.post(
        f"{g.url}/api/2.0/mlflow/registered-models/alias", json={"name": name, "alias": alias, "version": version}, timeout=60, **kw
    )


@pytest.mark.parametrize("spelling", ["version", "alias"])
def test_copy_whose_source_disappears_cannot_be_promoted(multi: Gated, spelling: str, tally: Tally) -> None:
    """Class 1: the copy's footprint is frozen when it is created; deleting what it was copied
    from (a version, or the version an alias named) does not turn the check into a 404 pass."""
    c = multi.client
    dev, (v,) = multi.model({}, 9.0)
    c.set_registered_model_alias(dev, "best", v)
    prod = f"bypass-{uuid.uuid4().hex[:8]}"
    c.create_registered_model(prod)  # no budget yet: the copy enters freely
    copy = str(c.copy_model_version(f"models:/{dev}/{v}" if spelling == "version" else f"models:/{dev}@best", prod).version)
    assert schema.GATE_FOOTPRINT in multi.version_tags(prod, copy)
    c.delete_registered_model(dev)
    c.set_registered_model_tag(prod, BUDGET_TAG, "2")
    tally.bypass(f"promote a copy (from a {spelling}) whose source model was deleted")
    resp = _alias_post(multi, prod, copy)
    assert resp.status_code == 403 and "9 kg CO2eq exceeds" in resp.json()["message"], resp.text
    assert "champion" not in multi.aliases(prod)


def test_logged_model_that_disappears_cannot_open_the_gate(multi: Gated, tally: Tally) -> None:
    c = multi.client
    run = log_green_run(c, multi.experiment_id, 9.0)
    logged = c.create_logged_model(multi.experiment_id, source_run_id=run)
    name = f"bypass-{uuid.uuid4().hex[:8]}"
    c.create_registered_model(name)
    v = str(c.create_model_version(name, f"models:/{logged.model_id}", run, model_id=logged.model_id).version)
    c.delete_logged_model(logged.model_id)
    c.set_registered_model_tag(name, BUDGET_TAG, "2")
    tally.bypass("promote a version whose logged model was deleted")
    resp = _alias_post(multi, name, v)
    assert resp.status_code == 403, resp.text
    assert "champion" not in multi.aliases(name)


@pytest.mark.parametrize("field", ["run_uuid", "runUuid"])
def test_evidence_relabel_through_the_run_uuid_alias(multi: Gated, field: str, tally: Tally) -> None:
    """Class 2: ``runs/set-tag`` reads ``run_id`` or ``run_uuid``; so does the gate."""
    name, (v,) = multi.model({BUDGET_TAG: "5"}, 1.0, method="simulated")
    run = multi.store.get_model_version(name, v).run_id
    tally.bypass(f"runs/set-tag with {field} relabelling green.method.gpu simulated -> counter")
    resp = requests.post(f"{multi.url}/api/2.0/mlflow/runs/set-tag", json={field: run, "key": schema.TAG_METHOD_GPU, "value": "counter"}, timeout=60)
    assert resp.status_code == 403, resp.text
    assert multi.store.get_run(run).data.tags[schema.TAG_METHOD_GPU] == "simulated"
    assert _alias_post(multi, name, v).status_code == 403


def test_later_metric_writes_cannot_improve_a_figure(multi: Gated, tally: Tally) -> None:
    """Class 3: accuracy per kg at its minimum, totals at their maximum, and frozen at run end."""
    c = multi.client
    name = f"bypass-{uuid.uuid4().hex[:8]}"
    c.create_registered_model(name, tags={"green.budget.min_accuracy_per_kg": "50", BUDGET_TAG: "2"})
    running = c.create_run(multi.experiment_id).info.run_id
    c.log_metric(running, schema.CUM_TOTAL_CO2EQ_KG, 1.0, step=0)
    c.log_metric(running, schema.ACCURACY_PER_KG, 0.9, step=0)
    v = str(c.create_model_version(name, f"runs:/{running}/model", running).version)
    c.log_metric(running, schema.ACCURACY_PER_KG, 1e9, step=7)
    tally.bypass("a large accuracy_per_kg logged at a later step")
    assert _alias_post(multi, name, v).status_code == 403
    finished, (w,) = multi.model({BUDGET_TAG: "2"}, 3.0)
    run = multi.store.get_model_version(finished, w).run_id
    c.log_metric(run, schema.CUM_TOTAL_CO2EQ_KG, 0.001, step=99)
    tally.bypass("a small cumulative total logged after the run finished")
    resp = _alias_post(multi, finished, w)
    assert resp.status_code == 403 and "3 kg CO2eq exceeds" in resp.json()["message"], resp.text


def test_a_version_registered_while_its_run_runs_is_frozen_when_the_run_ends(multi: Gated, tally: Tally) -> None:
    """Class 1/3: the record of a version made from a running run is not final; when the run ends
    (``runs/update``, as ``mlflow.end_run`` sends it) the gate freezes the final figures, and
    metrics logged afterwards move nothing."""
    import json as _json

    c = multi.client
    name = f"bypass-{uuid.uuid4().hex[:8]}"
    c.create_registered_model(name, tags={BUDGET_TAG: "2"})
    run = c.create_run(multi.experiment_id).info.run_id
    c.log_metric(run, schema.CUM_TOTAL_CO2EQ_KG, 1.0, step=0)
    v = str(c.create_model_version(name, f"runs:/{run}/model", run).version)
    assert _json.loads(multi.version_tags(name, v)[schema.GATE_FOOTPRINT])["final"] is False
    c.log_metric(run, schema.CUM_TOTAL_CO2EQ_KG, 3.0, step=1)
    c.set_terminated(run)
    record = _json.loads(multi.version_tags(name, v)[schema.GATE_FOOTPRINT])
    assert record["final"] is True and record["footprint"]["total_co2eq_kg"] == pytest.approx(3.0)
    multi.store.log_metric(run, schema.CUM_TOTAL_CO2EQ_KG, 0.001, step=2)
    tally.bypass("a small total logged after the run ended, on a version registered while it ran")
    resp = _alias_post(multi, name, v)
    assert resp.status_code == 403 and "3 kg CO2eq exceeds" in resp.json()["message"], resp.text


@pytest.mark.parametrize("operation", ["rename", "delete"])
def test_budgeted_model_cannot_be_renamed_or_deleted_away(multi: Gated, operation: str, tally: Tally) -> None:
    """Class 4: renaming or deleting a budgeted model (then recreating the name without budgets)
    removes the budgets as surely as deleting the tags."""
    name, _ = multi.model({BUDGET_TAG: "1"}, 0.5)
    tally.bypass(f"{operation} a budgeted model")
    if operation == "rename":
        resp = requests.post(f"{multi.url}/api/2.0/mlflow/registered-models/rename", json={"name": name, "new_name": name + "-old"}, timeout=60)
    else:
        resp = requests.delete(f"{multi.url}/api/2.0/mlflow/registered-models/delete", json={"name": name}, timeout=60)
    assert resp.status_code == 403 and "override" in resp.json()["message"], resp.text
    assert multi.model_tags(name)[BUDGET_TAG] == "1"


def test_racing_promotions_are_decided_by_the_database(multi: Gated, tally: Tally) -> None:
    """Class 6: promotions of one model to one alias from many clients at once, across worker
    processes: each is judged on its own figures, none answers 400/5xx for the race itself."""
    name, (a, b, over) = multi.model({BUDGET_TAG: "2"}, 0.5, 1.0, 9.0)
    results: list[tuple[str, int]] = []
    lock = threading.Lock()

    def promote(version: str) -> None:
        resp = _alias_post(multi, name, version)
        with lock:
            results.append((version, resp.status_code))

    threads = [threading.Thread(target=promote, args=(v,)) for v in [a, b, over] * 4]
    tally.bypass("12 concurrent promotions to one alias across 4 workers", 12)
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted({code for v, code in results if v != over}) == [200], results
    assert {code for v, code in results if v == over} == {403}, results
    assert multi.aliases(name)["champion"] in (a, b)


def test_a_budget_tightened_while_promotions_run(multi: Gated, tally: Tally) -> None:
    """Class 6: a budget change racing promotions. Whatever the interleaving, once the tightening
    has answered, the alias does not point at a version over the new budget unless that
    promotion committed first and was re-judged: every later promotion is refused."""
    name, (v,) = multi.model({BUDGET_TAG: "5"}, 3.0)
    codes: list[int] = []

    def promote() -> None:
        codes.append(_alias_post(multi, name, v).status_code)

    threads = [threading.Thread(target=promote) for _ in range(6)]
    tally.bypass("budget tightened while 6 promotions race it", 6)
    for t in threads:
        t.start()
    resp = requests.post(f"{multi.url}/api/2.0/mlflow/registered-models/set-tag", json={"name": name, "key": BUDGET_TAG, "value": "2"}, timeout=60)
    assert resp.status_code == 200, resp.text
    for t in threads:
        t.join(120)
    assert set(codes) <= {200, 403}, codes
    assert _alias_post(multi, name, v).status_code == 403


def test_bodies_the_parser_chokes_on_are_400_json(multi: Gated, tally: Tally) -> None:
    """Class 9: nesting deep enough to exhaust the parser, on a gated and an ungated endpoint."""
    deep = "[" * 100_000 + "]" * 100_000
    for path in ("/api/2.0/mlflow/registered-models/alias", "/api/2.0/mlflow/runs/log-batch"):
        tally.bad_input(f"JSON nested 100000 deep to {path}")
        resp = requests.post(multi.url + path, data='{"name": ' + deep + "}", headers={"Content-Type": "application/json"}, timeout=60)
        assert resp.status_code == 400, resp.text[:300]
        assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_chunked_bodies_and_numeric_versions_are_read_as_the_handler_reads_them(multi: Gated, tally: Tally) -> None:
    """Class 9: a chunked body is evaluated (refused over budget, accepted within); a number for
    ``version`` gets MLflow's own 400 and changes nothing."""
    import json as _json

    name, (good, over) = multi.model({BUDGET_TAG: "2"}, 0.5, 9.0)

    def chunked(version: Any) -> requests.Response:
        body = _json.dumps({"name": name, "alias": "champion", "version": version}).encode()
        return requests.post(
            f"{multi.url}/api/2.0/mlflow/registered-models/alias",
            data=iter([body[:10], body[10:]]),
            headers={"Content-Type": "application/json"},
            timeout=60,
        )

    tally.bypass("chunked alias set over budget")
    resp = chunked(over)
    within = chunked(good)
    if within.status_code == 200:  # the handler reads chunked bodies: so does the gate
        assert resp.status_code == 403, resp.text
    else:  # MLflow's handler (uvicorn, 3.17) reads a chunked body as empty: its own 400, for both
        assert within.status_code == resp.status_code == 400, (within.text, resp.text)
        assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert multi.aliases(name).get("champion") in (None, good)
    multi.client.set_registered_model_alias(name, "champion", good)
    tally.bypass("alias set with a numeric version")
    resp = _alias_post(multi, name, int(over))
    assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE", resp.text
    assert multi.aliases(name)["champion"] == good
