from __future__ import annotations

import json

import pytest

from tests.cli.test_estimate import run_cli


@pytest.mark.parametrize(
    ("argv", "location", "source", "basis"),
    [
        (["--country", "FRA"], "FRA", "static:ember@2023", "lifecycle"),
        (["--country", "usa", "--region", "CA"], "USA/california", "static:electricitymaps@2023", "lifecycle"),
        (["--country", "usa", "--region", "CA", "--basis", "direct"], "USA/california", "static:egrid@2023", "direct"),
        (["--region", "SE4"], "SWE/SE4", "static:electricitymaps@2023", "lifecycle"),
        (["--cloud", "gcp", "--cloud-region", "europe-west1"], "gcp/europe-west1", "static:ember@2023", "lifecycle"),
        (["--cloud", "gcp", "--cloud-region", "europe-west1", "--basis", "DIRECT"], "gcp/europe-west1",
         "static:google@2023", "direct"),
        (["--cloud", "azure", "--cloud-region", "westeurope"], "azure/westeurope", "static:ember@", "lifecycle"),
        (["--country", "world"], "world", "world-average", "lifecycle"),
    ],
)
def test_intensity_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                        argv: list[str], location: str, source: str, basis: str) -> None:
    code, out, err = run_cli(monkeypatch, capsys, "intensity", *argv, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["location"] == location
    assert data["source"].startswith(source)
    assert data["basis"] == basis
    assert isinstance(data["year"], int) and (str(data["year"]) in data["source"] or location == "world")
    assert data["intensity_g_per_kwh"] > 0
    assert data["citation"]


def test_environment_location(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLFLOW_GREEN_COUNTRY", "DEU")
    code, out, _ = run_cli(monkeypatch, capsys, "intensity", "--json")
    assert code == 0 and json.loads(out)["location"] == "DEU"


def test_text_output_names_source_and_year(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(monkeypatch, capsys, "intensity", "--country", "FRA")
    assert code == 0
    assert "FRA" in out and "(2023)" in out and "static:ember@2023" in out


def test_world_warning(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(monkeypatch, capsys, "intensity", "--json")
    assert code == 0
    assert json.loads(out)["source"] == "world-average"
    assert "warning" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [(["--country", "Frnace"], "France"), (["--cloud", "aws"], "region"), (["--at", "yesterday"], "ISO 8601"),
     (["--cloud", "gcp", "--cloud-region", "us-central"], "us-central1"),
     (["--country", ""], "country is empty"), (["--region", ""], "region is empty"),
     (["--cloud", "", "--cloud-region", "us-east-1"], "cloud_provider is empty"),
     (["--cloud", "aws", "--cloud-region", " "], "cloud_region is empty"),
     (["--country", "FRA", "--basis", "direct"], "no direct-basis figure"),
     (["--country", "FRA", "--basis", "market"], "lifecycle")],
)
def test_bad_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    code, out, err = run_cli(monkeypatch, capsys, "intensity", *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err
