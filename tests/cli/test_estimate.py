from __future__ import annotations

import json

import pytest

from mlflow_green.cli import main


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    # Only this subcommand is registered, so the test does not depend on sibling modules.
    monkeypatch.setattr(main, "SUBCOMMANDS", {argv[0]: main.SUBCOMMANDS[argv[0]]})
    code = main.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_issue_example_prints_65_52(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(monkeypatch, capsys, "estimate", "--energy-kwh", "120", "--intensity", "420", "--pue", "1.3", "--json")
    assert code == 0, err
    assert '"co2eq_kg": 65.52' in out
    data = json.loads(out)
    for key in ("energy_kwh", "co2eq_kg", "embodied_kg", "total_co2eq_kg", "intensity_g_per_kwh", "intensity_source"):
        assert key in data
    assert data["intensity_source"] == "fixed"
    assert data["total_co2eq_kg"] == 65.52
    assert err == ""


def test_gpu_estimate_uses_tdp_and_embodied(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(monkeypatch, capsys, "estimate", "--gpu", "NVIDIA H100 80GB HBM3", "--count", "8",
                             "--hours", "24", "--utilization", "0.5", "--cloud", "aws", "--cloud-region",
                             "eu-north-1", "--pue", "aws", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["tdp_w"] == 700
    assert data["energy_kwh"] == pytest.approx(700 * 8 * 24 * 0.5 / 1000)
    assert data["pue"] == pytest.approx(1.15)
    assert data["intensity_source"].startswith("static:electricitymaps@")
    assert data["location"] == "aws/eu-north-1"
    assert data["embodied_profile"] == "default"
    assert data["embodied_low_kg"] < data["embodied_kg"] < data["embodied_high_kg"]
    assert data["total_co2eq_kg"] == pytest.approx(data["co2eq_kg"] + data["embodied_kg"], rel=1e-5)


def test_embodied_overrides(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # 1 device of 1000 kg + a 2000 kg node shared by 2, over a 1-year life, for a whole year.
    hours = str(365.25 * 24)
    code, out, err = run_cli(monkeypatch, capsys, "estimate", "--gpu", "l4", "--hours", hours, "--intensity", "0",
                             "--device-embodied-kg", "1000", "--node-embodied-kg", "2000",
                             "--devices-per-node", "2", "--lifetime-years", "1", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["embodied_kg"] == pytest.approx(2000)
    assert data["embodied_profile"] == "custom"
    assert data["co2eq_kg"] == 0


def test_energy_with_hours_includes_generic_embodied(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(monkeypatch, capsys, "estimate", "--energy-kwh", "10", "--hours", "5", "--count", "2",
                           "--country", "FRA", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["embodied_profile"] == "default:generic"
    assert data["embodied_kg"] > 0
    assert data["intensity_source"] == "static:ember@2023"


def test_text_output(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(monkeypatch, capsys, "estimate", "--energy-kwh", "120", "--intensity", "420", "--pue", "1.3")
    assert code == 0
    assert "65.52 kgCO2eq" in out


def test_world_average_warns_on_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(monkeypatch, capsys, "estimate", "--energy-kwh", "1", "--json")
    assert code == 0
    assert json.loads(out)["intensity_source"] == "world-average"
    assert err.startswith("mlflow-green: warning: no location configured")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--energy-kwh", "-1"], "--energy-kwh"),
        (["--energy-kwh", "1", "--pue", "0.9"], "below 1"),
        (["--energy-kwh", "1", "--country", "XYZ"], "unknown country"),
        (["--energy-kwh", "1", "--cloud", "aws", "--cloud-region", "us-east-9"], "us-east-1"),
        (["--energy-kwh", "1", "--intensity", "nan"], "finite"),
        (["--energy-kwh", "1", "--gpu", "h100", "--hours", "1"], "not both"),
        (["--gpu", "h100"], "--hours"),
        (["--gpu", "X100", "--hours", "1"], "--tdp-w"),
        (["--gpu", "h100", "--hours", "1", "--utilization", "1.5"], "between 0 and 1"),
        (["--gpu", "h100", "--hours", "1", "--count", "0"], "--count"),
        (["--energy-kwh", "1", "--hours", "1", "--embodied-profile", "nope"], "embodied profile"),
        (["--energy-kwh", "1", "--hours", "1", "--devices-per-node", "0"], "devices_per_node"),
        ([], "--energy-kwh"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, out, err = run_cli(monkeypatch, capsys, "estimate", *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlflow-green: error:"), err
    assert needle in lines[0]
    assert "Traceback" not in err


def test_unknown_gpu_with_explicit_power(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(monkeypatch, capsys, "estimate", "--gpu", "Gaudi 3", "--tdp-w", "900", "--hours", "2",
                           "--intensity", "100", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["energy_kwh"] == pytest.approx(1.8)
    assert data["embodied_profile"] == "default:generic"


def test_market_based_and_water(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow_green.accounting import Location, offsite_l_per_kwh

    code, out, err = run_cli(monkeypatch, capsys, "estimate", "--energy-kwh", "100", "--country", "DEU",
                             "--pue", "1.2", "--renewable-fraction", "0.5", "--wue", "aws", "--json")
    assert code == 0, err
    data = json.loads(out)
    # 100 kWh x 1.2 x 50 % x AIB 2018 Germany residual 728.69 g/kWh
    assert data["co2eq_market_kg"] == pytest.approx(100 * 1.2 * 0.5 * 728.69 / 1000, rel=1e-3)
    assert data["market_source"] == "contracts:0.5 + residual:aib@2018(DEU)"
    # on-site 100 kWh x 0.15 L/kWh (AWS 2024) + off-site 120 kWh x Germany's L/kWh
    offsite, _ = offsite_l_per_kwh(Location(country="DEU"))
    assert data["water_l"] == pytest.approx(15 + 120 * offsite, rel=1e-3)
    assert data["water_source"].startswith("wue:aws@2024 + offsite:DEU@")


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [("--renewable-fraction", "2", "between 0 and 1"), ("--market-intensity", "-1", "at least 0"),
     ("--wue", "lots", "neither a number")],
)
def test_bad_market_and_water_options(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                      flag: str, value: str, message: str) -> None:
    code, _, err = run_cli(monkeypatch, capsys, "estimate", "--energy-kwh", "1", "--country", "FRA", flag, value)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
