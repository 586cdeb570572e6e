"""The gate's reads as single SQL statements against MLflow's own tables.

A promotion needs the registered model's tags, the version (source, run, tags) and the source
run's tags and ``green/`` figures. Through MLflow's ORM that is a dozen statements, each paying
SQLAlchemy's per-query overhead; here it is two ``UNION ALL`` statements built from MLflow's own
table objects (so the column names are MLflow's, whatever its version) and compiled once.

Used only for MLflow's plain SQLAlchemy stores. A workspace-aware store scopes its queries in its
own ``_get_query`` (joins on the experiment's workspace); for those, and for any store whose
query method was overridden, :func:`fast_registry` / :func:`fast_tracking` answer False and the
caller reads through the ORM as before.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mlflow_green.tracking._sql import fast_tracking, plain_sql_store

__all__ = [
    "RunView",
    "VersionView",
    "fast_registry",
    "fast_tracking",
    "read_model_and_version",
    "read_run",
]


@dataclass(frozen=True)
class VersionView:
    """The fields of a model version the footprint and the gate read."""

    name: str
    version: str
    source: str | None
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    model_id: str | None = None


@dataclass(frozen=True)
class _RunInfo:
    run_id: str
    experiment_id: str
    lifecycle_stage: str | None


@dataclass(frozen=True)
class _RunData:
    metrics: dict[str, float]
    tags: dict[str, str]


@dataclass(frozen=True)
class RunView:
    """A run as the footprint reads it: ``info.run_id``/``experiment_id``, ``data.tags``/``metrics``.

    ``data.metrics`` holds only the keys asked for (latest values); ``maxima`` the largest finite
    value of each cumulative key over the run's history.
    """

    info: _RunInfo
    data: _RunData
    maxima: dict[str, float]


def fast_registry(store: Any) -> bool:
    """True for MLflow's own SQLAlchemy registry store (workspace-filtered by ``_get_query``)."""
    try:
        from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore
    except ImportError:  # pragma: no cover - MLflow without its SQL extras
        return False
    return plain_sql_store(store, SqlAlchemyStore, ("_get_query",))


def _workspace_filter(table: Any, scoped: bool) -> list[Any]:
    """What the registry store's ``_get_query`` adds for tables with a workspace column."""
    if not scoped or "workspace" not in table.c:
        return []
    import sqlalchemy as sa

    return [table.c.workspace == sa.bindparam("workspace")]


@functools.cache
def _model_and_version_statement(scoped: bool) -> Any:
    """Built once (bound parameters): the model, its tags, the version and the version's tags."""
    import sqlalchemy as sa
    from mlflow.entities.model_registry.model_version_stages import STAGE_DELETED_INTERNAL
    from mlflow.store.model_registry.dbmodels.models import (
        SqlModelVersion,
        SqlModelVersionTag,
        SqlRegisteredModel,
        SqlRegisteredModelTag,
    )

    rm = SqlRegisteredModel.__table__
    rmt = SqlRegisteredModelTag.__table__
    mv = SqlModelVersion.__table__
    mvt = SqlModelVersionTag.__table__
    text = sa.String()
    name = sa.bindparam("name", type_=text)
    number = sa.bindparam("version", type_=sa.Integer())
    return sa.union_all(
        sa.select(sa.literal("m", text), rm.c.name, sa.null(), sa.null()).where(
            rm.c.name == name, *_workspace_filter(rm, scoped)
        ),
        sa.select(sa.literal("t", text), rmt.c.key, rmt.c.value, sa.null()).where(
            rmt.c.name == name, *_workspace_filter(rmt, scoped)
        ),
        sa.select(sa.literal("v", text), mv.c.source, mv.c.run_id, sa.null()).where(
            mv.c.name == name,
            mv.c.version == number,
            mv.c.current_stage != STAGE_DELETED_INTERNAL,
            *_workspace_filter(mv, scoped),
        ),
        sa.select(sa.literal("u", text), mvt.c.key, mvt.c.value, sa.null()).where(
            mvt.c.name == name, mvt.c.version == number, *_workspace_filter(mvt, scoped)
        ),
    )


@functools.cache
def _run_statement() -> Any:
    """Built once (bound parameters): the run, its tags, latest values and cumulative maxima."""
    import sqlalchemy as sa
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlRun, SqlTag

    runs = SqlRun.__table__
    tags = SqlTag.__table__
    lm = SqlLatestMetric.__table__
    m = SqlMetric.__table__
    text = sa.String()
    number = sa.Float()
    flag = sa.Boolean()
    no_text = sa.cast(sa.null(), text)
    no_number = sa.cast(sa.null(), number)
    no_flag = sa.cast(sa.null(), flag)
    run_id = sa.bindparam("run_id", type_=text)
    return sa.union_all(
        sa.select(
            sa.literal("r", text), sa.cast(runs.c.experiment_id, text), runs.c.lifecycle_stage, no_number, no_flag
        ).where(runs.c.run_uuid == run_id),
        sa.select(sa.literal("t", text), tags.c.key, tags.c.value, no_number, no_flag).where(
            tags.c.run_uuid == run_id
        ),
        sa.select(sa.literal("l", text), lm.c.key, no_text, sa.cast(lm.c.value, number), lm.c.is_nan).where(
            lm.c.run_uuid == run_id, lm.c.key.in_(sa.bindparam("latest", expanding=True))
        ),
        sa.select(sa.literal("x", text), m.c.key, no_text, sa.cast(sa.func.max(m.c.value), number), no_flag)
        .where(
            m.c.run_uuid == run_id,
            m.c.key.in_(sa.bindparam("cumulative", expanding=True)),
            m.c.is_nan == sa.false(),
        )
        .group_by(m.c.key),
    )


def _not_found(message: str) -> Exception:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

    return MlflowException(message, RESOURCE_DOES_NOT_EXIST)


def read_model_and_version(
    store: Any, session: Any, name: str, version: str
) -> tuple[dict[str, str], VersionView | None]:
    """The registered model's tags and the version (None when it does not exist), one statement.

    Raises MLflow's RESOURCE_DOES_NOT_EXIST when there is no such registered model, and MLflow's
    own validation errors for a malformed name or version, as the ORM reads do.
    """
    from mlflow.utils.validation import _validate_model_name, _validate_model_version

    _validate_model_name(name)
    number = _validate_model_version(version)
    active = getattr(store, "_get_active_workspace", None)
    params: dict[str, Any] = {"name": name, "version": number}
    if active is not None:
        params["workspace"] = active()
    statement = _model_and_version_statement(active is not None)
    exists = False
    model_tags: dict[str, str] = {}
    version_row: tuple[Any, Any] | None = None
    version_tags: dict[str, str] = {}
    for kind, a, b, _ in session.execute(statement, params):
        if kind == "m":
            exists = True
        elif kind == "t":
            model_tags[a] = b
        elif kind == "v":
            version_row = (a, b)
        else:
            version_tags[a] = b
    if not exists:
        raise _not_found(f"Registered Model with name={name} not found")
    if version_row is None:
        return model_tags, None
    return model_tags, VersionView(
        name=name,
        version=str(number),
        source=version_row[0],
        run_id=version_row[1] or None,
        tags=version_tags,
    )


def read_run(
    session: Any, run_id: str, latest_keys: Iterable[str], cumulative_keys: Iterable[str]
) -> RunView:
    """The run's experiment, all its tags, the latest value of ``latest_keys`` and the maximum
    of each of ``cumulative_keys`` over its history, in one statement.

    NaN is stored by MLflow as ``value=0, is_nan=true``: a NaN latest value reads as NaN, and
    NaN rows never count towards a maximum. Raises RESOURCE_DOES_NOT_EXIST for an unknown run.
    """
    params = {"run_id": run_id, "latest": list(latest_keys), "cumulative": list(cumulative_keys)}
    statement = _run_statement()
    info: _RunInfo | None = None
    run_tags: dict[str, str] = {}
    metrics: dict[str, float] = {}
    maxima: dict[str, float] = {}
    for kind, key, text_value, value, is_nan in session.execute(statement, params):
        if kind == "r":
            info = _RunInfo(run_id, str(key), text_value)
        elif kind == "t":
            run_tags[key] = text_value
        elif kind == "l":
            metrics[key] = math.nan if is_nan else float(value)
        elif value is not None:
            maxima[key] = float(value)
    if info is None:
        raise _not_found(f"Run with id={run_id} not found")
    # Maxima only for keys the run reports, as the ORM path does.
    maxima = {k: v for k, v in maxima.items() if k in metrics}
    return RunView(info, _RunData(metrics, run_tags), maxima)
