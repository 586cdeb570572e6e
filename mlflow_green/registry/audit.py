"""One verdict for a promotion target, and the audit of targets promoted before today's budgets.

:func:`verdict_for` is the single place the evaluation endpoint (``POST /green/api/check``), the
audit and ``mlflow-green check`` obtain a verdict; :func:`refused` is the single rule turning a
verdict into the gate's answer (would a promotion to this target be refused?).

:func:`audit` walks every alias and every stage of the registered models and lists those whose
version breaks the budgets in force now (a budget set or tightened after the promotion, a policy
change): the list ``mlflow-green audit`` prints and the ``/green`` page shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mlflow_green.registry.api import evaluate_with
from mlflow_green.registry.footprint import Backend
from mlflow_green.registry.policy import Policy
from mlflow_green.registry.verdict import Verdict, model_is_budgeted

__all__ = ["AuditEntry", "AuditReport", "audit", "refused", "verdict_for"]

_PAGE = 1000
_PROMPT_TAG = "mlflow.prompt.is_prompt"


def verdict_for(
    backend: Backend,
    policy: Policy,
    name: str,
    version: str,
    *,
    alias: str | None = None,
    stage: str | None = None,
) -> Verdict:
    """The verdict the gate reaches for ``name``/``version`` at ``alias`` or ``stage``."""
    return evaluate_with(backend, policy, name, str(version), alias=alias, stage=stage)


def refused(verdict: Verdict | Mapping[str, Any]) -> bool:
    """Whether the gate refuses: a failed verdict, unless it is for an alias or stage the policy
    does not gate (promoting there is never refused). Model-wide checks refuse on any failure."""
    data = verdict.to_dict() if isinstance(verdict, Verdict) else verdict
    if data.get("passed"):
        return False
    ungated_target = data.get("gated") is False and bool(data.get("alias") or data.get("stage"))
    return not ungated_target


@dataclass(frozen=True)
class AuditEntry:
    """An alias or stage whose version breaks the budgets now in force."""

    model: str
    version: str
    alias: str | None
    stage: str | None
    reasons: tuple[str, ...]
    total_co2eq_kg: float | None = None
    energy_kwh: float | None = None
    checks: tuple[dict[str, Any], ...] = ()

    @property
    def target(self) -> str:
        return f"alias '{self.alias}'" if self.alias else f"stage '{self.stage}'"

    def sentence(self) -> str:
        first = self.reasons[0] if self.reasons else "refused"
        return f"{self.model} {self.target} -> version {self.version}: {first}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        out["checks"] = list(self.checks)
        return out


@dataclass(frozen=True)
class AuditReport:
    """The audit: violations, plus how much was examined."""

    violations: tuple[AuditEntry, ...]
    models_checked: int
    targets_checked: int
    errors: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "violations": [v.to_dict() for v in self.violations],
            "models_checked": self.models_checked,
            "targets_checked": self.targets_checked,
            "errors": list(self.errors),
        }


def _pages(search: Callable[..., Any], **kwargs: Any) -> Iterator[Any]:
    token: str | None = None
    while True:
        batch = search(max_results=_PAGE, page_token=token, **kwargs)
        yield from batch
        token = getattr(batch, "token", None)
        if not token:
            return


def _quote(name: str) -> str:
    return f'"{name}"' if "'" in name else f"'{name}'"


def _tags(entity: Any) -> dict[str, str]:
    tags = getattr(entity, "tags", None) or {}
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    return {t.key: t.value for t in tags}


def _aliases(model: Any) -> list[tuple[str, str]]:
    raw = getattr(model, "aliases", None) or {}
    pairs = raw.items() if isinstance(raw, dict) else ((a.alias, a.version) for a in raw)
    return sorted((str(a), str(v)) for a, v in pairs)


def _targets(registry: Any, model: Any, policy: Policy) -> list[tuple[str, str | None, str | None]]:
    """(version, alias, stage) for every gated alias and gated stage of ``model``."""
    rule = policy.for_model(str(model.name))
    out: list[tuple[str, str | None, str | None]] = [
        (version, alias, None) for alias, version in _aliases(model) if rule.alias_gated(alias)
    ]
    versions = _pages(registry.search_model_versions, filter_string=f"name={_quote(str(model.name))}")
    for mv in versions:
        stage = str(getattr(mv, "current_stage", None) or "None")
        if stage not in ("None", "Archived") and rule.stage_gated(stage):
            out.append((str(mv.version), None, stage))
    return out


def _entry(verdict: Verdict) -> AuditEntry:
    data = verdict.to_dict()
    return AuditEntry(
        model=verdict.model,
        version=verdict.version,
        alias=verdict.alias,
        stage=verdict.stage,
        reasons=verdict.reasons,
        total_co2eq_kg=data["total_co2eq_kg"],
        energy_kwh=data["energy_kwh"],
        checks=tuple(c for c in data["checks"] if not c["passed"]),
    )


def _audit_model(
    backend: Backend, registry: Any, policy: Policy, model: Any
) -> tuple[list[AuditEntry], int, list[str]]:
    name = str(model.name)
    if not model_is_budgeted(policy.for_model(name), _tags(model)):
        return [], 0, []
    found: list[AuditEntry] = []
    errors: list[str] = []
    targets = _targets(registry, model, policy)
    for version, alias, stage in targets:
        try:
            verdict = verdict_for(backend, policy, name, version, alias=alias, stage=stage)
        except Exception as exc:  # fail closed: a target that cannot be judged is listed
            text = " ".join(str(exc).split())[:300] or type(exc).__name__
            why = f"could not be evaluated ({type(exc).__name__}: {text})"
            found.append(AuditEntry(name, version, alias, stage, (why,)))
            errors.append(f"{name} version {version}: {why}")
            continue
        if refused(verdict):
            found.append(_entry(verdict))
    return found, len(targets), errors


def audit(
    backend: Backend,
    registry: Any,
    policy: Policy,
    *,
    model: str | None = None,
    can_read: Callable[[str], bool] | None = None,
) -> AuditReport:
    """Every gated alias and stage whose version the gate would refuse today.

    ``registry`` is anything with MLflow's ``search_registered_models`` /
    ``search_model_versions`` / ``get_registered_model`` (an ``MlflowClient`` or the server's
    registry store); ``backend`` reads the footprints. ``can_read`` (a model name in, a bool out)
    leaves out the models the requesting user may not read.
    """
    if model is not None:
        models: list[Any] = [registry.get_registered_model(model)]
    else:
        models = [
            m
            for m in _pages(registry.search_registered_models)
            if _tags(m).get(_PROMPT_TAG, "").lower() != "true"
        ]
    if can_read is not None:
        models = [m for m in models if can_read(str(m.name))]
    violations: list[AuditEntry] = []
    errors: list[str] = []
    targets = 0
    for m in sorted(models, key=lambda m: str(m.name).lower()):
        found, n, errs = _audit_model(backend, registry, policy, m)
        violations.extend(found)
        errors.extend(errs)
        targets += n
    return AuditReport(tuple(violations), len(models), targets, tuple(errors))
