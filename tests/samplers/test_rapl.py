from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_green.errors import SamplerError, SamplerUnavailable
from mlflow_green.meter import EnergyMeter
from mlflow_green.samplers import RaplSampler, rapl_is_available
from mlflow_green.samplers import rapl as rapl_mod
from mlflow_green.samplers.rapl import find_rapl_zones
from tests.samplers.fakes import FakeClock

MAX_UJ = 262_143_328_850


def _zone(path: Path, name: str, energy_uj: int, *, max_power_uw: int | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{MAX_UJ}\n")
    if max_power_uw is not None:
        (path / "constraint_0_max_power_uw").write_text(f"{max_power_uw}\n")
    return path


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    """Two packages with core and dram subzones, a psys zone, and an MMIO duplicate."""
    root = tmp_path / "powercap"
    _zone(root / "intel-rapl:0", "package-0", 1_000_000, max_power_uw=250_000_000)
    _zone(root / "intel-rapl:0" / "intel-rapl:0:0", "core", 500_000)
    _zone(root / "intel-rapl:0" / "intel-rapl:0:1", "dram", 2_000_000)
    _zone(root / "intel-rapl:1", "package-1", 3_000_000)
    _zone(root / "intel-rapl:1" / "intel-rapl:1:0", "dram", 4_000_000)
    _zone(root / "intel-rapl:2", "psys", 9_000_000)
    _zone(root / "intel-rapl-mmio:0", "package-0", 7_000_000)
    return root


def _set(root: Path, zone: str, energy_uj: int) -> None:
    (root / zone / "energy_uj").write_text(f"{energy_uj}\n")


def test_zones_found_packages_are_cpu_dram_is_ram(powercap: Path) -> None:
    packages, dram, _note = find_rapl_zones(powercap)
    assert [z.path.name for z in packages] == ["intel-rapl:0", "intel-rapl:1"]
    assert [z.path.name for z in dram] == ["intel-rapl:0:1", "intel-rapl:1:0"]
    assert rapl_is_available("cpu", powercap)[0] and rapl_is_available("ram", powercap)[0]


def test_package_and_dram_energy_over_a_window(powercap: Path) -> None:
    clock = FakeClock()
    cpu, ram = RaplSampler("cpu", root=powercap), RaplSampler("ram", root=powercap)
    meter = EnergyMeter([cpu, ram], clock=clock)
    meter.begin("w")
    clock.advance(10.0)
    _set(powercap, "intel-rapl:0", 1_000_000 + 650_000_000)
    _set(powercap, "intel-rapl:1", 3_000_000 + 350_000_000)
    _set(powercap, "intel-rapl:0/intel-rapl:0:1", 2_000_000 + 40_000_000)
    _set(powercap, "intel-rapl:1/intel-rapl:1:0", 4_000_000 + 60_000_000)
    m = meter.end("w")
    meter.close()
    assert [kwh * 3.6e6 for kwh in m.cpu.per_device_kwh] == pytest.approx([650.0, 350.0])
    assert m.cpu.energy_j == pytest.approx(1000.0)
    assert m.cpu.mean_power_w == pytest.approx(100.0)
    assert m.ram.energy_j == pytest.approx(100.0)
    assert m.cpu.method == m.ram.method == "rapl"


def test_wrap_around_uses_max_energy_range(powercap: Path) -> None:
    _set(powercap, "intel-rapl:0", MAX_UJ - 1_000_000)
    sampler = RaplSampler("cpu", root=powercap)
    first = sampler.read_energy_j()
    _set(powercap, "intel-rapl:0", 4_000_000)  # wrapped: 1 J before the top, 4 J after
    second = sampler.read_energy_j()
    assert second[0] - first[0] == pytest.approx(5.0)
    assert second[1] == first[1]


def test_wrap_period_makes_the_meter_read_in_time(powercap: Path) -> None:
    sampler = RaplSampler("cpu", root=powercap)
    # package 0 states 250 W, package 1 nothing (500 W assumed): the shorter period counts
    assert sampler.wrap_period_s == pytest.approx(MAX_UJ / 1e6 / 500.0)
    meter = EnergyMeter([sampler])
    meter.start()
    assert meter.polling  # a slow keeper thread, a quarter of the wrap period
    meter.close()
    assert not meter.polling


def test_psys_only_and_mmio_fallback(tmp_path: Path) -> None:
    root = tmp_path / "pc"
    _zone(root / "intel-rapl:0", "psys", 1)
    ok, why = rapl_is_available("cpu", root)
    assert not ok and "no package domain" in why
    root2 = tmp_path / "pc2"
    _zone(root2 / "intel-rapl-mmio:0", "package-0", 1)
    assert [z.path.name for z in find_rapl_zones(root2)[0]] == ["intel-rapl-mmio:0"]


def test_no_tree_gives_reason(tmp_path: Path) -> None:
    ok, why = rapl_is_available("cpu", tmp_path / "absent")
    assert not ok and why == f"no RAPL files under {tmp_path / 'absent'}"
    with pytest.raises(SamplerUnavailable, match="no RAPL files"):
        RaplSampler("cpu", root=tmp_path / "absent")


def _deny(path_part: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = rapl_mod._read

    def read(path: Path) -> str:
        if path.name == "energy_uj" and path_part in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rapl_mod, "_read", read)


def test_unreadable_energy_file_says_how_to_fix(
    powercap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests may run as root, where chmod does not deny: fake the OS answer instead.
    _deny("intel-rapl:1", monkeypatch)
    ok, why = rapl_is_available("cpu", powercap)
    assert not ok
    assert "sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj" in why
    with pytest.raises(SamplerUnavailable, match="run as root"):
        RaplSampler("cpu", root=powercap)


def test_permission_lost_mid_run_is_a_sampler_error(
    powercap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sampler = RaplSampler("cpu", root=powercap)
    _deny("intel-rapl:0", monkeypatch)
    with pytest.raises(SamplerError, match="chmod"):
        sampler.read_energy_j()


def test_real_file_permissions_when_not_root(powercap: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    (powercap / "intel-rapl:0" / "energy_uj").chmod(0)
    assert "chmod" in rapl_is_available("cpu", powercap)[1]
