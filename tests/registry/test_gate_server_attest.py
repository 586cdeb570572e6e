"""The gate inside a real ``mlflow server`` refuses unattested or tampered evidence where the
policy says ``on_unattested: deny``, on ``/api/2.0`` and ``/ajax-api/2.0``, and passes a
signed version (its key named in the evidence)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from mlflow_green.attestation import generate_key_pair, load_signing_key
from tests._servers import start_mlflow_server
from tests.registry._helpers import register, unique
from tests.tracking._attest import log_signed_run

pytestmark = pytest.mark.slow

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from mlflow import MlflowClient

    work = tmp_path_factory.mktemp("gate-attest")
    private, _public, key_id = generate_key_pair(work / "keys", "ci")
    policy = work / "policy.yaml"
    policy.write_text(
        "trusted_keys:\n  - {id: ci-runner, public_key: keys/ci.pub}\n"
        "defaults:\n  on_simulated: allow\n"
        "models:\n  'att-*':\n    on_unattested: deny\n    budgets: {total_co2eq_kg: 5}\n"
        "  'open-*':\n    budgets: {total_co2eq_kg: 5}\n"
    )
    server = start_mlflow_server(work, app_name="green-gate", env={"MLFLOW_GREEN_POLICY": str(policy)})
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    try:
        yield {
            "url": server.url,
            "client": client,
            "exp": client.create_experiment(unique("exp")),
            "key": load_signing_key(private),
            "key_id": key_id,
        }
    finally:
        server.kill()


def _version(gate: dict[str, Any], *, prefix: str = "att", sign: bool = True, tamper: Any = None) -> tuple[str, str, str]:
    rid = log_signed_run(gate["client"], gate["exp"], gate["key"], sign=sign)
    if tamper is not None:  # before registration: the gate freezes a registered run's evidence tags
        tamper(gate, rid)
    name = unique(prefix)
    return name, register(gate["client"], name, rid), rid


def _alias(gate: dict[str, Any], route: str, name: str, version: str) -> requests.Response:
    body = {"name": name, "alias": "champion", "version": version}
    return requests.post(f"{gate['url']}{route}/registered-models/alias", json=body, timeout=60)


def _stage(gate: dict[str, Any], route: str, name: str, version: str) -> requests.Response:
    body = {"name": name, "version": version, "stage": "Production", "archive_existing_versions": False}
    return requests.post(f"{gate['url']}{route}/model-versions/transition-stage", json=body, timeout=60)


@pytest.mark.parametrize("route", PREFIXES)
def test_signed_version_is_promoted_with_its_key_in_evidence(gate: dict[str, Any], route: str) -> None:
    name, version, _ = _version(gate)
    assert _alias(gate, route, name, version).status_code == 200
    tags = gate["client"].get_model_version(name, version).tags
    assert tags["green.gate.attestation"] == f"signed:{gate['key_id']} (ci-runner)"
    assert _stage(gate, route, name, version).status_code == 200
    page = requests.get(f"{gate['url']}/green", timeout=60)
    assert page.status_code == 200 and f"signed:{gate['key_id']} (ci-runner)" in page.text


def _refused(resp: requests.Response, *needles: str) -> None:
    assert resp.status_code == 403, resp.text
    body = resp.json()
    assert body["error_code"] == "PERMISSION_DENIED"
    for needle in needles:
        assert needle in body["message"], body["message"]


def _edit_value(gate: dict[str, Any], rid: str) -> None:
    gate["client"].log_metric(rid, "green/cum_total_co2eq_kg", 0.01, step=2)


def _method_tag(gate: dict[str, Any], rid: str) -> None:
    gate["client"].set_tag(rid, "green.method.gpu", "power")


def _copied_attestation(gate: dict[str, Any], rid: str) -> None:
    from mlflow_green.tracking.attestation import ClientRunReader, log_attestation, read_attestation

    donor = log_signed_run(gate["client"], gate["exp"], gate["key"])
    log_attestation(gate["client"], rid, read_attestation(ClientRunReader(gate["client"]), donor))


@pytest.mark.parametrize("route", PREFIXES)
@pytest.mark.parametrize(
    ("tamper", "reason"),
    [(None, "unsigned"), (_edit_value, "altered-value"), (_method_tag, "changed-tag"),
     (_copied_attestation, "other-run")],
)
def test_unattested_or_tampered_version_is_refused(gate: dict[str, Any], route: str, tamper: Any, reason: str) -> None:
    name, version, _ = _version(gate, sign=tamper is not None and tamper is not _copied_attestation, tamper=tamper)
    _refused(_alias(gate, route, name, version), "not attested", reason)
    _refused(_stage(gate, route, name, version), "not attested", reason)
    assert gate["client"].get_registered_model(name).aliases == {}


def test_allow_policy_promotes_unattested(gate: dict[str, Any]) -> None:
    name, version, _ = _version(gate, prefix="open", sign=False)
    assert _alias(gate, PREFIXES[0], name, version).status_code == 200
    tags = gate["client"].get_model_version(name, version).tags
    assert tags["green.gate.attestation"].startswith("unattested: unsigned")
