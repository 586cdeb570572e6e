from __future__ import annotations

import itertools
import sys
import time

import pytest

from mlflow_green.errors import SamplerError, SamplerUnavailable
from mlflow_green.meter import EnergyMeter
from mlflow_green.samplers import NvmlGpuSampler, nvml_is_available, select
from mlflow_green.samplers._cuda import GpuRecord, cuda_order, visible_gpus
from tests.samplers.fakes import (
    NVML_ERROR_LIBRARY_NOT_FOUND,
    FakeClock,
    FakeGpu,
    FakeNvml,
)

U0 = "GPU-0a1b2c3d-0000-0000-0000-000000000000"
U1 = "GPU-0a1b9999-1111-1111-1111-111111111111"
U2 = "GPU-7f000000-2222-2222-2222-222222222222"
MIG = "MIG-5e5e5e5e-aaaa-bbbb-cccc-dddddddddddd"


def fake(n: int = 3, **kw) -> FakeNvml:
    uuids = [U0, U1, U2][:n]
    return FakeNvml([FakeGpu(uuid=u, energy_mj=1_000 * (i + 1), **kw) for i, u in enumerate(uuids)])


def test_counter_window_is_exactly_the_counter_difference() -> None:
    nv = fake(2)
    sampler = NvmlGpuSampler(nvml=nv, environ={})
    assert sampler.method == "counter" and not sampler.needs_polling
    meter = EnergyMeter([sampler])
    meter.begin("epoch")
    nv.gpus[0].energy_mj += 250_234
    nv.gpus[1].energy_mj += 1_000_001
    m = meter.end("epoch")
    meter.close()
    assert m.gpu.method == "counter"
    assert [kwh * 3.6e6 for kwh in m.gpu.per_device_kwh] == pytest.approx(
        [250.234, 1000.001], abs=1e-9
    )
    assert m.gpu.energy_j == pytest.approx(1250.235, abs=1e-9)
    assert m.gpu.device_names == ("NVIDIA A100-SXM4-40GB",) * 2
    assert not meter.polling
    assert nv.shutdowns == nv.inits == 1


def test_no_counter_integrates_power_in_the_meter_thread() -> None:
    nv = fake(1, counter=False, power_mw=200_000)
    sampler = NvmlGpuSampler(nvml=nv, environ={})
    assert sampler.method == "power" and sampler.needs_polling
    assert "no NVML energy counter" in sampler.notes[0]
    meter = EnergyMeter([sampler], poll_interval_s=0.01)
    meter.begin("w")
    assert meter.polling
    time.sleep(0.3)
    m = meter.end("w")
    meter.close()
    assert not meter.polling
    # constant power: the trapezoid integral is exact whatever the sample times
    assert m.gpu.energy_j == pytest.approx(200.0 * m.duration_s, rel=1e-9)
    assert m.gpu.mean_power_w == pytest.approx(200.0, rel=1e-9)
    assert m.gpu.method == "power"


def test_power_ramp_is_integrated_by_trapezoid_with_edge_reads() -> None:
    nv = fake(1, counter=False, power_mw=100_000)
    clock = FakeClock()
    meter = EnergyMeter([NvmlGpuSampler(nvml=nv, environ={})], poll_interval_s=3600, clock=clock)
    meter.begin("w")
    clock.advance(2.0)
    nv.gpus[0].power_mw = 300_000
    m = meter.end("w")  # the end edge reads power too: (100 + 300) / 2 * 2 s
    meter.close()
    assert m.gpu.energy_j == pytest.approx(400.0)
    assert any("power sample" in n for n in m.gpu.notes)


@pytest.mark.parametrize(
    ("readings_mj", "expected_j", "note"),
    [
        ([1_000, 5_000, 9_000], 8.0, None),
        # driver reload: the counter restarts from 0 and grows to 3 J
        ([1_000_000, 2_000_000, 1_000, 3_000], 1003.0, "reset"),
        # one bad low read, then the counter carries on
        ([1_000_000, 2_000_000, 0, 2_500_000], 1500.0, "recovered"),
        ([1_000_000, 2_000_000, 1_500_000, 2_100_000], 1100.0, "recovered"),
        # two resets in a row: 4 J, then 2 J, then 1 J + 3 J
        ([5_000, 9_000, 2_000, 1_000, 4_000], 10.0, "reset"),
    ],
)
def test_counter_going_backwards_never_gives_negative_energy(readings_mj, expected_j, note) -> None:
    nv = fake(1)
    sampler = NvmlGpuSampler(nvml=nv, environ={})
    cumulative = []
    for value in readings_mj:
        nv.gpus[0].energy_mj = value
        cumulative.append(sampler.read_energy_j()[0])
    notes = sampler.drain_notes()
    assert all(b >= a for a, b in itertools.pairwise(cumulative))
    assert cumulative[-1] - cumulative[0] == pytest.approx(expected_j)
    if note:
        assert any(note in n for n in notes)
    else:
        assert notes == ()


def test_counter_reset_inside_a_window_is_noted_on_the_measurement() -> None:
    nv = fake(1)
    nv.gpus[0].energy_mj = 9_000_000
    clock = FakeClock()
    meter = EnergyMeter([NvmlGpuSampler(nvml=nv, environ={})], clock=clock)
    meter.begin("epoch")
    clock.advance(1.0)
    nv.gpus[0].energy_mj = 500  # reset
    meter.begin("probe")
    clock.advance(1.0)
    nv.gpus[0].energy_mj = 2_500
    meter.end("probe")
    m = meter.end("epoch")
    meter.close()
    assert m.gpu.energy_j == pytest.approx(2.5)
    assert any("reset" in n for n in m.gpu.notes)


def test_init_failure_is_unavailable_with_reason() -> None:
    nv = FakeNvml([], init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    ok, why = nvml_is_available(nv)
    assert not ok and "libnvidia-ml.so" in why
    with pytest.raises(SamplerUnavailable, match="NVML library not found"):
        NvmlGpuSampler(nvml=nv, environ={})


def test_auto_falls_back_to_null_gpu_when_nvml_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        sys.modules, "pynvml", FakeNvml([], init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    )
    (gpu,) = select("auto", components=("gpu",))
    assert gpu.method == "none"
    assert "NVML library not found" in gpu.reason  # type: ignore[attr-defined]


def test_auto_picks_nvml_through_the_vendor_module(monkeypatch: pytest.MonkeyPatch) -> None:
    nv = fake(2)
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    (gpu,) = select(components=("gpu",))
    assert gpu.method == "counter"
    assert [d.uuid for d in gpu.devices] == [U1]
    gpu.close()


def test_explicit_ordinal_that_does_not_exist_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake(2))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(SamplerUnavailable, match=r"GPU ordinal 1 .* sees 1 GPU"):
        select(components=("gpu",), gpu_indices=[1])


def test_gpu_indices_pick_this_process_device_through_cuda_visible_devices() -> None:
    sampler = NvmlGpuSampler([1], nvml=fake(3), environ={"CUDA_VISIBLE_DEVICES": "2,0"})
    assert [d.uuid for d in sampler.devices] == [U0]


def test_not_supported_on_one_gpu_polls_all() -> None:
    nv = fake(2)
    nv.gpus[1].counter = False
    sampler = NvmlGpuSampler(nvml=nv, environ={})
    assert sampler.method == "power"


def test_use_counter_false_forces_power() -> None:
    assert NvmlGpuSampler(nvml=fake(1), environ={}, use_counter=False).method == "power"


def test_read_error_becomes_sampler_error() -> None:
    nv = fake(1)
    sampler = NvmlGpuSampler(nvml=nv, environ={})
    nv.gpus[0].lost = True
    with pytest.raises(SamplerError, match="GPU is lost"):
        sampler.read_energy_j()


def test_empty_cuda_visible_devices_selects_nothing() -> None:
    with pytest.raises(SamplerUnavailable, match="hides every GPU"):
        NvmlGpuSampler(nvml=fake(2), environ={"CUDA_VISIBLE_DEVICES": ""})


def test_mig_instance_reports_parent_energy_with_a_note() -> None:
    nv = fake(2)
    nv.gpus[1].migs = [MIG, "MIG-77777777-0000-0000-0000-000000000000"]
    sampler = NvmlGpuSampler(nvml=nv, environ={"CUDA_VISIBLE_DEVICES": MIG})
    assert [d.uuid for d in sampler.devices] == [MIG]
    assert any("parent GPU" in n and U1 in n for n in sampler.notes)
    meter = EnergyMeter([sampler])
    meter.begin("w")
    nv.gpus[1].energy_mj += 7_000
    m = meter.end("w")
    meter.close()
    assert m.gpu.energy_j == pytest.approx(7.0)
    assert any("MIG instance" in n for n in m.gpu.notes)


def test_two_mig_slices_of_one_gpu_are_metered_once() -> None:
    nv = fake(1)
    nv.gpus[0].migs = [MIG, "MIG-77777777-0000-0000-0000-000000000000"]
    sampler = NvmlGpuSampler(nvml=nv, environ={"CUDA_VISIBLE_DEVICES": f"{MIG},MIG-7777"})
    assert len(sampler.devices) == 1


# --- CUDA_VISIBLE_DEVICES / CUDA_DEVICE_ORDER mapping (pure) ---------------------------

RECORDS = [
    GpuRecord(0, U0, "NVIDIA A100", (8, 0)),
    GpuRecord(1, U1, "NVIDIA A100", (8, 0)),
    GpuRecord(2, U2, "NVIDIA A100", (8, 0)),
]


def _mig_parent(uuid: str) -> str | None:
    return U2 if uuid == MIG else None


@pytest.mark.parametrize(
    ("value", "expected", "stopped"),
    [
        (None, [0, 1, 2], False),
        ("", [], False),
        ("0,1,2", [0, 1, 2], False),
        ("2,0", [2, 0], False),
        (" 1 , 2 ", [1, 2], False),
        ("1,7,0", [1], True),  # out of range stops parsing
        ("0,-1,1", [0], True),  # invalid stops parsing
        ("-1", [], True),
        ("1,1", [1], True),  # repeated entry
        ("GPU-7f", [2], False),  # unique prefix
        (U1.upper().replace("GPU-", "GPU-"), [1], False),
        ("GPU-0a1b", [], True),  # ambiguous prefix: U0 and U1
        ("GPU-0a1b2", [0], False),
        ("GPU-ffff", [], True),
        (f"{MIG},0", [2, 0], False),
        ("MIG-deadbeef", [], True),
        (f"MIG-{U1}/1/0", [1], False),  # older MIG-GPU-<uuid>/<gi>/<ci> form
        ("abc,0", [], True),
    ],
)
def test_cuda_visible_devices(value: str | None, expected: list[int], stopped: bool) -> None:
    visible, notes = visible_gpus(value, RECORDS, mig_parent_uuid=_mig_parent)
    assert [v.record.nvml_index for v in visible] == expected
    assert bool(notes) == stopped


@pytest.mark.parametrize(
    ("order", "expected", "noted"),
    [
        ("PCI_BUS_ID", [0, 1, 2], False),
        (None, [2, 0, 1], True),  # FASTEST_FIRST by compute capability, PCI order within ties
        ("FASTEST_FIRST", [2, 0, 1], True),
        ("bogus", [2, 0, 1], True),
    ],
)
def test_cuda_device_order(order: str | None, expected: list[int], noted: bool) -> None:
    mixed = [
        GpuRecord(0, U0, "Tesla V100", (7, 0)),
        GpuRecord(1, U1, "Tesla V100", (7, 0)),
        GpuRecord(2, U2, "NVIDIA H100", (9, 0)),
    ]
    ordered, notes = cuda_order(mixed, order)
    assert [r.nvml_index for r in ordered] == expected
    assert bool(notes) == noted


def test_device_order_applies_before_indices_in_the_sampler() -> None:
    nv = FakeNvml(
        [
            FakeGpu(uuid=U0, name="Tesla V100", cc=(7, 0)),
            FakeGpu(uuid=U1, name="NVIDIA H100", cc=(9, 0)),
        ]
    )
    fastest = NvmlGpuSampler(nvml=nv, environ={"CUDA_VISIBLE_DEVICES": "0"})
    pci = NvmlGpuSampler(
        nvml=nv, environ={"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    )
    assert [d.uuid for d in fastest.devices] == [U1]
    assert [d.uuid for d in pci.devices] == [U0]
    assert any("PCI_BUS_ID" in n for n in fastest.notes)
