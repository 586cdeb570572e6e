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


def _varied(i: int, devices: int) -> EpochEnergy:
    per = tuple(0.01 * (i % 7 + d + 1) for d in range(devices))
    return EpochEnergy(
        start_unix_s=1.7e9 + 10 * i,
        duration_s=10.0 + (i % 5),
        gpu_energy_kwh=sum(per),
        cpu_energy_kwh=0.001 * (i % 3),
        ram_energy_kwh=0.0005,
        gpu_power_w=300.0 if devices else 0.0,
        per_device_kwh=per,
        gpu_count=devices,
    )


@pytest.mark.parametrize(
    ("devices", "total_epochs", "vary_keys"),
    [(0, None, False), (2, 150, False), (1, 40, True), (3, None, True)],
)
def test_the_compact_table_gives_back_every_record(devices: int, total_epochs: int | None, vary_keys: bool) -> None:
    """Records kept as columns (and checkpointed cumulative sums) come back bit for bit."""
    config = embodied_config("NVIDIA A100-SXM4-40GB", gpu_count=max(devices, 1))
    ledger = Ledger(pue=1.2, embodied=config, total_epochs=total_epochs)
    made = []
    for i in range(150):  # past two cumulative checkpoints
        extra = {"loss": 1.0 / (i + 1)} if not (vary_keys and i % 9 == 0) else {"a": 1.0, "b": 2.0}
        accuracy = None if i % 4 == 0 else (math.nan if i % 11 == 0 else 0.5 + i / 1000)
        made.append(ledger.add(_varied(i, devices), intensity_g_per_kwh=50.0 + (i % 2),
                               accuracy=accuracy, extra_metrics=extra))
    table = ledger.records
    assert len(table) == len(made)

    def same(a: object, b: object) -> bool:
        return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))

    for original, rebuilt in [*zip(made, table, strict=True), (made[-1], table[-1]), (made[70], table[70])]:
        for name in original.__dataclass_fields__:
            a, b = getattr(original, name), getattr(rebuilt, name)
            if name == "extra_metrics":
                a, b = dict(a), dict(b)
            assert same(a, b), (original.epoch, name, a, b)
    assert ledger.totals()["gpu_energy_kwh"] == sum(r.gpu_energy_kwh for r in made)
    with pytest.raises(IndexError):
        table[len(made)]


def test_accuracy_set_after_the_fact() -> None:
    ledger = Ledger(pue=1.0)
    ledger.add(_energy(0.3), intensity_g_per_kwh=100.0)
    per_kg = ledger.set_accuracy(0, 0.9)
    row = ledger.records[0]
    assert row.accuracy == 0.9 and per_kg == row.accuracy_per_kg
    assert row.accuracy_per_kg == pytest.approx(0.9 / row.cum_total_co2eq_kg)


@pytest.mark.parametrize(
    "values",
    [
        [1.0] * 12,
        [9.0, 1.0, 1.1, 0.9, 1.0, 1.2, 1.0],  # warm-up outlier left out
        [0.3, 0.1, 0.7, 0.2, 0.9, 0.4, 0.4, 0.8, 0.05],
        [2.0, 2.0],
    ],
)
def test_projection_per_epoch_equals_the_projection_from_all_epochs(values: list[float]) -> None:
    """The ledger projects incrementally; it must say what project_total over every epoch says."""
    from mlflow_green.accounting.projection import RunningProjection, project_total

    running = RunningProjection(20)
    for k in range(1, len(values) + 1):
        running.add(values[k - 1])
        full, fast = project_total(values[:k], 20), running.projection()
        assert (fast.value, fast.rate, fast.warmup_dropped, fast.method) == (
            full.value, full.rate, full.warmup_dropped, full.method,
        )
        assert fast.low == pytest.approx(full.low, rel=1e-12) and fast.high == pytest.approx(full.high, rel=1e-12)
