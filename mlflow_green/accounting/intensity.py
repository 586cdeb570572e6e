"""Grid carbon intensity: where a number of gCO2eq/kWh comes from.

Precedence (:func:`intensity_source`): a fixed value passed in > ``MLFLOW_GREEN_INTENSITY`` >
Electricity Maps when a token is given or ``ELECTRICITYMAPS_API_TOKEN`` is set > the embedded
annual tables (country, sub-national grid or cloud region) > the world average, with a warning.

Every :class:`IntensityValue` says where it came from in ``source``, which is the value of the
``green.intensity_source`` tag: ``static:<dataset>@<year>`` (``static:ember@2023``,
``static:egrid@2023``), ``electricitymaps``, ``fixed`` or ``world-average``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from mlflow_green import _settings
from mlflow_green.accounting import _data
from mlflow_green.accounting.location import Location, resolve_location
from mlflow_green.errors import ConfigError

__all__ = [
    "MAX_INTENSITY_G_PER_KWH",
    "FixedIntensity",
    "GreenWarning",
    "IntensitySource",
    "IntensityValue",
    "StaticIntensity",
    "em_zone",
    "intensity_source",
    "parse_intensity",
    "static_intensity",
]

# No grid has ever averaged more than about 1,100 g/kWh (all-coal); a larger number is almost
# certainly in the wrong unit (mg, or g/MWh), so it is refused rather than silently used.
MAX_INTENSITY_G_PER_KWH = 3000.0

SOURCE_FIXED = "fixed"
SOURCE_WORLD = "world-average"
SOURCE_ELECTRICITYMAPS = "electricitymaps"


class GreenWarning(UserWarning):
    """A number was produced with a fallback or an assumption the user should know about."""


@dataclass(frozen=True)
class IntensityValue:
    """One carbon-intensity figure and its provenance.

    ``source`` is the ``green.intensity_source`` tag value; ``citation`` the human-readable
    origin of the figure; ``year`` the data year (None for live or fixed values); ``location``
    the location label; ``at`` the hour the value is for, when time-resolved; ``problem`` why a
    fallback was used, if one was.
    """

    g_per_kwh: float
    source: str
    year: int | None
    location: str
    citation: str = ""
    at: datetime | None = None
    zone: str | None = None
    problem: str | None = None

    @property
    def kg_per_kwh(self) -> float:
        return self.g_per_kwh / 1000.0


@runtime_checkable
class IntensitySource(Protocol):
    """Anything that can answer "how carbon-intensive is the grid (at this time)?"."""

    def intensity(self, at: datetime | None = None) -> IntensityValue: ...


def parse_intensity(raw: object, what: str = "intensity") -> float:
    """A validated gCO2eq/kWh figure: finite, not negative, not absurdly large."""
    value = _settings.parse_float(raw, what, minimum=0.0)
    if value > MAX_INTENSITY_G_PER_KWH:
        raise ConfigError(
            f"{what}={raw!r} gCO2eq/kWh is above any real grid (max {MAX_INTENSITY_G_PER_KWH:g}): give the value in g/kWh, e.g. 420 for 0.42 kg/kWh"
        )
    return value


def _row_for(location: Location) -> dict[str, str]:
    if location.cloud_provider and location.cloud_region:
        for row in _data.rows("cloud_regions.csv"):
            if row["provider"] == location.cloud_provider and row["region"] == location.cloud_region:
                return row
    if location.country and location.region:
        for row in _data.rows("intensity_subnational.csv"):
            if row["country"] == location.country and row["region"] == location.region:
                return row
    if location.country:
        for row in _data.rows("intensity_countries.csv"):
            if row["iso3"] == location.country:
                return row
    return _data.rows("intensity_world.csv")[0]


def em_zone(location: Location) -> str | None:
    """The Electricity Maps zone code of a location, or None where none is known."""
    if location.is_world:
        return None
    return _row_for(location).get("em_zone") or None


def static_intensity(location: Location) -> IntensityValue:
    """The embedded annual figure for a location (the world average for the world)."""
    row = _row_for(location)
    year = int(row["year"])
    source = SOURCE_WORLD if location.is_world else f"static:{row['dataset']}@{year}"
    return IntensityValue(
        g_per_kwh=float(row["g_per_kwh"]),
        source=source,
        year=year,
        location=location.label,
        citation=row["source"],
        zone=row.get("em_zone") or None,
    )


class StaticIntensity:
    """The embedded annual value of a location; the same answer at every hour."""

    # The figure does not depend on the time asked about (callers may ask once).
    time_varying = False

    def __init__(self, location: Location) -> None:
        self.location = location
        self._value = static_intensity(location)

    def intensity(self, at: datetime | None = None) -> IntensityValue:
        return self._value if at is None else _with_at(self._value, at)

    def __repr__(self) -> str:
        return f"StaticIntensity({self.location.label!r}, {self._value.g_per_kwh:g} g/kWh)"


class FixedIntensity:
    """A value the user fixed (argument or ``MLFLOW_GREEN_INTENSITY``); overrides all data."""

    time_varying = False

    def __init__(self, g_per_kwh: float | str, location: Location | None = None) -> None:
        self.g_per_kwh = parse_intensity(g_per_kwh)
        self.location = location or Location.world(configured=True)

    def intensity(self, at: datetime | None = None) -> IntensityValue:
        return IntensityValue(self.g_per_kwh, SOURCE_FIXED, None, self.location.label,
                              citation="fixed by the user", at=at)

    def __repr__(self) -> str:
        return f"FixedIntensity({self.g_per_kwh:g} g/kWh)"


def _with_at(value: IntensityValue, at: datetime) -> IntensityValue:
    from dataclasses import replace

    return replace(value, at=at)


def intensity_source(
    location: Location | None = None,
    *,
    fixed: float | str | None = None,
    token: str | None = None,
    base_url: str | None = None,
    timeout_s: float | None = None,
) -> IntensitySource:
    """The intensity source for a location, by precedence.

    ``fixed`` (g/kWh) > ``MLFLOW_GREEN_INTENSITY`` > Electricity Maps (``token`` or
    ``ELECTRICITYMAPS_API_TOKEN``; base URL ``base_url`` or ``MLFLOW_GREEN_ELECTRICITYMAPS_URL``)
    > the embedded annual data. ``location`` None resolves from the environment; when nothing
    is configured the world average is used and a :class:`GreenWarning` says how to set one.
    Bad fixed values raise :class:`~mlflow_green.errors.ConfigError`.
    """
    if location is None:
        location = resolve_location()
    if fixed is not None:
        return FixedIntensity(fixed, location)
    env_fixed = _settings.env_str(_settings.ENV_INTENSITY)
    if env_fixed is not None:
        value = parse_intensity(env_fixed, _settings.ENV_INTENSITY)
        return FixedIntensity(value, location)
    if location.is_world and not location.configured:
        warnings.warn(
            "no location configured: using the world-average grid intensity; set "
            "MLFLOW_GREEN_COUNTRY (ISO 3166 alpha-3), MLFLOW_GREEN_CLOUD_PROVIDER and "
            "MLFLOW_GREEN_CLOUD_REGION, or MLFLOW_GREEN_INTENSITY",
            GreenWarning,
            stacklevel=2,
        )
    token = token or _settings.env_str(_settings.ENV_EM_TOKEN)
    if token and not location.is_world:
        from mlflow_green.accounting.electricitymaps import ElectricityMapsIntensity

        return ElectricityMapsIntensity(location, token, base_url=base_url, timeout_s=timeout_s)
    return StaticIntensity(location)
