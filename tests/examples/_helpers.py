"""Run an example as a user would (a subprocess) against a temporary SQLite store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
BIN = Path(sys.executable).parent


def example_env(tracking_uri: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    # A 2-core machine shared with the rest of the suite: one BLAS thread per process.
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


def run_example(
    argv: Sequence[str], tracking_uri: str, cwd: Path, *, timeout: float = 300, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(argv),
        cwd=cwd,
        env=example_env(tracking_uri, **extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, argv))} exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
    )
    return result


def runs_of(tracking_uri: str, experiment: str) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment!r} was not created"
    return list(client.search_runs([exp.experiment_id], max_results=1000))


def assert_green_run(tracking_uri: str, run: Any, epochs: int) -> None:
    """The run has every per-epoch green/ metric at steps 0..epochs-1 and honest tags."""
    from mlflow import MlflowClient

    from mlflow_green.tracking import schema

    client = MlflowClient(tracking_uri)
    for key in (*schema.PER_EPOCH_KEYS, *schema.CUMULATIVE_KEYS):
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
        assert steps == list(range(epochs)), f"{key}: steps {steps}, expected 0..{epochs - 1}"
    metrics = run.data.metrics
    assert metrics[schema.CUM_TOTAL_CO2EQ_KG] > 0
    assert metrics[schema.CUM_ENERGY_KWH] > 0
    tags = run.data.tags
    # Examples never choose a sampler: what they report is this machine, measured or estimated.
    assert tags[schema.TAG_METHOD_CPU] in {"rapl", "estimate", "share:cpu-time"}, tags[schema.TAG_METHOD_CPU]
    assert tags[schema.TAG_METHOD_GPU] in {"counter", "power", "none"}, tags[schema.TAG_METHOD_GPU]
    assert tags[schema.TAG_STATUS] == schema.STATUS_OK, tags[schema.TAG_STATUS]
    assert tags[schema.TAG_VERSION]
