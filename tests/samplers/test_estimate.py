from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_green.errors import SamplerError
from mlflow_green.meter import EnergyMeter
from mlflow_green.samplers.estimate import (
    RAM_W_PER_GB,
    W_PER_LOGICAL_CPU,
    CpuEstimateSampler,
    CpuInfo,
    RamEstimateSampler,
    cpu_power_fraction,
    host_cpu_info,
    lookup_tdp_w,
)
from tests.samplers.fakes import FakeClock


@pytest.mark.parametrize(
    ("utilization", "fraction"),
    [
        (-0.5, 0.12),
        (0.0, 0.12),
        (0.05, 0.22),
        (0.1, 0.32),
        (0.3, 0.535),
        (0.5, 0.75),
        (0.75, 0.885),
        (1.0, 1.02),
        (2.0, 1.02),
    ],
)
def test_load_curve(utilization: float, fraction: float) -> None:
    assert cpu_power_fraction(utilization) == pytest.approx(fraction)


@pytest.mark.parametrize(
    ("model", "tdp_w"),
    [
        ("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", 150.0),
        ("Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz", 205.0),
        ("AMD EPYC 7763 64-Core Processor", 280.0),
        ("11th Gen Intel(R) Core(TM) i7-1185G7 @ 3.00GHz", 28.0),
        ("AMD EPYC", None),
        ("", None),
        ("Some Future CPU 9999", None),
    ],
)
def test_codecarbon_tdp_lookup(model: str, tdp_w: float | None) -> None:
    found = lookup_tdp_w(model)
    assert (found[0] if found else None) == tdp_w


def test_the_narrowed_lookup_answers_as_a_scan_of_the_whole_table() -> None:
    """Only rows sharing a digit-bearing word (or, for a name without digits, every word) with
    the model are normalised: the answer must be the one a scan of every row gives, for every
    name in CodeCarbon's table and for variants a machine reports."""
    from mlflow_green.samplers import estimate

    rows = estimate._codecarbon_rows()
    if not rows:
        pytest.skip("CodeCarbon's CPU table is not installed")
    full = tuple((estimate._normalize(name), tdp) for name, tdp in rows)
    names = [name for name, _ in rows[::7]]
    names += [f"{n} CPU @ 2.10GHz" for n in names[::5]] + [f"Intel(R) {n}(R)" for n in names[::11]]
    names += ["AMD EPYC", "Intel Xeon", "Apple M1", "Intel(R) Xeon(R) Platinum 8370C CPU @ 2.80GHz"]
    wrong = [n for n in names if lookup_tdp_w(n) != estimate._match(estimate._normalize(n), full)]
    assert wrong == []


def _cpu_counter(samples: list[tuple[float, float]]):
    it = iter(samples)
    return lambda: next(it)


def test_cpu_energy_from_utilisation_over_the_window() -> None:
    clock = FakeClock()
    # 4 CPUs, 10 s: busy 20 of 40 CPU-seconds -> 50 % -> 0.75 x TDP
    sampler = CpuEstimateSampler(
        tdp_w=100.0,
        cpu_info=CpuInfo("test CPU", 4),
        cpu_seconds=_cpu_counter([(100.0, 400.0), (100.0, 400.0), (120.0, 440.0)]),
        clock=clock,
    )
    meter = EnergyMeter([sampler], clock=clock)
    meter.begin("w")
    clock.advance(10.0)
    m = meter.end("w")
    meter.close()
    assert m.cpu.energy_j == pytest.approx(750.0)
    assert m.cpu.method == "estimate"


def test_cpu_tdp_from_table_times_sockets_and_vm_cap() -> None:
    table = (("intel xeon gold 6248", 150.0),)
    bare = CpuEstimateSampler(
        cpu_info=CpuInfo("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", 80, sockets=2), table=table
    )
    assert bare.tdp_w == 300.0
    vm = CpuEstimateSampler(
        cpu_info=CpuInfo(
            "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", 4, sockets=1, virtualized=True
        ),
        table=table,
    )
    assert vm.tdp_w == pytest.approx(4 * W_PER_LOGICAL_CPU)
    assert "virtual machine" in vm.description
    unknown = CpuEstimateSampler(cpu_info=CpuInfo("Mystery CPU", 6), table=table)
    assert unknown.tdp_w == pytest.approx(6 * W_PER_LOGICAL_CPU)
    assert "not in CodeCarbon's TDP table" in unknown.description


def test_ram_energy_from_memory_in_use() -> None:
    clock = FakeClock()
    readings = iter([(8e9, 64e9)] * 3 + [(16e9, 64e9)])  # init, start, begin, end
    sampler = RamEstimateSampler(memory=lambda: next(readings), clock=clock)
    assert sampler.devices[0].name == "64.0 GB RAM"
    meter = EnergyMeter([sampler], clock=clock)
    meter.begin("w")
    clock.advance(10.0)
    m = meter.end("w")
    meter.close()
    # mean of 8 and 16 GB in use for 10 s
    assert m.ram.energy_j == pytest.approx(RAM_W_PER_GB * 12 * 10)


def test_read_failure_becomes_sampler_error() -> None:
    def broken() -> tuple[float, float]:
        raise OSError("no /proc")

    sampler = CpuEstimateSampler(tdp_w=10, cpu_info=CpuInfo("x", 1), cpu_seconds=broken)
    with pytest.raises(SamplerError, match="no /proc"):
        sampler.read_energy_j()


def test_host_cpu_info_parses_cpuinfo(tmp_path: Path) -> None:
    text = "".join(
        f"processor\t: {i}\nmodel name\t: AMD EPYC 7763 64-Core Processor\nphysical id\t: {i % 2}\n"
        "flags\t\t: fpu vme hypervisor\n\n"
        for i in range(4)
    )
    (tmp_path / "cpuinfo").write_text(text)
    info = host_cpu_info(tmp_path / "cpuinfo")
    assert info.model == "AMD EPYC 7763 64-Core Processor"
    assert info.sockets == 2 and info.virtualized and info.logical_cpus >= 1


def test_real_machine_estimate_is_positive() -> None:
    cpu, ram = CpuEstimateSampler(), RamEstimateSampler()
    meter = EnergyMeter([cpu, ram])
    meter.begin("w")
    sum(i for i in range(300_000))
    m = meter.end("w")
    meter.close()
    assert m.cpu.energy_j > 0 and m.ram.energy_j > 0
