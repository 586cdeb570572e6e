from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mlflow_green.registry as registry
from mlflow_green.registry import PromotionDenied, check, evaluate, promote
from tests.registry._helpers import log_green_run, register, unique


def test_public_surface_is_curated() -> None:
    assert registry.__all__ == sorted(registry.__all__)
    for name in registry.__all__:
        assert getattr(registry, name) is not None


def test_evaluate_reads_only(client: Any, experiment_id: str) -> None:
    name = unique("m")
    v = register(client, name, log_green_run(client, experiment_id, 1.0),
                 model_tags={"green.budget.total_co2eq_kg": "2"})
    verdict = evaluate(name, v, alias="champion", client=client)
    assert verdict.passed and verdict.gated
    assert not any(k.startswith("green.gate.") for k in client.get_model_version(name, v).tags)


def test_check_writes_evidence_pass_and_fail(client: Any, experiment_id: str) -> None:
    name = unique("m")
    tags = {"green.budget.energy_kwh": "5"}
    good = register(client, name, log_green_run(client, experiment_id, 1.0, energy_kwh=4.0), model_tags=tags)
    bad = register(client, name, log_green_run(client, experiment_id, 1.0, energy_kwh=6.0))
    assert check(name, good, client=client).passed
    assert not check(name, bad, client=client).passed
    good_tags = client.get_model_version(name, good).tags
    bad_tags = client.get_model_version(name, bad).tags
    assert good_tags["green.gate.verdict"] == "pass" and good_tags["green.gate.energy_kwh"] == "4"
    assert bad_tags["green.gate.verdict"] == "fail"
    assert "exceeds the energy_kwh budget of 5 kWh" in bad_tags["green.gate.reasons"]


def test_promote_sets_alias_only_within_budget(client: Any, experiment_id: str) -> None:
    name = unique("m")
    tags = {"green.budget.champion.total_co2eq_kg": "2"}
    good = register(client, name, log_green_run(client, experiment_id, 1.5), model_tags=tags)
    bad = register(client, name, log_green_run(client, experiment_id, 2.5))
    promote(name, good, "champion", client=client)
    with pytest.raises(PromotionDenied) as info:
        promote(name, bad, "champion", client=client)
    assert "total_co2eq_kg" in str(info.value) and "2.5" in str(info.value)
    assert info.value.verdict is not None and not info.value.verdict.passed
    assert str(client.get_model_version_by_alias(name, "champion").version) == good
    # an alias the budget does not scope still sees no budget: allowed
    promote(name, bad, "candidate", client=client)


def test_policy_file_argument(client: Any, experiment_id: str, tmp_path: Path) -> None:
    name = unique("pol")
    v = register(client, name, log_green_run(client, experiment_id, 3.0))
    path = tmp_path / "policy.yaml"
    path.write_text("models:\n  'pol-*':\n    budgets: {total_co2eq_kg: 2}\n")
    verdict = evaluate(name, v, policy=path, client=client)
    assert not verdict.passed and f"policy {path}" in verdict.reasons[0]
    assert evaluate(name, v, client=client).passed  # no policy: no budgets
