"""``mlflow-green verify``: exit 0 verified, 1 not (reason named), 2 usage or connection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlflow_green.attestation import generate_key_pair, load_signing_key
from mlflow_green.cli.main import main
from tests._servers import free_port
from tests.tracking._attest import log_signed_run


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("verify-store")
    return f"sqlite:///{root / 'mlflow.db'}", root


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    return generate_key_pair(tmp_path_factory.mktemp("keys"), "ci")


@pytest.fixture
def signed(store: tuple[str, Path], keys: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    import uuid

    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store[0])
    client = MlflowClient(tracking_uri=store[0])
    exp = client.create_experiment(f"v-{uuid.uuid4().hex[:8]}", artifact_location=str(store[1] / "art"))
    return client, log_signed_run(client, exp, load_signing_key(keys[0]))


def test_verified_run_exit_0(signed: Any, keys: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, rid = signed
    assert main(["verify", "--run-id", rid, "--public-key", str(keys[1])]) == 0
    assert capsys.readouterr().out.startswith(f"verified: run {rid}")
    assert main(["verify", "--run-id", rid, "--public-key", str(keys[1]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verified"] is True and data["key_id"] == keys[2] and data["reason"] == "verified"


def test_altered_run_exit_1_with_reason(signed: Any, keys: Any, capsys: pytest.CaptureFixture[str]) -> None:
    client, rid = signed
    client.set_tag(rid, "green.method.gpu", "counter-by-hand")
    assert main(["verify", "--run-id", rid, "--public-key", str(keys[1]), "--json"]) == 1
    out = capsys.readouterr()
    assert json.loads(out.out)["reason"] == "changed-tag" and "green.method.gpu" in out.err


def test_trusted_keys_from_policy(signed: Any, keys: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, rid = signed
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"trusted_keys:\n  - {{id: ci, public_key: {keys[1]}}}\n")
    assert main(["verify", "--run-id", rid, "--policy", str(policy)]) == 0
    assert "(ci)" in capsys.readouterr().out
    # No key at all: the signer is unknown.
    assert main(["verify", "--run-id", rid]) == 1
    assert "unknown-key" in capsys.readouterr().out


def test_usage_and_connection_errors_exit_2(
    signed: Any, keys: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        ["verify"],
        ["verify", "--run-id", "0" * 32, "--public-key", str(keys[1])],
        ["verify", "--run-id", signed[1], "--public-key", str(keys[0])],  # the private half
        ["verify", "--run-id", signed[1], "--public-key", str(tmp_path / "none.pub")],
        ["verify", "--run-id", signed[1], "--public-key", str(keys[1]),
         "--tracking-uri", f"http://127.0.0.1:{free_port()}"],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
