"""``mlflow-green leaderboard``: rank an experiment's runs by accuracy per kg CO2eq."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from mlflow_green.cli._common import add_json_flag, emit
from mlflow_green.errors import ConfigError

__all__ = ["add_parser", "run"]

_REPORT_RUN_NAME = "green-leaderboard"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from mlflow_green.reports.leaderboard import SORT_KEYS

    parser.add_argument("--experiment", required=True, help="experiment name (or id)")
    parser.add_argument(
        "--metric",
        help="accuracy metric key (default: the run's green.accuracy_metric tag, else the first "
        "of eval_accuracy, val_accuracy, val_acc, accuracy)",
    )
    parser.add_argument("--top", type=int, help="show only the first K rows")
    parser.add_argument(
        "--sort", default="accuracy_per_kg", choices=sorted(SORT_KEYS), help="column to sort by"
    )
    parser.add_argument("--filter", default="", help="MLflow search filter string for the runs")
    parser.add_argument("--png", type=Path, help="write the Pareto plot here (needs matplotlib)")
    parser.add_argument("--html", type=Path, help="write a self-contained HTML report here")
    parser.add_argument(
        "--log-artifacts",
        action="store_true",
        help=f"log the report under green/ of a run named {_REPORT_RUN_NAME!r} in the experiment",
    )
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient

    from mlflow_green.reports.html import render_leaderboard_html
    from mlflow_green.reports.leaderboard import format_table, leaderboard
    from mlflow_green.reports.plot import save_pareto_png

    client = MlflowClient()
    board = leaderboard(
        client,
        args.experiment,
        metric=args.metric,
        sort=args.sort,
        top=args.top,
        filter_string=args.filter,
    )
    written: list[str] = []
    if args.png:
        save_pareto_png(
            board.rows, args.png, title=f"{board.experiment_name}: accuracy vs total CO2eq"
        )
        written.append(f"wrote {args.png}")
    if args.html:
        _write(args.html, render_leaderboard_html(board))
        written.append(f"wrote {args.html}")
    if args.log_artifacts:
        run_id = _log_artifacts(client, board)
        written.append(
            f"logged green/leaderboard.html, green/pareto.png, green/leaderboard.json to run {run_id}"
        )
    rows = [row.to_dict() for row in board.rows]
    text = format_table(board)
    if written:
        text += "\n" + "\n".join(written)
    emit(args, rows, text)
    if args.json and board.skipped:
        # stdout stays a clean JSON list; the people reading it still learn what was left out
        names = ", ".join(s.run_name for s in board.skipped[:10])
        sys.stderr.write(f"skipped {len(board.skipped)} runs without green/ metrics: {names}\n")
    return 0


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def _log_artifacts(client: Any, board: Any) -> str:
    """Log the report to the experiment's report run (created once, then reused)."""
    from mlflow_green.reports.html import render_leaderboard_html
    from mlflow_green.reports.leaderboard import REPORT_RUN_TAG
    from mlflow_green.reports.plot import save_pareto_png

    found = client.search_runs(
        [board.experiment_id],
        filter_string=f"tags.`{REPORT_RUN_TAG}` = 'leaderboard'",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    if found:
        run_id = found[0].info.run_id
    else:
        created = client.create_run(
            board.experiment_id, run_name=_REPORT_RUN_NAME, tags={REPORT_RUN_TAG: "leaderboard"}
        )
        run_id = created.info.run_id
        client.set_terminated(run_id)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "leaderboard.html").write_text(render_leaderboard_html(board), encoding="utf-8")
        (out / "leaderboard.json").write_text(
            json.dumps(board.to_dict(), indent=2), encoding="utf-8"
        )
        try:
            save_pareto_png(board.rows, out / "pareto.png")
        except ConfigError:
            pass  # no matplotlib: the HTML report carries an SVG plot anyway
        client.log_artifacts(run_id, str(out), artifact_path="green")
    return run_id
