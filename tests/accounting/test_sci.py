from __future__ import annotations

import pytest

from mlflow_green.accounting import inference_energy_kwh, sci
from mlflow_green.errors import ConfigError


@pytest.mark.parametrize(
    ("power_w", "latency_ms", "requests", "kwh"),
    [(300, 50, 10_000_000, 41.6667), (1000, 1000, 3600, 1.0), (0, 10, 10, 0.0)],
)
def test_inference_energy(power_w: float, latency_ms: float, requests: float, kwh: float) -> None:
    assert inference_energy_kwh(power_w, latency_ms, requests) == pytest.approx(kwh, rel=1e-4)


@pytest.mark.parametrize(
    ("functional_units", "expected_g"),
    [(1, 1400.0), (1000, 1.4), (1_000_000, 0.0014)],  # per request, per 1,000, per token...
)
def test_sci_is_total_over_functional_units(functional_units: float, expected_g: float) -> None:
    # (E x I + M) / R with E = 2 kWh, I = 500 g/kWh, M = 0.4 kg.
    result = sci(2.0, 500, embodied_kg=0.4, functional_units=functional_units)
    assert result.total_co2eq_kg == pytest.approx(1.4)
    assert result.g_per_unit == pytest.approx(expected_g)


@pytest.mark.parametrize("kwargs", [{"functional_units": 0}, {"embodied_kg": -1}, {"pue": 0.5}])
def test_sci_rejects_bad_input(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        sci(1.0, 100, **kwargs)


@pytest.mark.parametrize("args", [(-1, 1, 1), (1, -1, 1), (1, 1, -1)])
def test_inference_energy_rejects_negatives(args: tuple[float, float, float]) -> None:
    with pytest.raises(ConfigError):
        inference_energy_kwh(*args)
