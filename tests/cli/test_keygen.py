"""``mlflow-green keygen``: the key pair, its modes, the printed key id, no overwrite."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from mlflow_green.attestation import load_public_key, load_signing_key
from mlflow_green.cli.main import main


def test_keygen_writes_pair_and_prints_key_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "--out", str(tmp_path / "keys")]) == 0
    out = capsys.readouterr().out
    priv, pub = tmp_path / "keys" / "green.key", tmp_path / "keys" / "green.pub"
    assert stat.S_IMODE(os.stat(priv).st_mode) == 0o600
    key_id = load_signing_key(priv).key_id
    assert out.splitlines()[0] == key_id == load_public_key(pub).key_id
    assert "MLFLOW_GREEN_SIGNING_KEY" in out and "trusted_keys" in out


def test_keygen_json_name_and_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "--out", str(tmp_path), "--name", "ci-runner", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["private_key"].endswith("ci-runner.key") and data["public_key"].endswith("ci-runner.pub")
    before = (tmp_path / "ci-runner.key").read_bytes()
    assert main(["keygen", "--out", str(tmp_path), "--name", "ci-runner"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "ci-runner.key").read_bytes() == before
    assert main(["keygen", "--out", str(tmp_path), "--name", "../escape"]) == 2
    assert main(["keygen"]) == 2
