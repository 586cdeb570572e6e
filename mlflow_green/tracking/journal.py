"""The crash-safe journal: every epoch's record on local disk before it goes to MLflow.

One JSONL file per run, ``<journal_dir>/<run_id>.jsonl``. Each line is one event:

- ``{"kind": "run", ...}`` — the run id, tracking URI and experiment, the writer's pid and
  host, who owns the run; when the tracking server was unreachable at start, ``run_id`` is
  null and ``pending_run`` holds what is needed to create the run later;
- ``{"kind": "created", "run_id": ...}`` — the run of a ``pending_run`` journal was created
  (written before anything is sent to it, so a second recovery never creates another run);
- ``{"kind": "epoch", "step": i, "timestamp_ms": t, "metrics": {...}}`` — one epoch's batch;
  with ``"resolve": {"accuracy": a, "before_ms": t, "keys": [...]}`` when its accuracy is to
  be read back from the run's own metrics (the latest of the first of ``keys`` logged by
  ``before_ms``; ``a`` is the value to use when the run has none), which the logger thread
  does before sending (or ``mlflow-green recover``, when the writer died first);
- ``{"kind": "amend", "step": i, "metrics": {...}}`` — metrics added to a journaled epoch
  before it is sent (the resolved ``green/accuracy_per_kg``); ``"accuracy"`` and
  ``"accuracy_key"`` say where it came from;
- ``{"kind": "ack", "steps": [...]}`` — steps MLflow acknowledged;
- ``{"kind": "tags", "tags": {...}}`` — provenance tags (the latest value of a key wins);
- ``{"kind": "end", "status": ..., "run_status": ..., "end_time_ms": ..., "report": {...}}`` —
  the run finished (``status`` is ``green.status``, ``run_status`` MLflow's); its report;
- ``{"kind": "done"}`` — everything (epochs, tags, report) is known to be in MLflow;
- ``{"kind": "attest", "item": {"entry": ..., "hash": ...}}`` — a signed run's epoch record as
  hashed into its chain (:mod:`mlflow_green.attestation`), right after its epoch;
- ``{"kind": "attestation", "document": {...}}`` — the signed ``green/attestation.json``
  (before ``end``): ``recover`` logs it as is, never re-signs.

Durability. Every append is written and flushed to the operating system before the call
returns (on the training thread: ``write`` + ``flush``, tens of microseconds), so a process
that dies in any way — an exception, ``SIGKILL``, the OOM killer — loses at most the epoch in
progress: the kernel's page cache outlives the process and lands on disk. ``fsync`` (which
only matters when the *machine* goes down: power loss, kernel panic) is done by
:meth:`Journal.sync`, which the logger thread calls before every send to MLflow and at most
``SYNC_INTERVAL_S`` after the last unsynced append. So: nothing is ever sent to MLflow that
is not durable in the journal first; a machine crash can lose at most the journal lines of
the last ``SYNC_INTERVAL_S`` that were not yet sent (and, for those epochs, only their local
copy: the training run itself was on that machine). ``end`` and ``done`` are fsynced at once.
A torn last line (killed mid-write) is skipped on reading.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow_green import _settings

__all__ = [
    "OWNER_EXTERNAL",
    "OWNER_PROCESS",
    "OWNER_TRACKER",
    "SYNC_INTERVAL_S",
    "Journal",
    "JournalState",
    "is_open_here",
    "journal_path",
    "list_journals",
    "parse_epoch_event",
    "read_events",
    "read_journal",
]

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")

# The longest a journal line written on the training thread waits for its fsync when nothing
# is sent meanwhile (MLflow down, or ``log_every_n_epochs`` > 1).
SYNC_INTERVAL_S = 1.0

# Who owns the MLflow run a journal writes to (``owner`` in the header):
OWNER_TRACKER = "tracker"  # mlflow_green started it and ends it
OWNER_PROCESS = "process"  # the writing process's active run (the user's ``mlflow.start_run``)
OWNER_EXTERNAL = "external"  # given by id: another process may be using it

# Journals open for writing in this process: their writer is alive by definition.
_OPEN_PATHS: set[Path] = set()
_OPEN_LOCK = threading.Lock()


def _gil_holding_write() -> Any:
    """libc ``write`` called without dropping the interpreter lock (``ctypes.PyDLL``), or None.

    Appending a line to the page cache takes microseconds; ``os.write`` drops the lock
    around it, and a busy logger thread then holds it for up to the switch interval (5 ms)
    before the training thread gets it back: a 5 ms stall for a 10 µs write.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.PyDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        write = libc.write
        write.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
        write.restype = ctypes.c_ssize_t
    except (OSError, AttributeError):
        return None

    def call(fd: int, data: bytes) -> int:
        n = write(fd, data, len(data))
        if n < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return int(n)

    return call


_WRITE = _gil_holding_write()


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            n = _WRITE(fd, data) if _WRITE is not None else os.write(fd, data)
        except InterruptedError:
            continue
        data = data[n:]


def journal_path(run_id: str, directory: Path | None = None) -> Path:
    """Where the journal of ``run_id`` lives."""
    if not _SAFE_ID.match(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    return (directory or _settings.journal_dir()) / f"{run_id}.jsonl"


# One encoder for every line (``json.dumps`` with options builds a new one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _finite(value: float) -> float | None:
    # JSON has no NaN/inf; MLflow accepts them, so they are journaled as null and restored.
    return value if math.isfinite(value) else None


class Journal:
    """Append-only JSONL journal of one run; safe to call from several threads.

    Appends are written and flushed (not fsynced): see the module docstring for the
    durability each step gives, and :meth:`sync`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        # A raw descriptor in append mode: byte offsets of lines are exact (the logger reads
        # epochs back by offset) and each line is one write.
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        self._closed = False
        self._size = os.fstat(self._fd).st_size
        self._synced_size = self._size
        self._sync_lock = threading.Lock()
        # Why the journal cannot be trusted to be on disk (an fsync failed), or None.
        self.failed: str | None = None
        with _OPEN_LOCK:
            _OPEN_PATHS.add(path.resolve())

    @property
    def size(self) -> int:
        """Bytes in the file so far (what this process wrote included): the end of the last line."""
        return self._size

    @property
    def unsynced(self) -> bool:
        """True when lines were appended since the last :meth:`sync`."""
        return self._synced_size < self._size

    @classmethod
    def open(
        cls,
        run_id: str,
        *,
        tracking_uri: str,
        experiment_id: str | None = None,
        directory: Path | None = None,
        owner: str = OWNER_EXTERNAL,
        pending_run: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Journal:
        """Open (or continue) the journal of a run and write its header line.

        With ``pending_run`` (the tracking server was unreachable), ``run_id`` names the
        journal only: no MLflow run exists yet and the header's ``run_id`` is null.
        """
        journal = cls(journal_path(run_id, directory))
        from mlflow_green._version import __version__

        journal._append(
            {
                "kind": "run",
                "run_id": None if pending_run is not None else run_id,
                "tracking_uri": tracking_uri,
                "experiment_id": experiment_id,
                "version": __version__,
                "created_unix_s": time.time(),
                # recover tells a killed writer from a live one by these.
                "pid": os.getpid(),
                "hostname": socket.gethostname(),
                "owner": owner,
                **({"pending_run": pending_run} if pending_run is not None else {}),
                **(extra or {}),
            }
        )
        return journal

    def _append(self, event: dict[str, Any], *, sync: bool = False) -> int:
        """Write one line and flush it to the OS; the file's size after it (its end offset)."""
        line = (_ENCODER.encode(event) + "\n").encode("utf-8")
        with self._lock:
            if self._closed:
                raise ValueError(f"journal {self.path} is closed")
            _write_all(self._fd, line)
            self._size += len(line)
            end = self._size
        if sync:
            self.sync()
        return end

    def sync(self) -> None:
        """fsync what was appended so far (a no-op when nothing was); any thread.

        Called by the logger thread before each send, so MLflow never holds a step the
        journal could lose in a machine crash. The training thread never waits for it.
        The first failure is raised and sets :attr:`failed`; later calls do nothing (after a
        failed fsync the kernel may report the next one as a success although data was lost).
        """
        with self._sync_lock:
            target = self._size
            if self._synced_size >= target or self.failed is not None:
                return
            with self._lock:
                if self._closed:
                    return  # close() synced
                fd = os.dup(self._fd)
            try:
                os.fsync(fd)  # outside the append lock: the training thread keeps writing
            except OSError as exc:
                self.failed = f"fsync: {exc}"
                raise
            finally:
                os.close(fd)
            self._synced_size = max(self._synced_size, target)

    def epoch(
        self,
        step: int,
        metrics: dict[str, float],
        timestamp_ms: int,
        *,
        resolve: dict[str, Any] | None = None,
    ) -> int:
        """Journal one epoch's batch; returns the end offset of its line."""
        event: dict[str, Any] = {
            "kind": "epoch",
            "step": int(step),
            "timestamp_ms": int(timestamp_ms),
            "metrics": {k: _finite(float(v)) for k, v in metrics.items()},
        }
        if resolve is not None:
            event["resolve"] = resolve
        return self._append(event)

    def amend(self, step: int, metrics: dict[str, float], **info: Any) -> None:
        """Add metrics to a journaled epoch (before they are sent with it)."""
        self._append(
            {
                "kind": "amend",
                "step": int(step),
                "metrics": {k: _finite(float(v)) for k, v in metrics.items()},
                **info,
            }
        )

    def ack(self, steps: list[int]) -> None:
        if steps:
            self._append({"kind": "ack", "steps": sorted(int(s) for s in steps)})

    def tags(self, tags: dict[str, str]) -> None:
        if tags:
            self._append({"kind": "tags", "tags": {k: str(v) for k, v in tags.items()}})

    def created(self, run_id: str) -> None:
        """The MLflow run of a pending journal exists now (before anything is sent to it)."""
        self._append({"kind": "created", "run_id": run_id})

    def end(
        self,
        status: str,
        report: dict[str, Any] | None = None,
        *,
        run_status: str | None = None,
        end_time_ms: int | None = None,
    ) -> None:
        self._append(
            {
                "kind": "end",
                "status": status,
                "run_status": run_status,
                "end_time_ms": end_time_ms,
                "report": report,
            },
            sync=True,
        )

    def attest(self, item: dict[str, Any]) -> None:
        """Journal one chain item of a signed run (after its epoch line)."""
        self._append({"kind": "attest", "item": item})

    def attestation(self, document: dict[str, Any]) -> None:
        """Journal the signed attestation document of the run."""
        self._append({"kind": "attestation", "document": document}, sync=True)

    def done(self) -> None:
        """Everything reached MLflow: ``recover`` without a run id skips this journal."""
        self._append({"kind": "done"}, sync=True)

    def close(self) -> None:
        """fsync and close (idempotent). A failing fsync sets :attr:`failed`, not raised:
        closing comes after the epochs were sent, and must not break the end of training."""
        with self._sync_lock, self._lock:
            if not self._closed:
                self._closed = True
                try:
                    if self._synced_size < self._size and self.failed is None:
                        os.fsync(self._fd)
                        self._synced_size = self._size
                except OSError as exc:
                    self.failed = f"fsync: {exc}"
                finally:
                    os.close(self._fd)
        with _OPEN_LOCK:
            _OPEN_PATHS.discard(self.path.resolve())


def is_open_here(path: Path) -> bool:
    """True when a :class:`Journal` of this process has ``path`` open for writing."""
    with _OPEN_LOCK:
        return path.resolve() in _OPEN_PATHS


@dataclass
class JournalState:
    """What a journal says about its run."""

    path: Path
    run_id: str | None = None
    tracking_uri: str | None = None
    experiment_id: str | None = None
    epochs: dict[int, tuple[int, dict[str, float]]] = field(default_factory=dict)
    acked: set[int] = field(default_factory=set)
    tags: dict[str, str] = field(default_factory=dict)
    ended: bool = False
    status: str | None = None
    report: dict[str, Any] | None = None
    run_status: str | None = None
    end_time_ms: int | None = None
    done: bool = False
    skipped_lines: int = 0
    pid: int | None = None
    hostname: str | None = None
    created_unix_s: float | None = None
    owner: str = OWNER_EXTERNAL
    # What is needed to create the run (the server was down at start); None otherwise.
    pending_run: dict[str, Any] | None = None
    # Epochs whose accuracy was to be read back from the run and never was (the writer died
    # first): step -> the epoch line's ``resolve`` ({"accuracy": fallback, "before_ms": t}).
    unresolved: dict[int, dict[str, Any]] = field(default_factory=dict)
    # A signed run: its chain items as journaled, and the signed document once written.
    attest_items: list[dict[str, Any]] = field(default_factory=list)
    attestation: dict[str, Any] | None = None

    @property
    def pending_steps(self) -> list[int]:
        """Journaled steps MLflow never acknowledged."""
        return sorted(set(self.epochs) - self.acked)


def read_journal(path: Path) -> JournalState:
    """Parse a journal, tolerating a torn last line."""
    state = JournalState(path=path)
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            raw = raw.strip()
            if not raw:
                continue
            try:
                event = json.loads(raw)
            except json.JSONDecodeError:
                state.skipped_lines += 1
                continue
            kind = event.get("kind")
            if kind == "run":
                state.run_id = event.get("run_id") or state.run_id
                state.tracking_uri = event.get("tracking_uri") or state.tracking_uri
                state.experiment_id = event.get("experiment_id") or state.experiment_id
                if event.get("pid") is not None:
                    # A later job of the same run (resumed) continues the journal: whether
                    # the run ended is that job's to say.
                    state.ended = state.done = False
                    state.pid = int(event["pid"])
                    state.hostname = event.get("hostname")
                    state.created_unix_s = event.get("created_unix_s")
                state.owner = event.get("owner") or state.owner
                state.pending_run = event.get("pending_run") or state.pending_run
            elif kind == "created":
                state.run_id = event.get("run_id") or state.run_id
            elif kind == "epoch":
                metrics = _restore(event.get("metrics", {}))
                step = int(event["step"])
                state.epochs[step] = (int(event["timestamp_ms"]), metrics)
                if event.get("resolve") is not None:
                    state.unresolved[step] = dict(event["resolve"])
                else:
                    state.unresolved.pop(step, None)
            elif kind == "amend":
                step = int(event["step"])
                if step in state.epochs:
                    state.epochs[step][1].update(_restore(event.get("metrics", {})))
                state.unresolved.pop(step, None)
            elif kind == "ack":
                state.acked.update(int(s) for s in event.get("steps", ()))
            elif kind == "tags":
                state.tags.update(event.get("tags", {}))
            elif kind == "end":
                state.ended = True
                state.status = event.get("status")
                state.report = event.get("report")
                state.run_status = event.get("run_status")
                state.end_time_ms = event.get("end_time_ms")
            elif kind == "done":
                state.done = True
            elif kind == "attest" and isinstance(event.get("item"), dict):
                state.attest_items.append(event["item"])
            elif kind == "attestation" and isinstance(event.get("document"), dict):
                state.attestation = event["document"]
    return state


def _restore(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: (float("nan") if v is None else float(v)) for k, v in metrics.items()}


def parse_epoch_event(event: dict[str, Any]) -> tuple[int, int, dict[str, float], dict[str, Any] | None]:
    """(step, timestamp_ms, metrics, resolve) of an ``epoch`` line's event."""
    return (
        int(event["step"]),
        int(event["timestamp_ms"]),
        _restore(event.get("metrics", {})),
        event.get("resolve"),
    )


def read_events(path: Path, start: int, end: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """The events of the whole lines between byte offsets ``start`` and ``end``, with the
    end offset of each, parsed one at a time (the logger thread reads journaled epochs back
    this way, a batch at a time). A line cut by ``end`` is left for the next read."""
    if end <= start:
        return
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    offset = start
    pos = 0
    while True:
        newline = data.find(b"\n", pos)
        if newline < 0:
            return
        raw = data[pos:newline]
        offset += newline + 1 - pos
        pos = newline + 1
        if not raw.strip():
            continue
        try:
            event = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        yield offset, event


def list_journals(directory: Path | None = None) -> list[Path]:
    """Every journal file in the journal directory, oldest first."""
    root = directory or _settings.journal_dir()
    if not root.is_dir():
        return []
    return sorted(root.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
