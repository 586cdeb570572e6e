"""Market-based CO2, water and SCI-for-AI units per epoch, hand-computed."""

from __future__ import annotations

import pytest

from mlflow_green.accounting import Location, offsite_l_per_kwh
from mlflow_green.errors import ConfigError
from mlflow_green.tracking import schema
from mlflow_green.tracking.impact import ImpactFigures, count_parameters, parse_count
from mlflow_green.tracking.record import EpochEnergy, Ledger


def _records(pue: float, epochs: list[tuple[float, float]]) -> list:
    """EpochRecords of the tracker's own ledger: (energy kWh, intensity g/kWh) per epoch."""
    ledger = Ledger(pue=pue)
    return [ledger.add(EpochEnergy(start_unix_s=i * 60.0, duration_s=60.0, gpu_energy_kwh=kwh),
                       intensity_g_per_kwh=g) for i, (kwh, g) in enumerate(epochs)]  # fmt: skip


def test_epochs_accumulate_market_water_and_units() -> None:
    deu = Location(country="DEU")
    fig = ImpactFigures.resolve(deu, location_g_per_kwh=380.0, location_source="static:x", pue=1.5,
                                renewable_fraction=0.5, wue="azure", parameters=2_000_000_000)  # fmt: skip
    assert fig.tags[schema.TAG_MARKET_SOURCE] == "contracts:0.5 + residual:aib@2018(DEU)"
    assert fig.tags[schema.TAG_WATER_SOURCE].startswith("wue:azure@2024 + offsite:DEU@")
    fig.add_tokens(1_000_000)
    r1, r2 = _records(1.5, [(2.0, 380.0), (1.0, 380.0)])
    first = fig.epoch(r1)
    # 2 kWh x 1.5 x 0.5 x 728.69 g/kWh
    assert first[schema.CO2EQ_MARKET_KG] == pytest.approx(2 * 1.5 * 0.5 * 728.69 / 1000)
    offsite, _ = offsite_l_per_kwh(deu)
    assert first[schema.WATER_L] == pytest.approx(2 * 0.30 + 2 * 1.5 * offsite)
    total1 = r1.cum_total_co2eq_kg
    assert first[schema.G_PER_MTOKEN] == pytest.approx(total1 * 1000)  # per 1 M tokens
    assert first[schema.KG_PER_BPARAM] == pytest.approx(total1 / 2)  # per 2 B parameters
    fig.add_tokens(3_000_000)
    second = fig.epoch(r2)
    assert second[schema.CUM_CO2EQ_MARKET_KG] == pytest.approx(3 * 1.5 * 0.5 * 728.69 / 1000)
    assert second[schema.CUM_CO2EQ_MARKET_KG] == pytest.approx(
        first[schema.CO2EQ_MARKET_KG] + second[schema.CO2EQ_MARKET_KG]
    )
    assert second[schema.CUM_WATER_L] == pytest.approx(first[schema.WATER_L] * 1.5)
    assert second[schema.G_PER_MTOKEN] == pytest.approx(r2.cum_total_co2eq_kg * 1000 / 4)


def test_location_fallback_follows_the_epoch_intensity() -> None:
    fig = ImpactFigures.resolve(Location(country="IND"), location_g_per_kwh=700.0,
                                location_source="electricitymaps", pue=1.0, renewable_fraction=0.25)  # fmt: skip
    r1, r2 = _records(1.0, [(1.0, 600.0), (1.0, 300.0)])  # a live intensity: 600, then 300
    fig.epoch(r1)
    out = fig.epoch(r2)
    assert out[schema.CO2EQ_MARKET_KG] == pytest.approx(0.75 * 0.3)
    assert out[schema.CUM_CO2EQ_MARKET_KG] == pytest.approx(0.75 * 0.9)
    assert schema.G_PER_MTOKEN not in out and schema.KG_PER_BPARAM not in out  # unknown: not logged


def test_set_tokens_is_a_running_total() -> None:
    fig = ImpactFigures.resolve(
        Location(country="FRA"), location_g_per_kwh=50.0, location_source="s", pue=1.0
    )
    fig.set_tokens(2_000_000)
    fig.set_tokens(4_000_000)
    (r,) = _records(1.0, [(1.0, 50.0)])
    assert fig.epoch(r)[schema.G_PER_MTOKEN] == pytest.approx(r.cum_total_co2eq_kg * 1000 / 4)


@pytest.mark.parametrize("bad", [-1, 1.5, "many", float("nan")])
def test_bad_counts(bad: object) -> None:
    with pytest.raises(ConfigError, match="tokens"):
        parse_count(bad, "tokens")


def test_count_parameters_of_a_torch_module() -> None:
    torch = pytest.importorskip("torch")
    layer = torch.nn.Linear(10, 5)  # 50 weights + 5 biases
    tied = torch.nn.Sequential(layer, layer)  # the same tensors, counted once
    assert count_parameters(layer) == 55
    assert count_parameters(tied) == 55
    assert count_parameters(object()) is None


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("renewable_fraction", 1.2, "renewable_fraction"), ("renewable_fraction", "half", "renewable_fraction"),
     ("market_intensity", -3, "market_intensity"), ("wue", "gcp-ish", "wue"), ("parameters", -1, "parameters"),
     ("parameters", "7B", "parameters")],
)  # fmt: skip
def test_options_are_validated_when_given(option: str, value: object, message: str) -> None:
    from mlflow_green.tracking.config import GreenConfig

    with pytest.raises(ConfigError, match=message):
        GreenConfig.create(**{option: value})


def test_options_normalised_and_parameters_counted() -> None:
    torch = pytest.importorskip("torch")
    from mlflow_green.tracking.config import GreenConfig

    cfg = GreenConfig.create(renewable_fraction="60%", market_intensity="120", wue="aws",
                             parameters=torch.nn.Linear(4, 2))  # fmt: skip
    assert cfg.renewable_fraction == pytest.approx(0.6)
    assert cfg.market_intensity == 120.0 and cfg.wue == "aws" and cfg.parameters == 10
    from mlflow_green.tracking.impact import impact_for

    fig = impact_for(cfg, Location(country="FRA"), 1.1)
    assert fig.tags[schema.TAG_MARKET_SOURCE] == "contracts:0.6 + supplier:120"
    assert fig.parameters == 10


def test_a_tracked_run_logs_market_water_units_and_the_ledger_adds_them(mlflow_local: str) -> None:
    """End to end: GreenTracker (simulated GPU) -> MLflow -> the ledger, hand-checked."""
    import mlflow

    import mlflow_green
    from mlflow_green.reports.ledger import ledger

    with mlflow_green.GreenTracker(total_epochs=2, sampler="simulated:300", silent=True, report=False,
                                   country="DEU", pue=1.2, renewable_fraction=0.5, wue="aws",
                                   parameters=3_000_000_000) as tracker:  # fmt: skip
        for _ in range(2):
            mlflow_green.report_tokens(500_000)
            tracker.epoch_end(tokens=500_000)
    client = mlflow.MlflowClient()
    run = client.get_run(tracker.run_id)
    assert run.data.tags[schema.TAG_MARKET_SOURCE] == "contracts:0.5 + residual:aib@2018(DEU)"
    assert run.data.tags[schema.TAG_WATER_SOURCE].startswith("wue:aws@2024 + offsite:DEU@")

    def hist(key: str) -> list[float]:
        return [
            m.value
            for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        ]

    energy, market, water = (
        hist(schema.ENERGY_KWH),
        hist(schema.CO2EQ_MARKET_KG),
        hist(schema.WATER_L),
    )
    offsite, _ = offsite_l_per_kwh(Location(country="DEU"))
    for e, m, w in zip(energy, market, water, strict=True):
        assert m == pytest.approx(e * 1.2 * 0.5 * 728.69 / 1000)
        assert w == pytest.approx(e * 0.15 + e * 1.2 * offsite)
    assert hist(schema.CUM_CO2EQ_MARKET_KG)[-1] == pytest.approx(sum(market))
    assert hist(schema.CUM_WATER_L)[-1] == pytest.approx(sum(water))
    total = hist(schema.CUM_TOTAL_CO2EQ_KG)
    # 1 M tokens after epoch 0 (report_tokens + epoch_end(tokens=)), 2 M after epoch 1
    assert hist(schema.G_PER_MTOKEN) == pytest.approx([total[0] * 1000 / 1, total[1] * 1000 / 2])
    assert hist(schema.KG_PER_BPARAM) == pytest.approx([t / 3 for t in total])
    book = ledger(client, by="experiment")
    assert book.total.co2eq_market_kg == pytest.approx(sum(market))
    assert book.total.water_l == pytest.approx(sum(water)) and book.total.derived_epochs == 0


def test_report_tokens_outside_a_tracker_is_one_clear_error() -> None:
    import mlflow_green

    with pytest.raises(ConfigError, match="report_tokens"):
        mlflow_green.report_tokens(10)
