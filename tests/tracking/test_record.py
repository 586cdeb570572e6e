"""The ledger: per-epoch figures to the metric schema, cumulative totals and projections."""

from __future__ import annotations

import math

import pytest

from mlflow_green.accounting import embodied_config, embodied_kg, operational_kg
from mlflow_green.tracking import schema
from mlflow_green.tracking.record import EpochEnergy, Ledger


def _energy(gpu_kwh: float, *, seconds: float = 3600.0, devices: tuple[float, ...] = ()) -> EpochEnergy:
    return EpochEnergy(
        start_unix_s=1.7e9,
        duration_s=seconds,
        gpu_energy_kwh=gpu_kwh,
        cpu_energy_kwh=0.1,
        ram_energy_kwh=0.05,
        gpu_power_w=gpu_kwh * 3.6e6 / seconds,
        per_device_kwh=devices or (gpu_kwh,),
        gpu_count=len(devices) or 1,
    )


@pytest.mark.parametrize(
    ("pue", "intensity", "gpu_kwh"),
    [(1.0, 56.0, 0.3), (1.1, 400.0, 0.6), (1.58, 0.0, 1.0)],
)
def test_operational_and_cumulative(pue: float, intensity: float, gpu_kwh: float) -> None:
    ledger = Ledger(pue=pue, embodied=None, total_epochs=None)
    first = ledger.add(_energy(gpu_kwh), intensity_g_per_kwh=intensity)
    second = ledger.add(_energy(gpu_kwh / 2), intensity_g_per_kwh=intensity)
    assert first.energy_kwh == pytest.approx(gpu_kwh + 0.15)
    assert first.co2eq_kg == pytest.approx(operational_kg(gpu_kwh + 0.15, pue, intensity))
    assert second.cum_energy_kwh == pytest.approx(first.energy_kwh + second.energy_kwh)
    assert second.cum_co2eq_kg == pytest.approx(first.co2eq_kg + second.co2eq_kg)
    assert second.embodied_share == 0.0
    assert (second.epoch, second.projected_total_co2eq_kg) == (1, None)
    assert schema.PROJECTED_TOTAL_CO2EQ_KG not in second.green_metrics()


def test_embodied_share_and_accuracy_per_kg() -> None:
    config = embodied_config("NVIDIA A100-SXM4-80GB", gpu_count=1)
    ledger = Ledger(pue=1.0, embodied=config, total_epochs=None)
    record = ledger.add(_energy(0.3), intensity_g_per_kwh=56.0, accuracy=0.9)
    expected_embodied = embodied_kg(config, 3600.0, 1)
    assert record.embodied_kg == pytest.approx(expected_embodied)
    assert record.total_co2eq_kg == pytest.approx(record.co2eq_kg + expected_embodied)
    assert record.embodied_share == pytest.approx(expected_embodied / record.total_co2eq_kg)
    assert record.accuracy_per_kg == pytest.approx(0.9 / record.cum_total_co2eq_kg)
    assert record.green_metrics()[schema.ACCURACY_PER_KG] == record.accuracy_per_kg


def test_cpu_only_machine_charges_the_node() -> None:
    config = embodied_config(None, gpu_count=0)
    ledger = Ledger(pue=1.0, embodied=config)
    energy = EpochEnergy(start_unix_s=0.0, duration_s=3600.0, cpu_energy_kwh=0.02, ram_energy_kwh=0.01)
    record = ledger.add(energy, intensity_g_per_kwh=100.0)
    assert record.embodied_kg == pytest.approx(embodied_kg(config, 3600.0)) and record.embodied_kg > 0


def test_projection_when_total_epochs_known() -> None:
    ledger = Ledger(pue=1.0, embodied=None, total_epochs=4)
    records = [ledger.add(_energy(0.3), intensity_g_per_kwh=100.0) for _ in range(4)]
    # Constant epochs: the projection is four times one epoch, from the first epoch on.
    for r in records:
        assert r.projected_energy_kwh == pytest.approx(4 * records[0].energy_kwh)
        assert r.projected_total_co2eq_kg == pytest.approx(4 * records[0].total_co2eq_kg)
    assert records[-1].projected_total_co2eq_kg == pytest.approx(records[-1].cum_total_co2eq_kg)


@pytest.mark.parametrize(("devices", "keys"), [((0.3,), 0), ((0.1, 0.2), 2), ((0.1, 0.1, 0.1, 0.1), 4)])
def test_per_device_keys_only_with_several_gpus(devices: tuple[float, ...], keys: int) -> None:
    ledger = Ledger(pue=1.0)
    metrics = ledger.add(_energy(sum(devices), devices=devices), intensity_g_per_kwh=1.0).green_metrics()
    per_device = {k: v for k, v in metrics.items() if k.startswith("green/gpu") and k[9:10].isdigit()}
    assert len(per_device) == keys
    if keys:
        assert sum(per_device.values()) == pytest.approx(sum(devices))


def test_every_schema_key_is_logged() -> None:
    ledger = Ledger(pue=1.2, total_epochs=3)
    record = ledger.add(_energy(0.3), intensity_g_per_kwh=300.0, accuracy=0.8, extra_metrics={"loss": 0.7})
    metrics = record.metrics()
    for key in (*schema.PER_EPOCH_KEYS, *schema.CUMULATIVE_KEYS, schema.ACCURACY_PER_KG,
                schema.PROJECTED_TOTAL_CO2EQ_KG, schema.PROJECTED_ENERGY_KWH):
        assert key in metrics and math.isfinite(metrics[key]), key
    assert metrics["loss"] == 0.7
    row = record.to_row()
    assert row["epoch"] == 0 and row["energy_kwh"] == record.energy_kwh and row["accuracy"] == 0.8
