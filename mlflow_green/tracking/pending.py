"""A run that could not be created because the tracking server was down when training started.

The tracker then trains at once and journals every epoch under a journal id of its own; the
journal header holds a :class:`PendingRun` — everything ``mlflow.start_run`` would have sent
(tracking URI, experiment, run name, MLflow's context tags, start time). The run is created
later, by the live logger when the server comes back mid-training or by ``mlflow-green
recover``, through :func:`create_pending_run`, which is safe to repeat: the run carries the
``green.journal_id`` tag and is looked up by it before any creation, and its id is written to
the journal before anything is sent to it.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from mlflow_green.tracking import schema

__all__ = ["PendingRun", "capture_pending_run", "create_pending_run", "new_journal_id"]

_log = logging.getLogger(__name__)


def new_journal_id() -> str:
    """A journal id that cannot be mistaken for an MLflow run id (those are 32 hex digits)."""
    return f"pending-{uuid.uuid4().hex}"


@dataclass
class PendingRun:
    """What is needed to create the run later."""

    tracking_uri: str
    journal_id: str
    start_time_ms: int
    experiment_id: str | None = None
    experiment_name: str | None = None
    run_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PendingRun:
        return cls(
            tracking_uri=str(data["tracking_uri"]),
            journal_id=str(data["journal_id"]),
            start_time_ms=int(data.get("start_time_ms") or time.time() * 1000),
            experiment_id=data.get("experiment_id"),
            experiment_name=data.get("experiment_name"),
            run_name=data.get("run_name"),
            tags={str(k): str(v) for k, v in (data.get("tags") or {}).items()},
            params={str(k): str(v) for k, v in (data.get("params") or {}).items()},
        )


def capture_pending_run(
    tracking_uri: str,
    *,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> PendingRun:
    """The run ``mlflow.start_run(run_name=...)`` would create now, without asking the server.

    The experiment is what MLflow would pick: ``mlflow.set_experiment``'s, else
    MLFLOW_EXPERIMENT_NAME (resolved to an id, or created, when the run is created), else
    MLFLOW_EXPERIMENT_ID, else the default experiment.
    """
    from mlflow_green.tracking._mlflow_compat import active_experiment_id, resolve_context_tags

    experiment_id: str | None = active_experiment_id()
    experiment_name: str | None = None
    if experiment_id is None:
        experiment_name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or None
        experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID") or None
    resolved: dict[str, str] = {}
    try:
        # MLflow's context tags (user, source, git commit...); local look-ups only.
        resolved = resolve_context_tags(dict(tags or {}))
    except Exception:
        _log.debug("could not resolve MLflow's context tags", exc_info=True)
        resolved = dict(tags or {})
    if run_name:
        resolved["mlflow.runName"] = run_name
    return PendingRun(
        tracking_uri=tracking_uri,
        journal_id=new_journal_id(),
        start_time_ms=int(time.time() * 1000),
        experiment_id=experiment_id,
        experiment_name=experiment_name,
        run_name=run_name,
        tags=resolved,
        params=dict(params or {}),
    )


def create_pending_run(pending: PendingRun, transport: Any) -> str:
    """Find the run of ``pending`` (by its ``green.journal_id`` tag) or create it; its id.

    ``transport`` is a :class:`~mlflow_green.tracking.transport.RunTransport`. The caller
    writes the id to the journal before sending anything to the run.
    """
    experiment_id = pending.experiment_id
    if pending.experiment_name:
        experiment_id = transport.experiment_id(pending.experiment_name)
    experiment_id = experiment_id or "0"
    found = transport.find_run(experiment_id, schema.TAG_JOURNAL_ID, pending.journal_id)
    if found is not None:
        return str(found)
    tags = {**pending.tags, schema.TAG_JOURNAL_ID: pending.journal_id}
    run_id = transport.create_run(
        experiment_id, run_name=pending.run_name, start_time_ms=pending.start_time_ms, tags=tags
    )
    if pending.params:
        transport.log_params(run_id, pending.params)
    return str(run_id)
