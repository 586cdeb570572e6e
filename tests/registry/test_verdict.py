from __future__ import annotations

import pytest

from mlflow_green.registry.footprint import Footprint, RunFootprint
from mlflow_green.registry.policy import BudgetEntry, ModelPolicy
from mlflow_green.registry.verdict import judge


def run(
    run_id: str = "r1",
    role: str = "source",
    total: float | None = 10.0,
    co2: float | None = 8.0,
    energy: float | None = 25.0,
    apk: float | None = 0.09,
    status: str | None = "ok",
    gpu: str = "counter",
) -> RunFootprint:
    return RunFootprint(
        run_id=run_id, role=role, total_co2eq_kg=total, co2eq_kg=co2, energy_kwh=energy,
        embodied_kg=None if total is None or co2 is None else total - co2,
        accuracy_per_kg=apk, status=status, methods={"gpu": gpu},
    )


def fp(*runs: RunFootprint, missing: tuple[str, ...] = ()) -> Footprint:
    return Footprint(runs=runs, source_run_id=runs[0].run_id if runs else None, missing=missing)


POLICY = ModelPolicy(rule="built-in defaults")


# (tags, alias, stage, passed, the failing budget named in the first reason or None)
BUDGET_CASES = [
    ({"green.budget.total_co2eq_kg": "12"}, None, None, True, None),
    ({"green.budget.total_co2eq_kg": "9.5"}, None, None, False, "total_co2eq_kg"),
    ({"green.budget.co2eq_kg": "8"}, None, None, True, None),  # equal passes
    ({"green.budget.co2eq_kg": "7.9"}, None, None, False, "co2eq_kg"),
    ({"green.budget.energy_kwh": "30"}, None, None, True, None),
    ({"green.budget.energy_kwh": "20"}, None, None, False, "energy_kwh"),
    ({"green.budget.min_accuracy_per_kg": "0.05"}, None, None, True, None),
    ({"green.budget.min_accuracy_per_kg": "0.5"}, None, None, False, "min_accuracy_per_kg"),
    # scoped budgets apply to their alias or stage only
    ({"green.budget.champion.total_co2eq_kg": "5"}, "champion", None, False, "total_co2eq_kg"),
    ({"green.budget.champion.total_co2eq_kg": "5"}, "candidate", None, True, None),
    ({"green.budget.champion.total_co2eq_kg": "5"}, "CHAMPION", None, False, "total_co2eq_kg"),
    ({"green.budget.production.energy_kwh": "20"}, None, "Production", False, "energy_kwh"),
    ({"green.budget.production.energy_kwh": "20"}, None, "Staging", True, None),
    ({"green.budget.staging.energy_kwh": "30"}, None, "Staging", True, None),
    # a model-wide budget applies at every alias; the stricter of base and scope binds
    ({"green.budget.total_co2eq_kg": "9", "green.budget.champion.total_co2eq_kg": "50"}, "champion", None, False, "total_co2eq_kg"),
]


@pytest.mark.parametrize(("tags", "alias", "stage", "passed", "failing"), BUDGET_CASES)
def test_each_budget_kind_by_alias_and_stage(
    tags: dict[str, str], alias: str | None, stage: str | None, passed: bool, failing: str | None
) -> None:
    v = judge(model="m", version="1", footprint=fp(run()), policy=POLICY, model_tags=tags, alias=alias, stage=stage)
    assert v.passed is passed
    assert v.gated is True
    if failing is None:
        assert v.reasons == ()
    else:
        assert failing in v.reasons[0]
        failed = [c for c in v.checks if not c.passed]
        assert failed and failed[0].key == failing and failed[0].figure is not None
        # the sentence names the budget and the figure
        assert f"{failed[0].figure:.6g}" in v.reasons[0]


@pytest.mark.parametrize("bad", ["50kg", "-1", "nan", "", "inf", "abc"])
@pytest.mark.parametrize("key", ["green.budget.total_co2eq_kg", "green.budget.champion.energy_kwh"])
def test_malformed_budget_never_passes_and_names_the_tag(bad: str, key: str) -> None:
    v = judge(model="m", version="1", footprint=fp(run()), policy=POLICY, model_tags={key: bad}, alias="champion")
    assert not v.passed
    assert any(key in r for r in v.reasons)


def test_unknown_budget_key_fails_closed() -> None:
    tags = {"green.budget.champion.total_co2eq": "5"}
    v = judge(model="m", version="1", footprint=fp(run()), policy=POLICY, model_tags=tags)
    assert not v.passed and "green.budget.champion.total_co2eq" in v.reasons[0]


@pytest.mark.parametrize(
    ("policy_limit", "tag_limit", "passed", "binding"),
    [
        (20.0, "5", False, "tag"),  # a tag tightens the policy budget
        (5.0, "50", False, "policy"),  # ... and cannot loosen it
        (50.0, "20", True, "tag"),
    ],
)
def test_tags_tighten_policy_budgets_never_loosen(
    policy_limit: float, tag_limit: str, passed: bool, binding: str
) -> None:
    policy = ModelPolicy(
        rule="defaults",
        budgets=(BudgetEntry("total_co2eq_kg", None, policy_limit, "policy p.yaml defaults"),),
    )
    tags = {"green.budget.total_co2eq_kg": tag_limit}
    v = judge(model="m", version="1", footprint=fp(run()), policy=policy, model_tags=tags)
    assert v.passed is passed
    (check,) = [c for c in v.checks if c.key == "total_co2eq_kg"]
    assert check.source.startswith(binding)


@pytest.mark.parametrize(
    ("on_missing", "passed"),
    [("deny", False), ("allow", True)],
)
def test_missing_evidence_follows_on_missing(on_missing: str, passed: bool) -> None:
    policy = ModelPolicy(rule="defaults", on_missing=on_missing)  # type: ignore[arg-type]
    empty = fp(run(total=None, co2=None, energy=None, apk=None), missing=("source run r1 has no green/ metrics",))
    v = judge(model="m", version="1", footprint=empty, policy=policy,
              model_tags={"green.budget.total_co2eq_kg": "10"}, alias="champion")
    assert v.passed is passed
    text = " ".join(v.reasons if not passed else v.warnings)
    assert "no green/ metrics" in text


def test_no_budgets_and_no_evidence_is_not_gated_but_fails_a_check() -> None:
    empty = fp(missing=("the model version names no source run",))
    v = judge(model="m", version="1", footprint=empty, policy=POLICY, model_tags={})
    assert v.gated is False
    assert v.passed is False and "names no source run" in v.reasons[0]


@pytest.mark.parametrize(
    ("alias", "on_simulated", "passed"),
    [
        ("champion", "deny", False),  # simulated evidence cannot reach a gated alias
        ("champion", "allow", True),
        (None, "deny", True),  # a model-wide check reports it as a warning
    ],
)
def test_simulated_evidence(alias: str | None, on_simulated: str, passed: bool) -> None:
    policy = ModelPolicy(rule="defaults", on_simulated=on_simulated)  # type: ignore[arg-type]
    v = judge(model="m", version="1", footprint=fp(run(gpu="simulated")), policy=policy,
              model_tags={"green.budget.total_co2eq_kg": "100"}, alias=alias)
    assert v.passed is passed
    assert "simulated" in " ".join(v.reasons + v.warnings)


def test_simulated_on_ungated_alias_is_a_warning() -> None:
    policy = ModelPolicy(rule="defaults", gated_aliases=frozenset({"champion"}))
    v = judge(model="m", version="1", footprint=fp(run(gpu="simulated")), policy=policy,
              model_tags={"green.budget.total_co2eq_kg": "100"}, alias="sandbox")
    assert v.gated is False and v.passed is True


@pytest.mark.parametrize(("on_degraded", "passed"), [("allow", True), ("deny", False)])
def test_degraded_evidence(on_degraded: str, passed: bool) -> None:
    policy = ModelPolicy(rule="defaults", on_degraded=on_degraded)  # type: ignore[arg-type]
    v = judge(model="m", version="1", footprint=fp(run(status="degraded: nvml lost device 1")),
              policy=policy, model_tags={"green.budget.total_co2eq_kg": "100"})
    assert v.passed is passed
    assert "degraded: nvml lost device 1" in " ".join(v.reasons + v.warnings)


def test_lineage_footprint_sums_runs_and_recomputes_accuracy_per_kg() -> None:
    source = run("s", total=10.0, apk=0.09)  # accuracy 0.9
    sibling = run("t", role="sibling", total=20.0, apk=0.04)
    f = fp(source, sibling)
    assert f.total_co2eq_kg == pytest.approx(30.0)
    assert f.energy_kwh == pytest.approx(50.0)
    assert f.accuracy_per_kg == pytest.approx(0.9 / 30.0)


def test_verdict_outputs() -> None:
    v = judge(model="m", version="3", footprint=fp(run()), policy=POLICY,
              model_tags={"green.budget.total_co2eq_kg": "9"}, alias="champion")
    tags = v.evidence_tags()
    assert tags["green.gate.verdict"] == "fail"
    assert tags["green.gate.total_co2eq_kg"] == "10"
    assert tags["green.gate.energy_kwh"] == "25"
    assert "exceeds the total_co2eq_kg budget of 9" in tags["green.gate.reasons"]
    assert tags["green.gate.checked_at"].endswith("+00:00")
    md = v.to_markdown()
    assert "| `total_co2eq_kg` | 9 kg CO2eq | 10 kg CO2eq | **fail** |" in md
    d = v.to_dict()
    assert d["verdict"] == "fail" and d["checks"][0]["limit"] == 9.0 and d["checks"][0]["figure"] == 10.0
    assert v.summary().startswith("FAIL: m version 3 for alias 'champion'")


@pytest.mark.parametrize(
    ("market", "budget", "passed"),
    [(2.0, "2.5", True), (2.0, "2.0", True), (3.0, "2.5", False), (None, "100", False)],
)
def test_market_based_budget(market: float | None, budget: str, passed: bool) -> None:
    from dataclasses import replace

    source = replace(run(), co2eq_market_kg=market)
    v = judge(model="m", version="1", footprint=fp(source), policy=POLICY,
              model_tags={"green.budget.co2eq_market_kg": budget}, alias="champion", stage=None)
    assert v.passed is passed
    if not passed:
        assert "co2eq_market_kg" in v.reasons[0]  # a run without the figure fails closed


def test_market_budget_needs_every_lineage_run() -> None:
    from dataclasses import replace

    both = fp(replace(run(), co2eq_market_kg=1.0), replace(run("r2", "sibling"), co2eq_market_kg=0.5))
    assert both.co2eq_market_kg == pytest.approx(1.5)
    partial = fp(replace(run(), co2eq_market_kg=1.0), run("r2", "sibling"))
    assert partial.co2eq_market_kg is None
