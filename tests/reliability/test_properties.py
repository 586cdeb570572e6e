"""Property-based tests (hypothesis) of the accounting and of the tracking record math.

For any sequence of epochs: run totals equal the sum of the epochs, no value is negative,
cumulative metrics never decrease, the embodied share stays in [0, 1], and a projection of the
whole run is never below what has already been spent. Unit conversions round-trip. Journaled
metrics read back exactly. Raw hardware counters (resets, wraps) never give negative energy.
Example counts are modest so the suite stays fast; ``deadline=None`` because the machine is shared.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlflow_green.accounting import (
    accuracy_per_kg,
    embodied_config,
    embodied_kg,
    inference_energy_kwh,
    operational_kg,
    project_total,
    sci,
)
from mlflow_green.samplers import ComponentEnergy
from mlflow_green.samplers._counter import CounterTracker
from mlflow_green.tracking.record import EpochEnergy, Ledger

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
J_PER_KWH = 3.6e6

kwh = st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False)
seconds = st.floats(min_value=0.001, max_value=86_400.0, allow_nan=False, allow_infinity=False)
pues = st.floats(min_value=1.0, max_value=3.0, allow_nan=False)
intensities = st.floats(min_value=0.0, max_value=2_000.0, allow_nan=False)
gpu_names = st.sampled_from([None, "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB", "Tesla T4", "Some Unknown GPU"])


@st.composite
def epochs(draw: st.DrawFn) -> list[tuple[EpochEnergy, float, float | None]]:
    n = draw(st.integers(min_value=1, max_value=12))
    out = []
    start = 1.7e9
    for _ in range(n):
        duration = draw(seconds)
        energy = EpochEnergy(
            start_unix_s=start,
            duration_s=duration,
            gpu_energy_kwh=draw(kwh),
            cpu_energy_kwh=draw(kwh),
            ram_energy_kwh=draw(kwh),
            gpu_count=draw(st.integers(min_value=0, max_value=8)),
        )
        start += duration
        accuracy = draw(st.none() | st.floats(min_value=0.0, max_value=1.0))
        out.append((energy, draw(intensities), accuracy))
    return out


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@SETTINGS
@given(run=epochs(), pue=pues, gpu=gpu_names, total_extra=st.integers(min_value=0, max_value=20))
def test_ledger_totals_are_the_sum_of_epochs(
    run: list[tuple[EpochEnergy, float, float | None]], pue: float, gpu: str | None, total_extra: int
) -> None:
    gpu_count = max((e.gpu_count for e, _, _ in run), default=0)
    config = embodied_config(gpu, gpu_count=gpu_count if gpu else 0)
    total_epochs = len(run) + total_extra
    ledger = Ledger(pue=pue, embodied=config, total_epochs=total_epochs)
    records = [ledger.add(e, intensity_g_per_kwh=i, accuracy=a) for e, i, a in run]

    last = records[-1]
    assert _close(last.cum_energy_kwh, sum(r.energy_kwh for r in records))
    assert _close(last.cum_co2eq_kg, sum(r.co2eq_kg for r in records))
    assert _close(last.cum_embodied_kg, sum(r.embodied_kg for r in records))
    assert _close(last.cum_total_co2eq_kg, sum(r.total_co2eq_kg for r in records))
    totals = ledger.totals()
    assert _close(totals["total_co2eq_kg"], last.cum_total_co2eq_kg)
    assert _close(totals["energy_kwh"], last.cum_energy_kwh)
    assert totals["epochs"] == len(records)

    previous = None
    for r in records:
        assert _close(r.total_co2eq_kg, r.co2eq_kg + r.embodied_kg)
        assert _close(r.energy_kwh, r.gpu_energy_kwh + r.cpu_energy_kwh + r.ram_energy_kwh)
        assert _close(r.co2eq_kg, r.energy_kwh * pue * r.intensity_g_per_kwh / 1000.0)
        for key, value in r.green_metrics().items():
            assert value >= 0 and not math.isnan(value), (key, value)
        assert 0.0 <= r.embodied_share <= 1.0
        if previous is not None:
            for key in ("cum_energy_kwh", "cum_co2eq_kg", "cum_embodied_kg", "cum_total_co2eq_kg"):
                assert getattr(r, key) >= getattr(previous, key), key
        if r.accuracy_per_kg is not None:
            assert _close(r.accuracy_per_kg, (r.accuracy or 0.0) / r.cum_total_co2eq_kg)
        if r.projected_total_co2eq_kg is not None:
            # The run cannot end up cheaper than what it has already spent.
            assert r.projected_total_co2eq_kg >= r.cum_total_co2eq_kg * (1 - 1e-9), (
                r.epoch, r.projected_total_co2eq_kg, r.cum_total_co2eq_kg,
            )
            assert r.projected_energy_kwh is not None
            assert r.projected_energy_kwh >= r.cum_energy_kwh * (1 - 1e-9)
        previous = r
    if total_extra == 0 and last.projected_total_co2eq_kg is not None:
        assert math.isclose(last.projected_total_co2eq_kg, last.cum_total_co2eq_kg, rel_tol=1e-6, abs_tol=1e-12)


@SETTINGS
@given(values=st.lists(st.floats(min_value=0.0, max_value=1e3), min_size=1, max_size=15), extra=st.integers(0, 30))
def test_projection_bounds(values: list[float], extra: int) -> None:
    projection = project_total(values, len(values) + extra)
    spent = sum(values)
    assert projection.value >= spent * (1 - 1e-9)
    assert projection.low <= projection.value * (1 + 1e-9) <= projection.high * (1 + 1e-9) + 1e-12
    assert projection.low >= spent * (1 - 1e-9)


@SETTINGS
@given(energy=kwh, pue=pues, intensity=intensities, k=st.floats(min_value=0.0, max_value=100.0))
def test_operational_is_linear_and_non_negative(energy: float, pue: float, intensity: float, k: float) -> None:
    value = operational_kg(energy, pue, intensity)
    assert value >= 0
    assert _close(value, energy * pue * intensity / 1000.0)
    assert math.isclose(operational_kg(energy * k, pue, intensity), value * k, rel_tol=1e-9, abs_tol=1e-9)


@SETTINGS
@given(gpu=gpu_names, count=st.integers(1, 8), d1=seconds, d2=seconds)
def test_embodied_is_non_negative_additive_and_bounded_by_the_node(gpu: str | None, count: int, d1: float, d2: float) -> None:
    config = embodied_config(gpu, gpu_count=count if gpu else 0)
    used = count if gpu else None
    a, b = embodied_kg(config, d1, used), embodied_kg(config, d2, used)
    assert a >= 0 and b >= 0
    # Time reserved adds up: two windows cost what one window of both durations costs.
    assert math.isclose(embodied_kg(config, d1 + d2, used), a + b, rel_tol=1e-9, abs_tol=1e-15)
    if gpu:
        assert embodied_kg(config, d1, 1) <= a * (1 + 1e-9)  # fewer devices, smaller share


@SETTINGS
@given(x=kwh)
def test_kwh_joule_round_trip(x: float) -> None:
    energy = ComponentEnergy("gpu", "simulated", energy_kwh=x)
    assert math.isclose(energy.energy_j / J_PER_KWH, x, rel_tol=1e-12, abs_tol=1e-15)


@SETTINGS
@given(
    power=st.floats(min_value=0.001, max_value=5_000.0),
    latency=st.floats(min_value=0.001, max_value=60_000.0),
    requests=st.floats(min_value=1.0, max_value=1e9),
    intensity=intensities,
    units=st.floats(min_value=0.001, max_value=1e6),
)
def test_inference_energy_and_sci_round_trip(power: float, latency: float, requests: float, intensity: float, units: float) -> None:
    energy = inference_energy_kwh(power, latency, requests)
    # W x ms x requests -> kWh -> W
    assert math.isclose(energy * J_PER_KWH * 1000.0 / (latency * requests), power, rel_tol=1e-9)
    result = sci(energy, intensity, functional_units=units)
    assert result.g_per_unit >= 0
    # g per unit x units -> kg -> the total
    assert math.isclose(result.g_per_unit * units / 1000.0, result.total_co2eq_kg, rel_tol=1e-9, abs_tol=1e-15)


@SETTINGS
@given(accuracy=st.floats(min_value=0.0, max_value=1.0), total=st.floats(min_value=1e-9, max_value=1e6))
def test_accuracy_per_kg_round_trip(accuracy: float, total: float) -> None:
    value = accuracy_per_kg(accuracy, total)
    assert value >= 0
    assert math.isclose(value * total, accuracy, rel_tol=1e-9, abs_tol=1e-15)


@SETTINGS
@given(
    raws=st.lists(st.floats(min_value=0.0, max_value=1e12, allow_nan=False), min_size=1, max_size=30),
    wrap=st.booleans(),
)
def test_counter_tracker_never_decreases(raws: list[float], wrap: bool) -> None:
    max_range = 1e12
    tracker = CounterTracker(["dev"], wrap_at=[max_range] if wrap else None)
    last = -math.inf
    for raw in raws:
        (cum,) = tracker.update([raw])
        assert cum >= last
        last = cum


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    metrics=st.dictionaries(
        st.sampled_from(["green/energy_kwh", "green/co2eq_kg", "val_acc", "loss"]),
        st.floats(allow_nan=False, allow_infinity=False, width=64),
        min_size=1,
    ),
    step=st.integers(0, 10_000),
)
def test_journal_round_trip(tmp_path: Path, metrics: dict[str, float], step: int) -> None:
    from mlflow_green.tracking.journal import Journal, read_journal

    path = tmp_path / f"run-{step}-{abs(hash(tuple(metrics)))}.jsonl"
    journal = Journal(path)
    try:
        journal.epoch(step, metrics, 1_700_000_000_000)
    finally:
        journal.close()
    state = read_journal(path)
    assert state.epochs[step] == (1_700_000_000_000, metrics)
    path.unlink()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_journal_keeps_non_finite_values_as_nan(tmp_path: Path, bad: float) -> None:
    """JSON has no NaN/inf: they are journaled as null and come back as NaN (documented)."""
    from mlflow_green.tracking.journal import Journal, read_journal

    journal = Journal(tmp_path / "r.jsonl")
    journal.epoch(0, {"green/energy_kwh": bad, "green/co2eq_kg": 1.0}, 0)
    journal.close()
    _, metrics = read_journal(tmp_path / "r.jsonl").epochs[0]
    assert math.isnan(metrics["green/energy_kwh"]) and metrics["green/co2eq_kg"] == 1.0
