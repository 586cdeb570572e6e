"""Producers of the tracking contract for registry tests: runs with final cumulative green/ metrics.

They log what ``mlflow_green.autolog`` logs (cumulative metrics at steps 0..k and the provenance
tags), straight through ``MlflowClient``.
"""

from __future__ import annotations

import uuid
from typing import Any

from mlflow_green.tracking import schema


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def log_green_run(
    client: Any,
    experiment_id: str,
    total_co2eq_kg: float | None,
    *,
    energy_kwh: float | None = None,
    co2eq_kg: float | None = None,
    accuracy: float | None = None,
    steps: int = 3,
    status: str = "ok",
    method: str = "counter",
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """A finished run whose cumulative green/ metrics end at the given totals."""
    run_tags = dict(tags or {})
    if parent_run_id:
        run_tags["mlflow.parentRunId"] = parent_run_id
    from mlflow.entities import Metric, RunTag

    run = client.create_run(experiment_id, tags=run_tags)
    rid = run.info.run_id
    metrics: list[Metric] = []
    tags_out: list[RunTag] = []
    if total_co2eq_kg is not None:
        energy = energy_kwh if energy_kwh is not None else total_co2eq_kg * 2.5
        operational = co2eq_kg if co2eq_kg is not None else total_co2eq_kg * 0.8
        for step in range(steps):
            frac = (step + 1) / steps
            values = {
                schema.CUM_TOTAL_CO2EQ_KG: total_co2eq_kg * frac,
                schema.CUM_CO2EQ_KG: operational * frac,
                schema.CUM_EMBODIED_KG: (total_co2eq_kg - operational) * frac,
                schema.CUM_ENERGY_KWH: energy * frac,
            }
            if accuracy is not None and total_co2eq_kg > 0:
                values[schema.ACCURACY_PER_KG] = accuracy / (total_co2eq_kg * frac)
            metrics += [Metric(k, v, 1_700_000_000_000 + step, step) for k, v in values.items()]
        tags_out = [
            RunTag(schema.TAG_STATUS, status),
            RunTag(schema.TAG_METHOD_GPU, method),
            RunTag(schema.TAG_METHOD_CPU, "rapl" if method != "simulated" else "simulated"),
            RunTag(schema.TAG_METHOD_RAM, "estimate"),
        ]
        # One batch per run, as the tracking layer's logger sends one per epoch.
        client.log_batch(rid, metrics=metrics, tags=tags_out)
    client.set_terminated(rid)
    return rid


def register(client: Any, name: str, run_id: str, *, model_tags: dict[str, str] | None = None) -> str:
    """Register a version of ``name`` (created with ``model_tags`` if new) from ``run_id``."""
    try:
        client.get_registered_model(name)
    except Exception:
        client.create_registered_model(name, tags=model_tags or {})
    mv = client.create_model_version(name, f"runs:/{run_id}/model", run_id)
    return str(mv.version)
