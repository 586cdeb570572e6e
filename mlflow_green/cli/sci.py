"""``mlflow-green sci``: Software Carbon Intensity of inference per functional unit.

SCI = (E × I + M) / R with E = power × latency × requests (× PUE), M the embodied share of
the serving device for the time the requests kept it busy, and R = requests / ``--unit-requests``
(``--unit-requests 1000`` gives gCO2eq per 1,000 requests).
"""

from __future__ import annotations

import argparse
from typing import Any

from mlflow_green import _settings
from mlflow_green.cli._common import add_embodied_options, add_json_flag, add_location_options, emit
from mlflow_green.cli.estimate import (
    add_pue_option,
    embodied_kwargs,
    resolve_where,
    round_sig,
    warnings_to_stderr,
)
from mlflow_green.errors import ConfigError


def add_parser(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("workload")
    g.add_argument("--power-w", dest="power_w", required=True, help="average power of the serving device(s) in W")
    g.add_argument("--latency-ms", dest="latency_ms", required=True, help="device time per request in ms")
    g.add_argument("--requests", required=True, help="number of requests")
    g.add_argument("--unit-requests", dest="unit_requests", default="1",
                   help="requests per functional unit (default 1; 1000 for per-1,000-requests)")
    g.add_argument("--gpu", help="serving device model, for its embodied figure (default: generic GPU)")
    add_location_options(parser)
    add_pue_option(parser)
    add_embodied_options(parser)
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from mlflow_green import accounting as acct

    requests = _settings.parse_float(args.requests, "--requests", minimum=0.0)
    if requests <= 0:
        raise ConfigError(f"--requests={args.requests!r} must be greater than 0")
    unit = _settings.parse_float(args.unit_requests, "--unit-requests", minimum=0.0)
    if unit <= 0:
        raise ConfigError(f"--unit-requests={args.unit_requests!r} must be greater than 0")
    energy_kwh = acct.inference_energy_kwh(args.power_w, args.latency_ms, requests)
    busy_s = float(args.latency_ms) / 1000.0 * requests

    pue = acct.resolve_pue(args.pue)
    config = acct.embodied_config(args.gpu or "generic GPU", gpu_count=1, **embodied_kwargs(args))
    embodied = acct.embodied_kg(config, busy_s, 1)
    with warnings_to_stderr():
        _, intensity = resolve_where(args)
    result = acct.sci(energy_kwh, intensity.g_per_kwh, embodied_kg=embodied,
                      functional_units=requests / unit, pue=pue)

    data: dict[str, Any] = {
        "energy_kwh": round_sig(result.energy_kwh),
        "co2eq_kg": round_sig(result.co2eq_kg),
        "embodied_kg": round_sig(result.embodied_kg),
        "total_co2eq_kg": round_sig(result.total_co2eq_kg),
        "sci_g_per_unit": round_sig(result.g_per_unit),
        "unit_requests": unit,
        "functional_units": round_sig(result.functional_units),
        "intensity_g_per_kwh": round_sig(intensity.g_per_kwh),
        "intensity_source": intensity.source,
        "location": intensity.location,
        "pue": pue,
        "embodied_profile": config.tag,
    }
    unit_text = "request" if unit == 1 else f"{unit:g} requests"
    text = "\n".join([
        f"energy        {data['energy_kwh']:g} kWh (IT) x PUE {pue:g}",
        f"intensity     {data['intensity_g_per_kwh']:g} gCO2eq/kWh  [{intensity.source}, {intensity.location}]",
        f"operational   {data['co2eq_kg']:g} kgCO2eq",
        f"embodied      {data['embodied_kg']:g} kgCO2eq  [{config.tag}]",
        f"SCI           {data['sci_g_per_unit']:g} gCO2eq per {unit_text}",
    ])
    emit(args, data, text)
    return 0
