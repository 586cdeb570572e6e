"""Comparison and reports: leaderboard, Pareto plot, HTML, the /green page, model cards.

Import-light on purpose: the submodules import MLflow and matplotlib only when called.
"""

from __future__ import annotations

from mlflow_green.reports.leaderboard import (
    Leaderboard,
    LeaderboardRow,
    SkippedRun,
    build_leaderboard,
    format_table,
    leaderboard,
)
from mlflow_green.reports.pareto import pareto_mask

__all__ = [
    "Leaderboard",
    "LeaderboardRow",
    "SkippedRun",
    "build_leaderboard",
    "format_table",
    "leaderboard",
    "pareto_mask",
]
