"""The tracking server is down when training starts: train at once, create the run later.

Against a real ``mlflow server`` (the session's) and a closed port for "down"; a small TCP
relay on the closed port plays "the server comes back".
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlflow_green
from mlflow_green.tracking import schema
from mlflow_green.tracking.journal import journal_path, read_journal
from mlflow_green.tracking.pending import PendingRun, create_pending_run
from mlflow_green.tracking.recover import recover
from mlflow_green.tracking.transport import RestTransport
from tests._servers import MlflowServer, free_port
from tests.tracking._checks import assert_every_epoch, assert_simulated_power

pytestmark = pytest.mark.slow

OPTIONS = {"sampler": "simulated:300", "intensity": 250, "silent": True}
_MLFLOW_HTTP_ENV = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")


@pytest.fixture
def down_uri(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """MLflow pointed at a closed port on 127.0.0.1."""
    import mlflow

    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield uri
    assert mlflow.active_run() is None, "no run may be left active by a pending tracker"


def _train(n: int, **options: object) -> tuple[mlflow_green.GreenTracker, float]:
    started = time.monotonic()
    loop = mlflow_green.epochs(n, **{**OPTIONS, **options})
    for _ in loop:
        time.sleep(0.05)
    return loop.tracker, time.monotonic() - started


def _runs_of_journal(server: MlflowServer, experiment_id: str, journal_id: str) -> list[str]:
    import mlflow

    runs = mlflow.MlflowClient(server.url).search_runs(
        [experiment_id], filter_string=f"tags.`{schema.TAG_JOURNAL_ID}` = '{journal_id}'"
    )
    return [r.info.run_id for r in runs]


def test_server_down_at_start_then_recover(
    down_uri: str, mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    experiment = f"pending-{time.time_ns()}"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    env_before = {k: os.environ.get(k) for k in _MLFLOW_HTTP_ENV}
    tracker, seconds = _train(3, run_name="offline-start")
    # Training did not wait for MLflow's minutes of retries; our own settings did not stay.
    assert seconds < 10.0
    assert {k: os.environ.get(k) for k in _MLFLOW_HTTP_ENV} == env_before
    assert tracker.run_id is None and tracker.journal_id and tracker.journal_id.startswith("pending-")
    assert tracker.status.startswith("degraded: tracking server unreachable at start (connection refused)")

    state = read_journal(journal_path(tracker.journal_id))
    assert state.run_id is None and state.ended and not state.done
    assert sorted(state.epochs) == [0, 1, 2]
    pending = PendingRun.from_json(state.pending_run or {})
    assert pending.tracking_uri == down_uri
    assert pending.experiment_name == experiment and pending.run_name == "offline-start"
    assert pending.tags["mlflow.runName"] == "offline-start" and "mlflow.user" in pending.tags

    # The server is back (here: it lived elsewhere all along).
    (first,) = recover(tracking_uri=mlflow_server.url)
    assert first.error is None, first
    assert first.created_run and first.sent_steps == [0, 1, 2] and first.ended_as == "FINISHED"
    assert first.report_uploaded
    client = mlflow.MlflowClient(mlflow_server.url)
    run = client.get_run(first.run_id)
    assert client.get_experiment(run.info.experiment_id).name == experiment
    assert run.info.run_name == "offline-start" and run.info.status == "FINISHED"
    assert run.info.start_time == pending.start_time_ms
    assert run.data.tags[schema.TAG_STATUS] == tracker.status
    assert run.data.tags[schema.TAG_METHOD_GPU] == "simulated"
    assert_every_epoch(client, first.run_id, 3)
    assert_simulated_power(client, first.run_id, 300)
    assert read_journal(journal_path(tracker.journal_id)).done

    # Again, by the MLflow run id now: nothing to create, nothing to send.
    (second,) = recover(first.run_id, tracking_uri=mlflow_server.url)
    assert second.error is None and not second.created_run and second.run_id == first.run_id
    assert second.sent_steps == [] and second.metrics_sent == 0
    assert _runs_of_journal(mlflow_server, run.info.experiment_id, tracker.journal_id) == [first.run_id]


def test_recover_that_crashed_after_creating_the_run_creates_no_second_one(
    down_uri: str, mlflow_server: MlflowServer
) -> None:
    class CrashAfterCreate(RestTransport):
        def log_batch(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("recover killed here")

    tracker, _ = _train(2)
    assert tracker.journal_id is not None
    (crashed,) = recover(tracker.journal_id, transport=CrashAfterCreate(mlflow_server.url))
    assert crashed.error == "recover killed here" and crashed.created_run
    state = read_journal(journal_path(tracker.journal_id))
    assert state.run_id == crashed.run_id, "the run id is journaled before anything is sent"

    (again,) = recover(tracker.journal_id, tracking_uri=mlflow_server.url)
    assert again.error is None and not again.created_run and again.run_id == crashed.run_id
    assert again.sent_steps == [0, 1]
    # Even with the journal's `created` line lost, the run is found by its tag.
    pending = PendingRun.from_json(state.pending_run or {})
    transport = RestTransport(mlflow_server.url)
    assert create_pending_run(pending, transport) == crashed.run_id
    assert _runs_of_journal(mlflow_server, "0", tracker.journal_id) == [crashed.run_id]


class _Relay:
    """A TCP relay from ``port`` to the real server: the server 'comes back' on ``port``."""

    def __init__(self, port: int, target: int) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", port))
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            upstream = socket.create_connection(("127.0.0.1", self._target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


def test_server_back_mid_training_the_logger_creates_the_run(
    down_uri: str, mlflow_server: MlflowServer
) -> None:
    import mlflow

    port = int(down_uri.rsplit(":", 1)[1])
    loop = mlflow_green.epochs(4, **OPTIONS)
    relay: _Relay | None = None
    try:
        for epoch in loop:
            time.sleep(0.05)
            if epoch == 1:
                assert loop.tracker.run_id is None
                relay = _Relay(port, mlflow_server.port)
    finally:
        if relay is not None:
            relay.close()
    tracker = loop.tracker
    assert tracker.run_id is not None, "the logger created the run once the server answered"
    client = mlflow.MlflowClient(mlflow_server.url)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[schema.TAG_JOURNAL_ID] == tracker.journal_id
    assert run.data.tags[schema.TAG_STATUS].startswith("degraded: tracking server unreachable at start")
    assert_every_epoch(client, tracker.run_id, 4)
    assert {f.path for f in client.list_artifacts(tracker.run_id, "green")} == {
        "green/report.json",
        "green/report.html",
    }
    state = read_journal(journal_path(tracker.journal_id or ""))
    assert state.run_id == tracker.run_id and state.done and state.pending_steps == []
    assert recover(tracking_uri=mlflow_server.url) == []


def test_pending_journal_id_is_never_an_mlflow_run_id(tmp_path: Path) -> None:
    from mlflow_green.tracking.pending import new_journal_id

    ids = {new_journal_id() for _ in range(3)}
    assert len(ids) == 3
    for journal_id in ids:
        assert journal_id.startswith("pending-") and journal_path(journal_id, tmp_path).parent == tmp_path
