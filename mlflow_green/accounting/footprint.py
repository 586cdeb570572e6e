"""Energy to carbon: operational emissions, an epoch's footprint, scores and lifecycle totals."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlflow_green import _settings
from mlflow_green.accounting.embodied import EmbodiedConfig, embodied_kg
from mlflow_green.errors import ConfigError

__all__ = [
    "EpochFootprint",
    "LifecycleTotal",
    "accuracy_per_kg",
    "epoch_footprint",
    "green_score",
    "lifecycle_total",
    "operational_kg",
]


def _pue(pue: float) -> float:
    value = _settings.parse_float(pue, "pue")
    if value < 1.0:
        raise ConfigError(f"pue={pue!r} is below 1: PUE is facility energy / IT energy, so it is at least 1.0")
    return value


def operational_kg(energy_kwh: float, pue: float, intensity_g_per_kwh: float) -> float:
    """Operational kgCO2eq = IT energy (kWh) × PUE × grid intensity (g/kWh) / 1000."""
    energy = _settings.parse_float(energy_kwh, "energy_kwh", minimum=0.0)
    intensity = _settings.parse_float(intensity_g_per_kwh, "intensity_g_per_kwh", minimum=0.0)
    return energy * _pue(pue) * intensity / 1000.0


@dataclass(frozen=True)
class EpochFootprint:
    """The carbon of one window (an epoch): operational, embodied and their sum."""

    energy_kwh: float
    duration_s: float
    pue: float
    intensity_g_per_kwh: float
    co2eq_kg: float
    embodied_kg: float

    @property
    def total_co2eq_kg(self) -> float:
        return self.co2eq_kg + self.embodied_kg

    @property
    def facility_energy_kwh(self) -> float:
        return self.energy_kwh * self.pue


def epoch_footprint(
    energy_kwh: float,
    *,
    duration_s: float,
    pue: float,
    intensity_g_per_kwh: float,
    embodied: EmbodiedConfig | None = None,
    devices_used: int | None = None,
) -> EpochFootprint:
    """One window's footprint. ``embodied`` None charges no embodied share."""
    co2 = operational_kg(energy_kwh, pue, intensity_g_per_kwh)
    duration = _settings.parse_float(duration_s, "duration_s", minimum=0.0)
    emb = 0.0 if embodied is None else embodied_kg(embodied, duration, devices_used)
    return EpochFootprint(
        energy_kwh=float(energy_kwh),
        duration_s=duration,
        pue=float(pue),
        intensity_g_per_kwh=float(intensity_g_per_kwh),
        co2eq_kg=co2,
        embodied_kg=emb,
    )


def accuracy_per_kg(accuracy: float | None, total_kg: float) -> float:
    """Accuracy (or any higher-is-better score) per kgCO2eq; NaN when undefined.

    NaN, not infinity, for a zero footprint: an unmeasured run must not top a leaderboard.
    """
    if accuracy is None or total_kg is None:
        return math.nan
    acc, kg = float(accuracy), float(total_kg)
    if not (math.isfinite(acc) and math.isfinite(kg)) or kg <= 0:
        return math.nan
    return acc / kg


def green_score(accuracy: float, inference_g_per_request: float) -> float:
    """Green Score = accuracy / inference gCO2eq per request × 1000.

    That is accuracy per kgCO2eq per request: higher is better. NaN when the inference
    footprint is zero or unknown.
    """
    acc = float(accuracy)
    g = float(inference_g_per_request)
    if not (math.isfinite(acc) and math.isfinite(g)) or g <= 0:
        return math.nan
    return acc / g * 1000.0


@dataclass(frozen=True)
class LifecycleTotal:
    """Training + inference over a horizon + embodied, in kgCO2eq."""

    training_kg: float
    inference_kg: float
    embodied_kg: float
    requests: float

    @property
    def total_kg(self) -> float:
        return self.training_kg + self.inference_kg + self.embodied_kg


def lifecycle_total(
    training_co2eq_kg: float,
    *,
    inference_g_per_request: float = 0.0,
    requests_per_day: float = 0.0,
    horizon_days: float = 0.0,
    embodied_kg: float = 0.0,
) -> LifecycleTotal:
    """A model's lifecycle footprint.

    Pass *operational* figures for training and inference and every embodied share in
    ``embodied_kg`` (training hardware plus serving hardware over the horizon), so nothing is
    counted twice.
    """
    training = _settings.parse_float(training_co2eq_kg, "training_co2eq_kg", minimum=0.0)
    per_request = _settings.parse_float(inference_g_per_request, "inference_g_per_request", minimum=0.0)
    rate = _settings.parse_float(requests_per_day, "requests_per_day", minimum=0.0)
    days = _settings.parse_float(horizon_days, "horizon_days", minimum=0.0)
    emb = _settings.parse_float(embodied_kg, "embodied_kg", minimum=0.0)
    requests = rate * days
    return LifecycleTotal(training, per_request * requests / 1000.0, emb, requests)
