"""Send journaled epochs that never reached MLflow; idempotent.

For each journal, the run's metric history is read first and only (key, step) pairs that
are absent are sent, so a step is never logged twice, however often recovery runs and
whatever the live logger managed to send before it died. Tags are re-applied (setting a
tag is idempotent), and the report artifacts are uploaded when the run finished but they
are missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow_green.errors import ConfigError
from mlflow_green.tracking.journal import Journal, journal_path, list_journals, read_journal
from mlflow_green.tracking.logger import MetricPoint, Transport, make_transport

__all__ = ["RecoverResult", "recover"]


@dataclass
class RecoverResult:
    """What recovery did for one run."""

    run_id: str
    journal: str
    tracking_uri: str | None
    journaled_steps: list[int] = field(default_factory=list)
    sent_steps: list[int] = field(default_factory=list)
    already_logged_steps: list[int] = field(default_factory=list)
    metrics_sent: int = 0
    tags_sent: int = 0
    report_uploaded: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "journal": self.journal,
            "tracking_uri": self.tracking_uri,
            "journaled_steps": self.journaled_steps,
            "sent_steps": self.sent_steps,
            "already_logged_steps": self.already_logged_steps,
            "metrics_sent": self.metrics_sent,
            "tags_sent": self.tags_sent,
            "report_uploaded": self.report_uploaded,
            "error": self.error,
        }


def recover(
    run_id: str | None = None,
    *,
    tracking_uri: str | None = None,
    journal_dir: Path | None = None,
    transport: Transport | None = None,
    timeout_s: float = 10.0,
) -> list[RecoverResult]:
    """Replay every journal not marked done (or the one of ``run_id``) into MLflow.

    ``tracking_uri`` overrides the URI recorded in the journal (e.g. the server moved).
    A run whose store cannot be reached gets ``error`` set; the others are still recovered.
    """
    if run_id is not None:
        try:
            path = journal_path(run_id, journal_dir)
        except ValueError:
            raise ConfigError(f"--run-id {run_id!r} is not an MLflow run id") from None
        if not path.exists():
            raise ConfigError(f"no journal for run {run_id} in {path.parent}; check MLFLOW_GREEN_JOURNAL_DIR")
        paths = [path]
    else:
        # Journals of runs that finished with everything delivered need no look.
        paths = [p for p in list_journals(journal_dir) if not read_journal(p).done]
    return [_recover_one(p, tracking_uri, transport, timeout_s) for p in paths]


def _recover_one(
    path: Path, tracking_uri: str | None, transport: Transport | None, timeout_s: float
) -> RecoverResult:
    state = read_journal(path)
    run_id = state.run_id or path.stem
    uri = tracking_uri or state.tracking_uri
    result = RecoverResult(
        run_id=run_id, journal=str(path), tracking_uri=uri, journaled_steps=sorted(state.epochs)
    )
    if uri is None and transport is None:
        result.error = "the journal does not say which tracking server; pass --tracking-uri"
        return result
    try:
        tx = transport or make_transport(uri or "", timeout_s=timeout_s)
        keys = sorted({k for _, metrics in state.epochs.values() for k in metrics})
        history = {key: tx.logged_steps(run_id, key) for key in keys}
        points: list[MetricPoint] = []
        sent: set[int] = set()
        done: list[int] = []
        for step in sorted(state.epochs):
            timestamp_ms, metrics = state.epochs[step]
            missing = [k for k in metrics if step not in history.get(k, set())]
            if not missing:
                done.append(step)
                continue
            sent.add(step)
            points += [MetricPoint(k, metrics[k], timestamp_ms, step) for k in missing]
        # Batches of whole steps, within MLflow's 1000-metrics limit.
        batch: list[MetricPoint] = []
        for point in points:
            if len(batch) >= 900 and point.step != batch[-1].step:
                tx.log_batch(run_id, batch, {})
                batch = []
            batch.append(point)
        if batch:
            tx.log_batch(run_id, batch, {})
        if state.tags:
            tx.log_batch(run_id, [], dict(state.tags))
        result.sent_steps = sorted(sent)
        result.already_logged_steps = done
        result.metrics_sent = len(points)
        result.tags_sent = len(state.tags)
        if state.ended and state.report:
            result.report_uploaded = _upload_report_if_missing(uri, run_id, state.report)
        journal = Journal(path)
        try:
            journal.ack(sorted(sent) + done)
            if state.ended:
                journal.done()
        finally:
            journal.close()
    except Exception as exc:
        result.error = " ".join(str(exc).split())[:300] or type(exc).__name__
    return result


def _upload_report_if_missing(uri: str | None, run_id: str, report: dict[str, Any]) -> bool:
    from mlflow import MlflowClient

    from mlflow_green.tracking.report import REPORT_HTML, REPORT_JSON, render_html

    client = MlflowClient(uri)
    present = {f.path for f in client.list_artifacts(run_id, "green")}
    uploaded = False
    if REPORT_JSON not in present:
        client.log_text(run_id, json.dumps(report, indent=2), REPORT_JSON)
        uploaded = True
    if REPORT_HTML not in present:
        client.log_text(run_id, render_html(report), REPORT_HTML)
        uploaded = True
    return uploaded
