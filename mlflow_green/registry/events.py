"""The gate's audit trail: every refusal and every administrator override, durably recorded.

Events live in a table of the plugin's own, ``mlflow_green_gate_events``, in the tracking
server's database (MLflow's SQL stores: SQLite, PostgreSQL, MySQL), created idempotently on
first use, so every worker process of the server writes to and reads from the same place. No
MLflow handler reads or writes that table: the events cannot be forged or deleted through
MLflow's API (a client with EDIT permission can edit tags, not this). A server on a file store
keeps the table in ``mlflow_green_events.db`` (SQLite) at the store's root.

A refusal that cannot be recorded still refuses (and is logged); an override that cannot be
recorded is not honoured: :func:`record_override` raises, and the gate fails closed.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "EVENTS_TABLE",
    "EventLog",
    "GateEvent",
    "current_user",
    "event_log_for_store",
    "parse_since",
    "record_override",
    "record_refusal",
    "set_user_resolver",
]

_logger = logging.getLogger("mlflow_green.gate")

EVENTS_TABLE = "mlflow_green_gate_events"


def _user_from_flask_g() -> str | None:
    from flask import g

    return getattr(g, "mlflow_authenticated_user", None) or None


_user_resolver: Callable[[], str | None] = _user_from_flask_g


def set_user_resolver(resolver: Callable[[], str | None]) -> None:
    """How the server tells who sent the current request (the authentication app's job)."""
    global _user_resolver
    _user_resolver = resolver


def current_user() -> str | None:
    """The authenticated user of the current request, None without authentication."""
    try:
        return _user_resolver()
    except Exception:
        _logger.exception("carbon gate: could not tell the request's user")
        return None
_MAX_TEXT = 4000
_TARGET_FIELDS = ("alias", "stage", "key", "value", "new_name", "source", "run_id", "run_uuid")


@dataclass(frozen=True)
class GateEvent:
    """One refusal or override, as recorded."""

    kind: str  # "refusal" | "override"
    at: str  # ISO 8601, UTC
    user: str | None  # the authenticated user (green-gate-auth); None without authentication
    method: str
    path: str
    operation: str  # the MLflow handler's request message, e.g. SetRegisteredModelAlias
    model: str | None
    version: str | None
    target: str | None  # e.g. "alias=champion", "stage=Production", "key=green.budget..."
    message: str  # the refusal, naming the budget and the figure
    override_reason: str | None = None
    figures: dict[str, float | None] = field(default_factory=dict)
    budgets: list[dict[str, Any]] = field(default_factory=list)
    remote_addr: str | None = None
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _table(metadata: Any) -> Any:
    from sqlalchemy import BigInteger, Column, Integer, String, Table, Text

    return Table(
        EVENTS_TABLE,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("at_ms", BigInteger, nullable=False, index=True),
        Column("kind", String(16), nullable=False),
        Column("user_name", String(256)),
        Column("method", String(16), nullable=False),
        Column("path", String(1000), nullable=False),
        Column("operation", String(128), nullable=False),
        Column("model", String(256), index=True),
        Column("version", String(64)),
        Column("target", String(1000)),
        Column("message", Text, nullable=False),
        Column("override_reason", Text),
        Column("figures", Text, nullable=False),
        Column("budgets", Text, nullable=False),
        Column("remote_addr", String(256)),
    )


def _cut(value: object, n: int = _MAX_TEXT) -> str:
    return str(value)[:n]


class EventLog:
    """The events table on one SQLAlchemy engine (the tracking store's, on a server)."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import MetaData

        self.engine = engine
        self._table = _table(MetaData())
        self._ready = False
        self._lock = threading.Lock()

    @classmethod
    def from_uri(cls, db_uri: str) -> EventLog:
        """An event log on the database at ``db_uri`` (a SQLAlchemy URL)."""
        from sqlalchemy import create_engine

        return cls(create_engine(db_uri, pool_pre_ping=True))

    def ensure_table(self) -> None:
        """Create the table once; safe when several processes race to create it."""
        if self._ready:
            return
        from sqlalchemy import inspect
        from sqlalchemy.exc import SQLAlchemyError

        with self._lock:
            if self._ready:
                return
            try:
                self._table.create(self.engine, checkfirst=True)
            except SQLAlchemyError:
                # Another worker created it between the check and the create.
                if not inspect(self.engine).has_table(EVENTS_TABLE):
                    raise
            self._ready = True

    def exists(self) -> bool:
        from sqlalchemy import inspect

        return self._ready or bool(inspect(self.engine).has_table(EVENTS_TABLE))

    def append(self, event: GateEvent) -> int:
        """Write ``event`` in its own transaction; returns its id."""
        self.ensure_table()
        at = datetime.fromisoformat(event.at)
        row = {
            "at_ms": int(at.timestamp() * 1000),
            "kind": event.kind,
            "user_name": _cut(event.user, 256) if event.user else None,
            "method": _cut(event.method, 16),
            "path": _cut(event.path, 1000),
            "operation": _cut(event.operation, 128),
            "model": _cut(event.model, 256) if event.model else None,
            "version": _cut(event.version, 64) if event.version else None,
            "target": _cut(event.target, 1000) if event.target else None,
            "message": _cut(event.message),
            "override_reason": _cut(event.override_reason) if event.override_reason else None,
            "figures": json.dumps(event.figures),
            "budgets": _cut(json.dumps(event.budgets), 60_000),
            "remote_addr": _cut(event.remote_addr, 256) if event.remote_addr else None,
        }
        with self.engine.begin() as conn:
            result = conn.execute(self._table.insert().values(**row))
            key = result.inserted_primary_key
        return int(key[0]) if key else 0

    def events(
        self, *, model: str | None = None, since: datetime | None = None, limit: int = 1000
    ) -> list[GateEvent]:
        """Recorded events, oldest first; ``model`` and ``since`` filter, ``limit`` keeps the newest."""
        from sqlalchemy import select

        if not self.exists():
            return []
        t = self._table
        query = select(t)
        if model is not None:
            query = query.where(t.c.model == model)
        if since is not None:
            query = query.where(t.c.at_ms >= int(since.timestamp() * 1000))
        query = query.order_by(t.c.at_ms.desc(), t.c.id.desc()).limit(max(1, limit))
        with self.engine.connect() as conn:
            rows = list(conn.execute(query).mappings())
        return [_event(row) for row in reversed(rows)]


def _event(row: Mapping[str, Any]) -> GateEvent:
    at = datetime.fromtimestamp(row["at_ms"] / 1000, tz=timezone.utc)
    return GateEvent(
        kind=row["kind"],
        at=at.isoformat(timespec="milliseconds"),
        user=row["user_name"],
        method=row["method"],
        path=row["path"],
        operation=row["operation"],
        model=row["model"],
        version=row["version"],
        target=row["target"],
        message=row["message"],
        override_reason=row["override_reason"],
        figures=json.loads(row["figures"] or "{}"),
        budgets=json.loads(row["budgets"] or "[]"),
        remote_addr=row["remote_addr"],
        id=int(row["id"]),
    )


def parse_since(raw: str) -> datetime:
    """``--since``: an ISO 8601 date or date-time (UTC when no offset is given)."""
    from mlflow_green.errors import ConfigError

    text = raw.strip()
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {raw!r} is not a date; give an ISO 8601 date such as 2026-11-30 or "
            "2026-11-30T08:00:00Z"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


# -- the server side: one event log per database, per process ------------------------------------

_LOGS: dict[str, EventLog] = {}
_LOGS_GUARD = threading.Lock()


def event_log_for_store(tracking_store: Any) -> EventLog:
    """The event log in ``tracking_store``'s database (its own engine and pool, reused)."""
    engine = getattr(tracking_store, "engine", None)
    db_uri = getattr(tracking_store, "db_uri", None)
    if engine is None or not db_uri:
        root = getattr(tracking_store, "root_directory", None)
        if not root:
            raise RuntimeError(
                f"the gate's audit trail needs a SQL or file tracking store, not {type(tracking_store).__name__}"
            )
        from pathlib import Path

        db_uri = f"sqlite:///{Path(root) / 'mlflow_green_events.db'}"
        engine = None
    with _LOGS_GUARD:
        log = _LOGS.get(db_uri)
        if log is None:
            log = EventLog(engine) if engine is not None else EventLog.from_uri(db_uri)
            _LOGS[db_uri] = log
        return log


def _server_log() -> EventLog:
    from mlflow_green.registry import _mlflow_seams as seams

    return event_log_for_store(seams.tracking_store())


def _request_fields() -> dict[str, Any]:
    from flask import request

    body: Any = None
    if request.method not in ("GET", "HEAD"):
        try:
            body = json.loads(request.get_data(cache=True) or b"null")
        except ValueError:
            body = None
    if not isinstance(body, dict):
        body = {}
    merged = {**request.args.to_dict(), **body}
    return {k: merged[k] for k in ("name", "version", *_TARGET_FIELDS) if merged.get(k) not in (None, "")}


def _operation() -> str:
    from flask import request

    endpoint = request.endpoint or ""
    try:
        from mlflow_green.registry import _mlflow_seams as seams

        for message_class, handler in seams.handler_table().items():
            if handler.__name__ == endpoint:
                return str(message_class.__name__)
    except Exception:  # pragma: no cover - the operation name is only a label
        pass
    return endpoint or "unknown"


def _verdict_parts(verdict: Any) -> tuple[dict[str, float | None], list[dict[str, Any]]]:
    if verdict is None:
        return {}, []
    data = verdict.to_dict() if hasattr(verdict, "to_dict") else dict(verdict)
    figures = {k: data.get(k) for k in ("total_co2eq_kg", "co2eq_kg", "energy_kwh", "accuracy_per_kg")}
    budgets = [
        {k: c.get(k) for k in ("budget", "scope", "limit", "figure", "unit", "passed", "source")}
        for c in data.get("checks", [])
    ]
    return figures, budgets


def _event_now(kind: str, message: str, *, reason: str | None, verdict: Any) -> GateEvent:
    from flask import g, request

    if verdict is None:
        verdict = getattr(g, "mlflow_green_verdict", None)
    fields = _request_fields()
    figures, budgets = _verdict_parts(verdict)
    target = ", ".join(f"{k}={fields[k]}" for k in _TARGET_FIELDS if k in fields) or None
    return GateEvent(
        kind=kind,
        at=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        user=current_user(),
        method=request.method,
        path=request.path,
        operation=_operation(),
        model=str(fields["name"]) if "name" in fields else None,
        version=str(fields["version"]) if "version" in fields else None,
        target=target,
        message=" ".join(str(message).split()),
        override_reason=reason,
        figures=figures,
        budgets=budgets,
        remote_addr=request.remote_addr,
    )


def record_refusal(message: str, *, verdict: Any = None) -> None:
    """Record the refusal of the current request; never raises (the refusal stands regardless).

    ``verdict`` (a Verdict or its dict) gives the figures and budgets; by default the one the
    gate left in ``flask.g.mlflow_green_verdict``, if any.
    """
    try:
        _server_log().append(_event_now("refusal", message, reason=None, verdict=verdict))
    except Exception:
        _logger.exception("carbon gate: could not record a refusal in the audit trail: %s", message)


def record_override(denial: str, reason: str, *, verdict: Any = None) -> None:
    """Record the administrator override of the current request; raises when it cannot.

    The caller lets the exception refuse the request: an override that leaves no trace is not
    honoured.
    """
    _server_log().append(_event_now("override", denial, reason=reason, verdict=verdict))
