"""Faults around the tracking server and the training process, against a real ``mlflow server``.

- the server down when training starts, back later, then ``mlflow-green recover``;
- the server killed mid-run and restarted while training goes on;
- the training process killed with SIGKILL mid-epoch, then ``mlflow-green recover`` (the CLI).

These check the production degrade path, so ``MLFLOW_GREEN_STRICT`` is unset for the code
under test (the in-process test deletes it; the subprocesses get an environment without it).
For each: training finishes (or, for SIGKILL, its completed epochs are recovered), every
(key, step) record is in MLflow exactly once, and ``green.status`` says what happened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import mlflow_green
from mlflow_green.tracking import schema
from mlflow_green.tracking.journal import journal_path, read_journal
from tests._servers import MlflowServer
from tests.reliability._tally import TALLY, Tally
from tests.reliability._util import (
    EPOCH_KEYS,
    REPO_ROOT,
    CliResult,
    child_env,
    lost_and_duplicated,
    metric_steps,
    run_cli,
    run_tags,
)

pytestmark = pytest.mark.slow

# The trainer imports mlflow and mlflow_green (several seconds on a loaded machine), then
# trains a few 0.05 s epochs: anything near this limit is a hang, not slowness.
TRAINER_TIMEOUT_S = 60.0


@dataclass
class Trainer:
    proc: subprocess.Popen[bytes]
    ready: Path
    out: Path
    log: Path
    timed_out: bool = False

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def result(self) -> dict[str, object] | None:
        return json.loads(self.out.read_text()) if self.out.exists() else None


def _trainer(
    tmp: Path, server_url: str, *args: str, wait: float | None = TRAINER_TIMEOUT_S
) -> Trainer:
    tmp.mkdir(parents=True, exist_ok=True)
    ready, out, log = tmp / "ready.json", tmp / "out.json", tmp / "trainer.log"
    env = child_env(
        {
            "MLFLOW_TRACKING_URI": server_url,
            "MLFLOW_GREEN_JOURNAL_DIR": str(tmp / "journal"),
            "MLFLOW_GREEN_STRICT": None,  # the production path: degrade, never raise
        }
    )
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability._trainer", "--ready-file", str(ready), "--out", str(out), *args],
            cwd=str(REPO_ROOT),
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    trainer = Trainer(proc, ready, out, log)
    if wait is not None:
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            trainer.timed_out = True
    return trainer


def _records(tally: Tally, what: str, url: str, run_id: str, n: int) -> dict[str, str]:
    steps = {key: metric_steps(url, run_id, key) for key in EPOCH_KEYS}
    lost, duplicated, problems = lost_and_duplicated(steps, range(n))
    tally.records(what, lost=lost, duplicated=duplicated)
    return problems


# -- one outage: the server killed mid-run, and a training started while it is down ----------
#
# Restarting a server costs seconds (tens on a loaded machine), so one outage serves both cases:
# run A is mid-training when the server is SIGKILLed; run B (a subprocess) starts while it is
# down; then the server comes back, A goes on to the end, and `mlflow-green recover` runs.


@dataclass
class Outage:
    run_a: str
    status_a: str
    seconds_for_epochs_while_down: float
    trainer_b: Trainer
    recover: CliResult
    second_recover: list[dict[str, object]]


@pytest.fixture(scope="module")
def outage(fault_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    import mlflow

    tmp = tmp_path_factory.mktemp("outage")
    journal = tmp / "journal"
    if fault_server.process.poll() is not None:
        fault_server.restart()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_GREEN_STRICT", raising=False)  # the production path
        mp.setenv("MLFLOW_GREEN_JOURNAL_DIR", str(journal))
        mp.setenv("MLFLOW_TRACKING_URI", fault_server.url)
        mlflow.set_tracking_uri(fault_server.url)
        run_a = mlflow.MlflowClient(fault_server.url).create_run("0").info.run_id
        tracker = mlflow_green.GreenTracker(
            total_epochs=6, run_id=run_a, sampler="simulated:300", intensity=250, silent=True
        )
        with tracker:
            for _ in range(2):
                tracker.epoch_end()
            assert tracker.sender.flush(30)
            TALLY.fault("tracking server SIGKILLed mid-run")
            fault_server.kill()
            try:
                TALLY.fault("tracking server down when training starts")
                trainer_b = _trainer(tmp / "b", fault_server.url, "--epochs", "3", wait=None)
                started = time.monotonic()
                for _ in range(2):
                    tracker.epoch_end()
                while_down = time.monotonic() - started
                # Three 0.05 s epochs: 30 s is ample for the imports and a quick give-up.
                try:
                    trainer_b.proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(trainer_b.proc.pid, signal.SIGKILL)
                    trainer_b.proc.wait(30)
                    trainer_b.timed_out = True
            finally:
                fault_server.restart()
            for _ in range(2):
                tracker.epoch_end()
        env = {"MLFLOW_TRACKING_URI": fault_server.url}
        recovered = run_cli("recover", "--journal-dir", str(tmp / "b" / "journal"), "--json", env=env)
        from mlflow_green.tracking.recover import recover

        again = [r.to_dict() for r in recover(journal_dir=journal)]
        again += [r.to_dict() for r in recover(journal_dir=tmp / "b" / "journal")]
    mlflow.set_tracking_uri(None)  # module state: don't hand the server's URI on to other modules
    yield Outage(run_a, tracker.status, while_down, trainer_b, recovered, again)


def test_training_is_not_held_up_by_a_dead_server(outage: Outage) -> None:
    assert outage.seconds_for_epochs_while_down < 5.0


def test_server_killed_mid_run_no_record_lost(
    outage: Outage, fault_server: MlflowServer, tally: Tally
) -> None:
    # The live logger sends the backlog once the server is back: no `recover` needed.
    problems = _records(tally, "server killed mid-run and restarted", fault_server.url, outage.run_a, 6)
    assert not problems, problems
    tags = run_tags(fault_server.url, outage.run_a)
    assert tags[schema.TAG_STATUS] == outage.status_a
    assert tags[schema.TAG_METHOD_GPU] == "simulated"


def test_server_down_at_start_training_finishes(outage: Outage) -> None:
    trainer = outage.trainer_b
    assert not trainer.timed_out, f"training hung with the server down:\n{trainer.output}"
    assert trainer.proc.returncode == 0, trainer.output
    result = trainer.result()
    assert result is not None and result["epochs"] == 3, trainer.output


def test_server_down_at_start_epochs_recovered(
    outage: Outage, fault_server: MlflowServer, tally: Tally
) -> None:
    result = outage.trainer_b.result()
    assert result is not None, outage.trainer_b.output
    assert outage.recover.returncode == 0, str(outage.recover)
    # The run may only come into existence at recovery (its id is then the server's, not the
    # journal's placeholder): take it from what `recover --json` reports.
    runs = json.loads(outage.recover.stdout)["runs"]
    assert len(runs) == 1, runs
    run_id = str(runs[0]["run_id"])
    problems = _records(tally, "server down at start, then recover", fault_server.url, run_id, 3)
    assert not problems, problems
    status = run_tags(fault_server.url, run_id).get(schema.TAG_STATUS, "")
    assert status.startswith("degraded"), status


def test_recover_after_an_outage_is_idempotent(outage: Outage) -> None:
    for run in outage.second_recover:
        if run["error"] is None:
            assert run["sent_steps"] == [] and run["metrics_sent"] == 0, run


# -- the training process killed with SIGKILL mid-epoch -----------------------------------------


@dataclass
class Killed:
    run_id: str
    completed: int
    journal_dir: Path
    journaled_steps: list[int]
    first: CliResult
    second: list[dict[str, object]]


@pytest.fixture(scope="module")
def killed_trainer(
    fault_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Killed]:
    if fault_server.process.poll() is not None:
        fault_server.restart()
    tmp = tmp_path_factory.mktemp("sigkill")
    # log_every_n_epochs=100: the completed epochs are only in the journal when the kill comes.
    trainer = _trainer(
        tmp,
        fault_server.url,
        "--epochs", "8", "--ready-after", "3", "--hang", "--log-every", "100",
        wait=None,
    )
    proc = trainer.proc
    deadline = time.monotonic() + TRAINER_TIMEOUT_S
    while not trainer.ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            pytest.fail(f"the trainer never reached epoch 3:\n{trainer.output}")
        time.sleep(0.05)
    info = json.loads(trainer.ready.read_text())
    TALLY.fault("training process SIGKILLed mid-epoch")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    journal_dir = tmp / "journal"
    journaled = sorted(read_journal(journal_path(info["run_id"], journal_dir)).epochs)
    env = {"MLFLOW_TRACKING_URI": fault_server.url}
    first = run_cli("recover", "--journal-dir", str(journal_dir), "--json", env=env)
    from mlflow_green.tracking.recover import recover

    # The second pass (idempotence) in-process: the CLI path was just exercised.
    second = [r.to_dict() for r in recover(journal_dir=journal_dir)]
    yield Killed(info["run_id"], int(info["completed_epochs"]), journal_dir, journaled, first, second)


def test_sigkill_completed_epochs_are_journaled(killed_trainer: Killed) -> None:
    # A killed process loses at most the epoch in progress.
    assert killed_trainer.journaled_steps == list(range(killed_trainer.completed))


def test_sigkill_then_recover_no_epoch_lost_or_duplicated(
    killed_trainer: Killed, fault_server: MlflowServer, tally: Tally
) -> None:
    first, second = killed_trainer.first, killed_trainer.second
    assert first.returncode == 0, str(first)
    sent = json.loads(first.stdout)["runs"][0]
    assert sent["sent_steps"] == list(range(killed_trainer.completed))
    again = second[0]
    assert again["sent_steps"] == [] and again["metrics_sent"] == 0  # idempotent
    problems = _records(
        tally, "training SIGKILLed, then recover twice", fault_server.url, killed_trainer.run_id,
        killed_trainer.completed,
    )
    assert not problems, problems


def test_sigkill_status_says_the_run_was_interrupted(
    killed_trainer: Killed, fault_server: MlflowServer
) -> None:
    tags = run_tags(fault_server.url, killed_trainer.run_id)
    status = tags.get(schema.TAG_STATUS, "")
    assert status.startswith("degraded"), f"green.status={status!r} after a SIGKILL and recover"
    assert "interrupt" in status or "killed" in status or "recovered" in status, status
