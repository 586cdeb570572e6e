"""Market-based Scope 2 emissions (GHG Protocol Scope 2 Guidance, 2015: dual reporting).

The location-based figure (``green/co2eq_kg``) uses the grid's average intensity. The
market-based figure uses the electricity the organisation has *bought*: the share matched by
contractual instruments (certificates, PPAs, green tariffs: ``renewable_fraction``) counts at
0 g/kWh, and the rest at the supplier's figure (``market_intensity``) or, where none is given,
at the location's **residual mix** — the grid once every tracked renewable claim is removed, so
that nothing is counted twice:

    factor = (1 - renewable_fraction) × residual_g_per_kwh

Residual mixes shipped (``data/residual_mixes.csv``, each row cited): AIB European Residual
Mixes for European countries, Green-e Energy Residual Mix Emissions Rates for US eGRID
subregions (California, Texas, Florida; the US average elsewhere) and Canadian provinces.
Where no residual mix is known the location-based intensity is used and the source says so
(``location-fallback``), as the Scope 2 Guidance's hierarchy allows when nothing better exists.

Arguments beat ``MLFLOW_GREEN_RENEWABLE_FRACTION`` / ``MLFLOW_GREEN_MARKET_INTENSITY`` beat the
defaults (no instruments; the residual mix).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from mlflow_green import _settings
from mlflow_green.accounting import _data
from mlflow_green.accounting.location import Location

__all__ = [
    "MarketFactor",
    "ResidualMix",
    "market_factor",
    "market_kg",
    "residual_mix",
    "resolve_market_intensity",
    "resolve_renewable_fraction",
]


@dataclass(frozen=True)
class ResidualMix:
    """A published residual mix: g CO2/kWh, the dataset (``aib``, ``green-e``) and year."""

    g_per_kwh: float
    dataset: str
    year: int
    area: str
    citation: str


@dataclass(frozen=True)
class MarketFactor:
    """The market-based factor applied to every kWh of facility energy.

    ``g_per_kwh`` = (1 - ``renewable_fraction``) × ``remainder_g_per_kwh``; ``source`` is the
    ``green.market.source`` tag (e.g. ``contracts:0.6 + residual:aib@2018(DEU)``).
    """

    g_per_kwh: float
    renewable_fraction: float
    remainder_g_per_kwh: float
    source: str
    citation: str = ""

    @property
    def kg_per_kwh(self) -> float:
        return self.g_per_kwh / 1000.0


@cache
def _table() -> dict[tuple[str, str], ResidualMix]:
    out: dict[tuple[str, str], ResidualMix] = {}
    for row in _data.rows("residual_mixes.csv"):
        out[(row["country"], row["region"])] = ResidualMix(
            float(row["g_per_kwh"]), row["dataset"], int(row["year"]), row["area"], row["source"]
        )
    return out


def residual_mix(location: Location) -> ResidualMix | None:
    """The residual mix of ``location`` (its sub-national area first, then its country)."""
    if location.country is None:
        return None
    table = _table()
    if location.region:
        found = table.get((location.country, location.region))
        if found is not None:
            return found
    return table.get((location.country, ""))


def resolve_renewable_fraction(value: float | str | None = None) -> float:
    """Share of the energy matched by contractual instruments: argument > env > 0."""
    if value is None:
        raw = _settings.env_str(_settings.ENV_RENEWABLE_FRACTION)
        if raw is None:
            return 0.0
        return _settings.parse_fraction(raw, _settings.ENV_RENEWABLE_FRACTION)
    return _settings.parse_fraction(value, "renewable_fraction")


def resolve_market_intensity(value: float | str | None = None) -> float | None:
    """Supplier-specific g/kWh for the unmatched rest: argument > env > None (residual mix)."""
    if value is None:
        return _settings.env_float(_settings.ENV_MARKET_INTENSITY, minimum=0.0)
    return _settings.parse_float(value, "market_intensity", minimum=0.0)


def market_factor(
    location: Location,
    *,
    location_g_per_kwh: float,
    location_source: str = "",
    renewable_fraction: float | str | None = None,
    market_intensity: float | str | None = None,
) -> MarketFactor:
    """The market-based factor of ``location`` with the user's instruments.

    ``location_g_per_kwh`` (the location-based intensity) is the last resort for the unmatched
    rest, tagged ``location-fallback``.
    """
    fraction = resolve_renewable_fraction(renewable_fraction)
    supplier = resolve_market_intensity(market_intensity)
    citation = ""
    if supplier is not None:
        remainder, rest = supplier, f"supplier:{supplier:g}"
    else:
        mix = residual_mix(location)
        if mix is not None:
            remainder = mix.g_per_kwh
            rest = f"residual:{mix.dataset}@{mix.year}({mix.area})"
            citation = mix.citation
        else:
            remainder = float(location_g_per_kwh)
            what = location_source or location.label
            rest = f"location-fallback:{what} (no residual mix for {location.label})"
    parts = [f"contracts:{fraction:g}"] if fraction > 0 else []
    if fraction < 1:
        parts.append(rest)
    return MarketFactor(
        g_per_kwh=(1.0 - fraction) * remainder,
        renewable_fraction=fraction,
        remainder_g_per_kwh=remainder,
        source=" + ".join(parts),
        citation=citation,
    )


def market_kg(energy_kwh: float, pue: float, factor: MarketFactor | float) -> float:
    """Market-based kg CO2: IT energy × PUE × the market-based factor (g/kWh or a factor)."""
    g_per_kwh = factor.g_per_kwh if isinstance(factor, MarketFactor) else float(factor)
    return energy_kwh * pue * g_per_kwh / 1000.0
