"""Helpers shared by the subcommands: JSON/text output and recurring options."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``data`` as JSON when ``--json`` was given, else the human ``text``."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def describe_unexpected(exc: BaseException) -> str:
    """One line for an exception nobody anticipated, with a hint on connection problems."""
    from mlflow_green.tracking.failures import is_transient, short_reason

    text = " ".join(str(exc).split()) or type(exc).__name__
    if is_transient(exc):
        return f"cannot reach the MLflow tracking server ({short_reason(exc)}); check MLFLOW_TRACKING_URI"
    return f"{type(exc).__name__}: {text[:500]}"


def add_location_options(parser: argparse.ArgumentParser, *, intensity: bool = True) -> None:
    """--country/--region, --cloud/--cloud-region and (optionally) --intensity."""
    g = parser.add_argument_group("location")
    g.add_argument("--country", help="ISO 3166 alpha-3 country code, e.g. FRA")
    g.add_argument("--region", help="sub-national region, e.g. california, quebec, SE3")
    g.add_argument("--cloud", dest="cloud", help="cloud provider: aws, gcp or azure")
    g.add_argument("--cloud-region", dest="cloud_region", help="cloud region, e.g. eu-west-1")
    if intensity:
        g.add_argument("--intensity", type=str, help="fixed grid intensity in gCO2eq/kWh")


def add_embodied_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("embodied emissions")
    g.add_argument("--device-embodied-kg", dest="device_embodied_kg", help="embodied kgCO2eq of one device")
    g.add_argument("--node-embodied-kg", dest="node_embodied_kg", help="embodied kgCO2eq of the host node")
    g.add_argument("--devices-per-node", dest="devices_per_node", help="devices in one node")
    g.add_argument("--lifetime-years", dest="lifetime_years", help="expected hardware lifetime in years")
    g.add_argument("--embodied-profile", dest="embodied_profile", help="embodied data profile")
