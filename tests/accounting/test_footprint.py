from __future__ import annotations

import math

import pytest

from mlflow_green.accounting import (
    accuracy_per_kg,
    embodied_config,
    epoch_footprint,
    green_score,
    lifecycle_total,
    operational_kg,
)
from mlflow_green.errors import ConfigError


@pytest.mark.parametrize(
    ("energy", "pue", "intensity", "expected"),
    [(0, 1.0, 500, 0.0), (1, 1.0, 1000, 1.0), (2.5, 1.2, 400, 1.2), (10, 1.58, 0, 0.0)],
)
def test_operational(energy: float, pue: float, intensity: float, expected: float) -> None:
    assert operational_kg(energy, pue, intensity) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("args", "needle"),
    [((-1, 1.0, 400), "energy_kwh"), ((1, 0.99, 400), "pue"), ((1, 1.0, -3), "intensity"),
     ((math.nan, 1.0, 400), "energy_kwh")],
)
def test_operational_rejects_bad_input(args: tuple[float, float, float], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        operational_kg(*args)


def test_epoch_footprint_adds_embodied() -> None:
    config = embodied_config("NVIDIA A100-SXM4-80GB", gpu_count=4)
    fp = epoch_footprint(2.0, duration_s=3600, pue=1.1, intensity_g_per_kwh=300, embodied=config, devices_used=4)
    assert fp.co2eq_kg == pytest.approx(0.66)
    assert fp.embodied_kg > 0
    assert fp.total_co2eq_kg == pytest.approx(fp.co2eq_kg + fp.embodied_kg)
    assert fp.facility_energy_kwh == pytest.approx(2.2)
    assert epoch_footprint(2.0, duration_s=3600, pue=1.1, intensity_g_per_kwh=300).embodied_kg == 0


@pytest.mark.parametrize(
    ("accuracy", "kg", "expected"),
    [(0.9, 0.3, 3.0), (0.9, 0.0, math.nan), (None, 1.0, math.nan), (math.nan, 1.0, math.nan), (0.5, -1, math.nan)],
)
def test_accuracy_per_kg(accuracy: float | None, kg: float, expected: float) -> None:
    result = accuracy_per_kg(accuracy, kg)
    assert (math.isnan(result) and math.isnan(expected)) or result == pytest.approx(expected)


def test_green_score_is_accuracy_per_kg_per_request() -> None:
    # 0.9 accuracy at 2 gCO2eq per request: 0.9 / 2 x 1000 = 450.
    assert green_score(0.9, 2.0) == pytest.approx(450)
    assert green_score(0.9, 1.0) > green_score(0.9, 2.0)
    assert math.isnan(green_score(0.9, 0.0))


def test_lifecycle_total() -> None:
    total = lifecycle_total(100.0, inference_g_per_request=0.5, requests_per_day=1_000_000,
                            horizon_days=365, embodied_kg=40.0)
    assert total.inference_kg == pytest.approx(0.5 * 365e6 / 1000)
    assert total.total_kg == pytest.approx(100 + 182_500 + 40)
    assert lifecycle_total(5.0).total_kg == 5.0
    with pytest.raises(ConfigError):
        lifecycle_total(-1.0)
