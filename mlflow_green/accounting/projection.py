"""Forecast a run's total from its first k of N epochs, with an uncertainty band.

CarbonTracker multiplies the mean of the epochs so far by N. Two things go wrong with that:
the first epoch is often a warm-up outlier (compilation, data-loader start, cache fill), and a
single number hides how uncertain the forecast is. Here:

1. The observed epochs always count in full (they happened).
2. The rate for the remaining N−k epochs is the **median** of the observed epochs, leaving
   out epoch 0 when k ≥ 3 and it is an outlier by a robust test: its modified z-score against
   the later epochs, |x₀ − median| / (1.4826·MAD), exceeds 3.5 (Iglewicz & Hoaglin 1993). The
   MAD is floored at 1 % of the median so that perfectly steady epochs do not make every tiny
   difference an "outlier".
3. The band is ± t·σ·√(r + r²/n) around the forecast: r the remaining epochs, n the epochs in
   the rate, t Student's 97.5 % quantile with n−1 degrees of freedom (a 95 % band that widens
   honestly when only a few epochs are known), and σ the larger of the robust spread
   (1.4826·MAD) and the sample standard deviation of the epochs in the rate — the MAD of three
   numbers can be near zero by chance, and a band should not be narrower than the data say.
   The first term under the root is epoch-to-epoch noise in the remaining epochs, the second
   the uncertainty of the rate itself. The low end never goes below what was observed.
   With a single usable epoch there is no spread to measure: the band collapses to the value and
   ``method`` says so.
"""

from __future__ import annotations

import math
import statistics
from array import array
from bisect import bisect_left, insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mlflow_green.errors import ConfigError

__all__ = ["Projection", "RunningProjection", "project_total"]

_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution × 1.4826 = σ
_OUTLIER_Z = 3.5
_MAD_FLOOR = 0.01
_Z95 = 1.96
# Student's t, 97.5 % quantile, by degrees of freedom (beyond the table: the normal 1.96).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000}


def _t975(dof: int) -> float:
    for limit in sorted(_T975):
        if dof <= limit:
            return _T975[limit]
    return _Z95


@dataclass(frozen=True)
class Projection:
    """A projected total with its band; ``rate`` is the per-epoch figure used for the rest."""

    value: float
    low: float
    high: float
    rate: float
    completed: int
    total_epochs: int
    warmup_dropped: bool
    method: str


def _mad(values: Sequence[float], center: float) -> float:
    return statistics.median(abs(v - center) for v in values)


def _whole_epochs(total_epochs: Any) -> int:
    """``total_epochs`` as an int >= 1, else one ConfigError that names it."""
    try:
        n_total = int(total_epochs)
    except (TypeError, ValueError):
        raise ConfigError(f"total_epochs={total_epochs!r} is not a whole number") from None
    if n_total < 1:
        raise ConfigError(f"total_epochs={total_epochs!r} must be at least 1")
    return n_total


def project_total(per_epoch_values: Sequence[float], total_epochs: int) -> Projection:
    """Project the whole-run total of a per-epoch quantity (kWh, kg) from the epochs so far.

    ``total_epochs`` below the number observed is taken as the number observed (the run went
    on longer than planned). No epochs yet gives NaN with ``method='none'``.
    """
    n_total = _whole_epochs(total_epochs)
    values = [float(v) for v in per_epoch_values]
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise ConfigError("per-epoch values must be finite and not negative")
    k = len(values)
    if k == 0:
        nan = math.nan
        return Projection(nan, nan, nan, nan, 0, n_total, False, "none")
    n_total = max(n_total, k)
    observed = math.fsum(values)
    remaining = n_total - k

    base = values
    dropped = False
    if k >= 3:
        rest = values[1:]
        med = statistics.median(rest)
        scale = max(_MAD_TO_SIGMA * _mad(rest, med), _MAD_FLOOR * abs(med))
        if scale > 0 and abs(values[0] - med) / scale > _OUTLIER_Z:
            base, dropped = rest, True
    rate = statistics.median(base)
    value = observed + remaining * rate

    n = len(base)
    if remaining == 0:
        return Projection(observed, observed, observed, rate, k, n_total, dropped, "complete")
    if n == 1:
        return Projection(value, value, value, rate, k, n_total, dropped, "single-epoch: no spread yet")
    sigma = max(_MAD_TO_SIGMA * _mad(base, rate), statistics.stdev(base))
    method = "median rate, t-band"
    if dropped:
        method += ", warm-up epoch 0 excluded from the rate"
    half = _t975(n - 1) * sigma * math.sqrt(remaining + remaining**2 / n)
    return Projection(value, max(observed, value - half), value + half, rate, k, n_total, dropped, method)


class RunningProjection:
    """:func:`project_total` kept up to date one epoch at a time, for long runs.

    ``add(v)`` then ``projection()`` gives what ``project_total(all values so far,
    total_epochs)`` gives — the same value, rate and warm-up decision (exact median, MAD and
    correctly rounded sum), the band's standard deviation by Welford's running update
    instead of exact fractions (equal to a few ulps) — in O(log n) per call instead of O(n):
    the values are kept sorted in a compact array (8 bytes each), medians and MADs are order
    statistics of it.
    """

    def __init__(self, total_epochs: int) -> None:
        self.total_epochs = _whole_epochs(total_epochs)
        self._first: float | None = None
        self._rest = array("d")  # epochs 1.. sorted
        self._partials: list[float] = []  # exact running sum (Shewchuk)
        # Welford over epochs 1..: count, mean, sum of squared deviations.
        self._n_rest = 0
        self._mean_rest = 0.0
        self._m2_rest = 0.0

    @property
    def count(self) -> int:
        return 0 if self._first is None else 1 + self._n_rest

    def add(self, value: float) -> None:
        """One more epoch's value (finite, not negative)."""
        v = float(value)
        if not math.isfinite(v) or v < 0:
            raise ConfigError("per-epoch values must be finite and not negative")
        _exact_add(self._partials, v)
        if self._first is None:
            self._first = v
            return
        insort(self._rest, v)
        self._n_rest += 1
        delta = v - self._mean_rest
        self._mean_rest += delta / self._n_rest
        self._m2_rest += delta * (v - self._mean_rest)

    @property
    def value(self) -> float:
        """The projected total (``projection().value``), without the band's work."""
        return self._project(band=False).value

    def projection(self) -> Projection:
        return self._project(band=True)

    def _project(self, *, band: bool) -> Projection:
        k = self.count
        if k == 0 or self._first is None:
            nan = math.nan
            return Projection(nan, nan, nan, nan, 0, self.total_epochs, False, "none")
        n_total = max(self.total_epochs, k)
        observed = math.fsum(self._partials)
        remaining = n_total - k
        rest, first = self._rest, self._first
        n_rest = len(rest)
        dropped = False
        if k >= 3:
            med = _median(rest.__getitem__, n_rest)
            mad = _mad_sorted(rest.__getitem__, n_rest, med)
            scale = max(_MAD_TO_SIGMA * mad, _MAD_FLOOR * abs(med))
            if scale > 0 and abs(first - med) / scale > _OUTLIER_Z:
                dropped = True
        get: Callable[[int], float]
        if dropped:
            get, n = rest.__getitem__, n_rest
        else:
            j = bisect_left(rest, first)

            def with_first(i: int) -> float:
                return rest[i] if i < j else (first if i == j else rest[i - 1])

            get, n = with_first, n_rest + 1
        rate = _median(get, n)
        value = observed + remaining * rate
        if remaining == 0:
            return Projection(observed, observed, observed, rate, k, n_total, dropped, "complete")
        if n == 1:
            return Projection(value, value, value, rate, k, n_total, dropped, "single-epoch: no spread yet")
        method = "median rate, t-band"
        if dropped:
            method += ", warm-up epoch 0 excluded from the rate"
        if not band:
            return Projection(value, math.nan, math.nan, rate, k, n_total, dropped, method)
        if dropped:
            m2 = self._m2_rest
        else:
            # Welford's merge of epoch 0 into the running figures of the others.
            delta = first - self._mean_rest
            m2 = self._m2_rest + delta * delta * n_rest / n
        stdev = math.sqrt(max(m2, 0.0) / (n - 1))
        sigma = max(_MAD_TO_SIGMA * _mad_sorted(get, n, rate), stdev)
        half = _t975(n - 1) * sigma * math.sqrt(remaining + remaining**2 / n)
        return Projection(value, max(observed, value - half), value + half, rate, k, n_total, dropped, method)


def _exact_add(partials: list[float], x: float) -> None:
    """Add ``x`` to the exact sum held as non-overlapping partials (Shewchuk; ``math.fsum``'s)."""
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


def _median(get: Callable[[int], float], n: int) -> float:
    """``statistics.median`` of a sorted sequence given by index (same arithmetic)."""
    if n % 2 == 1:
        return get(n // 2)
    i = n // 2
    return (get(i - 1) + get(i)) / 2


def _mad_sorted(get: Callable[[int], float], n: int, center: float) -> float:
    """``statistics.median(abs(v - center) for v in values)`` of sorted values, in O(log n).

    The deviations of the values below ``center`` and of those above are two sorted runs;
    their order statistics are found by binary search over the split.
    """
    lo, hi = 0, n
    while lo < hi:  # j = the first index whose value is >= center
        mid = (lo + hi) // 2
        if get(mid) < center:
            lo = mid + 1
        else:
            hi = mid
    j = lo
    n_left, n_right = j, n - j

    def left(i: int) -> float:  # ascending: the values below center, nearest first
        return center - get(j - 1 - i)

    def right(i: int) -> float:
        return get(j + i) - center

    def kth(k: int) -> float:
        a_lo, a_hi = max(0, k + 1 - n_right), min(k + 1, n_left)
        while a_lo < a_hi:  # a: how many of the k+1 smallest come from the left run
            a = (a_lo + a_hi) // 2
            b = k + 1 - a
            if b > 0 and left(a) < right(b - 1):
                a_lo = a + 1
            else:
                a_hi = a
        a = a_lo
        b = k + 1 - a
        return max(left(a - 1) if a > 0 else -math.inf, right(b - 1) if b > 0 else -math.inf)

    if n % 2 == 1:
        return kth(n // 2)
    return (kth(n // 2 - 1) + kth(n // 2)) / 2
