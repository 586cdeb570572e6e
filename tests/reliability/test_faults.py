"""Faults at the hardware and disk edges, through the real tracker, meter, journal and logger.

Fakes sit at the vendor boundary only: a fake ``pynvml`` module in ``sys.modules`` whose GPU
draws a steady power and can be told to fail or to step its counter backwards; a fake
powercap tree for RAPL wrap-around; an unwritable directory; ``/dev/full`` behind the journal
path (a full disk at open) and an ``os.fsync`` that answers ENOSPC for the journal's file
descriptor only (a disk that fills mid-run: CPython's file objects write through their own C
buffer, so ``os.fsync`` is the one call at that edge a test can make fail).

Most tests check the production degrade path, so they delete ``MLFLOW_GREEN_STRICT`` (which the
suite sets); the strict behaviour (raise instead of degrade) is checked too, separately.
For each fault: training finishes, every epoch reaches MLflow once, and ``green.status`` says
what happened.
"""

from __future__ import annotations

import errno
import itertools
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mlflow_green
from mlflow_green.errors import SamplerError
from mlflow_green.meter import EnergyMeter
from mlflow_green.samplers import RaplSampler
from mlflow_green.tracking import schema
from tests._servers import MlflowServer
from tests.reliability._tally import Tally
from tests.reliability._util import EPOCH_KEYS, lost_and_duplicated, metric_steps, run_tags
from tests.samplers.fakes import NVML_ERROR_GPU_IS_LOST, FakeGpu, FakeNvml, NVMLError

GPU_WATTS = 250.0
EPOCHS = 4
EPOCH_S = 0.15


class PoweredNvml(FakeNvml):
    """A fake NVML whose GPUs draw a steady power: the energy counter moves with the clock.

    ``fail_after`` reads of the counter, every read raises ``GPU is lost``; ``reset_after``
    reads, the counter restarts from 0 (a driver reload) and carries on.
    """

    def __init__(self, gpus: list[FakeGpu], *, fail_after: int | None = None, reset_after: int | None = None) -> None:
        super().__init__(gpus)
        self.t0 = time.monotonic()
        self.reads = 0
        self.fail_after = fail_after
        self.reset_after = reset_after
        self.reset_at: float | None = None
        self._lock = threading.Lock()

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        with self._lock:
            self.reads += 1
            if self.fail_after is not None and self.reads > self.fail_after:
                raise NVMLError(NVML_ERROR_GPU_IS_LOST)
            now = time.monotonic()
            if self.reset_after is not None and self.reads > self.reset_after and self.reset_at is None:
                self.reset_at = now
            origin = self.reset_at if self.reset_at is not None else self.t0 - 1000.0
            # millijoules: W x s x 1000 (the counter starts well above 0, like a real one)
            return int(GPU_WATTS * (now - origin) * 1000)

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return int(GPU_WATTS * 1000)


@pytest.fixture
def server_uri(live_fault_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", live_fault_server.url)
    mlflow.set_tracking_uri(live_fault_server.url)
    yield live_fault_server.url
    while mlflow.active_run() is not None:
        mlflow.end_run()


def _install_nvml(monkeypatch: pytest.MonkeyPatch, nvml: FakeNvml) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def _train(uri: str, n: int = EPOCHS, **options: Any) -> mlflow_green.GreenTracker:
    """A plain loop of ``n`` short epochs on a run of its own; returns the closed tracker."""
    import mlflow

    run_id = mlflow.MlflowClient(uri).create_run("0").info.run_id
    options.setdefault("intensity", 300)
    tracker = mlflow_green.GreenTracker(total_epochs=n, run_id=run_id, silent=True, **options)
    with tracker:
        for _ in range(n):
            time.sleep(EPOCH_S)
            tracker.epoch_end()
    return tracker


def _assert_complete(tally: Tally, what: str, uri: str, run_id: str, n: int = EPOCHS) -> None:
    steps = {key: metric_steps(uri, run_id, key) for key in EPOCH_KEYS}
    lost, duplicated, problems = lost_and_duplicated(steps, range(n))
    tally.records(what, lost=lost, duplicated=duplicated)
    assert not problems, problems


def _history(uri: str, run_id: str, key: str) -> list[float]:
    import mlflow

    points = mlflow.MlflowClient(uri).get_metric_history(run_id, key)
    return [m.value for m in sorted(points, key=lambda m: m.step)]


# -- samplers --------------------------------------------------------------------------------


def test_gpu_sampler_init_failure_is_not_reported_as_ok(
    server_uri: str, monkeypatch: pytest.MonkeyPatch, tally: Tally
) -> None:
    """NVML counts a GPU but the GPU cannot be opened (fallen off the bus)."""
    monkeypatch.delenv("MLFLOW_GREEN_STRICT")
    tally.fault("GPU sampler init failure (NVML: GPU is lost)")
    _install_nvml(monkeypatch, PoweredNvml([FakeGpu("GPU-aaaa", lost=True)]))
    tracker = _train(server_uri)
    _assert_complete(tally, "GPU sampler init failure", server_uri, tracker.run_id or "")
    tags = run_tags(server_uri, tracker.run_id or "")
    assert tags[schema.TAG_METHOD_GPU] == "none"
    # A GPU is there and its energy is missing: the run must not claim a clean measurement.
    assert tags[schema.TAG_STATUS].startswith("degraded"), tags[schema.TAG_STATUS]
    assert "gpu" in tags[schema.TAG_STATUS].lower()


def test_gpu_sampler_failing_mid_run_degrades_and_keeps_the_others(
    server_uri: str, monkeypatch: pytest.MonkeyPatch, tally: Tally
) -> None:
    monkeypatch.delenv("MLFLOW_GREEN_STRICT")
    # Reads: start, then begin/end per epoch: the GPU is lost during epoch 1.
    nvml = PoweredNvml([FakeGpu("GPU-aaaa", name="NVIDIA H100 80GB HBM3")], fail_after=4)
    _install_nvml(monkeypatch, nvml)
    tally.fault("GPU sampler failing mid-run (NVML: GPU is lost)")
    tracker = _train(server_uri)
    run_id = tracker.run_id or ""
    _assert_complete(tally, "GPU sampler failing mid-run", server_uri, run_id)
    tags = run_tags(server_uri, run_id)
    assert tags[schema.TAG_METHOD_GPU] == "counter"  # the method kept, the failure recorded
    assert tags[schema.TAG_STATUS].startswith("degraded") and "gpu" in tags[schema.TAG_STATUS]
    gpu = _history(server_uri, run_id, schema.GPU_ENERGY_KWH)
    cpu = _history(server_uri, run_id, schema.CPU_ENERGY_KWH)
    assert gpu[0] > 0 and gpu[-1] == 0.0  # measured before the loss, nothing invented after
    assert all(v > 0 for v in cpu)  # the other components carry on


def test_gpu_sampler_failing_mid_run_raises_when_strict(
    server_uri: str, monkeypatch: pytest.MonkeyPatch, tally: Tally
) -> None:
    """Under MLFLOW_GREEN_STRICT=1 (the test suite) the same failure raises instead."""
    _install_nvml(monkeypatch, PoweredNvml([FakeGpu("GPU-aaaa")], fail_after=4))
    tally.fault("GPU sampler failing mid-run, strict mode")
    with pytest.raises(SamplerError, match="GPU is lost"):
        _train(server_uri)


@pytest.mark.parametrize("reset_after", [3, 4], ids=["reset-in-epoch-0", "reset-in-epoch-1"])
def test_gpu_counter_reset_never_gives_negative_energy(
    server_uri: str, monkeypatch: pytest.MonkeyPatch, tally: Tally, reset_after: int
) -> None:
    nvml = PoweredNvml([FakeGpu("GPU-aaaa")], reset_after=reset_after)
    _install_nvml(monkeypatch, nvml)
    tally.fault(f"GPU energy counter going backwards (reset after read {reset_after})")
    tracker = _train(server_uri)
    run_id = tracker.run_id or ""
    _assert_complete(tally, "GPU counter reset", server_uri, run_id)
    gpu = _history(server_uri, run_id, schema.GPU_ENERGY_KWH)
    seconds = _history(server_uri, run_id, schema.EPOCH_SECONDS)
    cum = _history(server_uri, run_id, schema.CUM_ENERGY_KWH)
    assert all(v >= 0 for v in gpu)
    assert all(b >= a for a, b in itertools.pairwise(cum))
    for kwh, s in zip(gpu, seconds, strict=True):
        # never more than the power drawn; at most the epoch of the reset loses a little
        assert kwh <= GPU_WATTS * s / 3.6e6 * 1.02
    untouched = [
        (kwh, s) for i, (kwh, s) in enumerate(zip(gpu, seconds, strict=True)) if i >= 2
    ]
    for kwh, s in untouched:
        assert math.isclose(kwh, GPU_WATTS * s / 3.6e6, rel_tol=0.02)


def _zone(path: Path, name: str, energy_uj: int, max_uj: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")


@pytest.mark.parametrize(
    ("before_uj", "after_uj", "expected_j"),
    [
        (900_000_000, 100_000_000, 200.0),  # wrapped once: 900 J -> (max 1000 J) -> 100 J
        (999_999_999, 0, 0.000001),  # wrapped exactly at the edge
        (100_000_000, 100_000_000, 0.0),  # no change
    ],
)
def test_rapl_counter_wraparound(
    tmp_path: Path, tally: Tally, before_uj: int, after_uj: int, expected_j: float
) -> None:
    root = tmp_path / "powercap"
    max_uj = 1_000_000_000
    _zone(root / "intel-rapl:0", "package-0", before_uj, max_uj)
    tally.fault(f"RAPL counter wrap {before_uj} -> {after_uj} uJ")
    meter = EnergyMeter([RaplSampler("cpu", root=root)])
    try:
        meter.begin("w")
        (root / "intel-rapl:0" / "energy_uj").write_text(f"{after_uj}\n")
        measurement = meter.end("w")
    finally:
        meter.close()
    assert measurement.cpu.energy_kwh >= 0
    assert math.isclose(measurement.cpu.energy_kwh * 3.6e6, expected_j, rel_tol=1e-6, abs_tol=1e-9)


# -- the journal's disk ------------------------------------------------------------------------


def test_unwritable_journal_directory(
    server_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tally: Tally
) -> None:
    # A directory under a regular file: unwritable even for root (chmod is not, for root).
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("MLFLOW_GREEN_JOURNAL_DIR", str(blocker / "journal"))
    monkeypatch.delenv("MLFLOW_GREEN_STRICT")
    tally.fault("unwritable journal directory")
    tracker = _train(server_uri, sampler="simulated:300")
    run_id = tracker.run_id or ""
    _assert_complete(tally, "unwritable journal directory", server_uri, run_id)
    status = run_tags(server_uri, run_id)[schema.TAG_STATUS]
    assert status.startswith("degraded") and "journal" in status, status


def test_unwritable_journal_directory_raises_when_strict(
    server_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tally: Tally
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("MLFLOW_GREEN_JOURNAL_DIR", str(blocker / "journal"))
    tally.fault("unwritable journal directory, strict mode")
    with pytest.raises(OSError):
        _train(server_uri, sampler="simulated:300")


def test_disk_full_when_the_journal_opens(
    server_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tally: Tally
) -> None:
    """The journal file is /dev/full: every write fails with ENOSPC, from the first line."""
    import mlflow

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    monkeypatch.delenv("MLFLOW_GREEN_STRICT")
    journal = tmp_path / "journal"
    journal.mkdir()
    monkeypatch.setenv("MLFLOW_GREEN_JOURNAL_DIR", str(journal))
    run_id = mlflow.MlflowClient(server_uri).create_run("0").info.run_id
    (journal / f"{run_id}.jsonl").symlink_to("/dev/full")
    tally.fault("disk full (journal on /dev/full)")
    tracker = mlflow_green.GreenTracker(
        total_epochs=EPOCHS, run_id=run_id, sampler="simulated:300", intensity=300, silent=True
    )
    with tracker:
        for _ in range(EPOCHS):
            time.sleep(EPOCH_S)
            tracker.epoch_end()
    _assert_complete(tally, "disk full at journal open", server_uri, run_id)
    status = run_tags(server_uri, run_id)[schema.TAG_STATUS]
    assert status.startswith("degraded") and "journal" in status, status


def test_disk_full_mid_run(
    server_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tally: Tally
) -> None:
    """After two epochs the journal's fsync answers ENOSPC (only for the journal's file)."""
    monkeypatch.delenv("MLFLOW_GREEN_STRICT")
    real_fsync = os.fsync
    full = threading.Event()

    def fsync(fd: int) -> None:
        if full.is_set():
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                target = ""
            if target.endswith(".jsonl"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    import mlflow

    run_id = mlflow.MlflowClient(server_uri).create_run("0").info.run_id
    tracker = mlflow_green.GreenTracker(
        total_epochs=EPOCHS, run_id=run_id, sampler="simulated:300", intensity=300, silent=True
    )
    with tracker:
        for epoch in range(EPOCHS):
            if epoch == 2:
                tally.fault("disk full mid-run (journal fsync ENOSPC)")
                full.set()
            time.sleep(EPOCH_S)
            tracker.epoch_end()
    _assert_complete(tally, "disk full mid-run", server_uri, run_id)
    status = run_tags(server_uri, run_id)[schema.TAG_STATUS]
    assert status.startswith("degraded") and "journal" in status, status
