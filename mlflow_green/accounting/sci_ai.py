"""Training emissions per functional unit, after the Green Software Foundation's SCI for AI.

The SCI specification (ISO/IEC 21031:2024) is ``SCI = (O + M) per R``: operational emissions
``O = E × I`` plus embodied emissions ``M``, per functional unit ``R``. The SCI for AI extension
applies it to the model-training life-cycle stage, counting every epoch, intermediate and
early-stopped run, and names training tokens and model parameters as functional units.
Here ``O + M`` is the run's cumulative ``green/cum_total_co2eq_kg`` (location-based
operational plus embodied), so:

- ``green/g_per_mtoken`` = total g CO2eq / (training tokens / 10^6)
- ``green/kg_per_bparam`` = total kg CO2eq / (parameters / 10^9)

Both are NaN when the unit count is unknown or not positive.
"""

from __future__ import annotations

import math

__all__ = ["g_per_mtoken", "kg_per_bparam"]


def g_per_mtoken(total_co2eq_kg: float, tokens: float | None) -> float:
    """Grams CO2eq per million training tokens (NaN when ``tokens`` is unknown or <= 0)."""
    if tokens is None or not math.isfinite(tokens) or tokens <= 0:
        return math.nan
    return total_co2eq_kg * 1000.0 / (tokens / 1e6)


def kg_per_bparam(total_co2eq_kg: float, parameters: float | None) -> float:
    """Kilograms CO2eq per billion model parameters (NaN when unknown or <= 0)."""
    if parameters is None or not math.isfinite(parameters) or parameters <= 0:
        return math.nan
    return total_co2eq_kg / (parameters / 1e9)
