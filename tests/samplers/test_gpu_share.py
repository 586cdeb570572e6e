"""A process's share of a shared NVIDIA GPU, through a fake NVML (the only fake: the vendor edge)."""

from __future__ import annotations

import os
import time

import pytest

from mlflow_green.errors import SamplerError
from mlflow_green.meter import EnergyMeter
from mlflow_green.samplers import NvmlGpuSampler
from mlflow_green.samplers._apply_share import apply_share
from mlflow_green.samplers.gpu_share import (
    BASIS_ACCOUNTING,
    BASIS_MEMORY,
    BASIS_MIG,
    BASIS_UTILIZATION,
    GpuShareSampler,
)
from tests.samplers.fakes import FakeGpu, FakeNvml

U0 = "GPU-0a1b2c3d-0000-0000-0000-000000000000"
U1 = "GPU-0a1b9999-1111-1111-1111-111111111111"
MIG0 = "MIG-5e5e5e5e-aaaa-bbbb-cccc-000000000000"
MIG1 = "MIG-5e5e5e5e-aaaa-bbbb-cccc-111111111111"
ME = os.getpid()
OTHER = 999_999  # a pid that is not in this test's process tree


def _mine() -> set[int]:
    return {ME}


def _shared(nv: FakeNvml, **kw: object) -> GpuShareSampler:
    return GpuShareSampler(NvmlGpuSampler(nvml=nv, environ={}), pids=_mine, **kw)  # type: ignore[arg-type]


def test_utilization_basis_charges_this_process_sm_share_of_each_interval() -> None:
    gpu = FakeGpu(uuid=U0, processes={ME: 2 << 30, OTHER: 6 << 30})
    nv = FakeNvml([gpu])
    sampler = _shared(nv)
    assert sampler.method == "share:utilization"
    meter = EnergyMeter([sampler])
    meter.begin("epoch-0")
    gpu.util_samples += [(ME, 10, 60), (OTHER, 11, 20), (ME, 12, 60), (OTHER, 13, 20)]
    gpu.energy_mj += 400_000  # 400 J on the device
    m0 = meter.lap("epoch-0", "epoch-1")
    # The next interval: only the new samples count (timestamps after the last read).
    gpu.util_samples += [(ME, 20, 10), (OTHER, 21, 90)]
    gpu.energy_mj += 100_000
    m1 = meter.end("epoch-1")
    meter.close()
    assert m0.gpu.method == "share:utilization"
    assert m0.gpu.energy_j == pytest.approx(400 * 0.75)
    assert m0.gpu.share == pytest.approx(0.75)
    assert m1.gpu.energy_j == pytest.approx(100 * 0.10)
    assert m1.gpu.share == pytest.approx(0.10)
    assert any("share (utilization)" in n for n in m0.gpu.notes)


def test_an_idle_interval_falls_back_to_the_memory_share() -> None:
    gpu = FakeGpu(uuid=U0, processes={ME: 1 << 30, OTHER: 3 << 30})
    nv = FakeNvml([gpu])
    meter = EnergyMeter([_shared(nv)])
    meter.begin("w")
    gpu.energy_mj += 80_000  # no utilisation sample in the interval: idle power
    m = meter.end("w")
    meter.close()
    assert m.gpu.share == pytest.approx(0.25)
    assert m.gpu.energy_j == pytest.approx(20.0)


def test_accounting_basis_where_process_samples_are_unsupported() -> None:
    gpu = FakeGpu(
        uuid=U0,
        util_supported=False,
        accounting={ME: (50, 10_000), OTHER: (100, 10_000)},
        processes={ME: 1, OTHER: 1},
    )
    nv = FakeNvml([gpu])
    sampler = _shared(nv)
    assert sampler.basis == BASIS_ACCOUNTING
    meter = EnergyMeter([sampler])
    meter.begin("w")
    # Cumulative busy time = util% x lifetime: ME +5000*.8 - 5000 = ... computed below.
    gpu.accounting = {ME: (80, 20_000), OTHER: (55, 20_000)}
    gpu.energy_mj += 1_000_000
    m = meter.end("w")
    meter.close()
    mine = 0.80 * 20_000 - 0.50 * 10_000  # 11 000 busy ms in the window
    other = 0.55 * 20_000 - 1.00 * 10_000  # 1 000 busy ms
    assert m.gpu.share == pytest.approx(mine / (mine + other))
    assert m.gpu.method == "share:accounting"


@pytest.mark.parametrize(
    ("processes", "expected"),
    [
        ({ME: 3 << 30, OTHER: 1 << 30}, 0.75),  # bytes held
        ({ME: None, OTHER: None, OTHER + 1: None}, 1 / 3),  # memory not reported: by count
        ({}, 1.0),  # nobody holds the GPU: its idle energy stays with the job
    ],
)
def test_memory_basis(processes: dict[int, int | None], expected: float) -> None:
    gpu = FakeGpu(uuid=U0, util_supported=False, processes=dict(processes))
    nv = FakeNvml([gpu])
    sampler = _shared(nv)
    assert sampler.basis == BASIS_MEMORY
    meter = EnergyMeter([sampler])
    meter.begin("w")
    gpu.energy_mj += 360_000
    m = meter.end("w")
    meter.close()
    assert m.gpu.share == pytest.approx(expected)
    assert m.gpu.energy_j == pytest.approx(360 * expected)


def test_mig_instance_is_its_slices_of_the_parent_gpu() -> None:
    gpu = FakeGpu(uuid=U0, migs=[MIG0, MIG1], mig_slots=7, mig_slices=[3, 2])
    nv = FakeNvml([gpu])
    inner = NvmlGpuSampler(nvml=nv, environ={"CUDA_VISIBLE_DEVICES": MIG1})
    sampler = GpuShareSampler(inner, pids=_mine)
    assert sampler.basis == BASIS_MIG and sampler.method == "share:mig-slices"
    assert sampler.wrap_period_s == 0.0  # a fixed fraction: no reads between edges
    meter = EnergyMeter([sampler])
    meter.begin("w")
    gpu.energy_mj += 700_000
    m = meter.end("w")
    meter.close()
    assert m.gpu.share == pytest.approx(2 / 7)
    assert m.gpu.energy_j == pytest.approx(200.0)
    assert gpu.process_calls == 0


def test_mig_without_slice_information_is_refused() -> None:
    gpu = FakeGpu(uuid=U0, migs=[MIG0], mig_slots=0)
    inner = NvmlGpuSampler(nvml=FakeNvml([gpu]), environ={"CUDA_VISIBLE_DEVICES": MIG0})
    with pytest.raises(SamplerError, match="slices"):
        GpuShareSampler(inner, pids=_mine)


def test_a_job_nvml_never_lists_is_charged_the_whole_device_with_a_note() -> None:
    # A container's PID namespace: NVML lists host PIDs, none of them ours.
    gpu = FakeGpu(uuid=U0, util_supported=False, processes={OTHER: 1 << 30})
    meter = EnergyMeter([_shared(FakeNvml([gpu]))])
    meter.begin("w")
    gpu.energy_mj += 50_000
    m = meter.end("w")
    meter.close()
    assert m.gpu.energy_j == pytest.approx(50.0)
    assert any("PID namespace" in n for n in m.gpu.notes)


def test_once_seen_a_job_absent_from_the_gpu_is_charged_nothing() -> None:
    gpu = FakeGpu(uuid=U0, util_supported=False, processes={ME: 1, OTHER: 1})
    nv = FakeNvml([gpu])
    meter = EnergyMeter([_shared(nv)])
    meter.begin("w")
    gpu.processes = {OTHER: 1}  # our process released the GPU
    gpu.energy_mj += 40_000
    m0 = meter.lap("w", "w2")
    gpu.energy_mj += 40_000
    m1 = meter.end("w2")
    meter.close()
    assert m0.gpu.energy_j == pytest.approx(40 * 0.25)  # mean of 1/2 and 0 at the edges
    assert m1.gpu.energy_j == pytest.approx(0.0)


def test_each_device_has_its_own_share() -> None:
    g0 = FakeGpu(uuid=U0, util_supported=False, processes={ME: 1, OTHER: 1})
    g1 = FakeGpu(uuid=U1, util_supported=False, processes={ME: 1})
    meter = EnergyMeter([_shared(FakeNvml([g0, g1]))])
    meter.begin("w")
    g0.energy_mj += 100_000
    g1.energy_mj += 100_000
    m = meter.end("w")
    meter.close()
    assert [kwh * 3.6e6 for kwh in m.gpu.per_device_kwh] == pytest.approx([50.0, 100.0])
    assert m.gpu.share == pytest.approx(0.75)


def test_power_polled_gpu_is_shared_too() -> None:
    gpu = FakeGpu(uuid=U0, counter=False, power_mw=200_000, util_supported=False,
                  processes={ME: 1, OTHER: 3})
    sampler = _shared(FakeNvml([gpu]))
    assert sampler.needs_polling
    meter = EnergyMeter([sampler], poll_interval_s=0.01)
    meter.begin("w")
    time.sleep(0.15)
    m = meter.end("w")
    meter.close()
    assert m.gpu.share == pytest.approx(0.25)
    assert m.gpu.mean_power_w == pytest.approx(50.0, rel=0.05)


def test_the_meter_thread_reads_the_shares_between_edges() -> None:
    gpu = FakeGpu(uuid=U0, processes={ME: 1, OTHER: 1})
    sampler = _shared(FakeNvml([gpu]), read_interval_s=0.01)
    meter = EnergyMeter([sampler])
    meter.begin("w")
    assert meter.polling
    calls = gpu.process_calls
    time.sleep(0.2)
    meter.end("w")
    meter.close()
    assert gpu.process_calls >= calls + 5


def test_a_failing_process_query_degrades_the_run() -> None:
    gpu = FakeGpu(uuid=U0, processes={ME: 1})
    nv = FakeNvml([gpu])
    meter = EnergyMeter([_shared(nv)])
    meter.begin("w")
    gpu.lost = True
    with pytest.raises(SamplerError):  # the suite runs strict; in production: degraded
        meter.end("w")
    meter.close()


@pytest.mark.parametrize(
    ("gpu", "env", "shared"),
    [
        (FakeGpu(uuid=U0, processes={ME: 1}), {}, False),  # alone on the GPU
        (FakeGpu(uuid=U0, processes={}), {}, False),  # nobody yet
        (FakeGpu(uuid=U0, processes={ME: 1, OTHER: 1}), {}, True),  # a neighbour
        (FakeGpu(uuid=U0, migs=[MIG0], mig_slots=7, mig_slices=[1]), {"CUDA_VISIBLE_DEVICES": MIG0}, True),
    ],
)
def test_auto_shares_a_gpu_with_a_neighbour_or_a_mig_instance(
    gpu: FakeGpu, env: dict[str, str], shared: bool
) -> None:
    inner = NvmlGpuSampler(nvml=FakeNvml([gpu]), environ=env)
    sampler, why = apply_share(inner, "NVML", "auto")
    assert isinstance(sampler, GpuShareSampler) is shared, why
    assert sampler.method.startswith("share:") is shared
    sampler.close()


def test_on_shares_a_gpu_even_alone() -> None:
    inner = NvmlGpuSampler(nvml=FakeNvml([FakeGpu(uuid=U0, processes={ME: 1})]), environ={})
    sampler, _ = apply_share(inner, "NVML", "on")
    assert sampler.method == f"share:{BASIS_UTILIZATION}"
    sampler.close()
