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
from collections.abc import Sequence
from dataclasses import dataclass

from mlflow_green.errors import ConfigError

__all__ = ["Projection", "project_total"]

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


def project_total(per_epoch_values: Sequence[float], total_epochs: int) -> Projection:
    """Project the whole-run total of a per-epoch quantity (kWh, kg) from the epochs so far.

    ``total_epochs`` below the number observed is taken as the number observed (the run went
    on longer than planned). No epochs yet gives NaN with ``method='none'``.
    """
    try:
        n_total = int(total_epochs)
    except (TypeError, ValueError):
        raise ConfigError(f"total_epochs={total_epochs!r} is not a whole number") from None
    if n_total < 1:
        raise ConfigError(f"total_epochs={total_epochs!r} must be at least 1")
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
