"""``mlflow-green recover``: a training process killed mid-run, then recovered, idempotently."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlflow_green.cli.main import main
from mlflow_green.tracking import schema
from mlflow_green.tracking.journal import journal_path, read_journal

SCRIPT = textwrap.dedent(
    """
    import os, signal, time
    import mlflow, mlflow_green

    with mlflow.start_run() as run:
        print(run.info.run_id, flush=True)
        for epoch in mlflow_green.epochs(5, sampler="simulated:300", intensity=100, silent=True,
                                         log_every_n_epochs=2):
            time.sleep(0.05)
            if epoch == 3:
                time.sleep(1.0)  # the logger sends epochs 0 and 1 meanwhile
                os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _steps(client: object, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))  # type: ignore[attr-defined]


def test_killed_process_then_recover(tmp_path: Path, sqlite_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    import mlflow

    env = dict(os.environ, MLFLOW_TRACKING_URI=sqlite_uri)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run_id = proc.stdout.split()[0]

    # Epoch 3 was in progress: lost. Epochs 0..2 are in the journal; 2 never left it.
    state = read_journal(journal_path(run_id))
    assert sorted(state.epochs) == [0, 1, 2]
    client = mlflow.MlflowClient(sqlite_uri)
    assert _steps(client, run_id, schema.ENERGY_KWH) == [0, 1]

    assert main(["recover", "--run-id", run_id, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (result,) = out["runs"]
    assert result["sent_steps"] == [2]
    assert result["already_logged_steps"] == [0, 1]
    assert result["error"] is None

    for key in (*schema.PER_EPOCH_KEYS, *schema.CUMULATIVE_KEYS, schema.PROJECTED_TOTAL_CO2EQ_KG):
        assert _steps(client, run_id, key) == [0, 1, 2], key
    tags = client.get_run(run_id).data.tags
    assert tags[schema.TAG_METHOD_GPU] == "simulated"
    # The process is gone and the run was its own: the run says what happened and ends.
    interrupted = "degraded: run interrupted after 3 epoch(s); epochs recovered from the journal"
    assert tags[schema.TAG_STATUS] == result["status"] == interrupted
    assert result["ended_as"] == "KILLED" and client.get_run(run_id).info.status == "KILLED"

    # Again: nothing to send, nothing duplicated.
    assert main(["recover", "--run-id", run_id]) == 0
    assert "nothing missing" in capsys.readouterr().out
    assert client.get_run(run_id).data.tags[schema.TAG_STATUS] == interrupted
    assert _steps(client, run_id, schema.CUM_TOTAL_CO2EQ_KG) == [0, 1, 2]
    assert read_journal(journal_path(run_id)).pending_steps == []


def test_server_down_at_start_then_recover_prints_the_created_run(
    tmp_path: Path, sqlite_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    from mlflow_green.tracking.journal import Journal
    from mlflow_green.tracking.pending import capture_pending_run

    pending = capture_pending_run("http://127.0.0.1:9", run_name="late")
    journal = Journal.open(
        pending.journal_id, tracking_uri=pending.tracking_uri, owner="tracker",
        pending_run=pending.to_json(),
    )
    journal.epoch(0, {schema.ENERGY_KWH: 0.5}, 1_700_000_000_000)
    journal.end("ok", None, run_status="FINISHED", end_time_ms=1_700_000_000_100)
    journal.close()
    assert main(["recover", "--tracking-uri", sqlite_uri]) == 0
    line = capsys.readouterr().out.strip()
    run_id = line.split(":", 1)[0]
    assert f"created run from journal {pending.journal_id}; sent 1 epoch(s)" in line
    assert "run ended as FINISHED" in line
    run = mlflow.MlflowClient(sqlite_uri).get_run(run_id)
    assert run.info.run_name == "late" and run.info.status == "FINISHED"


def test_recover_every_journal_when_none_is_pending(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recover", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"runs": []}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["recover", "--run-id", "0123456789abcdef"], "no journal for run"),
        (["recover", "--run-id", "../etc/passwd"], "not an MLflow run id"),
    ],
)
def test_recover_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_unreachable_server_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow_green.tracking.journal import Journal
    from tests._servers import free_port

    run_id = "f" * 32
    journal = Journal.open(run_id, tracking_uri=f"http://127.0.0.1:{free_port()}")
    journal.epoch(0, {schema.ENERGY_KWH: 0.1}, 0)
    journal.close()
    assert main(["recover", "--run-id", run_id]) == 2
    err = capsys.readouterr().err
    assert f"run {run_id} not recovered" in err and err.count("\n") == 1
