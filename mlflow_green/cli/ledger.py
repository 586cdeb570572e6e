"""``mlflow-green ledger``: every measured run's emissions, by period, experiment, model, user or tag."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlflow_green.cli._common import add_json_flag, emit
from mlflow_green.errors import ConfigError

__all__ = ["add_parser", "run"]


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--experiment",
        action="append",
        default=[],
        metavar="NAME",
        help="an experiment name or id (repeatable; default: every experiment, deleted ones included)",
    )
    parser.add_argument(
        "--since", help="first day counted: YYYY-MM, YYYY-MM-DD or an ISO 8601 time (UTC)"
    )
    parser.add_argument(
        "--until", help="last day counted (a YYYY-MM or YYYY-MM-DD is included whole)"
    )
    parser.add_argument(
        "--by",
        required=True,
        help="month, quarter, experiment, model (registered model plus lineage), user or tag:KEY",
    )
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write the rows as CSV here")
    parser.add_argument(
        "--html", type=Path, metavar="FILE", help="write an HTML report (stacked bars + table)"
    )
    add_json_flag(parser)
    parser.epilog = (
        "JSON: {by, since, until, experiments, rows: [{group, runs, epochs, energy_kwh, co2eq_kg, "
        "co2eq_market_kg, embodied_kg, total_co2eq_kg, water_l, deleted_runs, failed_runs, "
        "killed_runs, running_runs, derived_epochs}], total, notes}. Each epoch counts in the period "
        "in which it ended; deleted, failed and killed runs are included and counted."
    )


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient

    from mlflow_green.reports.ledger import format_ledger, ledger, ledger_csv, parse_bound, parse_by

    by = parse_by(args.by)
    parse_bound(args.since, "--since")  # bad input fails before any server is contacted
    parse_bound(args.until, "--until", end=True)
    book = ledger(
        MlflowClient(), by=by, experiments=args.experiment, since=args.since, until=args.until
    )
    text = format_ledger(book)
    if args.csv:
        _write(args.csv, ledger_csv(book))
        text += f"\nwrote {args.csv}"
    if args.html:
        from mlflow_green.reports.ledger_html import render_ledger_html

        _write(args.html, render_ledger_html(book))
        text += f"\nwrote {args.html}"
    emit(args, book.to_dict(), text)
    return 0
