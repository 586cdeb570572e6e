"""``recover`` on journals whose writer is gone, still running, or elsewhere (local SQLite)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlflow_green.tracking import schema
from mlflow_green.tracking.journal import (
    OWNER_EXTERNAL,
    OWNER_PROCESS,
    OWNER_TRACKER,
    Journal,
    journal_path,
    read_journal,
)
from mlflow_green.tracking.recover import recover

INTERRUPTED = "degraded: run interrupted after 2 epoch(s); epochs recovered from the journal"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module (creating its tables costs seconds)."""
    import mlflow

    uri = f"sqlite:///{tmp_path_factory.mktemp('recover-store') / 'mlflow.db'}"
    mlflow.MlflowClient(uri).search_experiments()
    return uri


@pytest.fixture
def live_pid() -> Iterator[int]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()  # reaped: the pid is free
    return proc.pid


def _journal(
    run_id: str, uri: str, *, owner: str, pid: int, hostname: str | None = None, status: str = "ok"
) -> Journal:
    journal = Journal.open(
        run_id,
        tracking_uri=uri,
        experiment_id="0",
        owner=owner,
        extra={"pid": pid, "hostname": hostname or socket.gethostname()},
    )
    journal.tags({schema.TAG_STATUS: status, schema.TAG_METHOD_GPU: "simulated"})
    for step in range(2):
        journal.epoch(step, {schema.ENERGY_KWH: 0.1 * (step + 1)}, 1_700_000_000_000 + step)
    return journal


@pytest.mark.parametrize(
    ("writer", "owner", "status", "sent", "run_status", "green_status", "note"),
    [
        # Killed: the run says so and is ended, whoever of mlflow_green or the process owned it.
        ("dead", OWNER_TRACKER, "ok", [0, 1], "KILLED", INTERRUPTED, None),
        ("dead", OWNER_PROCESS, "ok", [0, 1], "KILLED", INTERRUPTED, None),
        ("dead", OWNER_TRACKER, "degraded: gpu lost",
         [0, 1], "KILLED", "degraded: gpu lost; run interrupted after 2 epoch(s); "
         "epochs recovered from the journal", None),
        # A run given by id may be in use elsewhere: status said, run left RUNNING.
        ("dead", OWNER_EXTERNAL, "ok", [0, 1], "RUNNING", INTERRUPTED, "given by id"),
        # Still running here: nothing touched (its own logger sends).
        ("alive", OWNER_TRACKER, "ok", [], "RUNNING", None, "still writing"),
        ("this process", OWNER_TRACKER, "ok", [], "RUNNING", None, "still writing"),
        # Written on another host: epochs sent, the run's fate left to whoever knows.
        ("elsewhere", OWNER_TRACKER, "ok", [0, 1], "RUNNING", "ok", "cannot tell"),
    ],
)
def test_journal_without_end(
    writer: str,
    owner: str,
    status: str,
    sent: list[int],
    run_status: str,
    green_status: str | None,
    note: str | None,
    store: str,
    live_pid: int,
    dead_pid: int,
) -> None:
    import mlflow

    client = mlflow.MlflowClient(store)
    run_id = client.create_run("0").info.run_id
    pid = {"dead": dead_pid, "alive": live_pid, "this process": os.getpid(), "elsewhere": 1}[writer]
    host = "another-host.example" if writer == "elsewhere" else None
    journal = _journal(run_id, store, owner=owner, pid=pid, hostname=host, status=status)
    if writer != "this process":
        journal.close()
    try:
        (result,) = recover()
    finally:
        journal.close()
    assert result.error is None, result
    assert result.sent_steps == sent
    run = client.get_run(run_id)
    assert run.info.status == run_status
    assert run.data.tags.get(schema.TAG_STATUS) == green_status
    assert result.status == (green_status if run_status == "KILLED" or owner == OWNER_EXTERNAL else None)
    if note is None:
        assert result.note is None
    else:
        assert result.note is not None and note in result.note
    if run_status == "KILLED":
        assert result.ended_as == "KILLED"
        assert run.info.end_time == 1_700_000_000_001  # the last journaled epoch
        # Recovering again changes nothing: no step, no status, no second end.
        (again,) = recover()
        assert again.sent_steps == [] and again.metrics_sent == 0 and again.ended_as is None
        assert client.get_run(run_id).data.tags[schema.TAG_STATUS] == green_status


def test_ended_journal_whose_run_could_not_be_ended(store: str, dead_pid: int) -> None:
    """The server was down when training finished: recover ends the tracker's run as it said."""
    import mlflow

    client = mlflow.MlflowClient(store)
    run_id = client.create_run("0").info.run_id
    journal = _journal(run_id, store, owner=OWNER_TRACKER, pid=dead_pid)
    journal.end("ok", None, run_status="FAILED", end_time_ms=1_700_000_000_500)
    journal.close()
    (result,) = recover(run_id)
    assert result.error is None and result.ended_as == "FAILED" and result.status is None
    run = client.get_run(run_id)
    assert run.info.status == "FAILED" and run.info.end_time == 1_700_000_000_500
    assert run.data.tags[schema.TAG_STATUS] == "ok"
    assert read_journal(journal_path(run_id)).done


def test_recover_by_created_run_id_finds_the_pending_journal() -> None:
    from mlflow_green.errors import ConfigError
    from tests._servers import free_port

    uri = f"http://127.0.0.1:{free_port()}"  # down: only which journal is taken matters here
    journal = Journal.open("pending-0123", tracking_uri=uri, pending_run={"tracking_uri": uri})
    journal.created("a" * 32)
    journal.close()
    assert read_journal(journal_path("pending-0123")).run_id == "a" * 32
    (result,) = recover("a" * 32)
    assert result.run_id == "a" * 32 and Path(result.journal).name == "pending-0123.jsonl"
    assert result.error is not None and not result.created_run
    with pytest.raises(ConfigError, match="no journal for run"):
        recover("b" * 32)
