"""Assertions on a run's green metrics, shared by the tracking tests."""

from __future__ import annotations

import math
from typing import Any

from mlflow_green.tracking import schema

J_PER_KWH = 3.6e6


def history(client: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((int(m.step), float(m.value)) for m in client.get_metric_history(run_id, key))


def assert_every_epoch(client: Any, run_id: str, n: int, *, projected: bool = True) -> None:
    """Every schema key at steps 0..n-1 exactly once."""
    keys = list(schema.PER_EPOCH_KEYS) + list(schema.CUMULATIVE_KEYS)
    if projected:
        keys += [schema.PROJECTED_TOTAL_CO2EQ_KG, schema.PROJECTED_ENERGY_KWH]
    for key in keys:
        steps = [s for s, _ in history(client, run_id, key)]
        assert steps == list(range(n)), f"{key}: steps {steps}"


def assert_simulated_power(client: Any, run_id: str, watts: float, *, rel: float = 0.01) -> None:
    """GPU energy of each epoch = watts × epoch seconds within ``rel``."""
    energy = dict(history(client, run_id, schema.GPU_ENERGY_KWH))
    seconds = dict(history(client, run_id, schema.EPOCH_SECONDS))
    assert energy and energy.keys() == seconds.keys()
    for step, kwh in energy.items():
        expected = watts * seconds[step] / J_PER_KWH
        assert math.isclose(kwh, expected, rel_tol=rel), (step, kwh, expected)


def assert_cumulative(client: Any, run_id: str) -> None:
    per = dict(history(client, run_id, schema.TOTAL_CO2EQ_KG))
    cum = dict(history(client, run_id, schema.CUM_TOTAL_CO2EQ_KG))
    running = 0.0
    for step in sorted(per):
        running += per[step]
        assert math.isclose(cum[step], running, rel_tol=1e-9)
    energy = dict(history(client, run_id, schema.ENERGY_KWH))
    parts = [dict(history(client, run_id, k)) for k in (schema.GPU_ENERGY_KWH, schema.CPU_ENERGY_KWH, schema.RAM_ENERGY_KWH)]
    for step, kwh in energy.items():
        assert math.isclose(kwh, sum(p[step] for p in parts), rel_tol=1e-9)
