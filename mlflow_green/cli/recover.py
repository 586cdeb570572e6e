"""``mlflow-green recover``: send journaled epochs that never reached MLflow (idempotent)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlflow_green.cli._common import add_json_flag, emit


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run-id",
        dest="run_id",
        help="recover this run only: its MLflow run id, or the pending-... id of a run whose "
        "server was down at start (default: every journal)",
    )
    parser.add_argument(
        "--tracking-uri",
        dest="tracking_uri",
        help="send to this tracking server instead of the one recorded in the journal",
    )
    parser.add_argument(
        "--journal-dir",
        dest="journal_dir",
        help="journal directory (default: MLFLOW_GREEN_JOURNAL_DIR or the user cache)",
    )
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from mlflow_green.tracking.recover import recover

    journal_dir = Path(args.journal_dir).expanduser() if args.journal_dir else None
    results = recover(args.run_id, tracking_uri=args.tracking_uri, journal_dir=journal_dir)
    lines: list[str] = []
    for r in results:
        if r.error:
            if not args.json:
                sys.stderr.write(f"mlflow-green: error: run {r.run_id} not recovered: {r.error}\n")
            continue
        if r.sent_steps:
            what = f"sent {len(r.sent_steps)} epoch(s) ({r.metrics_sent} metrics)"
        elif r.journaled_steps and not r.already_logged_steps:
            what = "nothing sent"  # left as is: the note says why
        else:
            what = "nothing missing"
        extra = ", report uploaded" if r.report_uploaded else ""
        if r.ended_as:
            extra += f", run ended as {r.ended_as}"
        if r.status:
            extra += f"; green.status={r.status}"
        if r.note:
            extra += f" ({r.note})"
        created = f"created run from journal {Path(r.journal).stem}; " if r.created_run else ""
        lines.append(
            f"{r.run_id}: {created}{what}; {len(r.already_logged_steps)} already in MLflow{extra}"
        )
    if not results:
        lines.append("no journals to recover")
    if lines or args.json:
        emit(args, {"runs": [r.to_dict() for r in results]}, "\n".join(lines))
    return 2 if any(r.error for r in results) else 0
