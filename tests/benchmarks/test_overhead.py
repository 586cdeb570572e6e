"""The overhead benchmark's arithmetic, on made-up trials (no timing is asserted)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import overhead

EPOCHS = 6


def _trial(variant: str, *, loop_s: float = 3.0, hooks_s: float = 0.0, other_cpu_s: float = 0.01) -> dict[str, Any]:
    n = EPOCHS - 1
    return {
        "variant": variant,
        "work": [loop_s / n * 0.98] * n,
        "overlap": [0.0] * n,
        "hooks": [hooks_s / n] * n,
        "logs": [0.001] * n,
        "log_overlap": [False] * n,
        "loop_s": loop_s,
        "loop_cpu_s": loop_s,
        "outside_model_s": 0.06 + hooks_s,
        "other_threads_cpu_s": other_cpu_s,
        "run_s": loop_s + 0.3,
        "process_s": loop_s + 5.0,
        "epoch_median_s": loop_s / n,
        "epochs": EPOCHS,
    }


def _round(variants: tuple[str, ...]) -> list[dict[str, Any]]:
    costs = {
        "mlflow": {},
        "mlflow_green": {"hooks_s": 0.003, "other_cpu_s": 0.016},
        "codecarbon": {"hooks_s": 0.3, "other_cpu_s": 0.05},
        "mlflow_sysmetrics": {},
        "mlflow_sysmetrics_epoch": {"other_cpu_s": 0.07},
    }
    return [_trial(v, **costs[v]) for v in variants]


def _by_figure(rows: list[Any]) -> dict[str, Any]:
    return {row.name: row for row in rows}


def test_the_direct_bound_counts_hooks_and_extra_cpu_against_the_trials_own_loop() -> None:
    rows, extra = overhead._rows([_round(overhead.VARIANTS)] * 2, EPOCHS)
    figures = _by_figure(rows)
    bound = next(r for f, r in figures.items() if f.startswith("mlflow_green / mlflow, upper bound"))
    # 3 ms of hooks + 6 ms more CPU of other threads than the baseline, over a 3-s loop.
    assert bound.value == pytest.approx(3.0 / (3.0 - 0.009))
    like = next(r for f, r in figures.items() if "like for like" in f)
    per_epoch_peer = 3.0 / (3.0 - 0.06)
    assert like.value == pytest.approx(bound.value - per_epoch_peer)
    assert like.target is None  # context: the target's comparison stays against the default
    peers = next(r for f, r in figures.items() if "minus best peer" in f)
    assert peers.value == pytest.approx(bound.value - 1.0)  # default system metrics cost nothing here
    assert any("mlflow_sysmetrics_epoch" in line for line in extra)
    assert extra[-1] == f"2 rounds x {len(overhead.VARIANTS)} variants, {EPOCHS} epochs per trial"


def test_trials_saved_before_the_per_epoch_peer_existed_still_load() -> None:
    old = ("mlflow", "mlflow_green", "codecarbon", "mlflow_sysmetrics")
    rows, extra = overhead._rows([_round(old)] * 2, EPOCHS)
    figures = _by_figure(rows)
    assert not any("like for like" in f for f in figures)
    assert not any(overhead._LABELS["mlflow_sysmetrics_epoch"] in f for f in figures)
    assert extra[-1] == f"2 rounds x 4 variants, {EPOCHS} epochs per trial"


def test_calibration_sizes_the_workload_in_whole_batches() -> None:
    samples, measured = overhead.calibrate(target_s=0.05)
    assert measured > 0
    assert samples % overhead.BATCH == 0
    assert 8 * overhead.BATCH <= samples <= 8 * overhead.TRAIN_SAMPLES
