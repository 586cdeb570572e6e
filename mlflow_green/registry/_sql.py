"""The gate's reads as single SQL statements against MLflow's own tables.

A promotion needs the registered model's tags, the version (source, run, tags) and the source
run's tags and ``green/`` figures. Through MLflow's ORM that is a dozen statements, each paying
SQLAlchemy's per-query overhead; here it is one ``UNION ALL`` statement built from MLflow's own
table objects (so the column names are MLflow's, whatever its version) and compiled once — two
when the registry and the tracking store are different databases. One statement is also one
read of the database: on SQLite, one shared-lock window that MLflow's writers may meet, not two.

Used only for MLflow's plain SQLAlchemy stores. A workspace-aware store scopes its queries in its
own ``_get_query`` (joins on the experiment's workspace); for those, and for any store whose
query method was overridden, :func:`fast_registry` / :func:`fast_tracking` answer False and the
caller reads through the ORM as before.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mlflow_green.tracking._mlflow_compat import fast_tracking, plain_sql_store

__all__ = [
    "RunView",
    "VersionView",
    "fast_registry",
    "fast_tracking",
    "read_model_and_version",
    "read_model_version_and_run",
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


def _typed_nulls() -> tuple[Any, Any, Any]:
    """NULLs typed as text, number and flag, so that every branch of a UNION gives the same
    column types (PostgreSQL resolves them pair by pair). The flag is an integer: MySQL has no
    CAST to a boolean."""
    import sqlalchemy as sa

    return (
        sa.cast(sa.null(), sa.String()),
        sa.cast(sa.null(), sa.Float()),
        sa.cast(sa.null(), sa.Integer()),
    )


def _select(kind: str, a: Any, b: Any, number: Any, flag: Any) -> Any:
    """One branch of the reads' UNION: five named columns (the packed form reads them by name)."""
    import sqlalchemy as sa

    return sa.select(
        sa.literal(kind, sa.String()).label("kind"),
        a.label("a"),
        b.label("b"),
        number.label("n"),
        flag.label("f"),
    )


def _model_and_version_parts(scoped: bool) -> tuple[list[Any], Any]:
    """The selects of the model, its tags, the version and the version's tags (five columns:
    kind, text, text, number, flag), and the version's ``run_id`` as a scalar subquery."""
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
    no_text, no_number, no_flag = _typed_nulls()
    name = sa.bindparam("name", type_=text)
    number = sa.bindparam("version", type_=sa.Integer())
    live_version = (
        mv.c.name == name,
        mv.c.version == number,
        mv.c.current_stage != STAGE_DELETED_INTERNAL,
        *_workspace_filter(mv, scoped),
    )
    parts = [
        _select("m", rm.c.name, no_text, no_number, no_flag).where(
            rm.c.name == name, *_workspace_filter(rm, scoped)
        ),
        _select("t", rmt.c.key, rmt.c.value, no_number, no_flag).where(
            rmt.c.name == name, *_workspace_filter(rmt, scoped)
        ),
        _select("v", mv.c.source, mv.c.run_id, no_number, no_flag).where(*live_version),
        _select("u", mvt.c.key, mvt.c.value, no_number, no_flag).where(
            mvt.c.name == name, mvt.c.version == number, *_workspace_filter(mvt, scoped)
        ),
    ]
    return parts, sa.select(mv.c.run_id).where(*live_version).scalar_subquery()


@functools.cache
def _model_and_version_statement(scoped: bool) -> Any:
    """Built once (bound parameters): the model, its tags, the version and the version's tags."""
    import sqlalchemy as sa

    return sa.union_all(*_model_and_version_parts(scoped)[0])


def _run_parts(run_id: Any) -> list[Any]:
    """The selects of a run (``run_id`` a bound parameter or a subquery), its tags, the latest
    values of the ``latest`` keys and the maxima of the ``cumulative`` keys."""
    import sqlalchemy as sa
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlRun, SqlTag

    runs = SqlRun.__table__
    tags = SqlTag.__table__
    lm = SqlLatestMetric.__table__
    m = SqlMetric.__table__
    text = sa.String()
    # The values are MLflow's double-precision columns as they are: a CAST to FLOAT is single
    # precision on MySQL (0.1 would read 0.100000001...).
    no_text, no_number, no_flag = _typed_nulls()
    return [
        _select(
            "r", sa.cast(runs.c.experiment_id, text), runs.c.lifecycle_stage, no_number, no_flag
        ).where(runs.c.run_uuid == run_id),
        _select("g", tags.c.key, tags.c.value, no_number, no_flag).where(tags.c.run_uuid == run_id),
        _select("l", lm.c.key, no_text, lm.c.value, sa.cast(lm.c.is_nan, sa.Integer())).where(
            lm.c.run_uuid == run_id, lm.c.key.in_(sa.bindparam("latest", expanding=True))
        ),
        _select("x", m.c.key, no_text, sa.func.max(m.c.value), no_flag)
        .where(
            m.c.run_uuid == run_id,
            m.c.key.in_(sa.bindparam("cumulative", expanding=True)),
            m.c.is_nan == sa.false(),
        )
        .group_by(m.c.key),
    ]


@functools.cache
def _run_statement() -> Any:
    """Built once (bound parameters): the run, its tags, latest values and cumulative maxima."""
    import sqlalchemy as sa

    return sa.union_all(*_run_parts(sa.bindparam("run_id", type_=sa.String())))


@functools.cache
def _model_version_and_run_statement(scoped: bool) -> Any:
    """Both of the above in one statement, the run being the version's source run."""
    import sqlalchemy as sa

    parts, version_run_id = _model_and_version_parts(scoped)
    return sa.union_all(*parts, *_run_parts(version_run_id))


@functools.cache
def _packed(statement: Any) -> Any:
    """``statement``'s rows as one row of JSON (SQLite): ``[[kind, a, b, number, flag], ...]``.

    SQLite's Python driver hands the interpreter lock back and forth at every row it steps
    through; under concurrent requests each hand-over waits for the other threads, so a read
    of twenty rows costs tens of milliseconds and CPU in context switches. One row costs one.
    Numbers travel as text with 21 significant digits (SQLite's own JSON and text forms keep
    15, which is not exact; :func:`_sqlite_packs_exactly` checks this one is); NULL stays null.
    """
    import sqlalchemy as sa

    c = statement.subquery().c
    exact = sa.case((c.n.is_(None), sa.null()), else_=sa.func.printf(_EXACT, c.n))
    return sa.select(sa.func.json_group_array(sa.func.json_array(c.kind, c.a, c.b, exact, c.f)))


# Doubles whose decimal form is hard to get exactly right: the extremes, a subnormal, 0.1 + 0.2.
_HARD_DOUBLES = (
    1.7976931348623157e308,
    2.2250738585072014e-308,
    5e-324,
    0.30000000000000004,
    1 / 3,
    -6.228e-06,
)
_EXACT = "%!.20e"


@functools.cache
def _sqlite_packs_exactly() -> bool:
    """This SQLite has its JSON functions and prints a double in a form that reads back exactly
    (its printf works in long double where the platform has one)."""
    import sqlite3

    values = ", ".join(f"printf('{_EXACT}', ?)" for _ in _HARD_DOUBLES)
    conn = sqlite3.connect(":memory:")
    try:
        (packed,) = conn.execute(f"SELECT json_array({values})", _HARD_DOUBLES).fetchone()
        return tuple(float(v) for v in json.loads(packed)) == _HARD_DOUBLES
    except (sqlite3.Error, ValueError, TypeError):
        return False
    finally:
        conn.close()


def _rows(session: Any, statement: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of one of the statements above; on SQLite in one packed row (see :func:`_packed`)."""
    if session.get_bind().dialect.name == "sqlite" and _sqlite_packs_exactly():
        (packed,) = session.execute(_packed(statement), params).one()
        return [
            (kind, a, b, None if number is None else float(number), flag)
            for kind, a, b, number, flag in json.loads(packed or "[]")
        ]
    return [tuple(row) for row in session.execute(statement, params)]


def _not_found(message: str) -> Exception:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

    return MlflowException(message, RESOURCE_DOES_NOT_EXIST)


def _version_params(store: Any, name: str, version: str) -> tuple[dict[str, Any], bool]:
    """The bound parameters of a model/version read (MLflow's own validation first), and
    whether the store scopes by workspace."""
    from mlflow.utils.validation import _validate_model_name, _validate_model_version

    _validate_model_name(name)
    number = _validate_model_version(version)
    active = getattr(store, "_get_active_workspace", None)
    params: dict[str, Any] = {"name": name, "version": number}
    if active is not None:
        params["workspace"] = active()
    return params, active is not None


def _model_and_version_from(
    rows: list[Any], name: str, number: int
) -> tuple[dict[str, str], VersionView | None]:
    exists = False
    model_tags: dict[str, str] = {}
    version_row: tuple[Any, Any] | None = None
    version_tags: dict[str, str] = {}
    for kind, a, b, _, _ in rows:
        if kind == "m":
            exists = True
        elif kind == "t":
            model_tags[a] = b
        elif kind == "v":
            version_row = (a, b)
        elif kind == "u":
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


def read_model_and_version(
    store: Any, session: Any, name: str, version: str
) -> tuple[dict[str, str], VersionView | None]:
    """The registered model's tags and the version (None when it does not exist), one statement.

    Raises MLflow's RESOURCE_DOES_NOT_EXIST when there is no such registered model, and MLflow's
    own validation errors for a malformed name or version, as the ORM reads do.
    """
    params, scoped = _version_params(store, name, version)
    rows = _rows(session, _model_and_version_statement(scoped), params)
    return _model_and_version_from(rows, name, params["version"])


def read_model_version_and_run(
    store: Any,
    session: Any,
    name: str,
    version: str,
    latest_keys: Iterable[str],
    cumulative_keys: Iterable[str],
) -> tuple[dict[str, str], VersionView | None, RunView | None]:
    """:func:`read_model_and_version` and :func:`read_run` of the version's source run in one
    statement, for a registry and a tracking store on the same database. The run is None when
    the version has no run id or the run does not exist (a separate read then says why)."""
    params, scoped = _version_params(store, name, version)
    params.update(latest=list(latest_keys), cumulative=list(cumulative_keys))
    rows = _rows(session, _model_version_and_run_statement(scoped), params)
    model_tags, view = _model_and_version_from(rows, name, params["version"])
    if view is None or view.run_id is None:
        return model_tags, view, None
    return model_tags, view, _run_from(rows, view.run_id)


def _run_from(rows: list[Any], run_id: str) -> RunView | None:
    """The run rows (kinds r, g, l, x) of a read as a RunView; None when the run was not found."""
    info: _RunInfo | None = None
    run_tags: dict[str, str] = {}
    metrics: dict[str, float] = {}
    maxima: dict[str, float] = {}
    for kind, key, text_value, value, is_nan in rows:
        if kind == "r":
            info = _RunInfo(run_id, str(key), text_value)
        elif kind == "g":
            run_tags[key] = text_value
        elif kind == "l":
            metrics[key] = math.nan if is_nan else float(value)
        elif kind == "x" and value is not None:
            maxima[key] = float(value)
    if info is None:
        return None
    # Maxima only for keys the run reports, as the ORM path does.
    maxima = {k: v for k, v in maxima.items() if k in metrics}
    return RunView(info, _RunData(metrics, run_tags), maxima)


def read_run(
    session: Any, run_id: str, latest_keys: Iterable[str], cumulative_keys: Iterable[str]
) -> RunView:
    """The run's experiment, all its tags, the latest value of ``latest_keys`` and the maximum
    of each of ``cumulative_keys`` over its history, in one statement.

    NaN is stored by MLflow as ``value=0, is_nan=true``: a NaN latest value reads as NaN, and
    NaN rows never count towards a maximum. Raises RESOURCE_DOES_NOT_EXIST for an unknown run.
    """
    params = {"run_id": run_id, "latest": list(latest_keys), "cumulative": list(cumulative_keys)}
    view = _run_from(_rows(session, _run_statement(), params), run_id)
    if view is None:
        raise _not_found(f"Run with id={run_id} not found")
    return view
