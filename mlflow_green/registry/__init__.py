"""Registry layer: a model version's footprint, budgets, policy and the carbon gate.

>>> from mlflow_green.registry import evaluate
>>> verdict = evaluate("my-model", 3, alias="champion")   # doctest: +SKIP
>>> verdict.passed, [c.sentence for c in verdict.checks]  # doctest: +SKIP

The server side is ``mlflow server --app-name green-gate`` (``mlflow_green.registry.app``).
"""

from __future__ import annotations

from mlflow_green.registry.api import PromotionDenied, check, evaluate, promote
from mlflow_green.registry.footprint import Footprint, RunFootprint, model_version_footprint
from mlflow_green.registry.policy import (
    BudgetEntry,
    ModelPolicy,
    Policy,
    load_policy,
    policy_from_env,
)
from mlflow_green.registry.verdict import BudgetCheck, Verdict, judge

__all__ = [
    "BudgetCheck",
    "BudgetEntry",
    "Footprint",
    "ModelPolicy",
    "Policy",
    "PromotionDenied",
    "RunFootprint",
    "Verdict",
    "check",
    "evaluate",
    "judge",
    "load_policy",
    "model_version_footprint",
    "policy_from_env",
    "promote",
]
