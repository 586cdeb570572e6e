"""The tracker's scale-out wiring: shared devices reach the run as methods and share metrics."""

from __future__ import annotations

import os

import pytest

import mlflow_green
from mlflow_green.errors import ConfigError
from mlflow_green.meter import EnergyMeter
from mlflow_green.samplers import GpuShareSampler, NvmlGpuSampler, select
from mlflow_green.tracking import schema
from mlflow_green.tracking.distributed import DistInfo
from mlflow_green.tracking.scaleout import ScaleOut
from tests.samplers.fakes import FakeGpu, FakeNvml
from tests.tracking._checks import history

ME, OTHER = os.getpid(), 999_999


def test_a_shared_gpu_and_host_reach_the_run_as_methods_and_shares(mlflow_local: str) -> None:
    import mlflow

    gpu = FakeGpu(uuid="GPU-1234", util_supported=False, processes={ME: 1 << 30, OTHER: 3 << 30})
    shared_gpu = GpuShareSampler(NvmlGpuSampler(nvml=FakeNvml([gpu]), environ={}), pids=lambda: {ME})
    meter = EnergyMeter([shared_gpu, *select(components=("cpu", "ram"))])
    with mlflow_green.GreenTracker(meter=meter, silent=True, intensity=100, report=False) as tracker:
        for _ in range(2):
            gpu.energy_mj += 360_000  # 360 J on the device per epoch, a quarter of it ours
            tracker.epoch_end()
    client = mlflow.MlflowClient()
    run = client.get_run(tracker.run_id or "")
    assert run.data.tags[schema.TAG_METHOD_GPU] == "share:memory"
    assert run.data.tags[schema.TAG_METHOD_CPU] == "share:cpu-time"
    assert run.data.tags[schema.TAG_METHOD_RAM] == "share:rss"
    assert [v for _, v in history(client, tracker.run_id or "", schema.GPU_SHARE)] == pytest.approx([0.25, 0.25])
    for _, kwh in history(client, tracker.run_id or "", schema.GPU_ENERGY_KWH):
        assert kwh * 3.6e6 == pytest.approx(90.0)
    cpu_shares = [v for _, v in history(client, tracker.run_id or "", schema.CPU_SHARE)]
    assert len(cpu_shares) == 2 and all(0 <= v <= 1 for v in cpu_shares)


def test_share_off_charges_whole_devices_and_logs_no_share(mlflow_local: str) -> None:
    import mlflow

    with mlflow_green.GreenTracker(share=False, sampler="simulated:100", intensity=100, silent=True, report=False) as tracker:
        tracker.epoch_end()
    client = mlflow.MlflowClient()
    run = client.get_run(tracker.run_id or "")
    assert run.data.tags[schema.TAG_METHOD_CPU] in ("rapl", "estimate")
    assert schema.CPU_SHARE not in run.data.metrics and schema.GPU_SHARE not in run.data.metrics


@pytest.mark.parametrize(
    ("info", "share", "components"),
    [
        (DistInfo(1, 0, 0, False), None, ("gpu", "cpu", "ram")),
        (DistInfo(4, 3, 1, True), None, ("gpu", "cpu", "ram")),  # its own tree's share
        (DistInfo(4, 3, 1, True), "on", ("gpu", "cpu", "ram")),
        (DistInfo(4, 3, 1, True), False, ("gpu",)),  # the whole node: local rank 0's
        (DistInfo(4, 2, 0, True), False, ("gpu", "cpu", "ram")),
    ],
)
def test_which_rank_measures_the_host(info: DistInfo, share: object, components: tuple[str, ...]) -> None:
    assert ScaleOut(info, share).components() == components  # type: ignore[arg-type]


def test_a_bad_share_setting_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"share='sometimes'.*auto, on or off"):
        mlflow_green.autolog(share="sometimes")
    monkeypatch.setenv("MLFLOW_GREEN_SHARE", "maybe")
    with pytest.raises(ConfigError, match="MLFLOW_GREEN_SHARE='maybe'"):
        ScaleOut(DistInfo())
