"""The report artifacts and the console summary."""

from __future__ import annotations

import html.parser

import pytest

from mlflow_green.tracking.report import CAR_G_PER_KM, car_km, render_html, summary_text

REPORT = {
    "run_id": "r1",
    "status": "degraded: <cpu> lost",
    "stop_reason": "budget: projected total 2 kg CO2eq exceeds budget_kg=1",
    "provenance": {"green.location": "FRA", "green.method.gpu": "simulated"},
    "totals": {
        "epochs": 2, "energy_kwh": 1.5, "gpu_energy_kwh": 1.2, "cpu_energy_kwh": 0.2,
        "ram_energy_kwh": 0.1, "co2eq_kg": 0.084, "embodied_kg": 0.016, "total_co2eq_kg": 0.1,
        "embodied_share": 0.16, "accuracy": 0.9, "accuracy_per_kg": 9.0,
    },
    "epochs": [
        {"epoch": 0, "energy_kwh": 0.75, "co2eq_kg": 0.042, "embodied_kg": 0.008, "total_co2eq_kg": 0.05},
        {"epoch": 1, "energy_kwh": 0.75, "co2eq_kg": 0.042, "embodied_kg": 0.008, "total_co2eq_kg": 0.05,
         "accuracy": 0.9, "accuracy_per_kg": 9.0},
    ],
}


@pytest.mark.parametrize(("kg", "km"), [(0.0, 0.0), (0.1066, 1.0), (1.066, 10.0)])
def test_car_km(kg: float, km: float) -> None:
    assert car_km(kg) == pytest.approx(km)
    assert CAR_G_PER_KM == 106.6


def test_html_is_self_contained_and_escaped() -> None:
    page = render_html(REPORT)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    for forbidden in ("<script", "<link", "src=", "@import", "url("):
        assert forbidden not in page
    assert "&lt;cpu&gt;" in page and "<cpu>" not in page
    parser = html.parser.HTMLParser()
    parser.feed(page)
    assert page.count("<tr>") >= 2 + 2  # two epoch rows + provenance rows


def test_summary_names_the_figures_and_the_source() -> None:
    text = summary_text(REPORT)
    for fragment in ("1.5 kWh", "0.1 kg", "16.0 %", "accuracy/kg", "km by car", "EEA", "lab-tested tailpipe", "stopped", "degraded"):
        assert fragment in text, fragment
