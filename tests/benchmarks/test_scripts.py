"""Smoke test: each benchmark script's ``--quick`` mode runs and prints its table.

No timing is asserted here: the figures are evidence for benchmarks/README.md, not a test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
HEADER = ("bench", "figure", "value", "target", "status")


def _run(script: str, *args: str, timeout: float = 280) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_GREEN_STRICT", "MLFLOW_GREEN_JOURNAL_DIR"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _assert_table(out: str, bench: str, figures: tuple[str, ...]) -> None:
    lines = out.splitlines()
    header = [i for i, line in enumerate(lines) if line.split()[:5] == list(HEADER)]
    assert header, out
    body = [line for line in lines[header[-1] + 2 :] if line.startswith(bench)]
    assert body, out
    for figure in figures:
        rows = [line for line in body if figure in line]
        assert rows, f"no row with {figure!r}:\n{out}"
        assert all(" n/a " not in f" {row} " for row in rows), out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "bench", "figures"),
    [
        (
            "overhead.py",
            "overhead",
            (
                "mlflow_green / mlflow, training loop",
                "CodeCarbon / mlflow",
                "MLflow system metrics / mlflow",
                "MLflow system metrics every 0.5 s / mlflow",
                "like for like",
                "whole process",
            ),
        ),
        ("epoch_boundary.py", "epoch boundary", ("GreenTracker.epoch_end, local SQLite: p50", "read-back", "p99")),
        ("leaderboard_scale.py", "leaderboard", ("leaderboard / mlflow.search_runs, 200 runs",)),
        ("memory.py", "memory", ("RSS growth over 300 tracked epochs",)),
        ("ledger_scale.py", "ledger", ("ledger by month / mlflow.search_runs, 200 runs",)),
        (
            "gate_latency.py",
            "gate latency",
            ("SQLite, 1 client: median gated / plain", "SQLite, 20 clients: gated p99"),
        ),
    ],
)
def test_quick_mode_prints_a_table(script: str, bench: str, figures: tuple[str, ...]) -> None:
    proc = _run(script, "--quick")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _assert_table(proc.stdout, bench, figures)
    # A target that is missed is said plainly, one line per figure, never silently.
    missed = [line for line in proc.stdout.splitlines() if "MISSED" in line and line.startswith(bench)]
    assert len([line for line in proc.stdout.splitlines() if line.startswith("MISSED:")]) == len(missed)


@pytest.mark.slow
def test_run_all_quick_subset_prints_combined_table() -> None:
    proc = _run("run_all.py", "--quick", "--only", "memory")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "machine:" in proc.stdout
    assert "== all benchmarks ==" in proc.stdout
    _assert_table(proc.stdout, "memory", ("RSS growth",))
    assert "total" in proc.stdout and ("every target met" in proc.stdout or "MISSED:" in proc.stdout)


def test_run_all_rejects_an_unknown_benchmark() -> None:
    proc = _run("run_all.py", "--only", "overhead,nonsense", timeout=60)
    assert proc.returncode == 2
    assert "unknown benchmark(s) nonsense" in proc.stderr


def _has_nvidia_gpu() -> bool:
    from mlflow_green.samplers import nvml_is_available

    return nvml_is_available()[0]


@pytest.mark.skipif(_has_nvidia_gpu(), reason="an NVIDIA GPU is present: gpu_accuracy.py would really run")
@pytest.mark.parametrize("args", [("--quick",), ()])
def test_gpu_accuracy_fails_clearly_without_a_gpu(args: tuple[str, ...]) -> None:
    proc = _run("gpu_accuracy.py", *args, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("gpu_accuracy: no NVIDIA GPU"), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""

