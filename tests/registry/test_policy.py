from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_green.errors import ConfigError
from mlflow_green.registry.policy import (
    Policy,
    load_policy,
    parse_budget_tag,
    parse_budget_value,
    policy_from_env,
)


@pytest.mark.parametrize(
    ("raw", "value", "error_part"),
    [
        ("50", 50.0, None),
        (" 0.25 ", 0.25, None),
        ("0", 0.0, None),
        (12, 12.0, None),
        ("1e-3", 0.001, None),
        ("50kg", None, "not a plain number"),
        ("-1", None, "negative"),
        ("nan", None, "finite"),
        ("inf", None, "finite"),
        ("", None, "empty"),
        ("   ", None, "empty"),
        (None, None, "empty"),
        (True, None, "not a number"),
    ],
)
def test_parse_budget_value(raw: object, value: float | None, error_part: str | None) -> None:
    got, error = parse_budget_value(raw)
    assert got == value
    if error_part is None:
        assert error is None
    else:
        assert error is not None and error_part in error


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("green.budget.total_co2eq_kg", "50", ("total_co2eq_kg", None, 50.0, None)),
        ("green.budget.champion.energy_kwh", "3", ("energy_kwh", "champion", 3.0, None)),
        ("green.budget.Production.co2eq_kg", "2", ("co2eq_kg", "production", 2.0, None)),
        ("GREEN.BUDGET.TOTAL_CO2EQ_KG", "7", ("total_co2eq_kg", None, 7.0, None)),
        ("green.budget.min_accuracy_per_kg", "0.5", ("min_accuracy_per_kg", None, 0.5, None)),
        ("green.budget.total_co2eq_kg", "50kg", ("total_co2eq_kg", None, None, "not a plain number")),
        ("green.budget.champion.total_co2eq", "5", (None, None, None, "unknown budget tag")),
        ("green.budget.", "5", (None, None, None, "unknown budget tag")),
        ("green.budgetx", "5", None),
        ("mlflow.note", "x", None),
    ],
)
def test_parse_budget_tag(key: str, value: str, expected: tuple | None) -> None:
    entry = parse_budget_tag(key, value)
    if expected is None:
        assert entry is None
        return
    assert entry is not None
    budget_key, scope, limit, error_part = expected
    if budget_key is not None:
        assert entry.key == budget_key
    assert entry.scope == scope
    assert entry.limit == limit
    assert entry.source == f"tag {key}"
    if error_part is None:
        assert entry.error is None
    else:
        assert entry.error is not None and error_part in entry.error


GOOD = """
defaults:
  gated_aliases: [champion, production]
  on_simulated: allow
  budgets:
    total_co2eq_kg: 100
    champion: {total_co2eq_kg: 20}
models:
  "prod-*":
    include_lineage: true
    gated_stages: [Production]
    budgets: {energy_kwh: 500}
  "*":
    on_missing: allow
"""


def test_policy_merges_defaults_with_first_matching_rule(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    policy = load_policy(path)
    prod = policy.for_model("prod-ranker")
    assert prod.include_lineage is True
    assert prod.on_missing == "deny"  # the first match wins; "*" is not merged in
    assert prod.on_simulated == "allow"
    assert prod.alias_gated("Champion") and not prod.alias_gated("candidate")
    assert prod.stage_gated("production") and not prod.stage_gated("Staging")
    limits = {(b.scope, b.key): b.limit for b in prod.budgets}
    assert limits == {(None, "total_co2eq_kg"): 100, ("champion", "total_co2eq_kg"): 20, (None, "energy_kwh"): 500}
    sources = {(b.scope, b.key): b.source for b in prod.budgets}
    assert sources[(None, "energy_kwh")].endswith("models['prod-*']")
    assert sources[(None, "total_co2eq_kg")].endswith("defaults")
    other = policy.for_model("dev-model")
    assert other.on_missing == "allow" and other.include_lineage is False
    assert other.stage_gated("Staging")


def test_builtin_defaults_gate_every_alias_and_staging_production() -> None:
    p = Policy().for_model("anything")
    assert p.alias_gated("whatever") and p.stage_gated("Staging") and p.stage_gated("production")
    assert not p.stage_gated("Archived")
    assert (p.on_missing, p.on_simulated, p.on_degraded, p.gate_create) == ("deny", "deny", "allow", "copies")
    assert p.budgets == ()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("defaults:\n  budgets:\n    total_co2eq_kg: 50kg\n", "defaults.budgets.total_co2eq_kg"),
        ("defaults:\n  budgets:\n    total_co2eq_kg: -1\n", "negative"),
        ("defaults:\n  budgets:\n    total_co2eq_kg: .nan\n", "finite"),
        ("defaults:\n  budgets:\n    carbon: 5\n", "unknown budget 'carbon'"),
        ("defaults:\n  on_missing: maybe\n", "'deny' or 'allow'"),
        ("defaults:\n  gated_alias: [x]\n", "unknown field 'gated_alias'"),
        ("defaults:\n  include_lineage: yes please\n", "true or false"),
        ("models:\n  'prod-*':\n    gate_create: sometimes\n", "'copies', 'all' or 'none'"),
        ("default:\n  on_missing: deny\n", "unknown section 'default'"),
        ("defaults: [1, 2]\n", "must be a mapping"),
        ("defaults:\n  budgets: {total_co2eq_kg: 1\n", "not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
    ],
)
def test_invalid_policy_is_one_line_config_error(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    message = str(info.value)
    assert "\n" not in message
    assert needle in message
    assert str(path) in message


def test_policy_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert policy_from_env().source == "built-in defaults"
    path = tmp_path / "p.yaml"
    path.write_text(GOOD)
    monkeypatch.setenv("MLFLOW_GREEN_POLICY", str(path))
    assert policy_from_env().source == str(path)
    monkeypatch.setenv("MLFLOW_GREEN_POLICY", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="cannot be read"):
        policy_from_env()
