"""Market-based Scope 2 factor: published residual mixes, contracts at 0 g/kWh, fallbacks."""

from __future__ import annotations

import pytest

from mlflow_green.accounting import (
    Location,
    market_factor,
    market_kg,
    residual_mix,
    resolve_location,
    resolve_renewable_fraction,
)
from mlflow_green.errors import ConfigError


@pytest.mark.parametrize(
    ("location", "g_per_kwh", "dataset"),
    [
        # AIB European Residual Mixes 2018 v1.2, Table 2 (direct CO2, g/kWh)
        (Location(country="DEU"), 728.69, "aib"),
        (Location(country="FRA"), 53.20, "aib"),
        (Location(country="CHE"), 34.84, "aib"),
        (Location(country="POL"), 904.62, "aib"),
        # Green-e Energy Residual Mix Emissions Rates (2018): eGRID CAMX, ERCT; US average
        (Location(country="USA", region="california"), 240.141, "green-e"),
        (Location(country="USA", region="texas"), 485.453, "green-e"),
        (Location(country="USA", region="ohio"), 460.365, "green-e"),
        (Location(country="USA"), 460.365, "green-e"),
        (Location(country="CAN", region="quebec"), 45.064, "green-e"),
    ],
)
def test_published_residual_mixes(location: Location, g_per_kwh: float, dataset: str) -> None:
    mix = residual_mix(location)
    assert mix is not None
    assert mix.g_per_kwh == pytest.approx(g_per_kwh)
    assert mix.dataset == dataset and mix.year == 2018 and "http" in mix.citation


def test_cloud_region_uses_its_grid() -> None:
    loc = resolve_location(cloud_provider="aws", cloud_region="eu-central-1", use_env=False)
    factor = market_factor(loc, location_g_per_kwh=381.0)
    assert factor.g_per_kwh == pytest.approx(728.69)
    assert factor.source == "residual:aib@2018(DEU)"


def test_contracts_count_at_zero_and_rest_at_residual() -> None:
    # hand-computed: 60 % matched, 40 % at Germany's residual 728.69 g/kWh = 291.476 g/kWh
    factor = market_factor(
        Location(country="DEU"), location_g_per_kwh=381.0, renewable_fraction=0.6
    )
    assert factor.g_per_kwh == pytest.approx(0.4 * 728.69)
    assert factor.source == "contracts:0.6 + residual:aib@2018(DEU)"
    # 10 kWh IT at PUE 1.2 -> 12 kWh x 0.291476 kg/kWh
    assert market_kg(10.0, 1.2, factor) == pytest.approx(12 * 0.291476)


def test_fully_matched_is_zero() -> None:
    factor = market_factor(
        Location(country="POL"), location_g_per_kwh=700.0, renewable_fraction="100%"
    )
    assert factor.g_per_kwh == 0.0
    assert factor.source == "contracts:1"


def test_supplier_figure_beats_the_residual_mix() -> None:
    factor = market_factor(
        Location(country="DEU"),
        location_g_per_kwh=381.0,
        renewable_fraction=0.5,
        market_intensity="200",
    )
    assert factor.g_per_kwh == pytest.approx(100.0)
    assert factor.source == "contracts:0.5 + supplier:200"


def test_unknown_residual_mix_falls_back_to_location_and_says_so() -> None:
    factor = market_factor(
        Location(country="IND"), location_g_per_kwh=713.0, location_source="static:ember@2023"
    )
    assert factor.g_per_kwh == pytest.approx(713.0)
    assert factor.source.startswith("location-fallback:static:ember@2023")
    assert "IND" in factor.source
    world = market_factor(Location.world(), location_g_per_kwh=475.0)
    assert world.source.startswith("location-fallback:") and world.g_per_kwh == 475.0


def test_environment_is_read_when_no_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_GREEN_RENEWABLE_FRACTION", "0.25")
    monkeypatch.setenv("MLFLOW_GREEN_MARKET_INTENSITY", "400")
    factor = market_factor(Location(country="FRA"), location_g_per_kwh=56.0)
    assert factor.g_per_kwh == pytest.approx(300.0)
    # the argument beats the environment
    assert (
        market_factor(
            Location(country="FRA"), location_g_per_kwh=56.0, renewable_fraction=0
        ).g_per_kwh
        == 400.0
    )


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("MLFLOW_GREEN_RENEWABLE_FRACTION", "1.5", "between 0 and 1"),
        ("MLFLOW_GREEN_RENEWABLE_FRACTION", "-0.1", "at least 0"),
        ("MLFLOW_GREEN_RENEWABLE_FRACTION", "lots", "not a number"),
        ("MLFLOW_GREEN_RENEWABLE_FRACTION", "nan", "finite"),
        ("MLFLOW_GREEN_MARKET_INTENSITY", "-5", "at least 0"),
        ("MLFLOW_GREEN_MARKET_INTENSITY", "inf", "finite"),
    ],
)
def test_bad_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=message) as info:
        market_factor(Location(country="FRA"), location_g_per_kwh=56.0)
    assert env in str(info.value)


@pytest.mark.parametrize("raw", [1.01, "101%", -0.5, "x", float("nan")])
def test_bad_argument_names_the_argument(raw: object) -> None:
    with pytest.raises(ConfigError, match="renewable_fraction"):
        resolve_renewable_fraction(raw)  # type: ignore[arg-type]
