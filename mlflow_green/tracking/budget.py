"""Budget policy: does an epoch's figure exceed the run's CO2eq budget, and what to do."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow_green.tracking.config import OnBudget
from mlflow_green.tracking.record import EpochRecord

__all__ = ["BudgetVerdict", "check_budget"]


@dataclass(frozen=True)
class BudgetVerdict:
    """An exceeded budget: ``reason`` (one line) and whether training must stop."""

    reason: str
    stop: bool


def check_budget(
    record: EpochRecord, budget_kg: float | None, on_budget: OnBudget
) -> BudgetVerdict | None:
    """None while the run is within ``budget_kg`` (or has none).

    The figure compared is the projected total when the total number of epochs is known,
    else the cumulative total so far (operational + embodied, the whole run's history on a
    resumed run).
    """
    if budget_kg is None:
        return None
    projected = record.projected_total_co2eq_kg
    figure = projected if projected is not None else record.cum_total_co2eq_kg
    what = "projected total" if projected is not None else "total so far"
    if figure <= budget_kg:
        return None
    reason = (
        f"budget: {what} {figure:.4g} kg CO2eq exceeds budget_kg={budget_kg:g} "
        f"after epoch {record.epoch}"
    )
    return BudgetVerdict(reason=reason, stop=on_budget == "stop")
