"""Resumed runs: a plain loop continued in the same run, ``start=k``, and SIGTERM then resume."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import mlflow_green
from mlflow_green.tracking import schema
from mlflow_green.tracking.journal import journal_path, read_journal
from mlflow_green.tracking.resume import find_resume_point
from tests.tracking._checks import assert_cumulative, history

EPOCH_S = 0.03
OPTS: dict[str, Any] = {"sampler": "simulated:300", "country": "FRA", "silent": True, "report": False}


def _steps(client: Any, run_id: str, key: str) -> list[int]:
    return [s for s, _ in history(client, run_id, key)]


def _train(n: int, **kw: Any) -> list[int]:
    seen = []
    for epoch in mlflow_green.epochs(n, **OPTS, **kw):
        time.sleep(EPOCH_S)
        seen.append(epoch)
    return seen


def test_a_resumed_plain_loop_continues_steps_cumulative_figures_and_segments(mlflow_local: str) -> None:
    import mlflow

    client = mlflow.MlflowClient()
    with mlflow.start_run() as run:
        assert _train(2) == [0, 1]
    run_id = run.info.run_id
    first_cum = dict(history(client, run_id, schema.CUM_TOTAL_CO2EQ_KG))[1]

    with mlflow.start_run(run_id=run_id):
        assert _train(2) == [2, 3]  # two more epochs, numbered after the run's last one

    for key in (*schema.PER_EPOCH_KEYS, *schema.CUMULATIVE_KEYS, schema.SEGMENT):
        assert _steps(client, run_id, key) == [0, 1, 2, 3], key
    assert dict(history(client, run_id, schema.SEGMENT)) == {0: 0.0, 1: 0.0, 2: 1.0, 3: 1.0}
    assert_cumulative(client, run_id)  # cum = running sum over the whole run, not one segment's
    cum = dict(history(client, run_id, schema.CUM_TOTAL_CO2EQ_KG))
    assert cum[2] > first_cum and cum[3] > cum[2]
    assert client.get_run(run_id).data.tags[schema.TAG_SEGMENTS] == "0,2"
    # The projection of the second job knows the run's 4 epochs: after the last, the total.
    projected = dict(history(client, run_id, schema.PROJECTED_TOTAL_CO2EQ_KG))
    assert math.isclose(projected[3], cum[3], rel_tol=1e-9)

    # A third job, resuming at a checkpoint of epoch 3 of 6, redoes epoch 3: new steps, the
    # energy spent twice is counted twice, no step is logged twice.
    with mlflow.start_run(run_id=run_id):
        assert _train(6, start=3) == [3, 4, 5]
    assert _steps(client, run_id, schema.TOTAL_CO2EQ_KG) == [0, 1, 2, 3, 4, 5, 6]
    assert client.get_run(run_id).data.tags[schema.TAG_SEGMENTS] == "0,2,4"
    assert_cumulative(client, run_id)


def test_start_on_a_new_run_numbers_the_steps_from_start(mlflow_local: str) -> None:
    import mlflow

    client = mlflow.MlflowClient()
    with mlflow.start_run() as run:
        assert _train(4, start=2) == [2, 3]
    assert _steps(client, run.info.run_id, schema.TOTAL_CO2EQ_KG) == [2, 3]
    assert schema.TAG_SEGMENTS not in client.get_run(run.info.run_id).data.tags


@pytest.mark.parametrize("start", [-1, 4, 2.0, True, "1"])
def test_a_bad_start_is_one_clear_error(start: Any) -> None:
    with pytest.raises(mlflow_green.ConfigError, match="start"):
        mlflow_green.epochs(4, start=start)


def test_the_journal_of_a_killed_job_counts_and_its_unsent_epochs_are_sent_once(mlflow_local: str) -> None:
    import mlflow

    client = mlflow.MlflowClient()
    with mlflow.start_run() as run:
        _train(2)
    run_id = run.info.run_id
    # A killed job journaled epoch 2 (and sent nothing of it): the next job continues after it.
    state = read_journal(journal_path(run_id))
    ts, metrics = state.epochs[1]
    step2 = {k: v * 2 if k.startswith("green/cum") else v for k, v in metrics.items()}
    from mlflow_green.tracking.journal import Journal

    journal = Journal.open(run_id, tracking_uri=mlflow_local)
    journal.epoch(2, step2, ts + 1000)
    journal.close()
    point = find_resume_point({}, read_journal(journal_path(run_id)))
    assert point.next_epoch == 3 and set(point.unsent) == {2}

    with mlflow.start_run(run_id=run_id):
        _train(1)
    assert _steps(client, run_id, schema.TOTAL_CO2EQ_KG) == [0, 1, 2, 3]
    cum = dict(history(client, run_id, schema.CUM_TOTAL_CO2EQ_KG))
    assert math.isclose(cum[2], step2[schema.CUM_TOTAL_CO2EQ_KG])
    assert cum[3] > cum[2]
    # recover afterwards finds nothing to send.
    (result,) = mlflow_green.recover(run_id=run_id)
    assert result.sent_steps == [] and result.error is None


_KILLED_JOB = textwrap.dedent(
    """
    import sys, time, mlflow, mlflow_green
    mlflow.set_tracking_uri(sys.argv[1])
    run_id = sys.argv[2] if len(sys.argv) > 2 else None
    with mlflow.start_run(run_id=run_id) as run:
        print("RUN", run.info.run_id, flush=True)
        for epoch in mlflow_green.epochs(50, sampler="simulated:300", country="FRA",
                                         silent=True, report=False):
            print("EPOCH", epoch, flush=True)
            time.sleep(0.3)
    """
)


def _start_job(uri: str, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    script = tmp_path / "job.py"
    script.write_text(_KILLED_JOB)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, str(script), uri, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.slow
def test_sigterm_mid_epoch_ends_the_run_killed_and_a_resume_never_duplicates_a_step(
    mlflow_local: str, tmp_path: Path
) -> None:
    import mlflow

    job = _start_job(mlflow_local, tmp_path)
    assert job.stdout is not None
    run_id = ""
    for line in job.stdout:
        if line.startswith("RUN"):
            run_id = line.split()[1]
        if line.strip() == "EPOCH 2":
            time.sleep(0.1)  # mid-epoch
            break
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=120)
    assert job.returncode == -signal.SIGTERM, err  # as the default handler would end it

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    # Epochs 0, 1 and the partial epoch 2 are in the run, with their figures.
    assert _steps(client, run_id, schema.TOTAL_CO2EQ_KG) == [0, 1, 2]
    seconds = dict(history(client, run_id, schema.EPOCH_SECONDS))
    assert 0 < seconds[2] < seconds[1]
    state = read_journal(journal_path(run_id))
    assert state.ended and state.run_status == "KILLED" and not state.pending_steps

    job = _start_job(mlflow_local, tmp_path, run_id)
    assert job.stdout is not None
    for line in job.stdout:
        if line.strip() == "EPOCH 4":
            break
    job.send_signal(signal.SIGTERM)
    job.communicate(timeout=120)
    mlflow_green.recover(run_id=run_id)
    for key in (schema.TOTAL_CO2EQ_KG, schema.CUM_TOTAL_CO2EQ_KG, schema.SEGMENT):
        steps = _steps(client, run_id, key)
        assert steps == list(range(len(steps))) and len(steps) >= 5, (key, steps)
    assert dict(history(client, run_id, schema.SEGMENT))[3] == 1.0
    assert client.get_run(run_id).data.tags[schema.TAG_SEGMENTS] == "0,3"
    assert_cumulative(client, run_id)


def _epoch(total: float, cum: float, segment: float | None = None) -> dict[str, float]:
    out = {
        schema.TOTAL_CO2EQ_KG: total,
        schema.ENERGY_KWH: total * 10,
        schema.GPU_ENERGY_KWH: total * 10,
        schema.EPOCH_SECONDS: 1.0,
        schema.CUM_ENERGY_KWH: cum * 10,
        schema.CUM_CO2EQ_KG: cum,
        schema.CUM_EMBODIED_KG: 0.0,
    }
    if segment is not None:
        out[schema.SEGMENT] = segment
    return out


def test_the_resume_point_of_every_kind_of_history() -> None:
    # A run made before segments existed (no green/segment): one segment from step 0.
    old = {0: _epoch(1.0, 1.0), 1: _epoch(2.0, 3.0)}
    point = find_resume_point(old)
    assert (point.next_epoch, point.segment, point.segment_starts) == (2, 1, (0, 2))
    assert point.cum_co2eq_kg == 3.0 and point.totals_kg == (1.0, 2.0)
    assert point.sums["gpu_energy_kwh"] == 30.0 and point.sums["epoch_seconds"] == 2.0
    # start beyond the history: a gap, never a step logged twice; start inside it: continue.
    assert find_resume_point(old, start=5).next_epoch == 5
    assert find_resume_point(old, start=1).next_epoch == 2
    # Two earlier segments.
    two = {0: _epoch(1.0, 1.0, 0), 1: _epoch(1.0, 2.0, 1), 2: _epoch(1.0, 3.0, 1)}
    point = find_resume_point(two)
    assert (point.segment, point.segment_starts) == (2, (0, 1, 3))
    # Nothing logged: a new run, at start or 0.
    assert find_resume_point({}) == find_resume_point({}, start=0)
    assert find_resume_point({}, start=3).next_epoch == 3 and not find_resume_point({}, start=3).resumed
