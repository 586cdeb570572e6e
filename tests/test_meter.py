from __future__ import annotations

import logging
import threading
import time

import pytest

from mlflow_green.errors import ConfigError, SamplerError
from mlflow_green.meter import EnergyMeter
from mlflow_green.samplers import NullSampler, SimulatedGpuSampler, select
from mlflow_green.samplers._base import DeviceInfo, SamplerBase
from tests.samplers.fakes import FakeClock


class _FlakyCounter(SamplerBase):
    """A counter sampler whose reads start failing on demand (a vendor edge fake)."""

    update_period_s = 0.0  # settable by a test

    def __init__(
        self, component: str = "cpu", *, polled: bool = False, watts: float = 50.0
    ) -> None:
        self.component = component
        self.method = "rapl"
        self.devices = (DeviceInfo(0, "fake package"),)
        self.needs_polling = polled
        self.energy_j = 0.0
        self.watts = watts
        self.broken = False
        self.closed = False

    def read_energy_j(self) -> tuple[float, ...]:
        if self.broken:
            raise OSError("device vanished")
        return (self.energy_j,)

    def read_power_w(self) -> tuple[float, ...]:
        if self.broken:
            raise OSError("device vanished")
        return (self.watts,)

    def close(self) -> None:
        self.closed = True


def _meter_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mlflow-green-meter"]


def test_simulated_300w_two_second_window_reports_600_joules() -> None:
    meter = EnergyMeter.from_spec("simulated:300", components=("gpu",))
    with meter:
        meter.begin("window")
        time.sleep(2.0)
        m = meter.end("window")
    assert m.gpu.energy_j == pytest.approx(600.0, rel=0.01)
    assert m.duration_s == pytest.approx(2.0, rel=0.01)
    assert m.gpu.method == "simulated"
    assert meter.hardware.simulated


def test_simulated_with_injected_clock_is_exact_per_device() -> None:
    clock = FakeClock()
    meter = EnergyMeter([SimulatedGpuSampler(300, 2, clock=clock)], clock=clock)
    meter.begin("w")
    clock.advance(2.0)
    m = meter.end("w")
    assert m.gpu.per_device_kwh == (600 / 3.6e6, 600 / 3.6e6)
    assert m.gpu.energy_j == pytest.approx(1200.0)
    assert m.gpu.mean_power_w == pytest.approx(600.0)
    assert m.energy_kwh == pytest.approx(1200 / 3.6e6)
    assert m.cpu.method == "none" and m.cpu.energy_kwh == 0.0
    meter.close()


def test_overlapping_windows_share_snapshots() -> None:
    clock = FakeClock()
    meter = EnergyMeter([SimulatedGpuSampler(100, clock=clock)], clock=clock)
    meter.begin("run")
    epochs = []
    for i in range(3):
        with meter.window(f"epoch-{i}") as w:
            clock.advance(1.0 + i)
        assert w.measurement is not None
        epochs.append(w.measurement.gpu.energy_j)
    clock.advance(0.5)  # between epochs: in the run, in no epoch
    run = meter.end("run")
    meter.close()
    assert epochs == pytest.approx([100.0, 200.0, 300.0])
    assert run.gpu.energy_j == pytest.approx(650.0)
    assert run.duration_s == pytest.approx(6.5)


def test_counter_only_samplers_start_no_thread_and_close_is_idempotent() -> None:
    meter = EnergyMeter.from_spec("simulated:100x2")
    meter.start()
    meter.start()
    meter.begin("w")
    assert not meter.polling
    assert _meter_threads() == []
    meter.end("w")
    meter.close()
    meter.close()
    with pytest.raises(ConfigError, match="closed"):
        meter.begin("again")


def test_polled_sampler_runs_one_thread_joined_by_close() -> None:
    before = len(_meter_threads())
    sampler = _FlakyCounter("gpu", polled=True, watts=80.0)
    meter = EnergyMeter([sampler], poll_interval_s=0.01)
    meter.start()
    meter.start()
    assert meter.polling
    assert len(_meter_threads()) == before + 1
    meter.begin("w")
    time.sleep(0.15)
    m = meter.end("w")
    assert m.gpu.energy_j == pytest.approx(80.0 * m.duration_s, rel=1e-9)
    assert not any("power sample" in n for n in m.gpu.notes)
    meter.close()
    assert not meter.polling
    assert len(_meter_threads()) == before
    assert sampler.closed


def test_window_misuse_is_a_config_error() -> None:
    meter = EnergyMeter([SimulatedGpuSampler(1)])
    meter.begin("a")
    with pytest.raises(ConfigError, match="already open"):
        meter.begin("a")
    with pytest.raises(ConfigError, match="not open"):
        meter.end("b")
    meter.close()


def test_two_samplers_for_one_component_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="two samplers"):
        EnergyMeter([SimulatedGpuSampler(1), SimulatedGpuSampler(2)])


def test_short_window_is_flagged_never_silently_zero() -> None:
    clock = FakeClock()
    sampler = _FlakyCounter("gpu")
    sampler.update_period_s = 0.1
    meter = EnergyMeter([sampler], clock=clock)
    meter.begin("w")
    clock.advance(0.05)
    m = meter.end("w")
    meter.close()
    assert any("shorter than the gpu" in n and "0.1 s" in n for n in m.gpu.notes)


def test_failing_sampler_degrades_once_and_others_continue(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLFLOW_GREEN_STRICT", "0")
    clock = FakeClock()
    cpu = _FlakyCounter("cpu")
    meter = EnergyMeter([SimulatedGpuSampler(100, clock=clock), cpu], clock=clock)
    meter.begin("epoch-0")
    clock.advance(1.0)
    cpu.energy_j = 30.0
    first = meter.end("epoch-0")
    assert meter.status == "ok"
    meter.begin("epoch-1")
    clock.advance(1.0)
    cpu.energy_j = 60.0
    cpu.broken = True
    with caplog.at_level(logging.WARNING, logger="mlflow_green"):
        second = meter.end("epoch-1")
        meter.begin("epoch-2")
        clock.advance(1.0)
        third = meter.end("epoch-2")
    meter.close()
    assert first.cpu.energy_j == pytest.approx(30.0)
    assert second.gpu.energy_j == pytest.approx(100.0)
    assert third.gpu.energy_j == pytest.approx(100.0)
    assert second.cpu.method == third.cpu.method == "rapl"  # method kept
    assert second.cpu.energy_j == 0.0 and any(
        "failed during this window" in n for n in second.cpu.notes
    )
    assert any("dropped earlier" in n for n in third.cpu.notes)
    assert meter.status == "degraded: cpu sampler failed: device vanished"
    assert third.problems == ("cpu sampler failed: device vanished",)
    assert len([r for r in caplog.records if "device vanished" in r.getMessage()]) == 1
    assert cpu.closed


def test_strict_mode_raises_the_sampler_failure() -> None:
    cpu = _FlakyCounter("cpu")
    meter = EnergyMeter([cpu])
    meter.begin("w")
    cpu.broken = True
    with pytest.raises(SamplerError, match="device vanished"):
        meter.end("w")
    meter.close()


def test_strict_mode_raises_a_polling_thread_failure_in_the_caller() -> None:
    gpu = _FlakyCounter("gpu", polled=True)
    meter = EnergyMeter([gpu], poll_interval_s=0.01)
    meter.begin("w")
    gpu.broken = True
    time.sleep(0.1)
    with pytest.raises(SamplerError, match="device vanished"):
        meter.end("w")
    meter.close()
    assert not meter.polling


def test_hardware_info() -> None:
    meter = EnergyMeter([SimulatedGpuSampler(250, 2), NullSampler("cpu", "test")])
    hw = meter.hardware
    assert hw.gpu_count == 2
    assert hw.gpu_model == "simulated 250 W GPU"
    assert hw.methods == {"gpu": "simulated", "cpu": "none", "ram": "none"}
    assert hw.simulated
    meter.close()
    assert EnergyMeter([]).hardware.gpu_model == "none"


def test_from_spec_with_default_auto_on_this_machine() -> None:
    with EnergyMeter.from_spec(components=("cpu", "ram")) as meter:
        meter.begin("w")
        sum(i * i for i in range(200_000))
        m = meter.end("w")
    assert m.cpu.method in ("rapl", "estimate")
    assert m.cpu.energy_kwh > 0
    assert m.ram.energy_kwh >= 0


def test_select_then_meter_is_thread_free_for_counters() -> None:
    samplers = select("none")
    assert [s.method for s in samplers] == ["none", "none", "none"]
    meter = EnergyMeter(samplers)
    with meter.window("w") as w:
        pass
    meter.close()
    assert w.measurement is not None and w.measurement.energy_kwh == 0.0


def test_a_sampler_missing_members_is_one_clear_error() -> None:
    class Bare:
        component = "gpu"

    with pytest.raises(ConfigError, match=r"Bare lacks .*drain_notes.*SamplerBase"):
        EnergyMeter([Bare()])  # type: ignore[list-item]
