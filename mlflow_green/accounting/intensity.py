"""Grid carbon intensity: where a number of gCO2eq/kWh comes from.

Which source applies is chosen by precedence in :mod:`.sources`
(:func:`~mlflow_green.accounting.sources.intensity_source`): a fixed value passed in > ``MLFLOW_GREEN_INTENSITY`` >
Electricity Maps when a token is given or ``ELECTRICITYMAPS_API_TOKEN`` is set > the embedded
annual tables (country, sub-national grid or cloud region) > the world average, with a warning.

Every :class:`IntensityValue` says where it came from in ``source``, which is the value of the
``green.intensity_source`` tag: ``static:<dataset>@<year>`` (``static:ember@2023``,
``static:electricitymaps@2023``), ``electricitymaps``, ``fixed`` or ``world-average``; and on
which basis in ``basis`` (the ``green.intensity_basis`` tag): ``lifecycle`` (the default of every
shipped table: upstream emissions of building and fuelling plants included) or ``direct``
(combustion only), available by name where a direct source is shipped (eGRID US states, Google
Cloud regions) or from Electricity Maps with a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from mlflow_green import _settings
from mlflow_green.accounting import _data
from mlflow_green.accounting.location import Location
from mlflow_green.errors import ConfigError

__all__ = [
    "BASES",
    "MAX_INTENSITY_G_PER_KWH",
    "FixedIntensity",
    "GreenWarning",
    "IntensitySource",
    "IntensityValue",
    "StaticIntensity",
    "em_zone",
    "parse_basis",
    "parse_intensity",
    "static_intensity",
]

# No grid has ever averaged more than about 1,100 g/kWh (all-coal); a larger number is almost
# certainly in the wrong unit (mg, or g/MWh), so it is refused rather than silently used.
MAX_INTENSITY_G_PER_KWH = 3000.0

BASIS_LIFECYCLE = "lifecycle"
BASIS_DIRECT = "direct"
BASES: tuple[str, ...] = (BASIS_LIFECYCLE, BASIS_DIRECT)
# The basis when no argument names one (autolog runs, the CLI without --basis).
ENV_INTENSITY_BASIS = "MLFLOW_GREEN_INTENSITY_BASIS"

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
    fallback was used, if one was; ``basis`` ``lifecycle`` or ``direct`` (None for a value the
    user fixed, whose basis is theirs to know).
    """

    g_per_kwh: float
    source: str
    year: int | None
    location: str
    citation: str = ""
    at: datetime | None = None
    zone: str | None = None
    problem: str | None = None
    basis: str | None = BASIS_LIFECYCLE

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


def parse_basis(raw: object) -> str:
    """``lifecycle`` or ``direct`` (case-insensitive; ``life-cycle``/``lca`` accepted)."""
    text = str(raw).strip().lower().replace("-", "").replace("_", "") if isinstance(raw, str) else ""
    basis = {"lifecycle": BASIS_LIFECYCLE, "lca": BASIS_LIFECYCLE, "direct": BASIS_DIRECT}.get(text)
    if basis is None:
        raise ConfigError(f"basis={raw!r}: use 'lifecycle' (the default) or 'direct'")
    return basis


def _find(name: str, basis: str, match: dict[str, str]) -> dict[str, str] | None:
    for row in _data.rows(name):
        if row["basis"] == basis and all(row[k] == v for k, v in match.items()):
            return row
    return None


def _row_for(location: Location, basis: str = BASIS_LIFECYCLE) -> dict[str, str]:
    if location.cloud_provider and location.cloud_region:
        table, match = "cloud_regions.csv", {"provider": location.cloud_provider, "region": location.cloud_region}
    elif location.country and location.region:
        table, match = "intensity_subnational.csv", {"country": location.country, "region": location.region}
    elif location.country:
        table, match = "intensity_countries.csv", {"iso3": location.country}
    else:
        table, match = "intensity_world.csv", {"label": "world"}
    row = _find(table, basis, match)
    if row is not None:
        return row
    if basis != BASIS_LIFECYCLE:
        raise ConfigError(
            f"no {basis}-basis figure is shipped for {location.label} (direct figures: eGRID US states, "
            "Google Cloud regions; or Electricity Maps with a token): use basis 'lifecycle'"
        )
    return _find("intensity_world.csv", BASIS_LIFECYCLE, {"label": "world"}) or _data.rows("intensity_world.csv")[0]


def em_zone(location: Location) -> str | None:
    """The Electricity Maps zone code of a location, or None where none is known."""
    if location.is_world:
        return None
    return _row_for(location).get("em_zone") or None


def static_intensity(location: Location, basis: str = BASIS_LIFECYCLE) -> IntensityValue:
    """The embedded annual figure for a location (the world average for the world).

    ``basis`` ``lifecycle`` (default) or ``direct``; a basis with no shipped figure for the
    location raises :class:`~mlflow_green.errors.ConfigError` rather than using the other one.
    """
    basis = parse_basis(basis)
    row = _row_for(location, basis)
    year = int(row["year"])
    source = SOURCE_WORLD if location.is_world else f"static:{row['dataset']}@{year}"
    return IntensityValue(
        g_per_kwh=float(row["g_per_kwh"]),
        source=source,
        year=year,
        location=location.label,
        citation=row["source"],
        zone=row.get("em_zone") or None,
        basis=row["basis"],
    )


class StaticIntensity:
    """The embedded annual value of a location; the same answer at every hour."""

    # The figure does not depend on the time asked about (callers may ask once).
    time_varying = False

    def __init__(self, location: Location, basis: str = BASIS_LIFECYCLE) -> None:
        self.location = location
        self._value = static_intensity(location, basis)
        self.basis: str | None = self._value.basis

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
        self.basis: str | None = None  # the user's figure: its basis is theirs to know

    def intensity(self, at: datetime | None = None) -> IntensityValue:
        return IntensityValue(self.g_per_kwh, SOURCE_FIXED, None, self.location.label,
                              citation="fixed by the user", at=at, basis=None)

    def __repr__(self) -> str:
        return f"FixedIntensity({self.g_per_kwh:g} g/kWh)"


def _with_at(value: IntensityValue, at: datetime) -> IntensityValue:
    from dataclasses import replace

    return replace(value, at=at)
