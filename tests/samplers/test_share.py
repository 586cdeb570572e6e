"""This process tree's share of a shared host, from real /proc readings beside busy processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from mlflow_green.errors import ConfigError, SamplerError
from mlflow_green.meter import EnergyMeter
from mlflow_green.samplers import CpuEstimateSampler, RamEstimateSampler, select
from mlflow_green.samplers.share import HostShareSampler, ProcessTree, _parse_stat, share_mode

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


@pytest.fixture
def neighbour() -> Iterator[int]:
    """A busy process beside the run but outside its tree (double fork: init adopts it)."""
    out = subprocess.run(
        ["sh", "-c", f'{sys.executable} -c "{BUSY.format(s=30)}" >/dev/null 2>&1 & echo $!'],
        capture_output=True, text=True, check=True, timeout=30,
    )
    pid = int(out.stdout.strip())
    try:
        yield pid
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def _cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return _parse_stat(f.read())[0]


def test_a_busy_neighbour_is_not_charged_to_an_idle_run(neighbour: int) -> None:
    whole = CpuEstimateSampler()
    shared = HostShareSampler(CpuEstimateSampler())
    meter_whole, meter_shared = EnergyMeter([whole]), EnergyMeter([shared])
    meter_whole.begin("w")
    meter_shared.begin("w")
    n0 = _cpu_of(neighbour)
    deadline = time.monotonic() + 10
    while _cpu_of(neighbour) - n0 < 0.5 and time.monotonic() < deadline:
        time.sleep(0.1)  # the run idles while the neighbour burns CPU (a shared machine: slowly)
    burned = _cpu_of(neighbour) - n0
    mw, ms = meter_whole.end("w"), meter_shared.end("w")
    meter_whole.close()
    meter_shared.close()
    assert neighbour not in ProcessTree().read().pids
    assert burned >= 0.5, "the neighbour did not get the CPU: the test proves nothing"
    assert ms.cpu.method == "share:cpu-time"
    assert ms.cpu.share is not None and ms.cpu.share < 0.1
    assert ms.cpu.energy_kwh < 0.1 * mw.cpu.energy_kwh


def test_children_count_running_and_after_they_exited(neighbour: int) -> None:
    tree = ProcessTree()
    before = tree.read()
    child = subprocess.Popen([sys.executable, "-c", BUSY.format(s=0.4) + "time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while _cpu_of(child.pid) < 0.4 and time.monotonic() < deadline:
            time.sleep(0.05)
        running = tree.read()
        assert child.pid in running.pids  # a live child is in the tree
        assert running.cpu_s - before.cpu_s >= 0.39  # clock ticks: 0.4 may read 0.3999...
        assert running.rss_bytes > before.rss_bytes
    finally:
        child.kill()
        child.wait()  # reaped: its CPU time moves into this process's cutime
    gone = tree.read()
    assert child.pid not in gone.pids
    assert gone.cpu_s - before.cpu_s >= 0.39
    assert neighbour not in gone.pids
    tree.close()


def test_the_charged_energy_is_the_machine_energy_times_the_cpu_time_share() -> None:
    machine = iter([(100.0, 400.0), (102.0, 404.0), (110.0, 420.0)])
    times = iter([(10.0, 1e9), (10.5, 1e9), (12.5, 1e9)])

    class Tree:
        def read(self, max_age_s: float = 0.0):  # type: ignore[no-untyped-def]
            cpu, rss = next(times)
            return type("R", (), {"cpu_s": cpu, "rss_bytes": rss, "pids": (1,)})

        def close(self) -> None:
            pass

    cpu = CpuEstimateSampler(tdp_w=100.0, cpu_seconds=lambda: (0.0, 1.0))
    clock = iter([0.0, 1.0, 3.0])
    cpu._clock = lambda: next(clock)  # type: ignore[method-assign]
    shared = HostShareSampler(cpu, tree=Tree(), machine=lambda: next(machine))  # type: ignore[arg-type]
    shared.read_energy_j()
    e1 = shared.read_energy_j()[0]
    e2 = shared.read_energy_j()[0]
    p0 = 100.0 * 0.12  # the estimate at 0 % load (cpu_seconds never moves): 12 W
    assert e1 == pytest.approx(p0 * 1.0 * (0.5 / 2.0))
    assert e2 - e1 == pytest.approx(p0 * 2.0 * (2.0 / 8.0))
    assert shared.whole_energy_j()[0] == pytest.approx(p0 * 3.0)


def test_ram_share_is_the_tree_resident_memory_over_memory_in_use() -> None:
    ram = RamEstimateSampler(memory=lambda: (8e9, 16e9))
    tree = ProcessTree()
    shared = HostShareSampler(ram, tree=tree, machine=lambda: (8e9, 16e9))
    meter = EnergyMeter([shared])
    meter.begin("w")
    time.sleep(0.05)
    m = meter.end("w")
    meter.close()
    assert m.ram.method == "share:rss"
    assert m.ram.share is not None and 0 < m.ram.share < 0.5  # a test process: < 4 GB


def test_stat_with_parentheses_and_spaces_in_the_name() -> None:
    line = b"42 (my (odd) name) S 1 42 42 0 -1 4194304 100 0 0 0 150 50 20 30 20 0 1 0 1 10 7 0"
    cpu, rss = _parse_stat(line)
    tick = os.sysconf("SC_CLK_TCK")
    assert cpu == pytest.approx((150 + 50 + 20 + 30) / tick)
    assert rss == 7 * os.sysconf("SC_PAGE_SIZE")


def test_a_failing_root_read_raises_sampler_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SamplerError, match="cannot read"):
        ProcessTree(root=os.getpid(), proc_root=str(tmp_path))


@pytest.mark.parametrize(
    ("value", "mode"),
    [(None, "auto"), (True, "on"), (False, "off"), ("ON", "on"), ("0", "off"), ("auto", "auto")],
)
def test_share_mode(value: object, mode: str) -> None:
    assert share_mode(value) == mode  # type: ignore[arg-type]


def test_share_mode_rejects_nonsense_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_GREEN_SHARE", "half")
    with pytest.raises(ConfigError, match=r"MLFLOW_GREEN_SHARE='half'.*auto, on or off"):
        share_mode()
    monkeypatch.setenv("MLFLOW_GREEN_SHARE", "off")
    assert [s.method for s in select("none")] == ["none"] * 3
    methods = {s.component: s.method for s in select(components=("cpu",))}
    assert methods["cpu"] in ("rapl", "estimate")


def test_simulated_and_replayed_figures_are_never_shared() -> None:
    samplers = select("simulated:100", share=True)
    methods = {s.component: s.method for s in samplers}
    assert methods["gpu"] == "simulated"
    assert methods["cpu"] == "share:cpu-time"
    for s in samplers:
        s.close()
