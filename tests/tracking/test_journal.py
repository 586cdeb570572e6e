"""The crash-safe journal: round trip, acknowledgements, torn lines."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mlflow_green.tracking.journal import Journal, journal_path, list_journals, read_journal


def test_round_trip(tmp_path: Path) -> None:
    journal = Journal.open("abc123", tracking_uri="http://127.0.0.1:1", experiment_id="7", directory=tmp_path)
    journal.epoch(0, {"green/energy_kwh": 0.5, "green/accuracy_per_kg": math.nan}, 1000)
    journal.epoch(1, {"green/energy_kwh": 0.25}, 2000)
    journal.ack([0])
    journal.tags({"green.status": "ok"})
    journal.tags({"green.status": "degraded: x"})
    journal.end("ok", {"totals": {"energy_kwh": 0.75}})
    journal.close()

    state = read_journal(journal_path("abc123", tmp_path))
    assert state.run_id == "abc123" and state.tracking_uri == "http://127.0.0.1:1" and state.experiment_id == "7"
    assert state.epochs[0][0] == 1000 and state.epochs[1][1] == {"green/energy_kwh": 0.25}
    assert math.isnan(state.epochs[0][1]["green/accuracy_per_kg"])
    assert state.pending_steps == [1]
    assert state.tags == {"green.status": "degraded: x"}
    assert state.ended and state.report == {"totals": {"energy_kwh": 0.75}}
    assert list_journals(tmp_path) == [journal_path("abc123", tmp_path)]


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    journal = Journal.open("run1", tracking_uri="sqlite:///x.db", directory=tmp_path)
    journal.epoch(0, {"green/energy_kwh": 1.0}, 0)
    journal.close()
    with open(journal.path, "a", encoding="utf-8") as fh:
        fh.write('{"kind": "epoch", "step": 1, "metr')  # killed mid-write
    state = read_journal(journal.path)
    assert sorted(state.epochs) == [0] and state.skipped_lines == 1


def test_every_append_is_on_disk(tmp_path: Path) -> None:
    journal = Journal.open("run2", tracking_uri="sqlite:///x.db", directory=tmp_path)
    journal.epoch(0, {"green/energy_kwh": 1.0}, 0)
    # Read by another reader while the journal is still open: nothing is buffered.
    assert sorted(read_journal(journal.path).epochs) == [0]
    journal.close()


@pytest.mark.parametrize("run_id", ["../x", "a/b", "", "x y"])
def test_run_ids_cannot_escape_the_directory(run_id: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        journal_path(run_id, tmp_path)


def test_default_directory_is_the_environment(tmp_path: Path) -> None:
    # conftest points MLFLOW_GREEN_JOURNAL_DIR at a per-test directory.
    assert journal_path("r").parent == Path(__import__("os").environ["MLFLOW_GREEN_JOURNAL_DIR"])


def test_amend_completes_an_epoch_and_marks_it_resolved(tmp_path: Path) -> None:
    journal = Journal.open("run3", tracking_uri="sqlite:///x.db", directory=tmp_path)
    resolve = {"accuracy": None, "before_ms": 5, "keys": ["val_acc"]}
    end0 = journal.epoch(0, {"green/energy_kwh": 1.0}, 0, resolve=resolve)
    end1 = journal.epoch(1, {"green/energy_kwh": 2.0}, 0, resolve=resolve)
    journal.amend(0, {"green/accuracy_per_kg": 3.0}, accuracy=0.9, accuracy_key="val_acc")
    assert end1 > end0 == journal.path.stat().st_size - (journal.size - end0) and journal.size == journal.path.stat().st_size
    journal.close()
    state = read_journal(journal.path)
    assert state.epochs[0][1] == {"green/energy_kwh": 1.0, "green/accuracy_per_kg": 3.0}
    assert list(state.unresolved) == [1] and state.unresolved[1]["keys"] == ["val_acc"]


def test_sync_is_needed_only_after_appends(tmp_path: Path) -> None:
    journal = Journal.open("run4", tracking_uri="sqlite:///x.db", directory=tmp_path)
    assert journal.unsynced  # the header
    journal.sync()
    assert not journal.unsynced
    journal.epoch(0, {"green/energy_kwh": 1.0}, 0)
    assert journal.unsynced
    journal.close()
    assert not journal.unsynced
