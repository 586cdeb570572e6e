"""Carbon budgets and the gate policy: registered-model tags and the server policy file.

Budgets come from two places and the stricter one always wins:

- registered-model tags ``green.budget.<key>`` and ``green.budget.<alias-or-stage>.<key>``;
- the policy file (``MLFLOW_GREEN_POLICY`` or ``--policy``), YAML::

      defaults:                       # every model
        gated_aliases: ["*"]          # "*" = every alias; [] = none
        gated_stages: [Staging, Production]
        on_missing: deny              # no green/ metrics: deny | allow
        on_simulated: deny            # simulated methods, on gated aliases/stages: deny | allow
        on_degraded: allow            # green.status degraded: deny | allow
        include_lineage: false        # parent run, its other children, green.lineage runs
        gate_create: copies           # versions created in a budgeted model that are checked
                                      # against its model-wide budgets: copies | all | none
        on_unattested: allow          # no valid signed attestation (green/attestation.json
                                      # by a trusted key) on a gated alias/stage: deny | allow
        budgets:
          total_co2eq_kg: 100
          champion: {total_co2eq_kg: 20}   # per alias or stage
      models:                         # first matching glob wins; unset fields inherit defaults
        "prod-*":
          include_lineage: true
          budgets: {energy_kwh: 500}
          on_unattested: deny
      trusted_keys:                   # public keys whose signed runs count as attested
        - {id: ci-runner, public_key: keys/ci-runner.pub}   # a path (relative to this file)
                                                            # or the PEM text inline

Because the stricter figure wins, a tag can tighten a policy budget and never loosen it.
A malformed budget value never passes: it becomes a failed check naming its tag.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlflow_green import _settings
from mlflow_green.attestation import TrustedKey
from mlflow_green.errors import ConfigError
from mlflow_green.tracking import schema

__all__ = [
    "BUDGET_KEYS",
    "MIN_KEYS",
    "BudgetEntry",
    "ModelPolicy",
    "Policy",
    "load_policy",
    "parse_budget_tag",
    "parse_budget_value",
    "policy_from_env",
]

BUDGET_KEYS: tuple[str, ...] = schema.BUDGET_KEYS
# Budgets that are floors (the figure must reach them); every other key is a ceiling.
MIN_KEYS: frozenset[str] = frozenset({schema.BUDGET_MIN_ACCURACY_PER_KG})
DEFAULT_GATED_STAGES: frozenset[str] = frozenset({"staging", "production"})
ALL = "*"

Decision = Literal["deny", "allow"]
GateCreate = Literal["copies", "all", "none"]
_DECISIONS: tuple[str, ...] = ("deny", "allow")
_RULE_FIELDS = {
    "gated_aliases",
    "gated_stages",
    "on_missing",
    "on_simulated",
    "on_degraded",
    "include_lineage",
    "gate_create",
    "on_unattested",
    "budgets",
}


@dataclass(frozen=True)
class BudgetEntry:
    """One budget as declared: ``limit`` is None when the declared value is malformed."""

    key: str
    scope: str | None  # alias or stage (lower case); None for the model-wide budget
    limit: float | None
    source: str  # e.g. "tag green.budget.champion.total_co2eq_kg" or "policy models['prod-*']"
    error: str | None = None  # why the value is malformed

    @property
    def is_floor(self) -> bool:
        return self.key in MIN_KEYS


def parse_budget_value(raw: object) -> tuple[float | None, str | None]:
    """``(value, None)`` for a finite, non-negative number, else ``(None, why)``."""
    if isinstance(raw, bool):
        return None, f"{raw!r} is not a number"
    text = raw.strip() if isinstance(raw, str) else raw
    if text == "" or text is None:
        return None, "the value is empty"
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None, f"{raw!r} is not a plain number (write e.g. 50 for 50 kg, no unit)"
    if not math.isfinite(value):
        return None, f"{raw!r} is not a finite number"
    if value < 0:
        return None, f"{raw!r} is negative"
    return value, None


def parse_budget_tag(key: str, value: str) -> BudgetEntry | None:
    """A ``green.budget.*`` tag as a BudgetEntry (malformed ones included); None for other tags."""
    # Case-insensitive: "Green.Budget.Total_CO2eq_kg" must not slip past as an unrelated tag.
    low = key.strip().lower()
    if not low.startswith(schema.BUDGET_PREFIX):
        return None
    rest = low[len(schema.BUDGET_PREFIX) :]
    source = f"tag {key}"
    if rest in BUDGET_KEYS:
        scope, budget_key = None, rest
    else:
        scope_part, _, budget_key = rest.rpartition(".")
        if not scope_part or budget_key not in BUDGET_KEYS:
            known = ", ".join(BUDGET_KEYS)
            return BudgetEntry(
                key=rest or "?",
                scope=None,
                limit=None,
                source=source,
                error=f"unknown budget tag (use green.budget.[<alias-or-stage>.]<key>, key one of {known})",
            )
        scope = scope_part.lower()
    limit, error = parse_budget_value(value)
    return BudgetEntry(key=budget_key, scope=scope, limit=limit, source=source, error=error)


def budgets_from_tags(tags: Mapping[str, str]) -> list[BudgetEntry]:
    entries = [parse_budget_tag(k, v) for k, v in sorted(tags.items())]
    return [e for e in entries if e is not None]


@dataclass(frozen=True)
class ModelPolicy:
    """The policy that applies to one registered model (defaults merged with its rule)."""

    rule: str  # "defaults", "models['prod-*']" or "built-in defaults"
    gated_aliases: frozenset[str] = frozenset({ALL})
    gated_stages: frozenset[str] = DEFAULT_GATED_STAGES
    on_missing: Decision = "deny"
    on_simulated: Decision = "deny"
    on_degraded: Decision = "allow"
    include_lineage: bool = False
    gate_create: GateCreate = "copies"
    budgets: tuple[BudgetEntry, ...] = ()
    on_unattested: Decision = "allow"
    trusted_keys: tuple[TrustedKey, ...] = ()

    def alias_gated(self, alias: str) -> bool:
        return ALL in self.gated_aliases or alias.lower() in self.gated_aliases

    def stage_gated(self, stage: str) -> bool:
        return ALL in self.gated_stages or stage.lower() in self.gated_stages


@dataclass(frozen=True)
class _Rule:
    pattern: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Policy:
    """A parsed policy file (or the built-in defaults when there is none)."""

    source: str = "built-in defaults"
    defaults: Mapping[str, Any] = field(default_factory=dict)
    rules: tuple[_Rule, ...] = ()
    trusted_keys: tuple[TrustedKey, ...] = ()

    def for_model(self, name: str) -> ModelPolicy:
        """The merged policy for registered model ``name``: defaults, then the first matching rule."""
        merged: dict[str, Any] = dict(self.defaults)
        prefix = f"policy {self.source} " if self.source != "built-in defaults" else ""
        label = "defaults" if prefix else self.source
        # (scope, key) -> (limit, where it was declared)
        declared: dict[tuple[str | None, str], tuple[float, str]] = {
            k: (v, f"{prefix}defaults") for k, v in self.defaults.get("budgets", {}).items()
        }
        for rule in self.rules:
            if fnmatch.fnmatchcase(name, rule.pattern):
                label = f"models[{rule.pattern!r}]"
                merged.update(rule.fields)
                # Budgets merge key by key: a rule overrides the keys it names, inherits the rest.
                declared.update(
                    {k: (v, f"{prefix}{label}") for k, v in rule.fields.get("budgets", {}).items()}
                )
                break
        budgets = tuple(
            BudgetEntry(key=key, scope=scope, limit=limit, source=where)
            for (scope, key), (limit, where) in sorted(
                declared.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])
            )
        )
        return ModelPolicy(
            rule=label,
            gated_aliases=merged.get("gated_aliases", frozenset({ALL})),
            gated_stages=merged.get("gated_stages", DEFAULT_GATED_STAGES),
            on_missing=merged.get("on_missing", "deny"),
            on_simulated=merged.get("on_simulated", "deny"),
            on_degraded=merged.get("on_degraded", "allow"),
            include_lineage=merged.get("include_lineage", False),
            gate_create=merged.get("gate_create", "copies"),
            budgets=budgets,
            on_unattested=merged.get("on_unattested", "allow"),
            trusted_keys=self.trusted_keys,
        )


def _names(value: Any, where: str) -> frozenset[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where} must be a list of names, e.g. [champion, production] or ['*']")
    return frozenset(v.strip().lower() for v in value)


def _decision(value: Any, where: str) -> Decision:
    if value not in _DECISIONS:
        raise ConfigError(f"{where}={value!r} must be 'deny' or 'allow'")
    return value  # type: ignore[no-any-return]


def _budgets(value: Any, where: str) -> dict[tuple[str | None, str], float]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping of budget keys (or aliases/stages) to numbers")
    out: dict[tuple[str | None, str], float] = {}
    for key, raw in value.items():
        if isinstance(raw, Mapping):
            scope = str(key).strip().lower()
            for sub_key, sub_raw in raw.items():
                out[(scope, _budget_key(sub_key, f"{where}.{key}"))] = _budget_number(
                    sub_raw, f"{where}.{key}.{sub_key}"
                )
        else:
            out[(None, _budget_key(key, where))] = _budget_number(raw, f"{where}.{key}")
    return out


def _budget_key(key: Any, where: str) -> str:
    if key not in BUDGET_KEYS:
        raise ConfigError(f"{where}: unknown budget {key!r}; use one of {', '.join(BUDGET_KEYS)}")
    return str(key)


def _budget_number(raw: Any, where: str) -> float:
    value, error = parse_budget_value(raw)
    if value is None:
        raise ConfigError(f"{where}: {error}")
    return value


def _rule(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping")
    unknown = sorted(set(map(str, raw)) - _RULE_FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field {unknown[0]!r}; known fields: {', '.join(sorted(_RULE_FIELDS))}"
        )
    out: dict[str, Any] = {}
    for key, value in raw.items():
        at = f"{where}.{key}"
        if key in ("gated_aliases", "gated_stages"):
            out[key] = _names(value, at)
        elif key in ("on_missing", "on_simulated", "on_degraded", "on_unattested"):
            out[key] = _decision(value, at)
        elif key == "gate_create":
            if value not in ("copies", "all", "none"):
                raise ConfigError(f"{at}={value!r} must be 'copies', 'all' or 'none'")
            out[key] = value
        elif key == "include_lineage":
            if not isinstance(value, bool):
                raise ConfigError(f"{at}={value!r} must be true or false")
            out[key] = value
        else:
            out[key] = _budgets(value, at)
    return out


def parse_policy(data: Any, source: str, *, base: Path | None = None) -> Policy:
    """Validate a policy document (already loaded from YAML); ``base`` resolves relative key paths."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"policy file {source}: the top level must be a mapping with 'defaults' and/or 'models'")
    unknown = sorted(set(map(str, data)) - {"defaults", "models", "version", "trusted_keys"})
    if unknown:
        raise ConfigError(
            f"policy file {source}: unknown section {unknown[0]!r}; use 'defaults', 'models' and 'trusted_keys'"
        )
    if data.get("version", 1) != 1:
        raise ConfigError(f"policy file {source}: version {data.get('version')!r} is not supported; use 1")
    try:
        defaults = _rule(data.get("defaults"), "defaults")
        models = data.get("models") or {}
        if not isinstance(models, Mapping):
            raise ConfigError("models must be a mapping of model-name globs to rules")
        rules = tuple(
            _Rule(pattern=str(pattern), fields=_rule(raw, f"models[{pattern!r}]"))
            for pattern, raw in models.items()
        )
        keys = _trusted_keys(data.get("trusted_keys"), base)
    except ConfigError as exc:
        raise ConfigError(f"policy file {source}: {exc}") from None
    return Policy(source=source, defaults=defaults, rules=rules, trusted_keys=keys)


def _trusted_keys(raw: Any, base: Path | None) -> tuple[TrustedKey, ...]:
    """``trusted_keys: [{id, public_key}]``: each public key a path (relative to the policy
    file) or inline PEM; any malformed entry is a ConfigError naming it."""
    from mlflow_green.attestation import load_public_key

    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("trusted_keys must be a list of {id: NAME, public_key: PATH-or-PEM}")
    out: list[TrustedKey] = []
    for i, item in enumerate(raw):
        at = f"trusted_keys[{i}]"
        if not isinstance(item, Mapping) or set(map(str, item)) - {"id", "public_key"}:
            raise ConfigError(f"{at} must be {{id: NAME, public_key: PATH-or-PEM}}")
        name, key = item.get("id"), item.get("public_key")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{at}.id must be a non-empty name")
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"{at}.public_key must be a path to a .pub file or PEM text")
        if "-----BEGIN" not in key and base is not None and not Path(key).expanduser().is_absolute():
            key = str(base / key)
        out.append(load_public_key(key, name=name.strip(), what=f"{at} ({name.strip()})"))
    return tuple(out)


def load_policy(path: str | Path) -> Policy:
    """Read and validate a YAML policy file; ConfigError (one line) when it is invalid."""
    import yaml

    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"policy file {p}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"policy file {p}: not valid YAML{where} ({problem})") from None
    return parse_policy(data, str(p), base=p.parent)


def policy_from_env(path: str | Path | None = None) -> Policy:
    """The policy named by ``path``, else by MLFLOW_GREEN_POLICY, else the built-in defaults."""
    chosen = path if path is not None else _settings.env_str(_settings.ENV_POLICY)
    if chosen is None:
        return Policy()
    return load_policy(chosen)
