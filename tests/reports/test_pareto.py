from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlflow_green.reports.pareto import pareto_mask


def _brute(points):
    def usable(p):
        return all(v is not None and math.isfinite(v) for v in p)

    out = []
    for i, (a, c) in enumerate(points):
        if not usable((a, c)):
            out.append(False)
            continue
        dominated = any(
            usable((b, d)) and b >= a and d <= c and (b > a or d < c)
            for j, (b, d) in enumerate(points)
            if j != i
        )
        out.append(not dominated)
    return out


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([], []),
        ([(0.9, 1.0)], [True]),
        ([(0.9, 1.0), (0.8, 2.0)], [True, False]),  # more accurate and cheaper
        ([(0.9, 2.0), (0.8, 1.0)], [True, True]),  # a trade-off
        ([(0.9, 1.0), (0.9, 1.0)], [True, True]),  # duplicates do not dominate each other
        ([(0.9, 1.0), (0.9, 2.0)], [True, False]),  # same accuracy, costlier
        ([(0.9, 1.0), (0.8, 1.0)], [True, False]),  # same cost, less accurate
        ([(None, 1.0), (0.5, 2.0)], [False, True]),
        ([(0.5, None), (float("nan"), 1.0), (0.4, 3.0)], [False, False, True]),
    ],
)
def test_pareto_mask_table(points, expected):
    assert pareto_mask(points) == expected


values = st.one_of(st.none(), st.floats(0, 10, allow_nan=False), st.sampled_from([0.5, 1.0, 2.0]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(values, values), max_size=25))
def test_pareto_mask_matches_brute_force(points):
    assert pareto_mask(points) == _brute(points)
