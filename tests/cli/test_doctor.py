from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlflow_green.cli import main as cli_main
from mlflow_green.samplers import nvml_is_available, rapl_is_available


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    # Only the doctor subcommand: the others belong to other layers and are tested there.
    monkeypatch.setattr(cli_main, "SUBCOMMANDS", {"doctor": cli_main.SUBCOMMANDS["doctor"]})

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli_main.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _expected_methods() -> dict[str, set[str]]:
    gpu_ok = nvml_is_available()[0]
    return {
        "gpu": {"counter", "power"} if gpu_ok else {"none"},
        # auto shares the host (this process tree's part): share:<basis> over rapl/estimate
        "cpu": {"share:cpu-time"},
        "ram": {"share:rss"},
    }


def test_doctor_json_reports_this_machine_honestly(run_cli) -> None:
    code, out, err = run_cli("doctor", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["sampler"] == "auto" and data["sampler_source"] == "default"
    by = {c["component"]: c for c in data["components"]}
    expected = _expected_methods()
    for comp in ("gpu", "cpu", "ram"):
        assert by[comp]["method"] in expected[comp]
        assert by[comp]["reason"]
    if by["gpu"]["method"] == "none":
        assert "NVML" in by["gpu"]["reason"] and by["gpu"]["devices"] == []
    if not rapl_is_available("cpu")[0]:
        assert "RAPL unavailable" in by["cpu"]["reason"]
        assert "W at full load" in by["cpu"]["reason"]


def test_doctor_text(run_cli) -> None:
    code, out, _ = run_cli("doctor")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "sampler: auto (default)"
    assert any(line.startswith("GPU: ") for line in lines)
    assert any(line.startswith("CPU: ") for line in lines)
    assert any(line.startswith("RAM: ") for line in lines)
    if not rapl_is_available("cpu")[0]:
        assert "CPU and RAM energy would be estimated, not measured" in out


def test_doctor_with_simulated_spec_from_env(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_GREEN_SAMPLER", "simulated:300x2")
    code, out, _ = run_cli("doctor")
    assert code == 0
    assert "GPU: simulated" in out and "(MLFLOW_GREEN_SAMPLER)" in out
    assert "not measurements of this machine" in out


def test_doctor_bad_spec_is_one_line_exit_2(run_cli) -> None:
    code, out, err = run_cli("doctor", "--sampler", "gpu:fast")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "replay:<path>" in err and "Traceback" not in err



def test_doctor_says_whether_runs_would_be_signed(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    from mlflow_green.attestation import generate_key_pair

    private, _, key_id = generate_key_pair(tmp_path, "k")
    cases = ((None, "not set"), (str(private), f"signed by key {key_id}"), (str(tmp_path / "x.key"), "does not exist"))
    for value, needle in cases:
        if value is None:
            monkeypatch.delenv("MLFLOW_GREEN_SIGNING_KEY", raising=False)
        else:
            monkeypatch.setenv("MLFLOW_GREEN_SIGNING_KEY", value)
        code, out, _ = run_cli("doctor", "--sampler", "none")
        assert code == 0 and needle in out
    code, out, _ = run_cli("doctor", "--sampler", "none", "--json")
    assert json.loads(out)["signing"]["problem"]
