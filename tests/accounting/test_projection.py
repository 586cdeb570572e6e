from __future__ import annotations

import math
import random

import pytest

from mlflow_green.accounting import project_total
from mlflow_green.errors import ConfigError


def test_steady_epochs_project_linearly_with_a_tight_band() -> None:
    p = project_total([10.0, 10.2, 9.8, 10.0], 10)
    assert p.value == pytest.approx(40.0 + 6 * 10.0)
    assert p.low < p.value < p.high
    assert (p.high - p.low) / p.value < 0.1
    assert not p.warmup_dropped


def test_warmup_epoch_is_excluded_from_the_rate_but_counted() -> None:
    epochs = [25.0, 10.1, 9.9, 10.0]
    p = project_total(epochs, 20)
    assert p.warmup_dropped and "warm-up" in p.method
    assert p.rate == pytest.approx(10.0)
    assert p.value == pytest.approx(sum(epochs) + 16 * 10.0)


def test_beats_carbontracker_on_a_warmup_run() -> None:
    rng = random.Random(7)
    truth = [30.0] + [10.0 + rng.gauss(0, 0.3) for _ in range(49)]
    k = 4
    ours = project_total(truth[:k], 50)
    carbontracker = sum(truth[:k]) / k * 50
    actual = sum(truth)
    assert abs(ours.value - actual) < abs(carbontracker - actual) / 5
    assert ours.low <= actual <= ours.high


def test_warmup_is_not_judged_before_three_epochs() -> None:
    p = project_total([25.0, 10.0], 10)
    assert not p.warmup_dropped
    assert p.low < p.value < p.high


def test_a_normal_first_epoch_is_kept() -> None:
    assert not project_total([10.5, 10.0, 10.2, 9.8], 10).warmup_dropped


@pytest.mark.parametrize(
    ("values", "total", "method"),
    [([5.0], 10, "single-epoch"), ([1.0, 2.0, 3.0], 3, "complete"), ([], 10, "none")],
)
def test_edge_cases(values: list[float], total: int, method: str) -> None:
    p = project_total(values, total)
    assert p.method.startswith(method)
    if values:
        assert p.low <= p.value <= p.high
    else:
        assert math.isnan(p.value)


def test_more_epochs_than_planned() -> None:
    p = project_total([1.0, 1.0, 1.0, 1.0], 2)
    assert p.value == 4.0 and p.total_epochs == 4


def test_low_end_never_below_observed() -> None:
    p = project_total([1.0, 5.0], 3)
    assert p.low >= 6.0


@pytest.mark.parametrize(("values", "total"), [([1.0], 0), ([-1.0], 3), ([math.nan], 3), ([1.0], "x")])
def test_bad_input(values: list[float], total: int) -> None:
    with pytest.raises(ConfigError):
        project_total(values, total)
