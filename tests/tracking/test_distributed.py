"""torch.distributed: two gloo processes, each simulating its own GPU, one MLflow run."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlflow_green.tracking import schema
from mlflow_green.tracking.distributed import DistInfo, dist_info
from tests._servers import free_port
from tests.tracking._checks import assert_every_epoch, history

EPOCHS = 2


@pytest.mark.slow
def test_two_processes_sum_their_gpus_into_one_run(tmp_path: Path, sqlite_uri: str) -> None:
    pytest.importorskip("torch.distributed")
    import mlflow

    env = dict(os.environ)
    env.update(
        MLFLOW_TRACKING_URI=sqlite_uri,
        MLFLOW_GREEN_SAMPLER="simulated:300",
        MLFLOW_GREEN_JOURNAL_DIR=str(tmp_path / "journal"),
        OMP_NUM_THREADS="1",
    )
    script = Path(__file__).with_name("_dist_train.py")
    repo = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = str(repo) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-addr", "127.0.0.1", "--master-port", str(free_port()), str(script), str(EPOCHS)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    client = mlflow.MlflowClient(sqlite_uri)
    runs = client.search_runs(["0"])
    assert len(runs) == 1, "global rank 0 alone logs"
    run_id = runs[0].info.run_id
    assert_every_epoch(client, run_id, EPOCHS)
    for step, watts in history(client, run_id, schema.GPU_POWER_W):
        assert math.isclose(watts, 600.0, rel_tol=0.01), (step, watts)
    seconds = dict(history(client, run_id, schema.EPOCH_SECONDS))
    for step, kwh in history(client, run_id, schema.GPU_ENERGY_KWH):
        # Each rank's window differs from rank 0's by the collective's skew (milliseconds).
        assert math.isclose(kwh * 3.6e6, 600.0 * seconds[step], rel_tol=0.03), step
    for rank in (0, 1):
        per_rank = history(client, run_id, schema.gpu_device_energy_key(rank))
        assert [s for s, _ in per_rank] == list(range(EPOCHS))
    tags = runs[0].data.tags
    assert tags[schema.TAG_GPU_COUNT] == "2"
    assert tags[schema.TAG_METHOD_GPU] == "simulated"
    # CPU and RAM measured once on the node, not once per process.
    assert tags[schema.TAG_METHOD_CPU] != "none"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, DistInfo(1, 0, 0, False)),
        ({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}, DistInfo(4, 3, 1, False)),
        ({"WORLD_SIZE": "x"}, DistInfo(1, 0, 0, False)),
    ],
)
def test_dist_info_from_environment(
    env: dict[str, str], expected: DistInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert dist_info() == expected
