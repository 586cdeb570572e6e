"""Real NVML around real CUDA work: run with MLFLOW_GREEN_TEST_GPU=1 on a machine with a GPU."""

from __future__ import annotations

import pytest

from mlflow_green.meter import EnergyMeter
from mlflow_green.samplers import NvmlGpuSampler, diagnose

pytestmark = pytest.mark.gpu


def _matmul_seconds(seconds: float) -> None:
    import time

    import torch

    a = torch.randn(8192, 8192, device="cuda")
    b = torch.randn(8192, 8192, device="cuda")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        (a @ b).sum().item()
    torch.cuda.synchronize()


def test_real_counter_grows_around_a_matmul() -> None:
    sampler = NvmlGpuSampler([0])
    assert sampler.method == "counter"
    with EnergyMeter([sampler]) as meter:
        meter.begin("matmul")
        _matmul_seconds(3.0)
        m = meter.end("matmul")
    assert m.gpu.energy_j > 0
    # a busy data-centre GPU draws tens to hundreds of watts
    assert 20.0 < m.gpu.mean_power_w < 1500.0
    assert m.gpu.device_names and m.gpu.device_names[0].startswith("NVIDIA")


def test_real_power_polling_agrees_with_the_counter() -> None:
    counter = EnergyMeter([NvmlGpuSampler([0])])
    polled = EnergyMeter([NvmlGpuSampler([0], use_counter=False)], poll_interval_s=0.05)
    counter.begin("w")
    polled.begin("w")
    _matmul_seconds(5.0)
    by_power = polled.end("w")
    by_counter = counter.end("w")
    counter.close()
    polled.close()
    assert by_power.gpu.method == "power" and by_counter.gpu.method == "counter"
    # power is averaged over 1 s on recent GPUs: agreement within 25 % over 5 s
    assert by_power.gpu.energy_j == pytest.approx(by_counter.gpu.energy_j, rel=0.25)


def test_doctor_sees_the_gpu() -> None:
    gpu = next(d for d in diagnose("auto") if d.component == "gpu")
    assert gpu.method == "counter" and gpu.devices
