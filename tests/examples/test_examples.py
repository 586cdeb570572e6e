"""Each example, run in its quick mode as a subprocess against a temporary SQLite store."""

from __future__ import annotations

import ast
import math
import sys
from pathlib import Path

import pytest

from mlflow_green.tracking import schema
from tests.examples._helpers import EXAMPLES, assert_green_run, run_example, runs_of

EXPERIMENT = "mlflow-green-examples"
PY = sys.executable


def test_plain_pytorch(sqlite_uri: str, tmp_path: Path) -> None:
    out = run_example([PY, str(EXAMPLES / "plain_pytorch.py"), "--quick"], sqlite_uri, tmp_path)
    (run,) = runs_of(sqlite_uri, EXPERIMENT)
    assert run.info.run_id in out.stdout
    assert_green_run(sqlite_uri, run, epochs=2)
    m = run.data.metrics
    assert math.isclose(m[schema.ACCURACY_PER_KG], m["val_accuracy"] / m[schema.CUM_TOTAL_CO2EQ_KG], rel_tol=1e-6)


def test_lightning(sqlite_uri: str, tmp_path: Path) -> None:
    run_example([PY, str(EXAMPLES / "lightning_example.py"), "--quick"], sqlite_uri, tmp_path)
    # Lightning's MLFlowLogger and mlflow_green share one run.
    (run,) = runs_of(sqlite_uri, EXPERIMENT)
    assert_green_run(sqlite_uri, run, epochs=2)
    assert "val_acc" in run.data.metrics
    assert run.data.tags[schema.TAG_ACCURACY_METRIC] == "val_acc"


@pytest.mark.slow
def test_hf_trainer(sqlite_uri: str, tmp_path: Path) -> None:
    run_example([PY, str(EXAMPLES / "hf_trainer.py"), "--quick"], sqlite_uri, tmp_path)
    # Hugging Face's MLflowCallback owns the run; the green/ metrics are in that same run.
    (run,) = runs_of(sqlite_uri, EXPERIMENT)
    assert_green_run(sqlite_uri, run, epochs=2)
    assert "eval_accuracy" in run.data.metrics
    assert run.data.tags[schema.TAG_ACCURACY_METRIC] == "eval_accuracy"


@pytest.mark.slow
def test_ddp_torchrun_two_processes(sqlite_uri: str, tmp_path: Path) -> None:
    out = run_example(
        [PY, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(EXAMPLES / "ddp_torchrun.py"), "--quick"],
        sqlite_uri,
        tmp_path,
    )
    assert "(2 processes)" in out.stdout
    # Two processes, one MLflow run, written by global rank 0.
    (run,) = runs_of(sqlite_uri, EXPERIMENT)
    assert run.data.params["world_size"] == "2"
    assert_green_run(sqlite_uri, run, epochs=2)


def test_sweep_and_leaderboard(sqlite_uri: str, tmp_path: Path) -> None:
    out = run_example([PY, str(EXAMPLES / "sweep.py"), "--quick"], sqlite_uri, tmp_path)
    runs = runs_of(sqlite_uri, "mlflow-green-sweep")
    (parent,) = [r for r in runs if r.info.run_name == "sweep"]
    trials = [r for r in runs if r is not parent]
    assert len(trials) == 3
    for trial in trials:
        assert trial.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert_green_run(sqlite_uri, trial, epochs=2)
    # The leaderboard printed at the end names every trial.
    leaderboard = out.stdout.split("$ mlflow-green leaderboard", 1)[1]
    for trial in trials:
        assert trial.info.run_name in leaderboard or trial.info.run_id[:8] in leaderboard


def test_inference_sci(sqlite_uri: str, tmp_path: Path) -> None:
    # A fixed intensity makes the SCI checkable from the logged energy: SCI >= E × I / R.
    run_example(
        [PY, str(EXAMPLES / "inference_sci.py"), "--quick"], sqlite_uri, tmp_path,
        MLFLOW_GREEN_INTENSITY="400", MLFLOW_GREEN_PUE="1.2",
    )
    (run,) = runs_of(sqlite_uri, EXPERIMENT)
    assert_green_run(sqlite_uri, run, epochs=3)
    m = run.data.metrics
    requests = int(run.data.tags["green.inference.requests"])
    operational_g_per_1k = m["green/inference_energy_kwh"] * 1.2 * 400 / (requests / 1000)
    assert m["green/inference_energy_kwh"] > 0
    # The rest of the SCI is the embodied share M, never negative.
    assert m["green/sci_g_per_1k_requests"] >= operational_g_per_1k > 0
    g_per_request = m["green/sci_g_per_1k_requests"] / 1000
    assert math.isclose(m["green/green_score"], m["val_accuracy"] / g_per_request * 1000, rel_tol=1e-6)
    assert run.data.tags["green.inference.intensity_source"].startswith("fixed")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_examples_never_pick_a_sampler(path: Path) -> None:
    """By default an example measures this machine honestly; no simulated numbers sneak in."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in {"sampler", "spec"}:
            assert not isinstance(node.value, ast.Constant), f"{path.name}:{node.value.lineno} sets a sampler"
        if isinstance(node, ast.Constant) and node.value == "MLFLOW_GREEN_SAMPLER":
            pytest.fail(f"{path.name}:{node.lineno} sets MLFLOW_GREEN_SAMPLER")
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "from_spec":
            assert not node.args, f"{path.name}:{node.lineno} passes a sampler spec"
