"""Water: on-site WUE (named, numeric, env) plus off-site L/kWh by country."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from mlflow_green.accounting import (
    Location,
    offsite_l_per_kwh,
    resolve_location,
    resolve_wue,
    water_factor,
    water_l,
)
from mlflow_green.errors import ConfigError

L_PER_GAL = 3.785411784
# Macknick et al. (2012) median operational consumption, gal/MWh (tower cooling)
MACKNICK = {
    "coal_TWh": 687,
    "gas_TWh": 205,
    "oil_TWh": 826,
    "nuclear_TWh": 672,
    "hydroelectricity_TWh": 4491,
    "solar_TWh": 1,
    "wind_TWh": 0,
    "biofuel_TWh": 553,
    "other_renewable_exc_biofuel_TWh": 15,
}


def _mix(iso3: str) -> dict[str, float]:
    path = resources.files("codecarbon").joinpath("data/private_infra/global_energy_mix.json")
    return json.loads(path.read_text("utf-8"))[iso3]


@pytest.mark.parametrize("iso3", ["FRA", "USA", "DEU", "NOR", "IND"])
def test_offsite_matches_mix_times_published_factors(iso3: str) -> None:
    mix = _mix(iso3)
    total = sum(mix[k] for k in MACKNICK)
    expected = sum(mix[k] * f for k, f in MACKNICK.items()) / total * L_PER_GAL / 1000
    value, label = offsite_l_per_kwh(Location(country=iso3))
    assert value == pytest.approx(expected, abs=1e-3)
    assert label.startswith(iso3 + "@")


def test_hand_computed_france() -> None:
    # France 2023: nuclear-dominated; nuclear alone would be 672 gal/MWh = 2.544 L/kWh
    value, _ = offsite_l_per_kwh(Location(country="FRA"))
    assert 2.5 < value < 4.5


def test_world_fallback() -> None:
    value, label = offsite_l_per_kwh(Location.world())
    assert label.startswith("world@") and 1.0 < value < 10.0


@pytest.mark.parametrize(
    ("name", "wue"), [("aws", 0.15), ("AWS", 0.15), ("azure", 0.30), ("microsoft", 0.30)]
)
def test_named_wue_is_the_published_figure(name: str, wue: float) -> None:
    value = resolve_wue(name)
    assert value.l_per_kwh == pytest.approx(wue) and value.year == 2024 and "http" in value.citation


def test_water_arithmetic_hand_computed() -> None:
    # 10 kWh IT, PUE 1.5, WUE 0.3 -> on-site 3 L; off-site 15 kWh x FRA factor
    loc = Location(country="FRA")
    factor = water_factor(loc, wue=0.3)
    offsite, _ = offsite_l_per_kwh(loc)
    assert water_l(10.0, 1.5, factor) == pytest.approx(3.0 + 15.0 * offsite)
    assert factor.source.startswith("wue:0.3 + offsite:FRA@")


def test_unknown_wue_counts_offsite_only_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_GREEN_WUE", raising=False)
    factor = water_factor(resolve_location("DEU", use_env=False))
    assert factor.onsite_l_per_kwh == 0.0 and not factor.onsite_known
    assert factor.source.startswith("wue:unknown + offsite:DEU@")


def test_env_wue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_GREEN_WUE", "azure")
    assert water_factor(Location(country="FRA")).onsite_l_per_kwh == pytest.approx(0.30)
    assert water_factor(Location(country="FRA"), wue=1.1).onsite_l_per_kwh == pytest.approx(1.1)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("-1", "at least 0"),
        ("gogle", "neither a number"),
        ("", "empty"),
        ("300", "implausible"),
        ("nan", "finite"),
    ],
)
def test_bad_wue(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_wue(raw)


def test_bad_env_wue_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_GREEN_WUE", "lots")
    with pytest.raises(ConfigError, match="MLFLOW_GREEN_WUE"):
        resolve_wue()
