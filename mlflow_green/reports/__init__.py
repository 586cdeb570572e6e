"""Comparison and reports: leaderboard, Pareto plot, HTML, the /green page, model cards.

``experiment_leaderboard`` is :func:`mlflow_green.reports.leaderboard.leaderboard` (the
module keeps its name, so the function is re-exported under another).

Import-light on purpose: the submodules import MLflow and matplotlib only when called.
"""

from __future__ import annotations

from mlflow_green.reports.leaderboard import (
    Leaderboard,
    LeaderboardRow,
    SkippedRun,
    build_leaderboard,
    format_table,
)
from mlflow_green.reports.leaderboard import leaderboard as experiment_leaderboard
from mlflow_green.reports.pareto import pareto_mask

__all__ = [
    "Leaderboard",
    "LeaderboardRow",
    "SkippedRun",
    "build_leaderboard",
    "experiment_leaderboard",
    "format_table",
    "pareto_mask",
]
