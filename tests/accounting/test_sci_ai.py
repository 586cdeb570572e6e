"""SCI for AI units: per million training tokens and per billion parameters."""

from __future__ import annotations

import math

import pytest

from mlflow_green.accounting import g_per_mtoken, kg_per_bparam


@pytest.mark.parametrize(
    ("kg", "tokens", "expected"),
    [(1.0, 1e6, 1000.0), (2.5, 5e8, 5.0), (0.0, 1e6, 0.0), (1.0, 2e6, 500.0)],
)
def test_g_per_mtoken(kg: float, tokens: float, expected: float) -> None:
    assert g_per_mtoken(kg, tokens) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kg", "params", "expected"),
    [(8.0, 8e9, 1.0), (0.125, 125e6, 1.0), (3.0, 1.5e9, 2.0)],
)
def test_kg_per_bparam(kg: float, params: float, expected: float) -> None:
    assert kg_per_bparam(kg, params) == pytest.approx(expected)


@pytest.mark.parametrize("count", [None, 0, -5, math.nan, math.inf])
def test_unknown_counts_are_nan(count: float | None) -> None:
    assert math.isnan(g_per_mtoken(1.0, count))
    assert math.isnan(kg_per_bparam(1.0, count))


def test_llama_scale_example() -> None:
    # Llama 3.1 8B card: 420 t CO2eq location-based for ~15e12 tokens -> 28 g per M tokens
    assert g_per_mtoken(420_000.0, 15e12) == pytest.approx(28.0)
    assert kg_per_bparam(420_000.0, 8e9) == pytest.approx(52_500.0)
