"""Per-epoch market-based CO2, water and SCI-for-AI units of a run (issue 19).

The tracker's own ledger turns energy into location-based CO2eq and embodied emissions; this
object adds, from the same epoch energy, the figures of the organisation's ledger:

- ``green/co2eq_market_kg`` / ``green/cum_co2eq_market_kg``: energy × PUE × market factor
  (``accounting.market_factor``; where it falls back to the location-based factor, the epoch's
  own intensity is used, so a live intensity source stays live);
- ``green/water_l`` / ``green/cum_water_l``: ``accounting.water_l``;
- ``green/g_per_mtoken`` once training tokens are known, ``green/kg_per_bparam`` once the
  parameter count is known (``accounting.sci_ai``), both from the run's cumulative total
  CO2eq.

Provenance goes in the tags ``green.market.source`` and ``green.water_source``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mlflow_green.errors import ConfigError
from mlflow_green.tracking import schema

__all__ = ["ImpactFigures", "count_parameters", "impact_for", "parse_count", "validated_options"]


def parse_count(raw: Any, what: str) -> int:
    """A non-negative whole number (tokens, parameters); ConfigError naming ``what``."""
    try:
        value = float(raw.item() if hasattr(raw, "item") else raw)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{what}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise ConfigError(f"{what}={raw!r} must be a whole number >= 0")
    return int(value)


def count_parameters(module: Any) -> int | None:
    """Parameters of a torch module (each tensor once, shared ones not twice); None if not one."""
    parameters = getattr(module, "parameters", None)
    if not callable(parameters):
        return None
    try:
        seen: set[int] = set()
        total = 0
        for p in parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += int(p.numel())
        return total
    except Exception:  # not a torch module after all
        return None


@dataclass
class ImpactFigures:
    """Running market-based CO2, water and unit counts of one run."""

    market: Any  # accounting.MarketFactor
    water: Any  # accounting.WaterFactor
    pue: float
    parameters: int | None = None
    tokens: int = 0
    tokens_known: bool = False

    @classmethod
    def resolve(
        cls,
        location: Any,
        *,
        location_g_per_kwh: float,
        location_source: str,
        pue: float,
        renewable_fraction: float | str | None = None,
        market_intensity: float | str | None = None,
        wue: float | str | None = None,
        parameters: int | None = None,
    ) -> ImpactFigures:
        """Arguments beat ``MLFLOW_GREEN_RENEWABLE_FRACTION`` / ``_MARKET_INTENSITY`` / ``_WUE``."""
        from mlflow_green import accounting as acct

        market = acct.market_factor(
            location,
            location_g_per_kwh=location_g_per_kwh,
            location_source=location_source,
            renewable_fraction=renewable_fraction,
            market_intensity=market_intensity,
        )
        return cls(
            market=market,
            water=acct.water_factor(location, wue=wue),
            pue=pue,
            parameters=parameters,
        )

    @property
    def tags(self) -> dict[str, str]:
        return {
            schema.TAG_MARKET_SOURCE: self.market.source,
            schema.TAG_WATER_SOURCE: self.water.source,
        }

    def add_tokens(self, n: Any) -> None:
        """Training tokens seen since the last epoch end (``report_tokens``)."""
        self.tokens += parse_count(n, "tokens")
        self.tokens_known = True

    def set_tokens(self, total: Any) -> None:
        """The run's training tokens so far (HF Trainer's ``num_input_tokens_seen``)."""
        self.tokens = parse_count(total, "tokens")
        self.tokens_known = True

    def set_parameters(self, n: Any) -> None:
        self.parameters = parse_count(n, "parameters") or None

    @property
    def _follows_location(self) -> bool:
        return "location-fallback:" in self.market.source

    def epoch(self, record: Any) -> dict[str, float]:
        """This epoch's metrics, from the tracker's :class:`EpochRecord`.

        The cumulative figures are computed from the record's own cumulative energy and CO2eq,
        not kept here, so a resumed run (whose record continues its totals) stays right. Where
        the market factor falls back to the location's, it is the epoch's own intensity:
        ``(1 - renewable_fraction) × co2eq_kg``.
        """
        from mlflow_green import accounting as acct

        share = 1.0 - float(self.market.renewable_fraction)
        if self._follows_location:
            market_kg, cum_market_kg = share * record.co2eq_kg, share * record.cum_co2eq_kg
        else:
            market_kg = acct.market_kg(record.energy_kwh, self.pue, self.market)
            cum_market_kg = acct.market_kg(record.cum_energy_kwh, self.pue, self.market)
        out = {
            schema.CO2EQ_MARKET_KG: market_kg,
            schema.CUM_CO2EQ_MARKET_KG: cum_market_kg,
            schema.WATER_L: acct.water_l(record.energy_kwh, self.pue, self.water),
            schema.CUM_WATER_L: acct.water_l(record.cum_energy_kwh, self.pue, self.water),
        }
        if self.tokens_known and self.tokens > 0:
            out[schema.G_PER_MTOKEN] = acct.g_per_mtoken(record.cum_total_co2eq_kg, self.tokens)
        if self.parameters:
            out[schema.KG_PER_BPARAM] = acct.kg_per_bparam(
                record.cum_total_co2eq_kg, self.parameters
            )
        return out


def validated_options(config: Any) -> dict[str, Any]:
    """``GreenConfig`` changes for the issue-19 options (ConfigError naming a bad one)."""
    from mlflow_green import _settings
    from mlflow_green.accounting import resolve_wue

    changes: dict[str, Any] = {}
    if config.renewable_fraction is not None:
        changes["renewable_fraction"] = _settings.parse_fraction(
            config.renewable_fraction, "renewable_fraction"
        )
    if config.market_intensity is not None:
        changes["market_intensity"] = _settings.parse_float(
            config.market_intensity, "market_intensity", minimum=0.0
        )
    if config.wue is not None:
        resolve_wue(config.wue)
    if config.parameters is not None and not isinstance(config.parameters, int):
        counted = count_parameters(config.parameters)
        changes["parameters"] = (
            counted if counted is not None else parse_count(config.parameters, "parameters")
        )
    elif isinstance(config.parameters, int):
        changes["parameters"] = parse_count(config.parameters, "parameters")
    return changes


def impact_for(config: Any, location: Any, pue: float) -> ImpactFigures:
    """The run's :class:`ImpactFigures` from its options (arguments beat the environment)."""
    from mlflow_green.accounting import static_intensity

    try:
        reference = float(static_intensity(location).g_per_kwh)
    except Exception:  # the reference only names the fallback; the epochs use their own
        reference = math.nan
    return ImpactFigures.resolve(
        location,
        location_g_per_kwh=reference,
        location_source="the epoch's location-based intensity",
        pue=pue,
        renewable_fraction=config.renewable_fraction,
        market_intensity=config.market_intensity,
        wue=config.wue,
        parameters=config.parameters or None,
    )
