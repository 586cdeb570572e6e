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


def _deeply_nested(client: Any, store: Any, rid: str) -> None:
    _relog(client, rid, None, text="[" * 200_000)


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
    (_deeply_nested, "malformed"),
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


# -- the tracker signs --------------------------------------------------------------------

OPTIONS = {"sampler": "simulated:300", "intensity": 250, "silent": True}


def _train(n: int, **options: Any) -> Any:
    import mlflow_green

    loop = mlflow_green.epochs(n, **{**OPTIONS, **options})
    for epoch in loop:
        mlflow_green.report_accuracy(0.5 + epoch / 10)  # given to mlflow_green: attested
    return loop.tracker


def test_tracker_signs_each_epoch_and_the_run_verifies(mlflow_local: str, key_files: Any) -> None:
    from mlflow import MlflowClient

    from mlflow_green.tracking.journal import journal_path, read_journal

    tracker = _train(3, signing_key=str(key_files[0]))
    state = read_journal(journal_path(tracker.journal_id))
    assert [i["entry"]["step"] for i in state.attest_items] == [0, 1, 2]
    assert state.attestation is not None and state.attestation["statement"]["run_id"] == tracker.run_id
    entry = state.attest_items[0]["entry"]
    assert entry["tags"][schema.TAG_METHOD_GPU] == "simulated" and entry["sampler"]["spec"] == "simulated:300"
    assert float(entry["window"]["end_unix_s"]) > float(entry["window"]["start_unix_s"]) and entry["host"]
    client = MlflowClient(mlflow_local)
    result = verify_run(tracker.run_id, trusted=[load_public_key(key_files[1])], client=client)
    assert result.verified and result.steps == 3 and result.unattested == (), result
    assert client.get_run(tracker.run_id).data.tags["green.attestation"].startswith("signed:")


def test_accuracy_read_back_from_the_run_is_named_unattested(mlflow_local: str, key_files: Any) -> None:
    import mlflow

    import mlflow_green

    loop = mlflow_green.epochs(3, signing_key=str(key_files[0]), **OPTIONS)
    for epoch in loop:
        mlflow.log_metric("val_accuracy", 0.5 + epoch / 10, step=epoch)
    result = verify_run(loop.tracker.run_id, trusted=[load_public_key(key_files[1])])
    assert result.verified and result.unattested == (schema.ACCURACY_PER_KG,), result


def test_signing_key_from_environment(mlflow_local: str, key_files: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_SIGNING_KEY, str(key_files[0]))
    tracker = _train(2)
    assert verify_run(tracker.run_id, trusted=[load_public_key(key_files[1])]).verified


def test_unsigned_by_default(mlflow_local: str, key_files: Any) -> None:
    tracker = _train(2)
    assert verify_run(tracker.run_id, trusted=[load_public_key(key_files[1])]).reason == "unsigned"


@pytest.mark.parametrize("which", ["missing", "public", "garbage"])
def test_bad_key_is_one_line_config_error_at_autolog(
    tmp_path: Path, key_files: Any, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    import mlflow_green

    path = {"missing": tmp_path / "nope.key", "public": key_files[1], "garbage": tmp_path / "g.key"}[which]
    if which == "garbage":
        path.write_text("garbage")
    try:
        with pytest.raises(ConfigError) as info:
            mlflow_green.autolog(signing_key=str(path))
        assert "\n" not in str(info.value) and str(path) in str(info.value)
        monkeypatch.setenv(ENV_SIGNING_KEY, str(path))
        with pytest.raises(ConfigError, match=ENV_SIGNING_KEY):
            mlflow_green.autolog()
    finally:
        monkeypatch.delenv(ENV_SIGNING_KEY, raising=False)
        mlflow_green.autolog(disable=True)


def test_signing_failing_mid_run_degrades_and_training_finishes(
    mlflow_local: str, key_files: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from mlflow_green.tracking.attestation import RunSigner

    def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise OSError("hardware security module gone")

    monkeypatch.setenv("MLFLOW_GREEN_STRICT", "0")
    monkeypatch.setattr(RunSigner, "add", broken)
    tracker = _train(3, signing_key=str(key_files[0]))
    tags = MlflowClient(mlflow_local).get_run(tracker.run_id).data.tags
    assert "attestation failed (hardware security module gone)" in tags[schema.TAG_STATUS]
    assert "green.attestation" not in tags and len(tracker.records) == 3
    assert verify_run(tracker.run_id, trusted=[load_public_key(key_files[1])]).reason == "unsigned"


@pytest.mark.slow
def test_server_down_at_start_recover_logs_the_journaled_attestation(
    key_files: Any, mlflow_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    import mlflow

    from mlflow_green.tracking.recover import recover
    from tests._servers import free_port

    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", down)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", f"attest-pending-{time.time_ns()}")
    mlflow.set_tracking_uri(down)
    tracker = _train(2, signing_key=str(key_files[0]))
    assert tracker.run_id is None and tracker.journal_id.startswith("pending-")
    trusted = [load_public_key(key_files[1])]
    (first,) = recover(tracker.journal_id, tracking_uri=mlflow_server.url)
    assert first.error is None and first.created_run and first.attestation_logged, first
    client = mlflow.MlflowClient(mlflow_server.url)
    result = verify_run(first.run_id, trusted=trusted, client=client)
    assert result.verified and result.steps == 2, result
    # Idempotent: a second recovery logs nothing again and the run still verifies.
    (second,) = recover(first.run_id, tracking_uri=mlflow_server.url)
    assert second.error is None and not second.attestation_logged
    assert verify_run(first.run_id, trusted=trusted, client=client).verified


def test_bad_key_given_to_epochs_is_a_config_error(tmp_path: Path) -> None:
    import mlflow_green

    with pytest.raises(ConfigError, match=r"signing_key .*nope\.key does not exist"):
        mlflow_green.epochs(2, signing_key=str(tmp_path / "nope.key"), **OPTIONS)


def test_key_gone_after_autolog_degrades_the_run(
    mlflow_local: str, tmp_path: Path, key_files: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from mlflow import MlflowClient

    key = tmp_path / "moved.key"
    shutil.copy(key_files[0], key)
    monkeypatch.setenv(ENV_SIGNING_KEY, str(key))
    key.unlink()  # after the configuration was checked, before the run starts
    monkeypatch.setenv("MLFLOW_GREEN_STRICT", "0")
    tracker = _train(2)
    status = MlflowClient(mlflow_local).get_run(tracker.run_id).data.tags[schema.TAG_STATUS]
    assert status.startswith("degraded: signing key unusable") and len(tracker.records) == 2


def test_resumed_run_continues_the_signed_chain(client: Any, exp: str, key_files: Any, tmp_path: Path) -> None:
    from mlflow.entities import Metric

    from mlflow_green.tracking.attestation import ClientRunReader, RunSigner
    from tests.tracking._attest import TAGS, epoch_metrics

    key = load_signing_key(key_files[0])
    rid = log_signed_run(client, exp, key, steps=2)
    earlier = read_attestation(ClientRunReader(client), rid)
    stranger = RunSigner(load_signing_key(generate_key_pair(tmp_path, "s")[0]))
    assert not stranger.continue_from(earlier, run_id=rid)  # another key
    assert not RunSigner(key).continue_from(earlier, run_id="another-run")
    forged = json.loads(json.dumps(earlier))
    forged["entries"][0]["entry"]["metrics"]["green/energy_kwh"] = "0.0"
    assert not RunSigner(key).continue_from(forged, run_id=rid)
    signer = RunSigner(key)
    assert signer.continue_from(earlier, run_id=rid)
    metrics = epoch_metrics(2, 1.0, 3)
    signer.add(2, metrics, tags=TAGS, start_unix_s=2000.0, end_unix_s=2001.0, sampler={"gpu": "counter"})
    client.log_batch(rid, metrics=[Metric(k, v, 1_700_000_000_002, 2) for k, v in metrics.items()])
    log_attestation(client, rid, signer.document(run_id=rid, tags=TAGS))
    result = _verify(client, rid, key_files[1])
    assert result.verified and result.steps == 3, result


def test_recover_signs_a_killed_writers_journaled_chain(
    client: Any, exp: str, key_files: Any, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    import subprocess

    from mlflow_green.tracking.attestation import RunSigner
    from mlflow_green.tracking.journal import OWNER_TRACKER, Journal
    from mlflow_green.tracking.recover import recover
    from tests.tracking._attest import TAGS, epoch_metrics

    proc = subprocess.Popen(["true"])
    proc.wait()  # a dead writer
    run_id = client.create_run(exp).info.run_id
    journal = Journal.open(run_id, tracking_uri=store[0], experiment_id=exp, owner=OWNER_TRACKER,
                           extra={"pid": proc.pid, "hostname": socket.gethostname()})
    journal.tags(TAGS)
    signer = RunSigner(load_signing_key(key_files[0]))
    for step in range(2):
        metrics = {k: v for k, v in epoch_metrics(step, 1.0, 2).items() if k.startswith("green/")}
        journal.epoch(step, metrics, 1_700_000_000_000 + step)
        journal.attest(signer.add(step, metrics, tags=TAGS, start_unix_s=step, end_unix_s=step + 1, sampler={}))
    journal.close()
    monkeypatch.setenv(ENV_SIGNING_KEY, str(key_files[0]))
    (result,) = recover(run_id, tracking_uri=store[0])
    assert result.error is None and result.ended_as == "KILLED" and result.attestation_logged, result
    verdict = _verify(client, run_id, key_files[1])
    assert verdict.verified and verdict.steps == 2, verdict
    assert "interrupted" in client.get_run(run_id).data.tags[schema.TAG_STATUS]
    (again,) = recover(run_id, tracking_uri=store[0])
    assert again.error is None and not again.attestation_logged


@pytest.mark.parametrize("same_machine", [True, False], ids=["journal-here", "other-machine"])
def test_training_resumed_in_the_same_run_continues_the_chain(
    mlflow_local: str, key_files: Any, same_machine: bool
) -> None:
    import mlflow

    import mlflow_green
    from mlflow_green.tracking.journal import journal_path

    with mlflow.start_run() as run:
        for epoch in mlflow_green.epochs(2, signing_key=str(key_files[0]), **OPTIONS):
            mlflow_green.report_accuracy(0.5 + epoch / 10)
    if not same_machine:  # resumed elsewhere: only the run's signed artifact carries the chain
        journal_path(run.info.run_id).unlink()
    # Preempted and resumed: the same run, its steps and the signed chain continued.
    with mlflow.start_run(run_id=run.info.run_id):
        loop = mlflow_green.epochs(2, signing_key=str(key_files[0]), **OPTIONS)
        seen = []
        for epoch in loop:
            seen.append(epoch)
            mlflow_green.report_accuracy(0.7 + epoch / 10)
    assert seen == [2, 3]
    result = verify_run(run.info.run_id, trusted=[load_public_key(key_files[1])])
    assert result.verified and result.steps == 4, result
