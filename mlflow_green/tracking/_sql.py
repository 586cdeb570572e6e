"""Metric and tag rows written straight into MLflow's own tables, for its plain SQL stores.

MLflow's ``SqlAlchemyStore.log_batch`` builds one ORM object per metric, loads the whole run
three times (once per session it opens) and flushes the rows one unit of work at a time: about
17 ms of interpreter time for a batch of 10 epochs of the contract's 18 metrics, 6-10 ms for a
dozen tags. In a training process that logs to a local SQLite file, that time is taken from the
training thread (the interpreter lock), not just from a spare core. :class:`MetricWriter` writes
the same rows — ``metrics``, the ``latest_metrics`` upkeep and ``tags``, with MLflow's own rules
for NaN, infinities, duplicates, "latest" and over-long tag values — in one transaction of a
few statements built once from MLflow's table objects: ~4 ms, much of it inside SQLite with the
lock released. :func:`read_histories` reads several keys' histories in one statement.

They are used only where they are exactly equivalent: MLflow's own SQLAlchemy tracking store
with none of the methods on their paths overridden (a workspace-aware or otherwise customised
store goes through MLflow's API), on an active run. Anything else — a missing or deleted run, a
duplicate of a row already stored, a key MLflow would refuse, the run-name tag — is handed to
MLflow's ``log_batch`` unchanged, so errors and edge cases are MLflow's own.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

__all__ = ["MetricWriter", "Point", "fast_tracking", "plain_sql_store", "read_histories"]

# A metric point without a logged-model id: (key, value, timestamp in ms, step).
Point = tuple[str, float, int, int]

# Methods of MLflow's tracking store whose behaviour the writer and reader reproduce: if a
# subclass overrides any of them, they stand aside.
_HOOKS = (
    "get_metric_history",
    "_get_query",
    "_validate_run_accessible",
    "_get_run",
    "_check_run_is_active",
    "log_batch",
    "_log_metrics",
    "_log_metrics_once",
    "_update_latest_metrics_if_necessary",
    "sanitize_metric_value",
    "_set_tags",
    "set_tag",
)
# MLflow's limits: metrics in one log_batch call, characters in a metric key (the column).
_MLFLOW_MAX_METRICS = 1000
_MAX_KEY_LENGTH = 250
# Columns of the two metric tables the writer fills; a schema with any other required column
# is left to MLflow.
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

    try:
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlRun, SqlTag
    except ImportError:  # pragma: no cover - an MLflow whose tables moved: use its API
        return None

    metrics, latest, runs = SqlMetric.__table__, SqlLatestMetric.__table__, SqlRun.__table__
    tags = SqlTag.__table__

    def required(table: Any) -> set[str]:
        """Columns an insert must fill (not nullable, no default)."""
        return {c.name for c in table.c if not c.nullable and c.default is None and c.server_default is None}

    if not required(tags) <= {"key", "run_uuid", "value"}:
        return None
    for table in (metrics, latest):
        if not required(table) <= _METRIC_COLUMNS or not _METRIC_COLUMNS <= set(table.c.keys()):
            return None
    keys: Any = sa.bindparam("keys", expanding=True)
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
        "tag_keys": sa.select(tags.c.key).where(
            tags.c.run_uuid == sa.bindparam("run"), tags.c.key.in_(keys)
        ),
        "update_tag": tags.update()
        .where(tags.c.run_uuid == sa.bindparam("run"), tags.c.key == sa.bindparam("k"))
        .values(value=sa.bindparam("v")),
        "insert_tag": tags.insert(),
        "history": sa.select(
            metrics.c.key, metrics.c.step, metrics.c.timestamp, metrics.c.value, metrics.c.is_nan
        ).where(metrics.c.run_uuid == sa.bindparam("run"), metrics.c.key.in_(keys)),
    }


def read_histories(
    store: Any, run_id: str, keys: Sequence[str]
) -> dict[str, list[tuple[int, int, float]]] | None:
    """Every logged point of each of ``keys``, as ``(step, timestamp_ms, value)`` (NaN where
    MLflow says NaN), in one statement; None where :class:`MetricWriter` does not apply."""
    statements = _statements() if MetricWriter.applies_to(store) else None
    if statements is None:
        return None
    out: dict[str, list[tuple[int, int, float]]] = {key: [] for key in keys}
    if not keys:
        return out
    with store.ManagedSessionMaker() as session:
        rows = session.execute(statements["history"], {"run": run_id, "keys": list(keys)}).all()
    for key, step, timestamp, value, is_nan in rows:
        out[key].append((int(step), int(timestamp), math.nan if is_nan else float(value)))
    return out


class MetricWriter:
    """Writes a run's metrics and tags the way MLflow's SQLAlchemy store does, in one transaction.

    :meth:`write` answers True when the rows were written, False when the batch must go
    through MLflow's ``log_batch`` instead (nothing was written then). Database errors (a
    locked file, a lost connection) propagate, as they do from MLflow's store.
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self._valid_keys: set[str] = set()

    @staticmethod
    def applies_to(store: Any) -> bool:
        return plain_sql_store(store, _tracking_base(), _HOOKS) and _statements() is not None

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
                is_nan, value = self.store.sanitize_metric_value(value)
            ident = (key, timestamp, step, value, is_nan)
            if ident in seen:
                continue
            seen.add(ident)
            rows.append(
                {"run_uuid": run_id, "key": key, "value": value, "timestamp": timestamp,
                 "step": step, "is_nan": is_nan}
            )
        return rows

    def _tag_rows(self, tags: dict[str, str]) -> dict[str, str] | None:
        """MLflow's checked tags (long values truncated as it does), or None if any is unusual."""
        from mlflow.exceptions import MlflowException
        from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
        from mlflow.utils.validation import _validate_tag

        out: dict[str, str] = {}
        for key, value in tags.items():
            if key == MLFLOW_RUN_NAME:  # MLflow renames the run as well
                return None
            try:
                tag = _validate_tag(key, value)
            except MlflowException:
                return None
            out[tag.key] = tag.value
        return out

    def write(
        self, run_id: str, metrics: Sequence[Point], tags: dict[str, str] | None = None
    ) -> bool:
        """Write ``(key, value, timestamp_ms, step)`` points and ``tags`` of the run ``run_id``."""
        statements = _statements()
        if statements is None or len(metrics) > _MLFLOW_MAX_METRICS:
            return False
        rows = self._rows(run_id, metrics)
        checked = self._tag_rows(tags) if tags else {}
        if rows is None or checked is None or not (rows or checked):
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
        with _write_session(self.store) as session:
            stage = session.execute(statements["run"], {"run": run_id}).scalar()
            if stage != "active":  # missing or deleted: MLflow's own error
                return False
            if rows:
                try:
                    session.execute(statements["insert"], rows)
                except sa.exc.IntegrityError:  # a row already stored: MLflow sorts out which
                    session.rollback()  # the insert was the transaction's first write
                    return False
                self._latest(session, statements, run_id, newest)
            if checked:
                params = {"run": run_id, "keys": sorted(checked)}
                stored = {key for (key,) in session.execute(statements["tag_keys"], params)}
                changed = [{"run": run_id, "k": k, "v": v} for k, v in checked.items() if k in stored]
                added = [
                    {"run_uuid": run_id, "key": k, "value": v}
                    for k, v in checked.items()
                    if k not in stored
                ]
                if changed:
                    session.execute(statements["update_tag"], changed)
                if added:
                    session.execute(statements["insert_tag"], added)
        return True

    @staticmethod
    def _latest(
        session: Any, statements: dict[str, Any], run_id: str, newest: dict[str, dict[str, Any]]
    ) -> None:
        """MLflow's ``latest_metrics`` upkeep: a key's row moves only to a newer point."""
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


def _write_session(store: Any) -> Any:
    """The store's managed session, marked as a writer where this MLflow has that flag."""
    if "read_only" in _session_parameters(store.ManagedSessionMaker):
        return store.ManagedSessionMaker(read_only=False)
    return store.ManagedSessionMaker()


@functools.lru_cache(maxsize=8)  # one maker per store: inspected once, not at every send
def _session_parameters(maker: Any) -> frozenset[str]:
    import inspect

    try:
        return frozenset(inspect.signature(maker).parameters)
    except (TypeError, ValueError):
        return frozenset()
