"""``mlflow-green estimate``: a training job's footprint before it runs.

From measured or guessed energy (``--energy-kwh``), or from hardware (``--gpu MODEL --count N
--hours H [--utilization U]``, TDP from the packaged hardware table), at a location or a fixed
``--intensity``, with ``--pue`` and every embodied input overridable. Like the ML CO2 Impact and
Green Algorithms calculators, plus embodied emissions.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from mlflow_green import _settings
from mlflow_green.cli._common import add_embodied_options, add_json_flag, add_location_options, emit
from mlflow_green.errors import ConfigError

_SIG_DIGITS = 6


def round_sig(value: float, digits: int = _SIG_DIGITS) -> float:
    """Round to significant digits so JSON shows 65.52, not 65.52000000000001."""
    return float(f"{value:.{digits}g}")


@contextlib.contextmanager
def warnings_to_stderr() -> Iterator[None]:
    """Show the accounting layer's warnings as one ``mlflow-green: warning:`` line each."""
    from mlflow_green.accounting import GreenWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GreenWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, GreenWarning):
                    sys.stderr.write(f"mlflow-green: warning: {w.message}\n")
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def add_pue_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pue",
        help="power usage effectiveness (>= 1.0), or a published value: gcp, aws, azure, on-prem (default 1.0)",
    )


def resolve_where(args: argparse.Namespace) -> tuple[Any, Any]:
    """(Location, IntensityValue) from the location options and ``--intensity``."""
    from mlflow_green import accounting as acct

    location = acct.resolve_location(args.country, args.region, args.cloud, args.cloud_region)
    source = acct.intensity_source(location, fixed=getattr(args, "intensity", None))
    return location, source.intensity()


def embodied_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "profile": args.embodied_profile,
        "device_embodied_kg": args.device_embodied_kg,
        "node_embodied_kg": args.node_embodied_kg,
        "devices_per_node": args.devices_per_node,
        "lifetime_years": args.lifetime_years,
    }


def embodied_range(config: Any, duration_s: float, devices: float) -> tuple[float, float]:
    """Embodied kg with the lowest and highest published per-device figure (node unchanged)."""
    from mlflow_green import accounting as acct

    if config.cpu_only or config.profile.startswith("custom"):
        value = acct.embodied_kg(config, duration_s, devices)
        return value, value
    low = acct.embodied_kg(replace(config, device_embodied_kg=config.device_low_kg), duration_s, devices)
    high = acct.embodied_kg(replace(config, device_embodied_kg=config.device_high_kg), duration_s, devices)
    return low, high


def add_parser(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("energy (either --energy-kwh, or --gpu with --hours)")
    g.add_argument("--energy-kwh", dest="energy_kwh", help="IT energy of the job in kWh (before PUE)")
    g.add_argument("--gpu", help="GPU model, e.g. H100, A100-SXM4-80GB, 'NVIDIA L4', T4, MI300X")
    g.add_argument("--count", help="number of GPUs (default 1; 0 for a CPU-only job with --energy-kwh)")
    g.add_argument("--hours", help="wall-clock hours; with --energy-kwh it is used for the embodied share")
    g.add_argument("--utilization", help="average power as a fraction of TDP, 0-1 (default 1.0)")
    g.add_argument("--tdp-w", dest="tdp_w", help="power per GPU in W, for a GPU not in the table")
    add_location_options(parser)
    add_pue_option(parser)
    add_market_water_options(parser)
    add_embodied_options(parser)
    add_json_flag(parser)


def add_market_water_options(parser: argparse.ArgumentParser) -> None:
    """--renewable-fraction, --market-intensity (Scope 2 market-based) and --wue (water)."""
    g = parser.add_argument_group("market-based emissions and water")
    g.add_argument(
        "--renewable-fraction",
        dest="renewable_fraction",
        help="share of the energy matched by certificates/PPAs, 0-1 (counted at 0 g/kWh; "
        "default MLFLOW_GREEN_RENEWABLE_FRACTION, else 0)",
    )
    g.add_argument(
        "--market-intensity",
        dest="market_intensity",
        help="supplier g/kWh for the unmatched rest (default MLFLOW_GREEN_MARKET_INTENSITY, "
        "else the location's residual mix)",
    )
    g.add_argument(
        "--wue",
        help="on-site water usage effectiveness, L/kWh, or aws/azure (default MLFLOW_GREEN_WUE)",
    )


def market_and_water(
    args: argparse.Namespace, location: Any, intensity: Any, energy_kwh: float, pue: float
) -> tuple[dict[str, Any], list[str]]:
    """The ``co2eq_market_kg`` and ``water_l`` keys and their text lines."""
    from mlflow_green import accounting as acct

    factor = acct.market_factor(
        location,
        location_g_per_kwh=intensity.g_per_kwh,
        location_source=intensity.source,
        renewable_fraction=getattr(args, "renewable_fraction", None),
        market_intensity=getattr(args, "market_intensity", None),
    )
    water = acct.water_factor(location, wue=getattr(args, "wue", None))
    data = {
        "co2eq_market_kg": round_sig(acct.market_kg(energy_kwh, pue, factor)),
        "market_g_per_kwh": round_sig(factor.g_per_kwh),
        "market_source": factor.source,
        "water_l": round_sig(acct.water_l(energy_kwh, pue, water)),
        "water_source": water.source,
    }
    lines = [
        f"market-based  {data['co2eq_market_kg']:g} kgCO2  [{factor.source}]",
        f"water         {data['water_l']:g} L  [{water.source}]",
    ]
    return data, lines


def _positive(raw: object, flag: str) -> float:
    value = _settings.parse_float(raw, flag, minimum=0.0)
    if value <= 0:
        raise ConfigError(f"{flag}={raw!r} must be greater than 0")
    return value


def _count(raw: object, default: int) -> int:
    if raw is None:
        return default
    value = _settings.parse_float(raw, "--count", minimum=0.0)
    if value != int(value):
        raise ConfigError(f"--count={raw!r} must be a whole number of GPUs")
    return int(value)


def _it_energy(
    args: argparse.Namespace, hours: float | None
) -> tuple[float, int, float | None, float | None]:
    """``(energy_kwh, gpu count, tdp_w, utilization)`` from ``--energy-kwh`` or ``--gpu``."""
    from mlflow_green import accounting as acct

    tdp_w = utilization = None
    if args.gpu is not None:
        if hours is None:
            raise ConfigError("--gpu needs --hours H (wall-clock hours of the job)")
        count = _count(args.count, 1)
        if count < 1:
            raise ConfigError("--count must be at least 1 with --gpu")
        utilization = 1.0 if args.utilization is None else _positive(args.utilization, "--utilization")
        if utilization > 1.0:
            raise ConfigError(f"--utilization={args.utilization!r} is a fraction of TDP: give a value between 0 and 1")
        hardware = acct.lookup_hardware(args.gpu)
        if args.tdp_w is not None:
            tdp_w = _positive(args.tdp_w, "--tdp-w")
        elif hardware is not None:
            tdp_w = hardware.tdp_w
        else:
            from mlflow_green.accounting import _data

            keys = [r["key"] for r in _data.rows("hardware.csv")]
            raise ConfigError(
                f"unknown GPU {args.gpu!r}{_data.hint(args.gpu, keys)}: use a listed model or give its power with --tdp-w"
            )
        energy_kwh = tdp_w * count * hours * utilization / 1000.0
    else:
        if args.utilization is not None or args.tdp_w is not None:
            raise ConfigError("--utilization and --tdp-w apply to --gpu, not to --energy-kwh")
        energy_kwh = _settings.parse_float(args.energy_kwh, "--energy-kwh", minimum=0.0)
        count = _count(args.count, 1)
    return energy_kwh, count, tdp_w, utilization


def run(args: argparse.Namespace) -> int:
    from mlflow_green import accounting as acct

    if args.energy_kwh is not None and args.gpu is not None:
        raise ConfigError("give either --energy-kwh or --gpu (with --count and --hours), not both")
    if args.energy_kwh is None and args.gpu is None:
        raise ConfigError("give --energy-kwh E, or --gpu MODEL --count N --hours H")

    hours = None if args.hours is None else _settings.parse_float(args.hours, "--hours", minimum=0.0)
    energy_kwh, count, tdp_w, utilization = _it_energy(args, hours)

    # Validate every input before the intensity lookup, which may warn or call the network.
    pue = acct.resolve_pue(args.pue)
    config = None
    embodied = low = high = 0.0
    if hours is not None:
        gpu_name = args.gpu if args.gpu is not None else ("generic GPU" if count > 0 else None)
        config = acct.embodied_config(gpu_name, gpu_count=count, **embodied_kwargs(args))
        duration_s = hours * 3600.0
        embodied = acct.embodied_kg(config, duration_s, count)
        low, high = embodied_range(config, duration_s, count)
    acct.resolve_renewable_fraction(args.renewable_fraction)  # validated before any lookup
    acct.resolve_market_intensity(args.market_intensity)
    acct.resolve_wue(args.wue)
    with warnings_to_stderr():
        location, intensity = resolve_where(args)
    co2eq_kg = acct.operational_kg(energy_kwh, pue, intensity.g_per_kwh)
    extra, extra_lines = market_and_water(args, location, intensity, energy_kwh, pue)

    data: dict[str, Any] = {
        "energy_kwh": round_sig(energy_kwh),
        "co2eq_kg": round_sig(co2eq_kg),
        "embodied_kg": round_sig(embodied),
        "total_co2eq_kg": round_sig(co2eq_kg + embodied),
        "intensity_g_per_kwh": round_sig(intensity.g_per_kwh),
        "intensity_source": intensity.source,
        "intensity_year": intensity.year,
        "location": intensity.location,
        "pue": pue,
        "facility_energy_kwh": round_sig(energy_kwh * pue),
        "embodied_low_kg": round_sig(low),
        "embodied_high_kg": round_sig(high),
        "embodied_profile": config.tag if config else None,
        "gpu": args.gpu,
        "gpu_count": count,
        "hours": hours,
        "tdp_w": tdp_w,
        "utilization": utilization,
        **extra,
    }
    lines = [
        f"energy        {data['energy_kwh']:g} kWh (IT) x PUE {pue:g}",
        f"intensity     {data['intensity_g_per_kwh']:g} gCO2eq/kWh  [{intensity.source}, {intensity.location}]",
        f"operational   {data['co2eq_kg']:g} kgCO2eq",
    ]
    if config is not None:
        lines.append(
            f"embodied      {data['embodied_kg']:g} kgCO2eq  [{config.tag}; published range {data['embodied_low_kg']:g}-{data['embodied_high_kg']:g}]"
        )
    else:
        lines.append("embodied      0 kgCO2eq  (give --hours to include the hardware's embodied share)")
    lines.append(f"total         {data['total_co2eq_kg']:g} kgCO2eq")
    lines += extra_lines
    emit(args, data, "\n".join(lines))
    return 0
