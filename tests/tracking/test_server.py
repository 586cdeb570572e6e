"""Against a real ``mlflow server``: logging, a server killed mid-run, then ``recover``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import mlflow_green
from mlflow_green.tracking import schema
from mlflow_green.tracking.journal import journal_path, read_journal
from mlflow_green.tracking.recover import recover
from tests._servers import MlflowServer
from tests.tracking._checks import assert_every_epoch, assert_simulated_power, history

pytestmark = pytest.mark.slow


@pytest.fixture
def server_uri(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    mlflow.set_tracking_uri(mlflow_server.url)
    yield mlflow_server.url
    while mlflow.active_run() is not None:
        mlflow.end_run()


def test_epochs_to_a_server(server_uri: str) -> None:
    import mlflow

    for _ in mlflow_green.epochs(3, sampler="simulated:300", intensity=250, silent=True):
        time.sleep(0.05)
    run = mlflow.last_active_run()
    client = mlflow.MlflowClient()
    assert_every_epoch(client, run.info.run_id, 3)
    assert_simulated_power(client, run.info.run_id, 300)
    assert {f.path for f in client.list_artifacts(run.info.run_id, "green")} == {
        "green/report.json",
        "green/report.html",
    }


def test_server_killed_mid_run_then_recover(mlflow_server: MlflowServer, server_uri: str) -> None:
    import mlflow

    client = mlflow.MlflowClient()
    run_id = client.create_run("0").info.run_id
    tracker = mlflow_green.GreenTracker(
        total_epochs=5, run_id=run_id, sampler="simulated:300", intensity=250, silent=True
    )
    with tracker:
        for _ in range(2):
            time.sleep(0.05)
            tracker.epoch_end()
        assert tracker.sender.flush(30)
        assert tracker.sender.acked_steps == [0, 1]

        mlflow_server.kill()
        started = time.monotonic()
        for _ in range(3):
            time.sleep(0.05)
            tracker.epoch_end()
        # Training is not held up by the dead server: epoch_end only queues.
        assert time.monotonic() - started < 2.0
    # close() gave up quickly and left steps 2..4 in the journal, unacknowledged.
    state = read_journal(journal_path(run_id))
    assert sorted(state.epochs) == [0, 1, 2, 3, 4]
    assert state.pending_steps == [2, 3, 4] and not state.done

    mlflow_server.restart()
    first = recover(run_id)
    assert first[0].error is None
    assert first[0].sent_steps == [2, 3, 4] and first[0].already_logged_steps == [0, 1]
    assert first[0].report_uploaded
    second = recover(run_id)
    assert second[0].sent_steps == [] and second[0].metrics_sent == 0

    assert_every_epoch(client, run_id, 5)
    for key in (schema.CUM_TOTAL_CO2EQ_KG, schema.ENERGY_KWH, schema.ACCURACY_PER_KG):
        steps = [s for s, _ in history(client, run_id, key)]
        assert steps == sorted(set(steps)), f"{key} has a duplicated step"
    tags = client.get_run(run_id).data.tags
    assert tags[schema.TAG_METHOD_GPU] == "simulated"
    final = read_journal(journal_path(run_id))
    assert final.pending_steps == [] and final.done
