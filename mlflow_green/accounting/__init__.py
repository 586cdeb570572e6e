"""Carbon accounting: intensity, PUE, embodied emissions, footprint, SCI, projections.

Pure functions and frozen dataclasses; the only I/O is in the intensity sources (the packaged
tables, and Electricity Maps behind :class:`IntensitySource`). Units are in the names.

Public API (signatures are the contract other layers code against)::

    resolve_location(country=None, region=None, cloud_provider=None, cloud_region=None,
                     *, use_env=True) -> Location          # .label: FRA, USA/california, gcp/europe-west1, world
    intensity_source(location=None, *, fixed=None, token=None, base_url=None,
                     timeout_s=None, basis="lifecycle") -> IntensitySource
                                                            # fixed > MLFLOW_GREEN_INTENSITY > Electricity Maps > static
    IntensitySource.intensity(at: datetime | None = None) -> IntensityValue
    IntensityValue(g_per_kwh, source, year, location, citation="", at=None, zone=None, problem=None,
                   basis="lifecycle")                       # basis: "lifecycle" | "direct" | None (fixed)
    static_intensity(location, basis="lifecycle") -> IntensityValue
    parse_basis(raw) -> str                                 # BASES = ("lifecycle", "direct")
    parse_intensity(raw, what="intensity") -> float
    em_zone(location) -> str | None
    resolve_pue(value: float | str | None = None) -> float  # arg > MLFLOW_GREEN_PUE > 1.0; "gcp", "aws", "azure", "on-prem"
    pue_info(name) -> PueValue; named_pues() -> tuple[PueValue, ...]
    lookup_hardware(name) -> Hardware | None                # NVML names; .tdp_w
    embodied_config(gpu_name, *, gpu_count=1, profile=None, device_embodied_kg=None,
                    node_embodied_kg=None, devices_per_node=None, lifetime_years=None) -> EmbodiedConfig
                                                            # .tag for green.embodied_profile ("default", "default:generic")
    embodied_kg(config, duration_s, devices_used=None) -> float      # SCI M = TE × TiR/EL × RR/ToR
    embodied_profiles() -> tuple[str, ...]
    operational_kg(energy_kwh, pue, intensity_g_per_kwh) -> float
    epoch_footprint(energy_kwh, *, duration_s, pue, intensity_g_per_kwh, embodied=None,
                    devices_used=None) -> EpochFootprint   # .co2eq_kg, .embodied_kg, .total_co2eq_kg
    project_total(per_epoch_values, total_epochs) -> Projection(value, low, high, rate, ...)
    inference_energy_kwh(power_w, latency_ms, requests) -> float
    sci(energy_kwh, intensity_g_per_kwh, *, embodied_kg=0.0, functional_units=1.0, pue=1.0) -> SciResult
    accuracy_per_kg(accuracy, total_kg) -> float            # NaN when undefined
    green_score(accuracy, inference_g_per_request) -> float # accuracy / g per request × 1000
    lifecycle_total(training_co2eq_kg, *, inference_g_per_request=0.0, requests_per_day=0.0,
                    horizon_days=0.0, embodied_kg=0.0) -> LifecycleTotal
    market_factor(location, *, location_g_per_kwh, location_source="", renewable_fraction=None,
                  market_intensity=None) -> MarketFactor   # Scope 2 market-based; .g_per_kwh, .source
    market_kg(energy_kwh, pue, factor) -> float
    residual_mix(location) -> ResidualMix | None            # AIB (Europe), Green-e (US, Canada)
    water_factor(location, *, wue=None) -> WaterFactor      # on-site WUE + off-site L/kWh, .source
    water_l(energy_kwh, pue, factor) -> float
    resolve_renewable_fraction(value=None) -> float; resolve_market_intensity(value=None) -> float | None
    resolve_wue(value=None) -> WueValue; named_wues(); offsite_l_per_kwh(location) -> (L/kWh, label)
    g_per_mtoken(total_co2eq_kg, tokens); kg_per_bparam(total_co2eq_kg, parameters)  # SCI for AI

Sources, the embodied range and the projection method: docs/accounting.md.
"""

from __future__ import annotations

from mlflow_green.accounting.electricitymaps import ElectricityMapsIntensity
from mlflow_green.accounting.embodied import (
    EmbodiedConfig,
    Hardware,
    embodied_config,
    embodied_kg,
    embodied_profiles,
    lookup_hardware,
)
from mlflow_green.accounting.footprint import (
    EpochFootprint,
    LifecycleTotal,
    accuracy_per_kg,
    epoch_footprint,
    green_score,
    lifecycle_total,
    operational_kg,
)
from mlflow_green.accounting.intensity import (
    BASES,
    FixedIntensity,
    GreenWarning,
    IntensitySource,
    IntensityValue,
    StaticIntensity,
    em_zone,
    parse_basis,
    parse_intensity,
    static_intensity,
)
from mlflow_green.accounting.location import Location, resolve_location
from mlflow_green.accounting.market import (
    MarketFactor,
    ResidualMix,
    market_factor,
    market_kg,
    residual_mix,
    resolve_market_intensity,
    resolve_renewable_fraction,
)
from mlflow_green.accounting.projection import Projection, project_total
from mlflow_green.accounting.pue import PueValue, named_pues, pue_info, resolve_pue
from mlflow_green.accounting.sci import SciResult, inference_energy_kwh, sci
from mlflow_green.accounting.sci_ai import g_per_mtoken, kg_per_bparam
from mlflow_green.accounting.sources import intensity_source
from mlflow_green.accounting.water import (
    WaterFactor,
    WueValue,
    named_wues,
    offsite_l_per_kwh,
    resolve_wue,
    water_factor,
    water_l,
)

__all__ = [
    "BASES",
    "ElectricityMapsIntensity",
    "EmbodiedConfig",
    "EpochFootprint",
    "FixedIntensity",
    "GreenWarning",
    "Hardware",
    "IntensitySource",
    "IntensityValue",
    "LifecycleTotal",
    "Location",
    "MarketFactor",
    "Projection",
    "PueValue",
    "ResidualMix",
    "SciResult",
    "StaticIntensity",
    "WaterFactor",
    "WueValue",
    "accuracy_per_kg",
    "em_zone",
    "embodied_config",
    "embodied_kg",
    "embodied_profiles",
    "epoch_footprint",
    "g_per_mtoken",
    "green_score",
    "inference_energy_kwh",
    "intensity_source",
    "kg_per_bparam",
    "lifecycle_total",
    "lookup_hardware",
    "market_factor",
    "market_kg",
    "named_pues",
    "named_wues",
    "offsite_l_per_kwh",
    "operational_kg",
    "parse_basis",
    "parse_intensity",
    "project_total",
    "pue_info",
    "residual_mix",
    "resolve_location",
    "resolve_market_intensity",
    "resolve_pue",
    "resolve_renewable_fraction",
    "resolve_wue",
    "sci",
    "static_intensity",
    "water_factor",
    "water_l",
]
