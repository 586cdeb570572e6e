"""The verdict of the carbon gate: each budget, the figure, pass or fail, one plain sentence.

:func:`judge` is pure: a footprint, the model's policy and its budget tags in, a Verdict out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mlflow_green.attestation import Verification
from mlflow_green.registry.footprint import Footprint
from mlflow_green.registry.policy import BudgetEntry, ModelPolicy, budgets_from_tags
from mlflow_green.tracking import schema

__all__ = ["BudgetCheck", "Verdict", "attestation_text", "judge", "model_is_budgeted"]

# MLflow rejects tag values longer than this on some stores; reasons are cut to fit.
_MAX_TAG_VALUE = 4000
_UNITS = {
    schema.BUDGET_TOTAL_CO2EQ_KG: "kg CO2eq",
    schema.BUDGET_CO2EQ_KG: "kg CO2eq",
    schema.BUDGET_ENERGY_KWH: "kWh",
    schema.BUDGET_MIN_ACCURACY_PER_KG: "accuracy per kg CO2eq",
    schema.BUDGET_CO2EQ_MARKET_KG: "kg CO2",
}
_WHAT = {
    schema.BUDGET_TOTAL_CO2EQ_KG: "total CO2eq (operational + embodied)",
    schema.BUDGET_CO2EQ_KG: "operational CO2eq",
    schema.BUDGET_ENERGY_KWH: "energy",
    schema.BUDGET_MIN_ACCURACY_PER_KG: "accuracy per kg CO2eq",
    schema.BUDGET_CO2EQ_MARKET_KG: "market-based operational CO2 (Scope 2)",
}


def _fmt(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"{value:.6g}"


@dataclass(frozen=True)
class BudgetCheck:
    """One budget against one figure."""

    key: str  # e.g. "total_co2eq_kg"
    scope: str | None  # the alias/stage the budget is declared for; None = model-wide
    limit: float | None  # None when the declared value is malformed
    figure: float | None  # None when the footprint lacks it
    passed: bool
    source: str  # the tag or policy rule that declared the binding budget
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": self.key,
            "scope": self.scope,
            "limit": self.limit,
            "figure": self.figure,
            "unit": _UNITS.get(self.key, ""),
            "passed": self.passed,
            "source": self.source,
            "sentence": self.sentence,
        }


@dataclass(frozen=True)
class Verdict:
    """The gate's answer for one model version at one alias, stage or none.

    ``passed`` is the decision. ``gated`` says whether the alias/stage is gated at all (a
    promotion to an ungated alias is never refused, whatever ``passed`` says).
    """

    model: str
    version: str
    alias: str | None
    stage: str | None
    gated: bool
    passed: bool
    checks: tuple[BudgetCheck, ...]
    footprint: Footprint
    reasons: tuple[str, ...]  # one sentence per failure, first the most important
    warnings: tuple[str, ...] = ()
    policy_rule: str = "built-in defaults"
    # The attestation of the version's runs; None when the policy does not ask (no
    # trusted_keys, on_unattested: allow).
    attestation: Verification | None = None
    checked_at: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )

    @property
    def target(self) -> str:
        if self.alias:
            return f"alias '{self.alias}'"
        if self.stage:
            return f"stage '{self.stage}'"
        return "its model-wide budgets"

    def summary(self) -> str:
        """One line: the decision and the first reason."""
        head = f"{self.model} version {self.version} for {self.target}"
        if self.passed:
            figures = f"{_fmt(self.footprint.total_co2eq_kg)} kg CO2eq, {_fmt(self.footprint.energy_kwh)} kWh"
            return f"PASS: {head} is within budget ({figures})"
        return f"FAIL: {head}: {self.reasons[0] if self.reasons else 'refused'}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "alias": self.alias,
            "stage": self.stage,
            "gated": self.gated,
            "verdict": "pass" if self.passed else "fail",
            "passed": self.passed,
            "total_co2eq_kg": self.footprint.total_co2eq_kg,
            "co2eq_kg": self.footprint.co2eq_kg,
            "energy_kwh": self.footprint.energy_kwh,
            "embodied_kg": self.footprint.embodied_kg,
            "accuracy_per_kg": self.footprint.accuracy_per_kg,
            "checks": [c.to_dict() for c in self.checks],
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
            "policy_rule": self.policy_rule,
            "checked_at": self.checked_at,
            "footprint": self.footprint.to_dict(),
            "attestation": self.attestation.as_dict() if self.attestation is not None else None,
        }

    def to_markdown(self) -> str:
        """A Markdown table for a CI job summary."""
        mark = "✅ pass" if self.passed else "❌ fail"
        lines = [
            f"### Carbon gate: {self.model} v{self.version} ({self.target}) — {mark}",
            "",
            "| budget | limit | figure | result | |",
            "|---|---|---|---|---|",
        ]
        for c in self.checks:
            unit = _UNITS.get(c.key, "")
            res = "pass" if c.passed else "**fail**"
            lines.append(
                f"| `{c.key}`{' @' + c.scope if c.scope else ''} | {_fmt(c.limit)} {unit} | "
                f"{_fmt(c.figure)} {unit} | {res} | {c.sentence} |"
            )
        if not self.checks:
            lines.append("| (no budgets) | | | | |")
        lines.append("")
        fp = self.footprint
        lines.append(
            f"Footprint: {_fmt(fp.total_co2eq_kg)} kg CO2eq total, {_fmt(fp.co2eq_kg)} kg operational, "
            f"{_fmt(fp.energy_kwh)} kWh over {len(fp.runs)} run(s)."
        )
        if self.attestation is not None:
            lines.append(f"Attestation: {attestation_text(self.attestation)}.")
        for r in self.reasons:
            lines.append(f"- ❌ {r}")
        for w in self.warnings:
            lines.append(f"- ⚠️ {w}")
        return "\n".join(lines) + "\n"

    def evidence_tags(self) -> dict[str, str]:
        """The ``green.gate.*`` tags written on the model version."""
        fp = self.footprint
        reasons = "; ".join(self.reasons) if self.reasons else "within every budget"
        if self.warnings:
            reasons += " (warnings: " + "; ".join(self.warnings) + ")"
        extra = {}
        if self.attestation is not None:
            extra[schema.GATE_ATTESTATION] = attestation_text(self.attestation)[:_MAX_TAG_VALUE]
        return {
            **extra,
            schema.GATE_VERDICT: "pass" if self.passed else "fail",
            schema.GATE_TOTAL_CO2EQ_KG: _fmt(fp.total_co2eq_kg) if fp.total_co2eq_kg is not None else "",
            schema.GATE_ENERGY_KWH: _fmt(fp.energy_kwh) if fp.energy_kwh is not None else "",
            schema.GATE_CHECKED_AT: self.checked_at,
            schema.GATE_REASONS: reasons[:_MAX_TAG_VALUE],
            schema.GATE_SCOPE: self.alias or self.stage or "",
        }


def attestation_text(result: Verification | Mapping[str, Any]) -> str:
    """``signed:<key-id> (<name>)`` or ``unattested: <reason>: <detail>`` (the evidence tag),
    from a verification or its JSON (``Verification.as_dict()``)."""
    data = result if isinstance(result, Mapping) else result.as_dict()
    if data["verified"]:
        name = data.get("key_name")
        return f"signed:{data['key_id']}" + (f" ({name})" if name else "")
    return f"unattested: {data['reason']}: {data['detail']}"


def model_is_budgeted(policy: ModelPolicy, tags: Mapping[str, str]) -> bool:
    """True when any budget (from the policy or a tag, even a malformed one) applies to the model."""
    return bool(policy.budgets) or any(
        k.strip().lower().startswith(schema.BUDGET_PREFIX) for k in tags
    )


def _stricter(a: BudgetEntry, b: BudgetEntry) -> BudgetEntry:
    assert a.limit is not None and b.limit is not None
    if a.is_floor:
        return b if b.limit > a.limit else a
    return b if b.limit < a.limit else a


def _check(entry: BudgetEntry, fp: Footprint, measured: bool) -> BudgetCheck:
    figure = fp.figure(entry.key)
    limit = entry.limit
    what = _WHAT[entry.key]
    unit = _UNITS[entry.key]
    assert limit is not None
    if figure is None:
        why = "no footprint was measured" if not measured else f"the runs logged no {what}"
        return BudgetCheck(
            entry.key, entry.scope, limit, None, False, entry.source,
            f"Budget {entry.key} ({entry.source}) cannot be checked: {why}.",
        )
    if entry.is_floor:
        ok = figure >= limit or math.isclose(figure, limit, rel_tol=1e-12)
        relation = "reaches" if ok else "is below"
    else:
        ok = figure <= limit or math.isclose(figure, limit, rel_tol=1e-12)
        relation = "is within" if ok else "exceeds"
    sentence = (
        f"{what[0].upper() + what[1:]} {_fmt(figure)} {unit} {relation} the {entry.key} budget of "
        f"{_fmt(limit)} {unit} ({entry.source})."
    )
    return BudgetCheck(entry.key, entry.scope, limit, figure, ok, entry.source, sentence)


def _budget_checks(
    policy: ModelPolicy,
    model_tags: Mapping[str, str],
    scope: str | None,
    footprint: Footprint,
    reasons: list[str],
    warnings: list[str],
) -> tuple[list[BudgetCheck], dict[str, BudgetEntry]]:
    """Every budget's check (malformed tags of any scope fail) and the binding budget per key;
    failures go to ``reasons``, allowed gaps to ``warnings`` (in order)."""
    entries: list[BudgetEntry] = [*policy.budgets, *budgets_from_tags(model_tags)]
    applicable = [e for e in entries if e.scope is None or e.scope == scope]
    checks: list[BudgetCheck] = []

    # Malformed tags fail whatever their scope: a typo must never leave a budget silently unset.
    for e in entries:
        if e.limit is None:
            sentence = f"Budget tag {e.source[4:] if e.source.startswith('tag ') else e.source} is malformed: {e.error}; it counts as a failed check."
            checks.append(BudgetCheck(e.key, e.scope, None, None, False, e.source, sentence))
            reasons.append(sentence)

    measured = footprint.measured
    binding: dict[str, BudgetEntry] = {}
    for e in applicable:
        if e.limit is None:
            continue
        binding[e.key] = _stricter(binding[e.key], e) if e.key in binding else e
    evidence_allowed_missing = policy.on_missing == "allow"
    for key in schema.BUDGET_KEYS:
        if key not in binding:
            continue
        check = _check(binding[key], footprint, measured)
        if check.figure is None and evidence_allowed_missing:
            # The policy lets versions without measurements through: report, don't block.
            check = BudgetCheck(
                check.key, check.scope, check.limit, None, True, check.source,
                check.sentence + " Allowed by on_missing: allow.",
            )
            warnings.append(check.sentence)
        checks.append(check)
        if not check.passed:
            reasons.append(check.sentence)
    return checks, binding


def _evidence_rules(
    footprint: Footprint,
    policy: ModelPolicy,
    binding: Mapping[str, BudgetEntry],
    attestation: Verification | None,
    gated_target: str | None,
    reasons: list[str],
    warnings: list[str],
) -> None:
    """The policy's evidence rules (missing, simulated, degraded, unattested evidence), each
    a reason or a warning; a missing-evidence reason goes first, before the checks it voided."""
    if footprint.missing:
        text = "Missing evidence: " + "; ".join(footprint.missing) + "."
        if policy.on_missing == "deny":
            reasons.insert(0, text)  # the root cause comes before the checks it made impossible
        else:
            warnings.append(text + " Allowed by on_missing: allow.")

    simulated = footprint.simulated_runs
    if simulated:
        text = (
            f"The footprint comes from simulated measurements (run {', '.join(simulated)}), "
            "not real hardware."
        )
        if policy.on_simulated == "deny" and gated_target is not None:
            reasons.append(text + f" Simulated evidence cannot promote to a gated {gated_target}.")
        else:
            warnings.append(text)

    for run in footprint.degraded_runs:
        text = f"Run {run.run_id} is {run.status}."
        if policy.on_degraded == "deny":
            reasons.append(text + " Degraded evidence is refused by on_degraded: deny.")
        else:
            warnings.append(text)
    if (
        attestation is not None
        and attestation.verified
        and schema.ACCURACY_PER_KG in attestation.unattested
        and schema.BUDGET_MIN_ACCURACY_PER_KG in binding
    ):
        warnings.append(
            f"{schema.ACCURACY_PER_KG} was derived from an accuracy the run logged itself, not "
            "handed to mlflow_green: it is not covered by the attestation."
        )
    if attestation is not None and not attestation.verified:
        text = f"The evidence is not attested ({attestation.reason}): {attestation.detail}."
        if policy.on_unattested == "deny" and gated_target is not None:
            reasons.append(text + f" Unattested evidence cannot promote to a gated {gated_target} (on_unattested: deny).")
        else:
            warnings.append(text)
    warnings.extend(footprint.notes)


def judge(
    *,
    model: str,
    version: str,
    footprint: Footprint,
    policy: ModelPolicy,
    model_tags: Mapping[str, str],
    alias: str | None = None,
    stage: str | None = None,
    attestation: Verification | None = None,
) -> Verdict:
    """Decide a version against the budgets of its model at ``alias``/``stage`` (or model-wide).

    Every applicable budget is checked; per key the strictest one binds (so a tag can tighten a
    policy budget and never loosen it). Malformed budget tags fail. Evidence rules (missing,
    simulated, degraded) come from the policy.
    """
    scope = (alias or stage or "").lower() or None
    if alias:
        gated = model_is_budgeted(policy, model_tags) and policy.alias_gated(alias)
    elif stage:
        gated = model_is_budgeted(policy, model_tags) and policy.stage_gated(stage)
    else:
        gated = model_is_budgeted(policy, model_tags)

    reasons: list[str] = []
    warnings: list[str] = []
    checks, binding = _budget_checks(policy, model_tags, scope, footprint, reasons, warnings)
    # A gated alias or stage that simulated or unattested evidence may not reach (by policy).
    gated_target = ("alias" if alias else "stage") if scope is not None and gated else None
    _evidence_rules(footprint, policy, binding, attestation, gated_target, reasons, warnings)

    return Verdict(
        model=model,
        version=str(version),
        alias=alias,
        stage=stage,
        gated=gated,
        passed=not reasons,
        checks=tuple(checks),
        footprint=footprint,
        reasons=tuple(reasons),
        warnings=tuple(warnings),
        policy_rule=policy.rule,
        attestation=attestation,
    )

