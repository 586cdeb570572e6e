"""Verifying a run read from MLflow against its attestation; signing keys from arguments/env."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mlflow_green.attestation import generate_key_pair, load_public_key, load_signing_key
from mlflow_green.errors import ConfigError
from mlflow_green.tracking import schema
from mlflow_green.tracking.attestation import (
    ENV_SIGNING_KEY,
    log_attestation,
    read_attestation,
    resolve_signing_key,
    verify_run,
)
from tests.tracking._attest import log_signed_run


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("attest-store")
    return f"sqlite:///{root / 'mlflow.db'}", root


@pytest.fixture(scope="module")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    priv, pub, _ = generate_key_pair(tmp_path_factory.mktemp("keys"), "ci")
    return priv, pub


@pytest.fixture
def client(store: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> Any:
    from mlflow import MlflowClient

    monkeypatch.chdir(store[1])  # the default artifact root (./mlruns) stays in the store's folder
    return MlflowClient(tracking_uri=store[0])


@pytest.fixture
def exp(client: Any) -> str:
    import uuid

    return str(client.create_experiment(f"attest-{uuid.uuid4().hex[:8]}", artifact_location=str(Path.cwd() / "art")))


def _sql(store: tuple[str, Path], statement: str, *params: Any) -> None:
    with sqlite3.connect(store[0].removeprefix("sqlite:///")) as db:
        assert db.execute(statement, params).rowcount >= 1


def _verify(client: Any, rid: str, pub: Path) -> Any:
    return verify_run(rid, trusted=[load_public_key(pub)], client=client)


def test_signed_run_verifies_and_carries_tag(client: Any, exp: str, key_files: Any) -> None:
    key = load_signing_key(key_files[0])
    rid = log_signed_run(client, exp, key)
    result = _verify(client, rid, key_files[1])
    assert result.verified, result
    assert result.steps == 3
    assert client.get_run(rid).data.tags["green.attestation"] == f"signed:{key.key_id}"


def test_unsigned_run(client: Any, exp: str, key_files: Any) -> None:
    rid = log_signed_run(client, exp, load_signing_key(key_files[0]), sign=False)
    assert _verify(client, rid, key_files[1]).reason == "unsigned"


def _edit_value(client: Any, store: Any, rid: str) -> None:  # an administrator edits the database
    _sql(store, "UPDATE metrics SET value = value / 10 WHERE run_uuid = ? AND key = ? AND step = 1",
         rid, schema.CUM_TOTAL_CO2EQ_KG)
    _sql(store, "UPDATE latest_metrics SET value = value / 10 WHERE run_uuid = ? AND key = ?",
         rid, schema.CUM_TOTAL_CO2EQ_KG)


def _log_again(client: Any, store: Any, rid: str) -> None:  # a client logs a smaller figure
    client.log_metric(rid, schema.CUM_TOTAL_CO2EQ_KG, 0.001, step=2)


def _insert_step(client: Any, store: Any, rid: str) -> None:
    client.log_metric(rid, schema.CUM_TOTAL_CO2EQ_KG, 0.001, step=7)


def _delete_step(client: Any, store: Any, rid: str) -> None:
    _sql(store, "DELETE FROM metrics WHERE run_uuid = ? AND key = ? AND step = 2", rid, schema.CUM_ENERGY_KWH)


def _new_key(client: Any, store: Any, rid: str) -> None:
    client.log_metric(rid, schema.GPU_ENERGY_KWH, 0.0, step=0)


def _method_tag(client: Any, store: Any, rid: str) -> None:
    client.set_tag(rid, schema.TAG_METHOD_GPU, "power")


def _status_tag(client: Any, store: Any, rid: str) -> None:
    client.delete_tag(rid, schema.TAG_STATUS)


def _swapped_artifact(client: Any, store: Any, rid: str) -> None:
    doc = read_attestation(_reader(client), rid)
    doc["entries"][0]["entry"]["metrics"][schema.ENERGY_KWH] = "0.0"
    _relog(client, rid, doc)


def _not_json(client: Any, store: Any, rid: str) -> None:
    _relog(client, rid, None, text="{not json")


def _tag_names_other_key(client: Any, store: Any, rid: str) -> None:
    client.set_tag(rid, "green.attestation", "signed:0000000000000000")


TAMPERINGS = [
    (_edit_value, "altered-value"),
    (_log_again, "altered-value"),
    (_insert_step, "extra-step"),
    (_delete_step, "missing-step"),
    (_new_key, "extra-step"),
    (_method_tag, "changed-tag"),
    (_status_tag, "changed-tag"),
    (_swapped_artifact, "broken-chain"),
    (_not_json, "malformed"),
    (_tag_names_other_key, "changed-tag"),
]


def _reader(client: Any) -> Any:
    from mlflow_green.tracking.attestation import ClientRunReader

    return ClientRunReader(client)


def _relog(client: Any, rid: str, doc: Any, text: str | None = None) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "attestation.json"
        path.write_text(text if text is not None else json.dumps(doc))
        client.log_artifact(rid, str(path), artifact_path="green")


@pytest.mark.parametrize(("tamper", "reason"), TAMPERINGS, ids=[t[0].__name__ for t in TAMPERINGS])
def test_tampering_with_the_run_is_detected(
    client: Any, exp: str, key_files: Any, store: Any, tamper: Any, reason: str
) -> None:
    rid = log_signed_run(client, exp, load_signing_key(key_files[0]))
    assert _verify(client, rid, key_files[1]).verified
    tamper(client, store, rid)
    result = _verify(client, rid, key_files[1])
    assert not result.verified and result.reason == reason, result


def test_attestation_copied_from_another_run(client: Any, exp: str, key_files: Any) -> None:
    key = load_signing_key(key_files[0])
    signed = log_signed_run(client, exp, key, total_kg=1.0)
    # A hand-logged copy of the same figures, given the signed run's attestation.
    copy = log_signed_run(client, exp, key, total_kg=1.0, sign=False)
    log_attestation(client, copy, read_attestation(_reader(client), signed))
    result = _verify(client, copy, key_files[1])
    assert result.reason == "other-run" and signed in result.detail


def test_unknown_key(client: Any, exp: str, key_files: Any, tmp_path: Path) -> None:
    rid = log_signed_run(client, exp, load_signing_key(key_files[0]))
    stranger = generate_key_pair(tmp_path, "stranger")[1]
    assert _verify(client, rid, stranger).reason == "unknown-key"


def test_signing_key_argument_beats_environment(
    key_files: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = generate_key_pair(tmp_path, "other")[0]
    assert resolve_signing_key(None) is None
    monkeypatch.setenv(ENV_SIGNING_KEY, str(other))
    assert resolve_signing_key(None).key_id == load_signing_key(other).key_id
    assert resolve_signing_key(key_files[0]).key_id == load_signing_key(key_files[0]).key_id
    monkeypatch.setenv(ENV_SIGNING_KEY, str(tmp_path / "gone.key"))
    with pytest.raises(ConfigError, match=f"{ENV_SIGNING_KEY} .*gone.key does not exist"):
        resolve_signing_key(None)
