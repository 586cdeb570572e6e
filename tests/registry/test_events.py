"""The gate's event table on SQLite and PostgreSQL: idempotent creation, racing creators, filters."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mlflow_green.errors import ConfigError
from mlflow_green.registry.events import EVENTS_TABLE, EventLog, GateEvent, parse_since
from tests._servers import sql_store


def _event(model: str | None, at: str, **kw: object) -> GateEvent:
    base: dict[str, object] = dict(
        kind="refusal", at=at, user=None, method="POST", path="/api/2.0/mlflow/registered-models/alias",
        operation="SetRegisteredModelAlias", model=model, version="1", target="alias=champion",
        message="carbon gate: " + "x" * 5000,
    )
    base.update(kw)
    return GateEvent(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_table_created_once_by_racing_processes_and_filtered(kind: str, tmp_path: Path) -> None:
    with sql_store(kind, tmp_path, prefix="green_events") as uri:
        logs = [EventLog.from_uri(uri) for _ in range(4)]  # four "workers", four engines
        errors: list[BaseException] = []

        def create(log: EventLog) -> None:
            try:
                log.ensure_table()
            except BaseException as exc:  # pragma: no cover - the assertion below reports it
                errors.append(exc)

        threads = [threading.Thread(target=create, args=(log,)) for log in logs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        ids = [
            logs[0].append(_event("a", "2026-11-01T00:00:00+00:00")),
            logs[1].append(_event("b", "2026-11-02T00:00:00+00:00", kind="override", override_reason="why")),
            logs[2].append(_event("a", "2026-11-03T00:00:00.250+00:00", figures={"total_co2eq_kg": 1.5})),
            logs[3].append(_event(None, "2026-11-04T00:00:00+00:00", user="alice")),
        ]
        assert len(set(ids)) == 4
        every = EventLog.from_uri(uri).events()  # a fresh process sees what the others wrote
        assert [e.model for e in every] == ["a", "b", "a", None]
        assert every[1].override_reason == "why" and every[3].user == "alice"
        assert every[2].figures == {"total_co2eq_kg": 1.5} and every[2].at == "2026-11-03T00:00:00.250+00:00"
        assert len(every[0].message) == 4000  # cut to fit, never refused
        assert [e.id for e in logs[0].events(model="a")] == [ids[0], ids[2]]
        since = datetime(2026, 11, 2, tzinfo=timezone.utc)
        assert [e.model for e in logs[0].events(since=since)] == ["b", "a", None]
        assert [e.model for e in logs[0].events(limit=2)] == ["a", None]  # the newest, oldest first
        for log in logs:
            log.engine.dispose()


def test_reading_a_database_without_the_table_creates_nothing(tmp_path: Path) -> None:
    from sqlalchemy import inspect

    log = EventLog.from_uri(f"sqlite:///{tmp_path / 'x.db'}")
    assert log.events() == []
    assert not inspect(log.engine).has_table(EVENTS_TABLE)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-30", datetime(2026, 11, 30, tzinfo=timezone.utc)),
        ("2026-11-30T08:00:00Z", datetime(2026, 11, 30, 8, tzinfo=timezone.utc)),
        ("2026-11-30T10:00:00+02:00", datetime(2026, 11, 30, 8, tzinfo=timezone.utc)),
    ],
)
def test_parse_since(raw: str, expected: datetime) -> None:
    assert parse_since(raw) == expected


@pytest.mark.parametrize("raw", ["yesterday", "", "30/11/2026", "2026-13-01"])
def test_parse_since_rejects_with_one_line(raw: str) -> None:
    with pytest.raises(ConfigError, match="ISO 8601"):
        parse_since(raw)
