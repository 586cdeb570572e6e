from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_green.errors import ConfigError, SamplerUnavailable
from mlflow_green.meter import EnergyMeter
from mlflow_green.samplers import diagnose, load_trace, parse_spec, select, write_trace
from mlflow_green.samplers.replay import ReplaySampler
from tests.samplers.fakes import FakeClock


@pytest.mark.parametrize(
    ("spec", "kind", "watts", "devices"),
    [
        ("auto", "auto", 0.0, 1),
        (" AUTO ", "auto", 0.0, 1),
        ("none", "none", 0.0, 1),
        ("simulated:300", "simulated", 300.0, 1),
        ("simulated:300x2", "simulated", 300.0, 2),
        ("simulated:0.5x8", "simulated", 0.5, 8),
        ("simulated:1e3", "simulated", 1000.0, 1),
    ],
)
def test_parse_spec(spec: str, kind: str, watts: float, devices: int) -> None:
    parsed = parse_spec(spec)
    assert (parsed.kind, parsed.watts, parsed.devices) == (kind, watts, devices)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "nvml",
        "simulated",
        "simulated:",
        "simulated:-5",
        "simulated:300x0",
        "simulated:300x",
        "simulated:abc",
        "replay:",
        "replay:  ",
    ],
)
def test_malformed_spec_names_the_accepted_forms(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"simulated:<watts>\[x<devices>\]"):
        parse_spec(spec)


def test_env_spec_is_read_and_named_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_GREEN_SAMPLER", "simulated:42x3")
    assert parse_spec().devices == 3
    monkeypatch.setenv("MLFLOW_GREEN_SAMPLER", "gpu please")
    with pytest.raises(ConfigError, match="MLFLOW_GREEN_SAMPLER="):
        select()


def test_none_gives_null_samplers() -> None:
    samplers = select("none", components=("gpu", "ram"))
    assert [(s.component, s.method) for s in samplers] == [("gpu", "none"), ("ram", "none")]


def test_unknown_component_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'disk'"):
        select("none", components=("gpu", "disk"))


def test_simulated_replaces_gpus_only() -> None:
    samplers = select("simulated:300x2")
    methods = {s.component: s.method for s in samplers}
    assert methods["gpu"] == "simulated"
    assert methods["cpu"] == "share:cpu-time" and methods["ram"] == "share:rss"
    assert len(samplers[0].devices) == 2


def test_simulated_with_gpu_indices() -> None:
    (gpu,) = select("simulated:300x4", components=("gpu",), gpu_indices=[3])
    assert len(gpu.devices) == 1
    with pytest.raises(SamplerUnavailable, match="simulates 4 GPU"):
        select("simulated:300x4", components=("gpu",), gpu_indices=[4])


def _trace(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "trace.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_replay_energy_and_power_traces(tmp_path: Path) -> None:
    path = _trace(
        tmp_path,
        [
            '{"mlflow_green_trace": 1, "devices": {"gpu": ["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"]}}',
            "# recorded on a test rig",
            '{"t_s": 0, "gpu_j": [0, 0], "cpu_w": [50]}',
            '{"t_s": 2, "gpu_j": [600, 400], "cpu_w": [70]}',
            '{"t_s": 4, "gpu_j": [1000, 800], "cpu_w": [70]}',
        ],
    )
    trace = load_trace(path)
    assert trace.components == ("gpu", "cpu")
    clock = FakeClock()
    gpu = ReplaySampler(trace, "gpu", clock=clock)
    cpu = ReplaySampler(trace, "cpu", clock=clock, origin_s=clock())
    meter = EnergyMeter([gpu, cpu], clock=clock)
    meter.begin("w")
    clock.advance(1.0)
    first = meter.end("w")
    meter.begin("w")
    clock.advance(4.0)  # runs past the end of the trace
    second = meter.end("w")
    meter.close()
    assert first.gpu.per_device_kwh == pytest.approx((300 / 3.6e6, 200 / 3.6e6))
    assert first.cpu.energy_j == pytest.approx(55.0)  # (50 + 60) / 2 over the first second
    assert second.gpu.energy_j == pytest.approx(1800 - 500)
    assert any("trace ended" in n for n in second.gpu.notes)
    assert first.gpu.method == "simulated"
    assert first.gpu.device_names == ("replayed NVIDIA H100 80GB HBM3",) * 2


def test_replay_spec_takes_the_trace_components_and_auto_for_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write_trace(path, [0.0, 1.0], {"gpu": [[0.0], [250.0]]}, {"gpu": ["A100"]})
    samplers = select(f"replay:{path}")
    methods = {s.component: s.method for s in samplers}
    assert methods["gpu"] == "simulated" and methods["cpu"] == "share:cpu-time"
    with pytest.raises(ConfigError, match="has none of the components"):
        select(f"replay:{path}", components=("cpu",))


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["{not json"], "line 1: not JSON"),
        (['{"t_s": 0, "gpu_j": [0]}'], "at least two records"),
        (
            ['{"t_s": 1, "gpu_j": [0]}', '{"t_s": 1, "gpu_j": [1]}'],
            "line 2: t_s=1 does not increase",
        ),
        (['{"t_s": 0, "gpu_j": [5]}', '{"t_s": 1, "gpu_j": [4]}'], "decreases"),
        (['{"t_s": 0, "gpu_j": [0, 0]}', '{"t_s": 1, "gpu_j": [1]}'], "has 1 devices"),
        (['{"t_s": 0, "gpu_j": [0]}', '{"t_s": 1, "gpu_w": [1]}'], "changes its unit"),
        (['{"t_s": 0, "disk_j": [0]}'], "unknown key 'disk_j'"),
        (['{"t_s": 0, "gpu_j": [-1]}'], "finite numbers >= 0"),
        (['{"t_s": 0}'], "no <component>_j"),
        (['{"t_s": 0, "gpu_j": [0], "cpu_j": [0]}', '{"t_s": 1, "gpu_j": [1]}'], "record has"),
    ],
)
def test_bad_traces_name_the_line(tmp_path: Path, lines: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_trace(_trace(tmp_path, lines))


def test_missing_trace_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        select(f"replay:{tmp_path / 'nope.jsonl'}")


def test_diagnose_explains_every_component() -> None:
    found = {d.component: d for d in diagnose("simulated:100x2")}
    assert set(found) == {"gpu", "cpu", "ram"}
    assert found["gpu"].method == "simulated" and len(found["gpu"].devices) == 2
    for comp in ("cpu", "ram"):
        if found[comp].method == "estimate":
            assert "RAPL unavailable" in found[comp].reason
