"""What the ledger reads of a tracking server: the metric keys, a run, a metric point.

Shared by :mod:`.ledger` (the pure totals) and :mod:`._ledger_read` (the data path), which
:mod:`.ledger` calls: a leaf, so that neither imports the other both ways.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mlflow_green.tracking import schema

__all__ = ["FIELDS", "LedgerRun", "Point"]

#: JSON field -> per-epoch metric key.
FIELDS: dict[str, str] = {
    "energy_kwh": schema.ENERGY_KWH,
    "co2eq_kg": schema.CO2EQ_KG,
    "co2eq_market_kg": schema.CO2EQ_MARKET_KG,
    "embodied_kg": schema.EMBODIED_KG,
    "total_co2eq_kg": schema.TOTAL_CO2EQ_KG,
    "water_l": schema.WATER_L,
}

Point = tuple[str, int, int, float]  # key, step, timestamp ms, value


@dataclass(frozen=True)
class LedgerRun:
    """What the ledger needs of a run (from ``search_runs``)."""

    run_id: str
    run_name: str
    experiment_id: str
    experiment_name: str
    user: str
    status: str
    deleted: bool
    tags: Mapping[str, str] = field(default_factory=dict)
