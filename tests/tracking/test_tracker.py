"""The plain-PyTorch API: ``epochs(n)``, ``report_accuracy`` and ``GreenTracker``, on SQLite."""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from pathlib import Path

import pytest

import mlflow_green
from mlflow_green.errors import ConfigError
from mlflow_green.samplers import SamplerBase
from mlflow_green.tracking import schema
from mlflow_green.tracking.journal import journal_path, read_journal
from tests.tracking._checks import (
    assert_cumulative,
    assert_every_epoch,
    assert_simulated_power,
    history,
)

EPOCH_S = 0.05


def test_epochs_iterator_logs_every_epoch(mlflow_local: str, capsys: pytest.CaptureFixture[str]) -> None:
    import mlflow

    accuracies = [0.5, 0.6, 0.7]
    seen = []
    for epoch in mlflow_green.epochs(3, sampler="simulated:300", country="FRA"):
        time.sleep(EPOCH_S)
        mlflow_green.report_accuracy(accuracies[epoch])
        seen.append(epoch)
    assert seen == [0, 1, 2]

    client = mlflow.MlflowClient()
    run = mlflow.last_active_run()
    assert run is not None and client.get_run(run.info.run_id).info.status == "FINISHED"
    run_id = run.info.run_id
    assert_every_epoch(client, run_id, 3)
    assert_simulated_power(client, run_id, 300)
    assert_cumulative(client, run_id)
    per_kg = history(client, run_id, schema.ACCURACY_PER_KG)
    cum = dict(history(client, run_id, schema.CUM_TOTAL_CO2EQ_KG))
    for (step, value), acc in zip(per_kg, accuracies, strict=True):
        assert math.isclose(value, acc / cum[step], rel_tol=1e-12)
    # The projection after the last epoch is the total.
    projected = history(client, run_id, schema.PROJECTED_TOTAL_CO2EQ_KG)
    assert math.isclose(projected[-1][1], cum[2], rel_tol=1e-9)
    tags = client.get_run(run_id).data.tags
    expected = {
        schema.TAG_METHOD_GPU: "simulated",
        schema.TAG_GPU_COUNT: "1",
        schema.TAG_LOCATION: "FRA",
        schema.TAG_INTENSITY_BASIS: "lifecycle",
        schema.TAG_PUE: "1",
        schema.TAG_STATUS: "ok",
        schema.TAG_VERSION: mlflow_green.__version__,
        schema.TAG_ACCURACY_METRIC: "reported",
    }
    assert {k: tags.get(k) for k in expected} == expected
    for key in (schema.TAG_INTENSITY_SOURCE, schema.TAG_EMBODIED_PROFILE, schema.TAG_GPU_MODEL,
                schema.TAG_METHOD_CPU, schema.TAG_METHOD_RAM):
        assert tags.get(key)
    report = json.loads(Path(client.download_artifacts(run_id, "green/report.json")).read_text())
    assert [row["epoch"] for row in report["epochs"]] == [0, 1, 2]
    assert math.isclose(report["totals"]["total_co2eq_kg"], cum[2], rel_tol=1e-9)
    assert report["provenance"][schema.TAG_LOCATION] == "FRA"
    page = Path(client.download_artifacts(run_id, "green/report.html")).read_text()
    assert "<style>" in page and "<script" not in page and "http" not in page.split("</style>")[0]
    out = capsys.readouterr().out
    assert "km by car" in out and "kWh" in out
    # The journal has every step, acknowledged.
    state = read_journal(journal_path(run_id))
    assert state.pending_steps == [] and sorted(state.epochs) == [0, 1, 2] and state.ended
    assert state.owner == "tracker" and state.run_status == "FINISHED"
    assert state.done, "all delivered: recover without a run id skips this journal"
    assert mlflow_green.recover() == []


def test_accuracy_read_back_from_the_run(mlflow_local: str) -> None:
    import mlflow

    with mlflow.start_run() as run:
        loop = mlflow_green.epochs(2, sampler="simulated:100", silent=True, intensity=300)
        for epoch in loop:
            mlflow.log_metric("val_accuracy", 0.8 + epoch / 10, step=epoch)
        assert mlflow.active_run().info.run_id == run.info.run_id, "an attached run stays open"
    # Read back by the logger thread, and into the records the report is built from.
    assert [r.accuracy for r in loop.records] == [0.8, 0.9]
    # The user's own run: journaled as the process's (recover ends it only if that process dies).
    state = read_journal(journal_path(run.info.run_id))
    assert state.owner == "process" and state.pending_run is None and state.pid == os.getpid()
    client = mlflow.MlflowClient()
    per_kg = history(client, run.info.run_id, schema.ACCURACY_PER_KG)
    cum = dict(history(client, run.info.run_id, schema.CUM_TOTAL_CO2EQ_KG))
    assert [s for s, _ in per_kg] == [0, 1]
    assert math.isclose(per_kg[1][1], 0.9 / cum[1], rel_tol=1e-9)
    assert client.get_run(run.info.run_id).data.tags[schema.TAG_ACCURACY_METRIC] == "val_accuracy"


def test_reported_accuracy_wins_over_a_logged_metric(mlflow_local: str) -> None:
    import mlflow

    with mlflow.start_run() as run:
        for _ in mlflow_green.epochs(1, sampler="simulated:100", silent=True, intensity=300):
            mlflow.log_metric("accuracy", 0.1, step=0)
            mlflow_green.report_accuracy(0.75)
    client = mlflow.MlflowClient()
    ((_, per_kg),) = history(client, run.info.run_id, schema.ACCURACY_PER_KG)
    ((_, cum),) = history(client, run.info.run_id, schema.CUM_TOTAL_CO2EQ_KG)
    assert math.isclose(per_kg, 0.75 / cum, rel_tol=1e-12)


def test_green_tracker_explicit_epochs(mlflow_local: str) -> None:
    import mlflow

    with mlflow_green.GreenTracker(total_epochs=4, sampler="simulated:200x2", silent=True, intensity=400) as tracker:
        for epoch in range(2):
            time.sleep(EPOCH_S)
            record = tracker.epoch_end({"val_acc": 0.5 + epoch / 4, "loss": 1.0 / (epoch + 1)})
            assert record is not None and record.epoch == epoch
            assert record.accuracy == 0.5 + epoch / 4
    client = mlflow.MlflowClient()
    run_id = tracker.run_id
    assert run_id and client.get_run(run_id).info.status == "FINISHED"
    # The user's metrics ride in the same batch, at step = epoch.
    assert history(client, run_id, "loss") == [(0, 1.0), (1, 0.5)]
    # Two simulated GPUs: per-device energies, summing to the GPU energy.
    gpu0 = dict(history(client, run_id, schema.gpu_device_energy_key(0)))
    gpu1 = dict(history(client, run_id, schema.gpu_device_energy_key(1)))
    total = dict(history(client, run_id, schema.GPU_ENERGY_KWH))
    for step in (0, 1):
        assert math.isclose(gpu0[step] + gpu1[step], total[step], rel_tol=1e-9)
    assert_simulated_power(client, run_id, 400)
    # Projection over 4 epochs from 2 done: larger than the total so far.
    projected = history(client, run_id, schema.PROJECTED_ENERGY_KWH)
    cum = dict(history(client, run_id, schema.CUM_ENERGY_KWH))
    assert projected[-1][1] > cum[1]
    assert client.get_run(run_id).data.tags[schema.TAG_GPU_COUNT] == "2"


def test_budget_stop_ends_the_iterator(mlflow_local: str) -> None:
    import mlflow

    seen = [e for e in mlflow_green.epochs(5, sampler="simulated:300", intensity=500, budget_kg=1e-12,
                                           on_budget="stop", silent=True)]
    assert seen == [0]
    run = mlflow.last_active_run()
    client = mlflow.MlflowClient()
    assert client.get_run(run.info.run_id).data.tags[schema.TAG_STOP_REASON].startswith("budget")
    assert [s for s, _ in history(client, run.info.run_id, schema.ENERGY_KWH)] == [0]


def test_budget_warn_keeps_going(mlflow_local: str, caplog: pytest.LogCaptureFixture) -> None:
    seen = list(mlflow_green.epochs(3, sampler="simulated:300", intensity=500, budget_kg=1e-12))
    assert seen == [0, 1, 2]
    assert sum("budget" in r.getMessage() for r in caplog.records) == 1, "warned once"


def test_break_accounts_the_epoch_in_progress(mlflow_local: str) -> None:
    import mlflow

    for epoch in mlflow_green.epochs(10, sampler="simulated:300", silent=True, intensity=100):
        time.sleep(EPOCH_S)
        if epoch == 1:
            break
    run = mlflow.last_active_run()
    client = mlflow.MlflowClient()
    assert [s for s, _ in history(client, run.info.run_id, schema.ENERGY_KWH)] == [0, 1]
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


def test_log_every_n_epochs_batches(mlflow_local: str) -> None:
    import mlflow

    list(mlflow_green.epochs(5, sampler="simulated:300", silent=True, intensity=100, log_every_n_epochs=2))
    run = mlflow.last_active_run()
    assert_every_epoch(mlflow.MlflowClient(), run.info.run_id, 5)


def test_disabled_by_environment(mlflow_local: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_GREEN_DISABLE", "1")
    for _ in mlflow_green.epochs(2, sampler="simulated:300"):
        mlflow_green.report_accuracy(0.5)
    assert mlflow.active_run() is None
    assert mlflow.MlflowClient().search_runs(["0"]) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"on_budget": "halt"}, "on_budget"),
        ({"budget_kg": 0}, "budget_kg"),
        ({"budget_kg": -1.0}, "budget_kg"),
        ({"log_every_n_epochs": 0}, "log_every_n_epochs"),
        ({"intensity": "lots"}, "intensity"),
        ({"colour": "green"}, "unknown option"),
        ({"total_epochs": 0}, "total_epochs"),
        ({"total_epochs": "ten"}, "total_epochs"),
        ({"total_epochs": 2.5}, "total_epochs"),
    ],
)
def test_bad_options_raise_config_error(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        mlflow_green.GreenTracker(**options)


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_epochs_needs_a_positive_count(n: object) -> None:
    with pytest.raises(ConfigError, match="number of epochs"):
        mlflow_green.epochs(n)  # type: ignore[arg-type]


def test_report_accuracy_outside_a_tracker() -> None:
    with pytest.raises(ConfigError, match="running tracker"):
        mlflow_green.report_accuracy(0.9)


class FailingGpu(SamplerBase):
    """A simulated GPU whose counter breaks after ``ok_reads`` reads (a lost device)."""

    def __init__(self, ok_reads: int) -> None:
        from mlflow_green.samplers import SimulatedGpuSampler

        self._inner = SimulatedGpuSampler(300.0, 1)
        self._ok = ok_reads
        self.component = self._inner.component
        self.method = self._inner.method
        self.devices = self._inner.devices
        self.needs_polling = self._inner.needs_polling

    def read_energy_j(self) -> tuple[float, ...]:
        from mlflow_green.errors import SamplerError

        self._ok -= 1
        if self._ok < 0:
            raise SamplerError("GPU 0 is lost")
        return self._inner.read_energy_j()

    def read_power_w(self) -> tuple[float, ...]:
        return self._inner.read_power_w()

    def close(self) -> None:
        self._inner.close()


def _meter_with_failing_gpu() -> object:
    from mlflow_green.meter import EnergyMeter
    from mlflow_green.samplers import select

    return EnergyMeter([FailingGpu(ok_reads=3), *select("auto", components=("cpu", "ram"))])


def test_failing_sampler_degrades_the_run(mlflow_local: str, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_GREEN_STRICT", "0")
    with mlflow_green.GreenTracker(meter=_meter_with_failing_gpu(), silent=True, intensity=100) as tracker:
        for _ in range(3):
            tracker.epoch_end()
    client = mlflow.MlflowClient()
    run = client.get_run(tracker.run_id)
    assert run.data.tags[schema.TAG_STATUS].startswith("degraded: ")
    assert "lost" in run.data.tags[schema.TAG_STATUS]
    # The other components carry on; every epoch is still logged.
    assert_every_epoch(client, tracker.run_id, 3, projected=False)
    assert all(v > 0 for _, v in history(client, tracker.run_id, schema.CPU_ENERGY_KWH))
    assert sum("lost" in r.getMessage() for r in caplog.records if r.name.startswith("mlflow_green")) >= 1


def test_failing_sampler_raises_under_strict(mlflow_local: str) -> None:
    from mlflow_green.errors import SamplerError

    with pytest.raises(SamplerError), mlflow_green.GreenTracker(meter=_meter_with_failing_gpu(), silent=True, intensity=100) as tracker:
        for _ in range(3):
            tracker.epoch_end()


def _logger_threads() -> int:
    import threading

    return sum(t.name == "mlflow-green-logger" and t.is_alive() for t in threading.enumerate())


def test_a_start_failing_under_strict_leaves_nothing_behind(mlflow_local: str) -> None:
    """Regression: an error raised out of start() (no __exit__ runs) left the tracker active,
    its SIGTERM handler installed, its sender running and its run open."""
    import signal

    import mlflow

    from mlflow_green.errors import SamplerError
    from mlflow_green.meter import EnergyMeter

    handler, threads = signal.getsignal(signal.SIGTERM), _logger_threads()
    # The meter opens (one read), the first epoch's window does not (the second read fails).
    tracker = mlflow_green.GreenTracker(meter=EnergyMeter([FailingGpu(ok_reads=1)]), silent=True, intensity=100)
    with pytest.raises(SamplerError), tracker:
        pytest.fail("the block must not run")
    with pytest.raises(ConfigError, match="running tracker"):
        mlflow_green.report_accuracy(0.9)
    assert signal.getsignal(signal.SIGTERM) == handler
    assert _logger_threads() == threads
    assert mlflow.active_run() is None
    assert tracker.run_id is not None
    assert mlflow.MlflowClient().get_run(tracker.run_id).info.status == "FAILED"


def test_a_last_epoch_failing_under_strict_still_ends_the_run(mlflow_local: str) -> None:
    """The partial epoch accounted at __exit__ fails too: the run is ended all the same."""
    import mlflow

    from mlflow_green.tracking.pipeline import EpochContext, register_metric_contributor

    def clash(context: EpochContext) -> dict[str, float]:
        return {schema.ENERGY_KWH: 0.0}  # a key already in the batch: refused

    threads = _logger_threads()
    remove = register_metric_contributor(clash)
    try:
        with pytest.raises(ValueError, match="already in the epoch's batch"):
            with mlflow_green.GreenTracker(sampler="simulated:300", silent=True, intensity=100) as tracker:
                tracker.epoch_end()
    finally:
        remove()
    with pytest.raises(ConfigError, match="running tracker"):
        mlflow_green.report_accuracy(0.9)
    assert _logger_threads() == threads
    assert mlflow.active_run() is None
    assert tracker.run_id is not None
    assert mlflow.MlflowClient().get_run(tracker.run_id).info.status == "FAILED"


def test_epoch_windows_follow_each_other_without_gaps(mlflow_local: str) -> None:
    """One sampler read ends an epoch and starts the next: the windows tile the loop."""
    with mlflow_green.GreenTracker(sampler="simulated:200", silent=True, report=False) as tracker:
        for _ in range(4):
            time.sleep(0.02)
            tracker.epoch_end()
    rows = list(tracker.records)
    for a, b in itertools.pairwise(rows):
        assert abs(a.start_unix_s + a.epoch_seconds - b.start_unix_s) < 0.005
    for r in rows:
        assert math.isclose(r.gpu_energy_kwh * 3.6e6, 200.0 * r.epoch_seconds, rel_tol=0.01)


@pytest.mark.parametrize("time_varying", [True, False])
def test_the_grid_intensity_is_asked_per_epoch_unless_the_source_is_constant(
    mlflow_local: str, monkeypatch: pytest.MonkeyPatch, time_varying: bool
) -> None:
    """A live source answers for each epoch's midpoint; a static or fixed one is asked once."""
    import dataclasses

    import mlflow_green.accounting as acct

    asked: list[object] = []

    class Source:
        def __init__(self) -> None:
            self.time_varying = time_varying
            self._value = acct.FixedIntensity(100).intensity(None)

        def intensity(self, at: object = None) -> object:
            if at is None:  # the run's provenance tags
                return self._value
            asked.append(at)
            return dataclasses.replace(self._value, g_per_kwh=100.0 + len(asked), at=at)

    monkeypatch.setattr(acct, "intensity_source", lambda *a, **k: Source())
    with mlflow_green.GreenTracker(sampler="simulated:100", silent=True) as tracker:
        records = [tracker.epoch_end() for _ in range(3)]
    values = [r.intensity_g_per_kwh for r in records if r is not None]
    if time_varying:
        assert len(asked) == 3
        assert values == [101.0, 102.0, 103.0]
    else:
        assert len(asked) == 1 and values == [101.0, 101.0, 101.0]
    assert acct.StaticIntensity.time_varying is False and acct.FixedIntensity.time_varying is False
