from __future__ import annotations

import time

import pytest

from mlflow_green.errors import SamplerError, SamplerUnavailable
from mlflow_green.meter import EnergyMeter
from mlflow_green.samplers import AmdGpuSampler, amd_is_available
from tests.samplers.fakes import FakeAmdGpu, FakeAmdSmi


@pytest.mark.parametrize("key", ["energy_accumulator", "power"])
def test_energy_is_accumulator_times_resolution(key: str) -> None:
    smi = FakeAmdSmi([FakeAmdGpu(accumulator=1_000, key=key), FakeAmdGpu(accumulator=0, key=key)])
    sampler = AmdGpuSampler(amdsmi=smi, environ={})
    assert sampler.method == "counter"
    meter = EnergyMeter([sampler])
    meter.begin("w")
    smi.gpus[0].accumulator += 1_000_000  # x 15.3 uJ = 15.3 J
    smi.gpus[1].accumulator += 2_000_000
    m = meter.end("w")
    meter.close()
    assert [kwh * 3.6e6 for kwh in m.gpu.per_device_kwh] == pytest.approx([15.3, 30.6])
    assert m.gpu.device_names == ("AMD Instinct MI250X",) * 2
    assert smi.shutdowns == 1


def test_visible_devices_and_ordinals() -> None:
    smi = FakeAmdSmi([FakeAmdGpu(name=f"gpu{i}") for i in range(3)])
    sampler = AmdGpuSampler([1], amdsmi=smi, environ={"HIP_VISIBLE_DEVICES": "2,0"})
    assert [d.name for d in sampler.devices] == ["gpu0"]
    with pytest.raises(SamplerUnavailable, match="ordinal 5"):
        AmdGpuSampler([5], amdsmi=smi, environ={})
    with pytest.raises(SamplerUnavailable, match="no AMD GPU selected"):
        AmdGpuSampler(amdsmi=smi, environ={"ROCR_VISIBLE_DEVICES": ""})


def test_no_counter_polls_socket_power() -> None:
    smi = FakeAmdSmi([FakeAmdGpu(counter=False, socket_power_w=150.0)])
    sampler = AmdGpuSampler(amdsmi=smi, environ={})
    assert sampler.method == "power" and sampler.needs_polling
    meter = EnergyMeter([sampler], poll_interval_s=0.01)
    meter.begin("w")
    time.sleep(0.1)
    m = meter.end("w")
    meter.close()
    assert m.gpu.energy_j == pytest.approx(150.0 * m.duration_s, rel=1e-9)


def test_init_failure() -> None:
    smi = FakeAmdSmi([], init_error=True)
    ok, why = amd_is_available(smi)
    assert not ok and "DRIVER_NOT_LOADED" in why
    with pytest.raises(SamplerUnavailable, match="failed to initialise"):
        AmdGpuSampler(amdsmi=smi, environ={})


def test_read_error_is_translated() -> None:
    smi = FakeAmdSmi([FakeAmdGpu()])
    sampler = AmdGpuSampler(amdsmi=smi, environ={})
    smi.gpus[0].counter = False
    with pytest.raises(SamplerError, match="NOT_SUPPORTED"):
        sampler.read_energy_j()


def test_missing_amdsmi_is_explained() -> None:
    ok, why = amd_is_available()
    try:
        import amdsmi  # noqa: F401
    except ImportError:
        assert not ok and "pip install 'mlflow-green[amd]'" in why
