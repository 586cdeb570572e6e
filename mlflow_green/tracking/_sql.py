"""Metric rows written straight into MLflow's own tables, for its plain SQLAlchemy stores.

MLflow's ``SqlAlchemyStore.log_batch`` builds one ORM object per metric, loads the whole run
three times (once per session it opens) and flushes the rows one unit of work at a time: about
17 ms of interpreter time for a batch of 10 epochs of the contract's 18 metrics. In a training
process that logs to a local SQLite file, that time is taken from the training thread (the
interpreter lock), not just from a spare core. :class:`MetricWriter` writes the same rows — the
``metrics`` rows and the ``latest_metrics`` upkeep, with MLflow's own rules for NaN, infinities,
duplicates and "latest" — in one transaction of four statements built once from MLflow's table
objects: ~4 ms, most of it inside SQLite with the lock released.

It is used only where it is exactly equivalent: MLflow's own SQLAlchemy tracking store with none
of the methods on its write path overridden (a workspace-aware or otherwise customised store goes
through MLflow's API), for metrics without a logged-model id, on an active run. Anything else —
a missing or deleted run, a duplicate of a row already stored, a key MLflow would refuse — is
handed to MLflow's ``log_batch`` unchanged, so errors and edge cases are MLflow's own.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

__all__ = ["MetricWriter", "Point", "fast_tracking", "plain_sql_store"]

# A metric point without a logged-model id: (key, value, timestamp in ms, step).
Point = tuple[str, float, int, int]

# Methods of MLflow's tracking store whose behaviour the writer reproduces: if a subclass
# overrides any of them, the writer stands aside.
_WRITE_HOOKS = (
    "_get_query",
    "_validate_run_accessible",
    "_get_run",
    "_check_run_is_active",
    "log_batch",
    "_log_metrics",
    "_log_metrics_once",
    "_update_latest_metrics_if_necessary",
    "sanitize_metric_value",
)
# Columns of the two tables the writer fills; a schema with any other required column is
# left to MLflow.
# MLflow's limits: metrics in one log_batch call, characters in a metric key (the column).
_MLFLOW_MAX_METRICS = 1000
_MAX_KEY_LENGTH = 250
_METRIC_COLUMNS = frozenset({"key", "value", "timestamp", "step", "is_nan", "run_uuid"})


def plain_sql_store(store: Any, base: type | None, hooks: tuple[str, ...]) -> bool:
    """``store`` is MLflow's SQLAlchemy store ``base`` with none of ``hooks`` overridden."""
    return (
        base is not None
        and isinstance(store, base)
        and hasattr(store, "ManagedSessionMaker")
        and all(getattr(type(store), hook, None) is getattr(base, hook, None) for hook in hooks)
    )


def _tracking_base() -> type | None:
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    except ImportError:  # pragma: no cover - MLflow without its SQL extras
        return None
    return SqlAlchemyStore


def fast_tracking(store: Any) -> bool:
    """True for MLflow's plain SQLAlchemy tracking store (no workspace scoping of runs)."""
    return plain_sql_store(store, _tracking_base(), ("_get_query", "_validate_run_accessible"))


@functools.cache
def _statements() -> dict[str, Any] | None:
    """The writer's statements, built once from MLflow's tables; None if the schema differs."""
    import sqlalchemy as sa
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlRun

    metrics, latest, runs = SqlMetric.__table__, SqlLatestMetric.__table__, SqlRun.__table__
    for table in (metrics, latest):
        required = {
            c.name
            for c in table.c
            if not c.nullable and c.default is None and c.server_default is None
        }
        if not required <= _METRIC_COLUMNS or not _METRIC_COLUMNS <= set(table.c.keys()):
            return None
    keys = sa.bindparam("keys", expanding=True)
    return {
        "run": sa.select(runs.c.lifecycle_stage).where(runs.c.run_uuid == sa.bindparam("run")),
        "insert": metrics.insert(),
        "latest": sa.select(latest.c.key, latest.c.step, latest.c.timestamp, latest.c.value).where(
            latest.c.run_uuid == sa.bindparam("run"), latest.c.key.in_(keys)
        ),
        # MLflow locks the existing latest rows before comparing (not the absent ones, which
        # would take gap locks on MySQL); FOR UPDATE is left out by SQLAlchemy on SQLite.
        "lock": sa.select(latest.c.key, latest.c.step, latest.c.timestamp, latest.c.value)
        .where(latest.c.run_uuid == sa.bindparam("run"), latest.c.key.in_(keys))
        .order_by(latest.c.run_uuid, latest.c.key)
        .with_for_update(),
        "update": latest.update()
        .where(latest.c.run_uuid == sa.bindparam("run"), latest.c.key == sa.bindparam("k"))
        .values(
            value=sa.bindparam("v"),
            step=sa.bindparam("s"),
            timestamp=sa.bindparam("t"),
            is_nan=sa.bindparam("n"),
        ),
        "insert_latest": latest.insert(),
    }


class MetricWriter:
    """Writes a run's metrics the way MLflow's SQLAlchemy store does, in one transaction.

    :meth:`write` answers True when the rows were written, False when the batch must go
    through MLflow's ``log_batch`` instead (nothing was written then). Database errors (a
    locked file, a lost connection) propagate, as they do from MLflow's store.
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        self._valid_keys: set[str] = set()

    @staticmethod
    def applies_to(store: Any) -> bool:
        return plain_sql_store(store, _tracking_base(), _WRITE_HOOKS) and _statements() is not None

    def _key_ok(self, key: str) -> bool:
        if key in self._valid_keys:
            return True
        if not isinstance(key, str) or len(key) > _MAX_KEY_LENGTH:
            return False
        from mlflow.exceptions import MlflowException
        from mlflow.utils.validation import _validate_metric_name

        try:
            _validate_metric_name(key)
        except MlflowException:
            return False
        self._valid_keys.add(key)
        return True

    def _rows(self, run_id: str, metrics: Sequence[Point]) -> list[dict[str, Any]] | None:
        """MLflow's rows for these metrics (duplicates dropped), or None if any is unusual."""
        rows: list[dict[str, Any]] = []
        seen: set[tuple[Any, ...]] = set()
        for key, value, timestamp, step in metrics:
            if (
                type(timestamp) is not int
                or type(step) is not int
                or timestamp < 0
                or not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not self._key_ok(key)
            ):
                return None
            value = float(value)
            if math.isfinite(value):
                is_nan = False
            else:
                is_nan, value = self._store.sanitize_metric_value(value)
            ident = (key, timestamp, step, value, is_nan)
            if ident in seen:
                continue
            seen.add(ident)
            rows.append(
                {"run_uuid": run_id, "key": key, "value": value, "timestamp": timestamp,
                 "step": step, "is_nan": is_nan}
            )
        return rows

    def write(self, run_id: str, metrics: Sequence[Point]) -> bool:
        """Write ``(key, value, timestamp_ms, step)`` points of the run ``run_id``."""
        statements = _statements()
        rows = self._rows(run_id, metrics) if statements is not None else None
        if statements is None or not rows or len(metrics) > _MLFLOW_MAX_METRICS:
            return False
        import sqlalchemy as sa

        # The newest point of each key in this batch, by MLflow's order (step, timestamp, value).
        newest: dict[str, dict[str, Any]] = {}
        for row in rows:
            best = newest.get(row["key"])
            if best is None or (row["step"], row["timestamp"], row["value"]) > (
                best["step"], best["timestamp"], best["value"]
            ):
                newest[row["key"]] = row
        with self._store.ManagedSessionMaker() as session:
            stage = session.execute(statements["run"], {"run": run_id}).scalar()
            if stage != "active":  # missing or deleted: MLflow's own error
                return False
            try:
                session.execute(statements["insert"], rows)
            except sa.exc.IntegrityError:  # a row already stored: MLflow sorts out which
                session.rollback()  # the insert was the transaction's first write
                return False
            params = {"run": run_id, "keys": sorted(newest)}
            stored = session.execute(statements["latest"], params).all()
            if stored and session.get_bind().dialect.name != "sqlite":
                params["keys"] = [r[0] for r in stored]
                stored = session.execute(statements["lock"], params).all()
            have = {key: (step, ts, value) for key, step, ts, value in stored}
            updates = [
                {"run": run_id, "k": key, "v": row["value"], "s": row["step"],
                 "t": row["timestamp"], "n": row["is_nan"]}
                for key, row in newest.items()
                if key in have and (row["step"], row["timestamp"], row["value"]) > have[key]
            ]
            fresh = [row for key, row in newest.items() if key not in have]
            if updates:
                session.execute(statements["update"], updates)
            if fresh:
                session.execute(statements["insert_latest"], fresh)
        return True
