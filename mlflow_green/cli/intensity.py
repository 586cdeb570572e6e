"""``mlflow-green intensity``: the grid carbon intensity of a location, its year and source."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from mlflow_green.cli._common import add_json_flag, add_location_options, emit
from mlflow_green.cli.estimate import warnings_to_stderr
from mlflow_green.errors import ConfigError


def add_parser(parser: argparse.ArgumentParser) -> None:
    add_location_options(parser, intensity=False)
    parser.add_argument("--at", help="ISO 8601 time, for a time-resolved source (Electricity Maps)")
    parser.add_argument(
        "--basis",
        help="lifecycle (default: every shipped table) or direct (combustion only; eGRID US states, "
        "Google Cloud regions, or Electricity Maps with a token); default MLFLOW_GREEN_INTENSITY_BASIS",
    )
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from mlflow_green import accounting as acct

    at = None
    if args.at:
        try:
            at = datetime.fromisoformat(args.at.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"--at={args.at!r} is not an ISO 8601 time, e.g. 2025-06-01T14:00Z") from None
    with warnings_to_stderr():
        location = acct.resolve_location(args.country, args.region, args.cloud, args.cloud_region)
        value = acct.intensity_source(location, basis=args.basis).intensity(at)
    data: dict[str, Any] = {
        "intensity_g_per_kwh": value.g_per_kwh,
        "source": value.source,
        "basis": value.basis,
        "year": value.year,
        "location": value.location,
        "zone": value.zone,
        "citation": value.citation,
        "at": value.at.isoformat() if value.at else None,
    }
    year = f" ({value.year})" if value.year else ""
    basis = f", {value.basis}" if value.basis else ""
    emit(args, data, f"{value.location}: {value.g_per_kwh:g} gCO2eq/kWh{year}  [{value.source}{basis}]\n  {value.citation}")
    return 0
