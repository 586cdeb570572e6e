"""Software Carbon Intensity (Green Software Foundation, ISO/IEC 21031:2024).

    SCI = (E × I + M) / R

E the energy (kWh, facility energy: IT energy × PUE), I the grid intensity (g/kWh), M the
embodied emissions of the reserved hardware, R the number of functional units (requests,
thousands of requests, tokens...).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow_green import _settings
from mlflow_green.accounting.footprint import operational_kg
from mlflow_green.errors import ConfigError

__all__ = ["SciResult", "inference_energy_kwh", "sci"]

JOULES_PER_KWH = 3.6e6


def inference_energy_kwh(power_w: float, latency_ms: float, requests: float) -> float:
    """IT energy of ``requests`` requests served at ``power_w`` for ``latency_ms`` each."""
    p = _settings.parse_float(power_w, "power_w", minimum=0.0)
    latency = _settings.parse_float(latency_ms, "latency_ms", minimum=0.0)
    n = _settings.parse_float(requests, "requests", minimum=0.0)
    return p * (latency / 1000.0) * n / JOULES_PER_KWH


@dataclass(frozen=True)
class SciResult:
    """An SCI score with its parts (``energy_kwh`` is IT energy, before PUE)."""

    energy_kwh: float
    co2eq_kg: float
    embodied_kg: float
    functional_units: float

    @property
    def total_co2eq_kg(self) -> float:
        return self.co2eq_kg + self.embodied_kg

    @property
    def g_per_unit(self) -> float:
        return self.total_co2eq_kg * 1000.0 / self.functional_units


def sci(
    energy_kwh: float,
    intensity_g_per_kwh: float,
    *,
    embodied_kg: float = 0.0,
    functional_units: float = 1.0,
    pue: float = 1.0,
) -> SciResult:
    """SCI = (E × PUE × I + M) / R, in gCO2eq per functional unit (``.g_per_unit``)."""
    r = _settings.parse_float(functional_units, "functional_units", minimum=0.0)
    if r <= 0:
        raise ConfigError(f"functional_units={functional_units!r} must be greater than 0")
    m = _settings.parse_float(embodied_kg, "embodied_kg", minimum=0.0)
    o = operational_kg(energy_kwh, pue, intensity_g_per_kwh)
    return SciResult(float(energy_kwh), o, m, r)
