from __future__ import annotations

import math
import warnings
from datetime import datetime, timezone

import pytest

from mlflow_green.accounting import (
    FixedIntensity,
    GreenWarning,
    IntensitySource,
    StaticIntensity,
    em_zone,
    intensity_source,
    parse_intensity,
    resolve_location,
    static_intensity,
)
from mlflow_green.errors import ConfigError


@pytest.mark.parametrize(
    ("kwargs", "source", "low", "high"),
    [
        # Plausibility bands, not exact figures: the exact ones are whatever the tables ship.
        ({"country": "FRA"}, "static:ember@2023", 20, 100),
        ({"country": "POL"}, "static:ember@", 550, 900),
        ({"country": "USA", "region": "california"}, "static:egrid@2023", 100, 300),
        ({"country": "USA", "region": "west virginia"}, "static:egrid@2023", 700, 1000),
        ({"region": "quebec"}, "static:cer@2023", 10, 60),
        ({"region": "alberta"}, "static:cer@2023", 300, 800),
        ({"region": "SE1"}, "static:entsoe@2025", 10, 60),
        ({"cloud_provider": "aws", "cloud_region": "eu-west-3"}, "static:ember@2023", 20, 100),
        ({"cloud_provider": "gcp", "cloud_region": "us-central1"}, "static:egrid@2023", 150, 600),
    ],
)
def test_static_values_carry_dataset_and_year(kwargs: dict[str, str], source: str, low: float, high: float) -> None:
    value = static_intensity(resolve_location(**kwargs))
    assert value.source.startswith(source)
    assert low <= value.g_per_kwh <= high
    assert value.year is not None and str(value.year) in value.source
    assert value.citation


def test_world_average() -> None:
    value = static_intensity(resolve_location(country="world"))
    assert value.source == "world-average"
    assert value.g_per_kwh == 475
    assert value.location == "world"


def test_unconfigured_location_warns_and_uses_world_average() -> None:
    with pytest.warns(GreenWarning, match="MLFLOW_GREEN_COUNTRY"):
        source = intensity_source()
    assert source.intensity().source == "world-average"


def test_fixed_argument_beats_environment_and_location(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_GREEN_INTENSITY", "100")
    loc = resolve_location(country="FRA")
    value = intensity_source(loc, fixed=420).intensity()
    assert (value.g_per_kwh, value.source, value.location) == (420, "fixed", "FRA")
    assert intensity_source(loc).intensity().g_per_kwh == 100


def test_fixed_environment_beats_electricitymaps_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_GREEN_INTENSITY", "12.5")
    source = intensity_source(resolve_location(country="FRA"), token="secret")
    assert isinstance(source, FixedIntensity)
    assert source.intensity().g_per_kwh == 12.5


def test_fixed_value_needs_no_location_and_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = intensity_source(fixed="300").intensity()
    assert value.source == "fixed"


@pytest.mark.parametrize("raw", ["-1", "nan", "inf", "abc", "42000"])
def test_bad_fixed_values_are_config_errors(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError):
        parse_intensity(raw)
    with pytest.raises(ConfigError):
        intensity_source(fixed=raw)
    monkeypatch.setenv("MLFLOW_GREEN_INTENSITY", raw)
    with pytest.raises(ConfigError, match="MLFLOW_GREEN_INTENSITY"):
        intensity_source(resolve_location(country="FRA"))


def test_zero_is_a_valid_fixed_intensity() -> None:
    assert parse_intensity("0") == 0.0


def test_static_source_is_time_independent_and_a_protocol_member() -> None:
    source = intensity_source(resolve_location(country="DEU"))
    assert isinstance(source, StaticIntensity)
    assert isinstance(source, IntensitySource)
    at = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    assert source.intensity(at).g_per_kwh == source.intensity().g_per_kwh
    assert source.intensity(at).at == at


@pytest.mark.parametrize(
    ("kwargs", "zone"),
    [
        ({"country": "FRA"}, "FR"),
        ({"country": "USA"}, None),  # split into balancing authorities
        ({"country": "USA", "region": "california"}, "US-CAL-CISO"),
        ({"region": "SE3"}, "SE-SE3"),
        ({"cloud_provider": "aws", "cloud_region": "us-east-1"}, "US-MIDA-PJM"),
        ({"cloud_provider": "gcp", "cloud_region": "asia-northeast1"}, "JP-TK"),
        ({}, None),
    ],
)
def test_electricitymaps_zone_mapping(kwargs: dict[str, str], zone: str | None) -> None:
    assert em_zone(resolve_location(**kwargs)) == zone


def test_kg_per_kwh() -> None:
    value = FixedIntensity(420).intensity()
    assert math.isclose(value.kg_per_kwh, 0.42)
