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
    parse_basis,
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
        ({"country": "USA", "region": "california"}, "static:electricitymaps@2023", 100, 350),
        ({"country": "USA", "region": "west virginia"}, "static:egrid-lifecycle@2023", 700, 1300),
        ({"region": "quebec"}, "static:cer@2023", 10, 60),
        ({"region": "alberta"}, "static:cer@2023", 300, 800),
        ({"region": "SE1"}, "static:electricitymaps@2023", 5, 60),
        ({"cloud_provider": "aws", "cloud_region": "eu-west-3"}, "static:ember@2023", 20, 100),
        ({"cloud_provider": "gcp", "cloud_region": "us-central1"}, "static:electricitymaps@2023", 150, 700),
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
    # Ember, Global Electricity Review 2024: 480 gCO2/kWh in 2023, the countries' source and year.
    assert (value.g_per_kwh, value.year, value.basis) == (480, 2023, "lifecycle")
    assert "Ember" in value.citation
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


# Source values, read off the sources themselves (not off the shipped tables):
# Ember 2023 (lifecycle), also in thegreenwebfoundation/co2.js average-intensities.json;
# Electricity Maps 2023 yearly (lifecycle), zone pages app.electricitymaps.com/zone/<ZONE>;
# EPA eGRID2023 STC2ERTA (direct, lb/MWh); Google Cloud region carbon data 2023 (direct).
LB_MWH = 0.45359237
TABLE_CASES = [
    # countries (Ember)
    ({"country": "FRA"}, "lifecycle", 56.04, "FR"),
    ({"country": "DEU"}, "lifecycle", 380.95, "DE"),
    ({"country": "SWE"}, "lifecycle", 40.7, None),
    ({"country": "USA"}, "lifecycle", 369.47, None),
    # US cloud regions on their balancing authority (Electricity Maps), not their state
    ({"cloud_provider": "aws", "cloud_region": "us-east-1"}, "lifecycle", 401, "US-MIDA-PJM"),
    ({"cloud_provider": "azure", "cloud_region": "westus2"}, "lifecycle", 60, "US-NW-GCPD"),
    ({"cloud_provider": "gcp", "cloud_region": "us-west1"}, "lifecycle", 123, "US-NW-BPAT"),
    ({"cloud_provider": "gcp", "cloud_region": "us-east1"}, "lifecycle", 633, "US-CAR-SC"),
    ({"cloud_provider": "azure", "cloud_region": "southcentralus"}, "lifecycle", 394, "US-TEX-ERCO"),
    # bidding zones and grid areas (Electricity Maps)
    ({"region": "SE3"}, "lifecycle", 23, "SE-SE3"),
    ({"region": "NO4"}, "lifecycle", 52, "NO-NO4"),
    ({"region": "DK1"}, "lifecycle", 138, "DK-DK1"),
    ({"cloud_provider": "aws", "cloud_region": "eu-south-1"}, "lifecycle", 291, "IT-NO"),
    ({"cloud_provider": "gcp", "cloud_region": "asia-northeast1"}, "lifecycle", 536, "JP-TK"),
    # the other basis, by name
    ({"country": "USA", "region": "virginia"}, "direct", 539.599 * LB_MWH, "US-MIDA-PJM"),
    ({"cloud_provider": "gcp", "cloud_region": "us-central1"}, "direct", 430, "US-MIDW-MISO"),
]


@pytest.mark.parametrize(("kwargs", "basis", "expected", "zone"), TABLE_CASES)
def test_shipped_figures_equal_their_sources(kwargs: dict[str, str], basis: str, expected: float, zone: str | None) -> None:
    value = static_intensity(resolve_location(**kwargs), basis)
    assert value.g_per_kwh == pytest.approx(expected, abs=0.06)  # shipped to 0.1
    assert value.basis == basis and value.zone == zone
    assert value.year == 2023


def test_a_us_cloud_region_is_its_grid_not_its_state() -> None:
    # Virginia's in-state generation (eGRID, direct) is far below what us-east-1 draws from PJM.
    region = static_intensity(resolve_location(cloud_provider="aws", cloud_region="us-east-1"))
    state_direct = static_intensity(resolve_location(country="USA", region="virginia"), "direct")
    assert region.g_per_kwh == static_intensity(resolve_location(region="PJM")).g_per_kwh
    assert state_direct.g_per_kwh < 0.7 * region.g_per_kwh


@pytest.mark.parametrize(
    "kwargs",
    [{"country": "FRA"}, {"country": "world"}, {"region": "SE3"}, {"cloud_provider": "aws", "cloud_region": "us-east-1"}],
)
def test_a_basis_without_a_source_is_refused_not_swapped(kwargs: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="no direct-basis figure"):
        static_intensity(resolve_location(**kwargs), "direct")
    with pytest.raises(ConfigError, match="no direct-basis figure"):
        intensity_source(resolve_location(**kwargs), basis="direct")


@pytest.mark.parametrize("raw", ["", "indirect", "LCA ", None, 1])
def test_basis_names(raw: object) -> None:
    if raw == "LCA ":
        assert parse_basis(raw) == "lifecycle"
        return
    with pytest.raises(ConfigError, match="lifecycle"):
        parse_basis(raw)


def test_every_source_says_its_basis() -> None:
    assert StaticIntensity(resolve_location(country="FRA")).basis == "lifecycle"
    assert StaticIntensity(resolve_location(region="virginia"), "direct").basis == "direct"
    assert FixedIntensity(300).basis is None and FixedIntensity(300).intensity().basis is None


def test_basis_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # autolog has no basis argument: the variable reaches every run's intensity source.
    virginia = resolve_location(country="USA", region="virginia")
    monkeypatch.setenv("MLFLOW_GREEN_INTENSITY_BASIS", "direct")
    assert intensity_source(virginia).intensity().basis == "direct"
    assert intensity_source(virginia, basis="lifecycle").intensity().basis == "lifecycle"  # argument wins
    with pytest.raises(ConfigError, match="no direct-basis figure"):
        intensity_source(resolve_location(country="FRA"))
    monkeypatch.setenv("MLFLOW_GREEN_INTENSITY_BASIS", "market")
    with pytest.raises(ConfigError, match="MLFLOW_GREEN_INTENSITY_BASIS='market'"):
        intensity_source(virginia)
    monkeypatch.setenv("MLFLOW_GREEN_INTENSITY_BASIS", " ")
    assert intensity_source(virginia).intensity().basis == "lifecycle"  # blank = unset
