from __future__ import annotations

import json

import pytest

from tests.cli.test_estimate import run_cli


def test_issue_inference_example(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(monkeypatch, capsys, "sci", "--power-w", "300", "--latency-ms", "50",
                             "--requests", "10000000", "--intensity", "420", "--pue", "1.3", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["energy_kwh"] == pytest.approx(41.7, rel=0.01)
    assert data["co2eq_kg"] == pytest.approx(22.7, rel=0.01)
    assert data["embodied_kg"] > 0
    expected = (data["co2eq_kg"] + data["embodied_kg"]) * 1000 / 10_000_000
    assert data["sci_g_per_unit"] == pytest.approx(expected, rel=1e-4)


def test_per_thousand_requests(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["sci", "--power-w", "300", "--latency-ms", "50", "--requests", "1000000", "--intensity", "420",
            "--gpu", "NVIDIA L4", "--json"]
    _, out1, _ = run_cli(monkeypatch, capsys, *base)
    _, out2, _ = run_cli(monkeypatch, capsys, *base, "--unit-requests", "1000")
    one, thousand = json.loads(out1), json.loads(out2)
    assert one["embodied_profile"] == "default"
    assert thousand["sci_g_per_unit"] == pytest.approx(one["sci_g_per_unit"] * 1000, rel=1e-4)
    assert thousand["functional_units"] == 1000


def test_location_and_embodied_options(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(monkeypatch, capsys, "sci", "--power-w", "100", "--latency-ms", "10", "--requests", "100",
                           "--country", "FRA", "--device-embodied-kg", "0", "--node-embodied-kg", "0", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["embodied_kg"] == 0 and data["intensity_source"] == "static:ember@2023"
    assert data["embodied_profile"] == "custom:generic"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--power-w", "300", "--latency-ms", "50"], "--requests"),
        (["--power-w", "-3", "--latency-ms", "50", "--requests", "10", "--intensity", "1"], "power_w"),
        (["--power-w", "3", "--latency-ms", "50", "--requests", "0", "--intensity", "1"], "--requests"),
        (["--power-w", "3", "--latency-ms", "50", "--requests", "10", "--unit-requests", "0", "--intensity", "1"], "--unit-requests"),
        (["--power-w", "3", "--latency-ms", "50", "--requests", "10", "--pue", "0.2"], "below 1"),
    ],
)
def test_bad_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    code, out, err = run_cli(monkeypatch, capsys, "sci", *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err
