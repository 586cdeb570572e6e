"""The gate and attested evidence: trusted keys in the policy, on_unattested, the verdict's
attestation (client API here; the server's routes in test_gate_server_attest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlflow_green.attestation import generate_key_pair, load_signing_key
from mlflow_green.errors import ConfigError
from mlflow_green.registry import api
from mlflow_green.registry.policy import load_policy, parse_policy
from tests.registry._helpers import register, unique
from tests.tracking._attest import log_signed_run


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    return generate_key_pair(tmp_path_factory.mktemp("keys"), "ci")


def _policy(tmp_path: Path, pub: Path, on_unattested: str = "deny") -> Path:
    (tmp_path / "keys").mkdir(exist_ok=True)
    (tmp_path / "keys" / "ci.pub").write_bytes(pub.read_bytes())
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "trusted_keys:\n  - {id: ci-runner, public_key: keys/ci.pub}\n"
        "defaults:\n  on_simulated: allow\n"
        f"models:\n  'att-*':\n    on_unattested: {on_unattested}\n    budgets: {{total_co2eq_kg: 5}}\n"
    )
    return policy


def test_trusted_keys_by_relative_path_and_inline_pem(tmp_path: Path, keys: Any) -> None:
    policy = load_policy(_policy(tmp_path, keys[1]))
    (key,) = policy.trusted_keys
    assert key.name == "ci-runner" and key.key_id == keys[2]
    assert policy.for_model("att-x").on_unattested == "deny"
    assert policy.for_model("other").on_unattested == "allow"  # the default: existing setups keep working
    inline = parse_policy({"trusted_keys": [{"id": "a", "public_key": keys[1].read_text()}]}, "inline")
    assert inline.trusted_keys[0].key_id == keys[2]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"trusted_keys": {"id": "a"}}, "trusted_keys must be a list"),
        ({"trusted_keys": [{"id": "a"}]}, r"trusted_keys\[0\].public_key"),
        ({"trusted_keys": [{"public_key": "x.pub"}]}, r"trusted_keys\[0\].id"),
        ({"trusted_keys": [{"id": "a", "public_key": "missing.pub", "x": 1}]}, r"trusted_keys\[0\] must be"),
        ({"trusted_keys": [{"id": "a", "public_key": "/nonexistent/a.pub"}]}, "does not exist"),
        ({"trusted_keys": [{"id": "a", "public_key": "-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----"}]},
         "not a PEM public key"),
        ({"defaults": {"on_unattested": "maybe"}}, "on_unattested='maybe' must be 'deny' or 'allow'"),
    ],
)
def test_malformed_trusted_keys_or_decision_is_one_line_error(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_policy(raw, "p.yaml")
    assert "\n" not in str(info.value) and "policy file p.yaml" in str(info.value)


def test_private_key_in_policy_is_refused(tmp_path: Path, keys: Any) -> None:
    with pytest.raises(ConfigError, match="is a private key"):
        parse_policy({"trusted_keys": [{"id": "a", "public_key": str(keys[0])}]}, "p.yaml")


@pytest.fixture
def signed_model(client: Any, experiment_id: str, keys: Any, tmp_path: Path) -> Any:
    def make(*, sign: bool = True, total_kg: float = 1.0) -> tuple[str, str, str]:
        rid = log_signed_run(client, experiment_id, load_signing_key(keys[0]), total_kg=total_kg, sign=sign)
        name = unique("att")
        return name, register(client, name, rid), rid

    return make


def test_signed_version_passes_and_says_which_key(client: Any, signed_model: Any, keys: Any, tmp_path: Path) -> None:
    name, version, _ = signed_model()
    verdict = api.evaluate(name, version, alias="champion", policy=_policy(tmp_path, keys[1]), client=client)
    assert verdict.passed, verdict.reasons
    assert verdict.attestation is not None and verdict.attestation.key_id == keys[2]
    data = verdict.to_dict()["attestation"]
    assert data["verified"] and data["key_name"] == "ci-runner"
    assert verdict.evidence_tags()["green.gate.attestation"] == f"signed:{keys[2]} (ci-runner)"


def test_unattested_version_refused_where_policy_denies(client: Any, signed_model: Any, keys: Any, tmp_path: Path) -> None:
    name, version, _ = signed_model(sign=False)
    policy = _policy(tmp_path, keys[1])
    verdict = api.evaluate(name, version, alias="champion", policy=policy, client=client)
    assert not verdict.passed and "not attested (unsigned)" in verdict.reasons[0]
    assert verdict.evidence_tags()["green.gate.attestation"].startswith("unattested: unsigned")
    # Model-wide (no alias or stage): nothing is promoted, so it is a warning only.
    assert api.evaluate(name, version, policy=policy, client=client).passed


def test_unattested_allowed_by_policy_is_a_warning(client: Any, signed_model: Any, keys: Any, tmp_path: Path) -> None:
    name, version, _ = signed_model(sign=False)
    verdict = api.evaluate(name, version, alias="champion", policy=_policy(tmp_path, keys[1], "allow"), client=client)
    assert verdict.passed and any("not attested" in w for w in verdict.warnings)


def test_tampered_version_refused(client: Any, signed_model: Any, keys: Any, tmp_path: Path) -> None:
    name, version, rid = signed_model(total_kg=4.0)
    client.log_metric(rid, "green/cum_total_co2eq_kg", 1.0, step=2)  # a smaller total, by hand
    verdict = api.evaluate(name, version, alias="champion", policy=_policy(tmp_path, keys[1]), client=client)
    assert not verdict.passed and "altered-value" in " ".join(verdict.reasons)


def test_deny_without_trusted_keys_fails_closed(client: Any, signed_model: Any) -> None:
    name, version, _ = signed_model()
    policy = parse_policy({"defaults": {"on_unattested": "deny", "on_simulated": "allow"}}, "p.yaml")
    client.set_registered_model_tag(name, "green.budget.total_co2eq_kg", "5")
    verdict = api.evaluate(name, version, alias="champion", policy=policy, client=client)
    assert not verdict.passed and "unknown-key" in verdict.reasons[0]


def test_check_cli_json_reports_attestation(
    client: Any, signed_model: Any, keys: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from mlflow_green.cli.main import main

    name, version, _ = signed_model()
    policy = str(_policy(tmp_path, keys[1]))
    assert main(["check", "--model", name, "--version", version, "--alias", "champion", "--policy", policy, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["attestation"]["key_id"] == keys[2]
