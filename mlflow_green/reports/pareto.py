"""The accuracy-versus-footprint Pareto frontier.

A run is on the frontier when no other run is at least as accurate *and* at most as costly,
and strictly better in one of the two. Runs with equal figures do not dominate each other, so
exact duplicates are all on the frontier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["pareto_mask"]


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def pareto_mask(points: Sequence[tuple[float | None, float | None]]) -> list[bool]:
    """For each ``(accuracy, cost)`` pair, whether it is on the frontier.

    Accuracy is maximized, cost (e.g. total kgCO2eq) minimized. A point with a missing or
    non-finite figure is never on the frontier and never dominates another. O(n log n).
    """
    mask = [False] * len(points)
    usable = [
        (float(cost), float(acc), i)  # type: ignore[arg-type]
        for i, (acc, cost) in enumerate(points)
        if _usable(acc) and _usable(cost)
    ]
    # Sweep by increasing cost. Within one cost only the most accurate points can survive, and
    # they survive when they beat every strictly cheaper point.
    usable.sort(key=lambda t: (t[0], -t[1]))
    best_cheaper = -math.inf
    k = 0
    while k < len(usable):
        cost = usable[k][0]
        group_end = k
        while group_end < len(usable) and usable[group_end][0] == cost:
            group_end += 1
        top_acc = usable[k][1]  # the group is sorted by accuracy, descending
        if top_acc > best_cheaper:
            for j in range(k, group_end):
                if usable[j][1] == top_acc:
                    mask[usable[j][2]] = True
        best_cheaper = max(best_cheaper, top_acc)
        k = group_end
    return mask
