"""What the carbon gate decides for each kind of request, apart from promotions.

Each rule takes the request message parsed exactly as MLflow's handler parses it, and the
server's stores, and returns what to record, or raises :class:`Deny` (a refusal an
administrator override may lift) or :class:`Forbidden` (a refusal it may not: MANAGE missing).
A referent the request itself names that does not exist is :class:`TargetMissing`: the handler
answers MLflow's own 404 and changes nothing. Anything else that is missing is a refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlflow_green.registry.policy import Policy, parse_budget_tag
from mlflow_green.registry.verdict import model_is_budgeted
from mlflow_green.tracking import schema

__all__: list[str] = []


class Deny(Exception):
    """A refusal: the message names the budget and the figure. An override may lift it."""


class Forbidden(Exception):
    """A refusal no administrator override lifts (the user lacks MANAGE permission)."""


class TargetMissing(Exception):
    """The request's own target does not exist: MLflow's handler answers it."""


@dataclass
class Pending:
    """Tags to write once the request is allowed (on a version, or on the model)."""

    name: str
    version: str | None
    tags: dict[str, str]
    on_model: bool = False


def not_found(exc: BaseException) -> bool:
    return getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def target(read: Callable[[], Any]) -> Any:
    """``read()``; :class:`TargetMissing` when what it reads (the request's target) is absent."""
    try:
        return read()
    except Exception as exc:
        if not_found(exc) or getattr(exc, "error_code", "") == "INVALID_PARAMETER_VALUE":
            raise TargetMissing(str(exc)) from None
        raise


def is_gate_tag(key: str) -> bool:
    return key.strip().lower().startswith(schema.GATE_PREFIX)


def is_run_evidence_tag(key: str) -> bool:
    low = key.strip().lower()
    return low == schema.TAG_STATUS or low.startswith("green.method.") or low == schema.TAG_LINEAGE


def refuse_gate_tags(keys: list[str]) -> None:
    for key in keys:
        if is_gate_tag(key):
            raise Deny(f"carbon gate: tag {key} is written by the gate only; clients may not set or delete it")


def run_id_of(msg: Any) -> str:
    """The run a run request acts on, under either spelling (``run_id`` or ``run_uuid``)."""
    fields = msg.DESCRIPTOR.fields_by_name
    run_id = msg.run_id if "run_id" in fields else ""
    if not run_id and "run_uuid" in fields:
        run_id = msg.run_uuid
    return str(run_id)


def check_copied_gate_tags(backend: Any, source: str, given: dict[str, str]) -> None:
    """``copy_model_version`` sends the source version's tags, ``green.gate.*`` included: those
    are accepted when they are exactly the source version's (written by the gate); any other
    ``green.gate.*`` tag at creation is refused. The new version's record is then recomputed."""
    if not given:
        return
    target = source[len("models:/") :].strip("/") if source.lower().startswith("models:/") else ""
    src_tags: dict[str, str] = {}
    if "/" in target or "@" in target:
        try:
            if "/" in target:
                src_name, src_version = target.rsplit("/", 1)
                mv = backend.get_model_version(src_name, src_version)
            else:
                src_name, alias = target.split("@", 1)
                mv = backend.get_model_version_by_alias(src_name, alias)
            src_tags = dict(mv.tags or {})
        except Exception as exc:
            if not not_found(exc) and getattr(exc, "error_code", "") != "INVALID_PARAMETER_VALUE":
                raise
    for key, value in given.items():
        if src_tags.get(key) != value:
            refuse_gate_tags([key])


_MAX_SCOPE = 1000


def evidence_to_write(current: dict[str, str], evidence: dict[str, str]) -> dict[str, str] | None:
    """The tags to write for ``evidence``, or None when the version already carries it.

    When the verdict, the figures and the reasons are those already on the version and only the
    target differs, the target is added to ``green.gate.scope`` (``staging,champion``).
    """
    ignored = (schema.GATE_CHECKED_AT, schema.GATE_SCOPE)
    same = bool(current.get(schema.GATE_CHECKED_AT)) and all(
        current.get(key) == value for key, value in evidence.items() if key not in ignored
    )
    if not same:
        return evidence
    scopes = [part for part in current.get(schema.GATE_SCOPE, "").split(",") if part]
    target = evidence.get(schema.GATE_SCOPE, "")
    if target in scopes or (not target and current.get(schema.GATE_SCOPE) == ""):
        return None
    joined = ",".join([*scopes, target]) if target else ""
    if len(joined) > _MAX_SCOPE:
        return evidence
    return {**evidence, schema.GATE_SCOPE: joined}


# -- budgets --------------------------------------------------------------------------------------

_NO_FLOOR = "none"


def strictest_key(budget_key: str) -> str:
    """The model tag that keeps the strictest value budget tag ``budget_key`` ever had."""
    rest = budget_key.strip().lower()[len(schema.BUDGET_PREFIX) :]
    return schema.GATE_STRICTEST_PREFIX + rest


def _strictest(tags: Mapping[str, str], key: str) -> tuple[float | None, bool]:
    """``(limit, malformed)``: the strictest value in force for budget ``key`` (any spelling),
    its server-kept record included; ``malformed`` when a value in force is not a number
    (then every change counts as loosening)."""
    wanted = key.strip().lower()
    floor = parse_budget_tag(key, "0")
    is_floor = bool(floor and floor.is_floor)
    values: list[float] = []
    malformed = False
    for k, v in tags.items():
        if k.strip().lower() != wanted:
            continue
        entry = parse_budget_tag(k, v)
        if entry is not None and entry.limit is not None:
            values.append(entry.limit)
        else:
            malformed = True
    record = tags.get(strictest_key(key))
    if record and record != _NO_FLOOR:
        entry = parse_budget_tag(key, record)
        if entry is not None and entry.limit is not None:
            values.append(entry.limit)
    if not values:
        return None, malformed
    return (max(values) if is_floor else min(values)), malformed


def budget_change(name: str, key: str, value: str, tags: Mapping[str, str]) -> Pending | None:
    """A budget tag set to ``value`` on model ``name`` (current tags ``tags``)."""
    new = parse_budget_tag(key, value)
    if new is None:
        return None
    if new.limit is None:
        # A malformed budget fails every check, but accepting it would let a later write
        # "repair" it to any figure: a two-step loosening. Budgets are plain numbers.
        raise Deny(
            f"carbon gate: {key}={value!r} is not a budget; give a plain non-negative number in "
            "the tag's unit (e.g. 50)"
        )
    strictest, malformed = _strictest(tags, key)
    if malformed:
        raise Deny(
            f"carbon gate: {key} of {name} holds a value that is not a number; replacing it may "
            "loosen the budget, so only an administrator override may change it"
        )
    if strictest is not None:
        looser = new.limit < strictest if new.is_floor else new.limit > strictest
        if looser:
            raise Deny(
                f"carbon gate: setting {key} to {new.limit:g} loosens the budget of {name} (the "
                f"strictest value in force was {strictest:g}); only an administrator override may "
                "loosen a budget"
            )
    return Pending(name, None, {strictest_key(key): repr(float(new.limit))}, on_model=True)


def budget_reset(name: str, key: str, value: str | None) -> Pending:
    """After an override: the record starts again from ``value`` (None: the tag is gone)."""
    entry = parse_budget_tag(key, value or "")
    kept = repr(float(entry.limit)) if entry is not None and entry.limit is not None else _NO_FLOOR
    return Pending(name, None, {strictest_key(key): kept}, on_model=True)


def check_new_model_tags(tags: list[tuple[str, str]]) -> None:
    """Tags given at ``registered-models/create``: validated as at set-tag."""
    refuse_gate_tags([k for k, _ in tags])
    for key, value in tags:
        entry = parse_budget_tag(key, value)
        if entry is not None and entry.limit is None:
            raise Deny(
                f"carbon gate: {key}={value!r} is not a budget; give a plain non-negative number "
                "in the tag's unit (e.g. 50)"
            )


def model_leaves_budgets(policy: Policy, name: str, tags: Mapping[str, str], what: str) -> None:
    """Rename or delete of a budgeted model: loosening (MANAGE plus the override)."""
    budgeted_tags = [k for k in tags if parse_budget_tag(k, tags[k]) is not None]
    if budgeted_tags or model_is_budgeted(policy.for_model(name), tags):
        why = f"budget tags {', '.join(sorted(budgeted_tags))}" if budgeted_tags else "the server policy"
        raise Deny(
            f"carbon gate: {what} {name}, a model with budgets ({why}), removes them as surely as "
            "deleting the tags; only an administrator override may do it"
        )
