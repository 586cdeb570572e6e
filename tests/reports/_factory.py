"""Runs logged the way mlflow_green's tracker logs them: per-epoch and cumulative green/ metrics.

The cumulative keys' last step holds the run totals, which is what the reports read.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from mlflow.entities import Metric, Param, RunTag

from mlflow_green.tracking import schema


def log_green_run(
    client: Any,
    experiment_id: str,
    name: str,
    *,
    accuracy: float | None,
    total_kg: float,
    embodied_kg: float,
    epochs: int = 3,
    accuracy_key: str = "eval_accuracy",
    tags: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    extra_metrics: dict[str, float] | None = None,
) -> str:
    """Create a finished run whose epochs add up to ``total_kg`` (``embodied_kg`` of it embodied)."""
    run = client.create_run(experiment_id, run_name=name)
    ts = int(time.time() * 1000)
    operational = total_kg - embodied_kg
    metrics = []
    for step in range(epochs):
        frac = (step + 1) / epochs
        energy = operational / 0.4 / epochs  # 400 g/kWh
        metrics += [
            Metric(schema.ENERGY_KWH, energy, ts, step),
            Metric(schema.CO2EQ_KG, operational / epochs, ts, step),
            Metric(schema.EMBODIED_KG, embodied_kg / epochs, ts, step),
            Metric(schema.TOTAL_CO2EQ_KG, total_kg / epochs, ts, step),
            Metric(schema.INTENSITY_G_PER_KWH, 400.0, ts, step),
            Metric(schema.CUM_ENERGY_KWH, energy * (step + 1), ts, step),
            Metric(schema.CUM_CO2EQ_KG, operational * frac, ts, step),
            Metric(schema.CUM_EMBODIED_KG, embodied_kg * frac, ts, step),
            Metric(schema.CUM_TOTAL_CO2EQ_KG, total_kg * frac, ts, step),
            Metric(schema.EMBODIED_SHARE, embodied_kg / total_kg, ts, step),
        ]
        if accuracy is not None:
            acc = accuracy * (0.8 + 0.2 * frac)  # improves to `accuracy` at the last epoch
            metrics.append(Metric(accuracy_key, acc, ts, step))
            metrics.append(Metric(schema.ACCURACY_PER_KG, acc / (total_kg * frac), ts, step))
    for key, value in (extra_metrics or {}).items():
        metrics.append(Metric(key, value, ts, epochs - 1))
    all_tags = {
        schema.TAG_VERSION: "0.1.0",
        schema.TAG_LOCATION: "FRA",
        schema.TAG_INTENSITY_SOURCE: "fixed",
        schema.TAG_METHOD_GPU: "simulated",
        schema.TAG_METHOD_CPU: "simulated",
        schema.TAG_METHOD_RAM: "estimate",
        schema.TAG_GPU_MODEL: "NVIDIA A100-SXM4-80GB",
        schema.TAG_GPU_COUNT: "2",
        schema.TAG_STATUS: "ok",
        **(tags or {}),
    }
    client.log_batch(
        run.info.run_id,
        metrics=metrics,
        params=[Param(k, v) for k, v in (params or {}).items()],
        tags=[RunTag(k, v) for k, v in all_tags.items()],
    )
    client.set_terminated(run.info.run_id)
    return run.info.run_id


# name, accuracy, total kg, embodied kg: two frontier corners, a dominated run, a tie.
DEMO_RUNS: list[tuple[str, float, float, float]] = [
    ("bert-small", 0.82, 0.05, 0.01),
    ("bert-base", 0.88, 0.4, 0.05),
    ("bert-large", 0.91, 3.0, 0.3),
    ("bert-base-long", 0.86, 0.9, 0.1),  # dominated by bert-base
    ("distil-fast", 0.80, 0.05, 0.01),  # dominated by bert-small (same cost, less accurate)
]
DEMO_FRONTIER = {"bert-small", "bert-base", "bert-large"}


def make_demo_experiment(client: Any, name: str = "demo") -> str:
    experiment_id = client.create_experiment(name)
    for run_name, acc, total, emb in DEMO_RUNS:
        log_green_run(
            client, experiment_id, run_name, accuracy=acc, total_kg=total, embodied_kg=emb
        )
    plain = client.create_run(experiment_id, run_name="not-measured")
    client.log_metric(plain.info.run_id, "accuracy", 0.5)
    return experiment_id


@pytest.fixture(scope="session")
def green_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the session (migrations are slow), holding the ``demo`` experiment.

    Tests that need their own runs create uniquely named experiments in it.
    """
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('green-db') / 'mlflow.db'}"
    make_demo_experiment(MlflowClient(uri))
    return uri


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
