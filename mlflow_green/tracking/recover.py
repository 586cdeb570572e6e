"""Send journaled epochs that never reached MLflow; idempotent.

For each journal, the run's metric history is read first and only (key, step) pairs that
are absent are sent, so a step is never logged twice, however often recovery runs and
whatever the live logger managed to send before it died. Tags are re-applied (setting a
tag is idempotent), and the report artifacts are uploaded when the run finished but they
are missing.

Two cases need more than replaying:

- the tracking server was down when training started: the journal has no run id but what is
  needed to create the run; recovery creates it (or finds the one a previous, interrupted
  recovery created, by its ``green.journal_id`` tag), writes its id to the journal, then sends;
- the training process was killed (the journal has no ``end`` event and its process is gone):
  ``green.status`` says the run was interrupted and, when the run was mlflow_green's or the
  dead process's own, it is ended as ``KILLED``. A journal whose process still runs on this
  host is left alone (its own logger is sending); one written on another host is replayed
  but its run is not ended, since nobody here can tell whether that process still runs.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow_green.errors import ConfigError
from mlflow_green.tracking import schema
from mlflow_green.tracking.journal import (
    OWNER_PROCESS,
    OWNER_TRACKER,
    Journal,
    JournalState,
    is_open_here,
    journal_path,
    list_journals,
    read_journal,
)
from mlflow_green.tracking.pending import PendingRun, create_pending_run
from mlflow_green.tracking.transport import MetricPoint, RunTransport, make_transport

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
    # True when this recovery created the MLflow run (the server was down at start).
    created_run: bool = False
    # The MLflow run status this recovery set (KILLED, FINISHED, FAILED), if it ended the run.
    ended_as: str | None = None
    # The green.status this recovery set when it changed it (an interrupted run).
    status: str | None = None
    # Why something was left as is (a live writer, a run owned elsewhere).
    note: str | None = None
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
            "created_run": self.created_run,
            "ended_as": self.ended_as,
            "status": self.status,
            "note": self.note,
            "error": self.error,
        }


def recover(
    run_id: str | None = None,
    *,
    tracking_uri: str | None = None,
    journal_dir: Path | None = None,
    transport: RunTransport | None = None,
    timeout_s: float = 10.0,
) -> list[RecoverResult]:
    """Replay every journal not marked done (or the one of ``run_id``) into MLflow.

    ``run_id`` is an MLflow run id or the ``pending-...`` id of a run whose server was down
    at start. ``tracking_uri`` overrides the URI recorded in the journal (e.g. the server
    moved). A run whose store cannot be reached gets ``error`` set; the others are still
    recovered.
    """
    if run_id is not None:
        try:
            path = journal_path(run_id, journal_dir)
        except ValueError:
            raise ConfigError(f"--run-id {run_id!r} is not an MLflow run id") from None
        if not path.exists():
            # A run created from a pending journal: the journal is named by its pending id.
            found = [p for p in list_journals(journal_dir) if read_journal(p).run_id == run_id]
            if not found:
                raise ConfigError(
                    f"no journal for run {run_id} in {path.parent}; check MLFLOW_GREEN_JOURNAL_DIR"
                )
            path = found[-1]
        paths = [path]
    else:
        # Journals of runs that finished with everything delivered need no look.
        paths = [p for p in list_journals(journal_dir) if not read_journal(p).done]
    return [_recover_one(p, tracking_uri, transport, timeout_s) for p in paths]


def _recover_one(
    path: Path, tracking_uri: str | None, transport: RunTransport | None, timeout_s: float
) -> RecoverResult:
    state = read_journal(path)
    uri = tracking_uri or state.tracking_uri
    result = RecoverResult(
        run_id=state.run_id or path.stem,
        journal=str(path),
        tracking_uri=uri,
        journaled_steps=sorted(state.epochs),
    )
    if uri is None and transport is None:
        result.error = "the journal does not say which tracking server; pass --tracking-uri"
        return result
    writer_alive = None if state.ended else _writer_alive(state, path)
    if writer_alive:
        # Its own logger is sending: replaying now could race it into a duplicate step.
        result.note = (
            f"process {state.pid} on {state.hostname} is still writing this journal; left as is"
        )
        return result
    journal: Journal | None = None
    try:
        tx = transport or make_transport(uri or "", timeout_s=timeout_s)
        run_id = state.run_id
        if run_id is None:
            if state.pending_run is None:
                raise ValueError("the journal names no run and holds no run to create")
            run_id = create_pending_run(PendingRun.from_json(state.pending_run), tx)
            journal = Journal(path)
            journal.created(run_id)  # before sending: a re-run finds this run, never makes another
            result.created_run = True
            result.run_id = run_id
        _send_missing(tx, run_id, state, result)
        tags = dict(state.tags)
        interrupted = not state.ended and writer_alive is False
        if interrupted:
            tags[schema.TAG_STATUS] = result.status = _interrupted_status(state)
        if tags:
            tx.log_batch(run_id, [], tags)
        result.tags_sent = len(tags)
        result.ended_as, result.note = _end_if_owned(tx, run_id, state, interrupted)
        if not state.ended and writer_alive is None:
            result.note = (
                f"written by process {state.pid} on host {state.hostname}: cannot tell from here "
                "whether it still runs; the run's status is left as is"
                if state.pid is not None
                else "the journal does not say which process wrote it; the run's status is left as is"
            )
        if state.ended and state.report:
            report = {**state.report, "run_id": run_id}  # None when the run was created late
            result.report_uploaded = _upload_report_if_missing(uri, run_id, report, timeout_s)
        journal = journal or Journal(path)
        journal.ack(sorted(set(result.sent_steps) | set(result.already_logged_steps)))
        if state.ended:
            journal.done()
    except Exception as exc:
        result.error = " ".join(str(exc).split())[:300] or type(exc).__name__
    finally:
        if journal is not None:
            journal.close()
    return result


def _resolve_accuracies(tx: RunTransport, run_id: str, state: JournalState) -> None:
    """Epochs whose accuracy was to be read back from the run, and never was (the writer
    died first): read it now as the logger thread would have, into their metrics."""
    from mlflow_green.tracking.accuracy import accuracy_per_kg_of, resolve_accuracies

    by_keys: dict[tuple[str, ...], dict[int, int]] = {}
    for step, resolve in state.unresolved.items():
        if step in state.epochs and resolve.get("before_ms") is not None:
            keys = tuple(resolve.get("keys") or ())
            by_keys.setdefault(keys, {})[step] = int(resolve["before_ms"])
    for keys, before_ms in by_keys.items():
        found = resolve_accuracies(tx, run_id, keys, before_ms) if keys else {}
        for step in before_ms:
            accuracy = found.get(step, (None, state.unresolved[step].get("accuracy")))[1]
            if accuracy is None:
                continue
            metrics = state.epochs[step][1]
            per_kg = accuracy_per_kg_of(float(accuracy), metrics)
            if per_kg is not None:
                metrics[schema.ACCURACY_PER_KG] = per_kg


def _send_missing(tx: RunTransport, run_id: str, state: JournalState, result: RecoverResult) -> None:
    if state.unresolved:
        try:
            _resolve_accuracies(tx, run_id, state)
        except Exception as exc:  # the epochs go without the run's accuracy, not at all
            result.note = f"accuracy not read back from the run ({' '.join(str(exc).split())[:120]})"
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
    result.sent_steps = sorted(sent)
    result.already_logged_steps = done
    result.metrics_sent = len(points)


def _interrupted_status(state: JournalState) -> str:
    why = f"run interrupted after {len(state.epochs)} epoch(s); epochs recovered from the journal"
    previous = state.tags.get(schema.TAG_STATUS, schema.STATUS_OK)
    if previous == schema.STATUS_OK or not previous:
        return schema.degraded(why)
    return previous if why in previous else f"{previous}; {why}"


def _end_if_owned(
    tx: RunTransport, run_id: str, state: JournalState, interrupted: bool
) -> tuple[str | None, str | None]:
    """(the status the run was ended with, a note) — only a run nobody else can be using."""
    if state.ended:
        # The tracker ended its own run, unless the server was down then: finish its job.
        if state.owner != OWNER_TRACKER:
            return None, None
        target = state.run_status or "FINISHED"
        end_ms = state.end_time_ms
    elif interrupted:
        if state.owner not in (OWNER_TRACKER, OWNER_PROCESS):
            return None, "the run was given by id (another process may use it): left RUNNING"
        target = "KILLED"
        # The process was alive at its last journaled epoch, at least.
        end_ms = max((ts for ts, _ in state.epochs.values()), default=None)
    else:
        return None, None
    if tx.run_status(run_id) != "RUNNING":
        return None, None
    if end_ms is None:
        end_ms = int(time.time() * 1000)
    tx.terminate(run_id, target, int(end_ms))
    return target, None


def _writer_alive(state: JournalState, path: Path) -> bool | None:
    """Whether the process that wrote the journal still runs: None when nobody can tell here."""
    if state.pid is None or state.hostname != socket.gethostname():
        return None
    if state.pid == os.getpid():
        return is_open_here(path)
    try:
        os.kill(state.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    except OSError:
        return None
    started = _process_start_unix_s(state.pid)
    if started is None:
        return True
    if started < 0:
        return False  # a zombie: dead, not reaped yet
    # A pid reused by a process started after the journal was opened is another process.
    return not (state.created_unix_s is not None and started > state.created_unix_s + 1.0)


def _process_start_unix_s(pid: int) -> float | None:
    """When ``pid`` started (Linux /proc), -1 for a zombie, None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] in ("Z", "X"):
            return -1.0
        start_ticks = int(fields[19])
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _upload_report_if_missing(
    uri: str | None, run_id: str, report: dict[str, Any], timeout_s: float
) -> bool:
    from mlflow import MlflowClient

    from mlflow_green.tracking.report import REPORT_HTML, REPORT_JSON, render_html
    from mlflow_green.tracking.session import short_http

    client = MlflowClient(uri)
    uploaded = False
    with short_http(timeout_s=max(timeout_s, 30.0)):  # MLflow's own retries take minutes
        present = {f.path for f in client.list_artifacts(run_id, "green")}
        if REPORT_JSON not in present:
            client.log_text(run_id, json.dumps(report, indent=2), REPORT_JSON)
            uploaded = True
        if REPORT_HTML not in present:
            client.log_text(run_id, render_html(report), REPORT_HTML)
            uploaded = True
    return uploaded
