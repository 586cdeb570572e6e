"""``mlflow-green schedule``: the cleanest time window (and region) to run a job in."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlflow_green.cli._common import add_json_flag, emit
from mlflow_green.errors import ConfigError

__all__ = ["add_parser", "run"]


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", required=True, help="job length, e.g. 90m, 6h, 1h30m")
    src = parser.add_mutually_exclusive_group()
    src.add_argument(
        "--forecast",
        type=Path,
        help="forecast file: CSV 'datetime,carbon_intensity' (ISO 8601, g/kWh) or Electricity Maps JSON",
    )
    src.add_argument(
        "--zone", help="Electricity Maps zone for a live forecast (needs ELECTRICITYMAPS_API_TOKEN)"
    )
    parser.add_argument(
        "--regions",
        help="choose the cleanest of provider:region,... (e.g. aws:eu-north-1,aws:us-east-1); "
        "live forecasts with a token, else the embedded annual intensity",
    )
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from mlflow_green.accounting import forecast as fc

    duration = fc.parse_duration(args.duration)
    if args.regions:
        if args.forecast or args.zone:
            raise ConfigError(
                "--regions cannot be combined with --forecast or --zone: give one of them"
            )
        choice, candidates = fc.choose_region(fc.parse_regions(args.regions), duration)
        lines = [
            f"cleanest region: {choice.region} ({choice.source})",
            f"start {choice.start.isoformat()}  end {choice.end.isoformat()}",
            f"mean intensity {choice.mean_intensity_g_per_kwh:.1f} g/kWh; now in {candidates[0].region} "
            f"{choice.now_mean_intensity_g_per_kwh:.1f} g/kWh; saving {choice.saving_pct:.1f}%",
        ]
        lines += [
            f"  {c.region:<28} {c.choice.mean_intensity_g_per_kwh:8.1f} g/kWh  ({c.source})"
            for c in candidates
        ]
        data = choice.to_dict()
        data["regions"] = [
            {
                "region": c.region,
                "location": c.location,
                "mean_intensity_g_per_kwh": c.choice.mean_intensity_g_per_kwh,
                "start": c.choice.start.isoformat(),
                "source": c.source,
            }
            for c in candidates
        ]
        emit(args, data, "\n".join(lines))
        return 0
    if args.forecast:
        points = fc.load_forecast(args.forecast)
        source = str(args.forecast)
    elif args.zone:
        points = fc.fetch_forecast(args.zone)
        source = f"electricitymaps forecast ({args.zone})"
    else:
        raise ConfigError(
            "give --forecast FILE, --zone ZONE (with ELECTRICITYMAPS_API_TOKEN) or --regions"
        )
    choice = fc.best_window(points, duration)
    text = (
        f"best start {choice.start.isoformat()} (ends {choice.end.isoformat()})\n"
        f"mean intensity {choice.mean_intensity_g_per_kwh:.1f} g/kWh vs "
        f"{choice.now_mean_intensity_g_per_kwh:.1f} g/kWh starting now: saving {choice.saving_pct:.1f}%\n"
        f"forecast: {source}, {len(points)} points from {points[0].time.isoformat()}"
    )
    emit(args, choice.to_dict(), text)
    return 0
