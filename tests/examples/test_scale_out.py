"""Scale-out engines as users launch them: Ray Train, ``accelerate launch``, FSDP under torchrun.

Each worker simulates its own 300 W GPU (``MLFLOW_GREEN_SAMPLER=simulated:300``), so the one
MLflow run's GPU power says how many workers were summed into it: 600 W for two.
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import pytest

from mlflow_green.tracking import schema
from tests._servers import free_port
from tests.examples._helpers import BIN, EXAMPLES, run_example, runs_of

EXPERIMENT = "mlflow-green-examples"
PY = sys.executable
EPOCHS = 2


def _one_run_of_two_workers(sqlite_uri: str) -> object:
    from mlflow import MlflowClient

    (run,) = runs_of(sqlite_uri, EXPERIMENT)  # one run for the job, whatever the workers
    client = MlflowClient(sqlite_uri)
    for key in (schema.ENERGY_KWH, schema.CO2EQ_KG, schema.CUM_TOTAL_CO2EQ_KG, schema.CPU_ENERGY_KWH):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert sorted(steps) == list(range(EPOCHS)), (key, steps)
    for m in client.get_metric_history(run.info.run_id, schema.GPU_POWER_W):
        assert math.isclose(m.value, 600.0, rel_tol=0.01), (m.step, m.value)
    tags = run.data.tags
    assert tags[schema.TAG_GPU_COUNT] == "2"
    assert tags[schema.TAG_METHOD_GPU] == "simulated"
    assert tags[schema.TAG_STATUS] == schema.STATUS_OK, tags[schema.TAG_STATUS]
    assert run.data.metrics[schema.CPU_ENERGY_KWH] > 0
    return run


@pytest.mark.slow
def test_ray_train_two_cpu_workers_make_one_run(sqlite_uri: str, tmp_path: Path) -> None:
    pytest.importorskip("ray.train.torch")
    out = run_example(
        [PY, str(EXAMPLES / "ray_train.py"), "--workers", "2", "--quick"],
        sqlite_uri, tmp_path, timeout=420,
        MLFLOW_GREEN_SAMPLER="simulated:300", RAY_DEDUP_LOGS="0", RAY_USAGE_STATS_ENABLED="0",
    )
    run = _one_run_of_two_workers(sqlite_uri)
    assert run.data.params["workers"] == "2"  # type: ignore[attr-defined]
    assert f"run {run.info.run_id}: 2 workers" in out.stdout + out.stderr  # type: ignore[attr-defined]


@pytest.mark.slow
def test_accelerate_launch_two_processes_make_one_run(sqlite_uri: str, tmp_path: Path) -> None:
    pytest.importorskip("accelerate")
    launcher = shutil.which("accelerate", path=str(BIN)) or "accelerate"
    out = run_example(
        [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
         str(EXAMPLES / "accelerate_train.py"), "--quick"],
        sqlite_uri, tmp_path, MLFLOW_GREEN_SAMPLER="simulated:300",
    )
    assert "(2 processes)" in out.stdout
    run = _one_run_of_two_workers(sqlite_uri)
    assert run.data.params["num_processes"] == "2"  # type: ignore[attr-defined]
