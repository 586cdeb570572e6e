"""The ledger's reads: runs, tags and every per-epoch ledger metric point.

On MLflow's own SQLAlchemy tracking store (not a subclass that scopes runs, e.g. by workspace)
three read-only statements built from MLflow's table objects: the experiments' runs (every
lifecycle stage), their tags, and every point of the ledger keys. MLflow's public API has no
bulk read of metric histories: ``get_metric_history`` per run and key is about 40x slower than
``search_runs`` on 10,000 runs, and ``search_runs`` itself loads every run's params and latest
metrics through the ORM (``benchmarks/ledger_scale.py`` measures both). The table objects are
MLflow internals, reached through ``tracking/_mlflow_compat.py``; where they are missing or the store is anything else (a REST
server, a customised store), the ledger reads through MLflow's client API: a ``search_runs``
walk over all lifecycle stages, then ``get_metric_history`` per run and key.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mlflow_green.reports._ledger_types import FIELDS, LedgerRun, Point
from mlflow_green.tracking import _mlflow_compat as compat
from mlflow_green.tracking import schema

__all__ = ["experiments_of", "read_runs_and_points"]

_KEYS = tuple(FIELDS.values())
_PAGE = 5000


def _run_of(run: Any, experiment_names: Mapping[str, str]) -> LedgerRun:
    info = run.info
    return LedgerRun(
        run_id=info.run_id,
        run_name=info.run_name or info.run_id[:8],
        experiment_id=info.experiment_id,
        experiment_name=experiment_names.get(info.experiment_id, info.experiment_id),
        user=info.user_id or "",
        status=str(info.status),
        deleted=info.lifecycle_stage == "deleted",
        tags=dict(run.data.tags),
    )


def experiments_of(client: Any, names: Sequence[str]) -> dict[str, str]:
    """experiment id -> name: the named ones, or every experiment (deleted ones included)."""
    from mlflow.entities import ViewType

    from mlflow_green.reports.leaderboard import find_experiment

    if names:
        found = [find_experiment(client, name) for name in names]
        return {e.experiment_id: e.name for e in found}
    out: dict[str, str] = {}
    token = None
    while True:
        page = client.search_experiments(view_type=ViewType.ALL, max_results=1000, page_token=token)
        out.update({e.experiment_id: e.name for e in page})
        token = getattr(page, "token", None)
        if not token:
            return out


def _green_runs(
    client: Any, experiment_ids: Sequence[str], names: Mapping[str, str]
) -> list[LedgerRun]:
    from mlflow.entities import ViewType

    out: list[LedgerRun] = []
    ids = list(experiment_ids)
    for start in range(0, len(ids), 100):  # MLflow caps experiment ids per search
        token = None
        while True:
            page = client.search_runs(
                ids[start : start + 100],
                filter_string="",
                run_view_type=ViewType.ALL,
                max_results=_PAGE,
                page_token=token,
            )
            out.extend(
                _run_of(r, names)
                for r in page
                if any(k.startswith(schema.PREFIX) for k in r.data.metrics)
            )
            token = getattr(page, "token", None)
            if not token:
                break
    return out


def _sql_points(store: Any, tables: Mapping[str, Any], experiment_ids: Sequence[str]) -> dict[str, list[Point]]:
    """Every ledger metric point of the experiments in one statement (MLflow's own SQL store).

    Not cut to ``--since``/``--until`` here: a run outside the range may still carry the lineage
    (parent tag) that ``--by model`` needs; the bounds are applied per epoch afterwards.
    """
    import sqlalchemy as sa

    metrics, runs = tables["metric"], tables["run"]
    statement = (
        sa.select(
            metrics.c.run_uuid,
            metrics.c.key,
            metrics.c.step,
            metrics.c.timestamp,
            metrics.c.value,
            metrics.c.is_nan,
        )
        .join(runs, runs.c.run_uuid == metrics.c.run_uuid)
        .where(runs.c.experiment_id.in_([int(e) for e in experiment_ids]), metrics.c.key.in_(_KEYS))
    )
    out: dict[str, list[Point]] = defaultdict(list)
    with store.ManagedSessionMaker() as session:
        for run_id, key, step, timestamp, value, is_nan in session.execute(statement):
            out[run_id].append(
                (key, int(step), int(timestamp), math.nan if is_nan else float(value))
            )
    return out


def _client_points(client: Any, run_ids: Iterable[str]) -> dict[str, list[Point]]:
    out: dict[str, list[Point]] = {}
    for run_id in run_ids:
        points: list[Point] = []
        for key in _KEYS:
            points.extend(
                (key, int(m.step), int(m.timestamp), float(m.value))
                for m in client.get_metric_history(run_id, key)
            )
        out[run_id] = points
    return out


def _sql_runs(
    store: Any,
    tables: Mapping[str, Any],
    experiment_ids: Sequence[str],
    names: Mapping[str, str],
    run_ids: set[str],
) -> list[LedgerRun]:
    """The runs ``run_ids`` of the experiments and their tags, in two statements."""
    import sqlalchemy as sa

    runs, tags = tables["run"], tables["tag"]
    in_experiments = runs.c.experiment_id.in_([int(e) for e in experiment_ids])
    run_rows = sa.select(
        runs.c.run_uuid, runs.c.name, runs.c.experiment_id, runs.c.user_id, runs.c.status,
        runs.c.lifecycle_stage,
    ).where(in_experiments)  # fmt: skip
    tag_rows = (
        sa.select(tags.c.run_uuid, tags.c.key, tags.c.value)
        .join(runs, runs.c.run_uuid == tags.c.run_uuid)
        .where(in_experiments)
    )
    by_run: dict[str, dict[str, str]] = defaultdict(dict)
    with store.ManagedSessionMaker() as session:
        for run_id, key, value in session.execute(tag_rows):
            if run_id in run_ids:
                by_run[run_id][key] = value
        found = [row for row in session.execute(run_rows) if row[0] in run_ids]
    out = []
    for run_id, name, exp_id, user, status, stage in found:
        tags_of = by_run.get(run_id, {})
        out.append(
            LedgerRun(
                run_id=run_id,
                run_name=name or tags_of.get("mlflow.runName") or run_id[:8],
                experiment_id=str(exp_id),
                experiment_name=names.get(str(exp_id), str(exp_id)),
                user=user or tags_of.get("mlflow.user", ""),
                status=str(status),
                deleted=stage == "deleted",
                tags=tags_of,
            )
        )
    return out


def read_runs_and_points(
    client: Any, names: Mapping[str, str]
) -> tuple[list[LedgerRun], dict[str, list[Point]]]:
    """The measured runs of the experiments ``names`` (id -> name) and their ledger points."""
    if not names:
        return [], {}
    # An MlflowClient's store, or the server's own tracking store passed as ``client``.
    store = compat.tracking_store(client) or client
    ids = list(names)
    tables = compat.plain_sql_tables(store)
    if tables is not None:
        points = _sql_points(store, tables, ids)
        runs = _sql_runs(store, tables, ids, names, set(points))
    else:
        runs = _green_runs(client, ids, names)
        points = _client_points(client, [r.run_id for r in runs])
    # One order whatever the path, so that the sums are the same to the last bit.
    return sorted(runs, key=lambda r: r.run_id), points
