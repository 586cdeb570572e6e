"""The carbon gate inside ``mlflow server``: a Flask ``before_request`` hook on MLflow's own app.

Requests are recognised by the handler Flask routed them to (``request.endpoint``), not by their
spelling, so every path variant that reaches a registry handler meets the gate, and one that
reaches no handler changes nothing. Bodies are parsed by MLflow's own request parser into the
handler's own request message, so the gate sees exactly the fields the handler acts on (JSON
body or query string, every field alias, chunked or not).

A version's footprint is computed once, when the version is created (again when its source run
ends), and kept on the version as ``green.gate.footprint``, which no client may write; promotions
judge that record. A refusal is MLflow error JSON ``PERMISSION_DENIED`` with HTTP 403 — never a
5xx, which MLflow clients retry. An error inside the gate refuses too (fail closed).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from mlflow_green.errors import ConfigError
from mlflow_green.registry import _gate_rules as rules
from mlflow_green.registry import _mlflow_seams as seams
from mlflow_green.registry import events
from mlflow_green.registry._gate_rules import Deny, Forbidden, Pending, TargetMissing
from mlflow_green.registry.api import (
    ENV_ADMIN_TOKEN,
    OVERRIDE_HEADER,
    OVERRIDE_REASON_HEADER,
    OVERRIDE_TAG,
    evaluate_with,
)
from mlflow_green.registry.footprint import (
    StoreBackend,
    decode_record,
    encode_record,
    footprint_of_source,
    model_version_footprint,
)
from mlflow_green.registry.policy import Policy, parse_budget_tag, policy_from_env
from mlflow_green.registry.verdict import Verdict, judge, model_is_budgeted
from mlflow_green.tracking import schema

__all__ = [
    "ENV_ADMIN_TOKEN",
    "OVERRIDE_HEADER",
    "OVERRIDE_REASON_HEADER",
    "OVERRIDE_TAG",
    "Gate",
    "load_policy_or_exit",
]

_logger = logging.getLogger("mlflow_green.gate")
_MAX_TAG_VALUE = 4000
_TERMINAL = ("FINISHED", "FAILED", "KILLED")
# A promotion whose alias/stage write lost a race for the same row (UNIQUE violation, SQLite
# lock) is run again: the database decides the order, the last write wins as in sequence.
_VIEW_ATTEMPTS = 4
_CONFLICT_MARKS = ("IntegrityError", "UNIQUE constraint", "duplicate key", "database is locked", "Deadlock")

# The handlers the gate guards: request message class name -> Gate method. Every other handler
# of MLflow's table is classified in tests/registry/test_gate_handlers.py.
GUARDED: dict[str, str] = {
    "SetTag": "_run_tags",
    "DeleteTag": "_run_tags",
    "LogBatch": "_run_tags",
    "UpdateRun": "_run_update",
    "SetRegisteredModelAlias": "_set_alias",
    "TransitionModelVersionStage": "_transition_stage",
    "CreateModelVersion": "_create_version",
    "CreateRegisteredModel": "_create_model",
    "SetModelVersionTag": "_version_tag",
    "DeleteModelVersionTag": "_version_tag",
    "SetRegisteredModelTag": "_set_model_tag",
    "DeleteRegisteredModelTag": "_delete_model_tag",
    "RenameRegisteredModel": "_rename_model",
    "DeleteRegisteredModel": "_delete_model",
}


def load_policy_or_exit() -> Policy:
    """The server policy; an invalid one stops the process with one line on stderr.

    ``mlflow server`` imports the app module in its own process before it starts any worker
    (to see whether the app is a factory), so this runs there first: ``SystemExit`` with a
    message prints that one line and exits 1, with no traceback and no worker restart loop.
    """
    try:
        return policy_from_env()
    except ConfigError as exc:
        line = " ".join(str(exc).split())
        raise SystemExit(f"mlflow-green: the carbon gate refuses to start: {line}") from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _conflict(response: Any) -> bool:
    if response.status_code < 400:
        return False
    text = response.get_data(as_text=True)
    return any(mark in text for mark in _CONFLICT_MARKS)


class Gate:
    """The carbon gate bound to a policy; :meth:`install` hooks it into a Flask app."""

    def __init__(
        self,
        policy: Policy,
        *,
        admin_token: str | None = None,
        can_manage_budgets: Callable[[], bool] | None = None,
    ) -> None:
        self.policy = policy
        self._admin_token = admin_token or None
        # With basic-auth, EDIT permission lets a user set model tags; budgets need MANAGE.
        self._can_manage_budgets = can_manage_budgets
        self._ops: dict[str, tuple[type, Callable[[Any], Pending | None]]] = {}

    @classmethod
    def from_env(cls, *, can_manage_budgets: Callable[[], bool] | None = None) -> Gate:
        return cls(
            load_policy_or_exit(),
            admin_token=os.environ.get(ENV_ADMIN_TOKEN, "").strip(),
            can_manage_budgets=can_manage_budgets,
        )

    def _require_manage(self, name: str, what: str) -> None:
        if self._can_manage_budgets is not None and not self._can_manage_budgets():
            raise Forbidden(f"carbon gate: {what} of {name} needs MANAGE permission on the registered model")

    # -- installation ------------------------------------------------------------------------
    def install(self, flask_app: Any) -> None:
        """Hook the gate into ``flask_app`` (MLflow's app, routed by ``get_endpoints()``)."""
        by_name = {cls.__name__: (cls, fn) for cls, fn in seams.handler_table().items()}
        self._ops = {}
        for class_name, method in GUARDED.items():
            cls, handler = by_name[class_name]
            self._ops[handler.__name__] = (cls, getattr(self, method))
        promotions = {by_name[n][1].__name__ for n in ("SetRegisteredModelAlias", "TransitionModelVersionStage")}
        for endpoint, view in list(flask_app.view_functions.items()):
            if endpoint in promotions:
                flask_app.view_functions[endpoint] = self._retrying(view)
        flask_app.before_request(self._before_request)
        flask_app.after_request(self._after_request)

    @staticmethod
    def _retrying(view: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            from flask import make_response

            for attempt in range(_VIEW_ATTEMPTS):
                response = make_response(view(*args, **kwargs))
                if attempt + 1 == _VIEW_ATTEMPTS or not _conflict(response):
                    return response
            return response  # pragma: no cover - the loop returns

        run.__name__ = getattr(view, "__name__", "view")
        return run

    # -- request hooks -----------------------------------------------------------------------
    def _body_error(self) -> Any:
        """A 400 JSON answer for a body MLflow's parser would choke on, else None.

        Parsed with the same call as MLflow's handlers (``get_json(force=True, silent=True)``),
        whose cached result the handler then reuses: one parse per request, gated or not."""
        from flask import request

        if not request.is_json:
            return None
        try:
            body = request.get_json(force=True, silent=True)
            if isinstance(body, str):  # older clients double-encode; MLflow decodes it again
                body = json.loads(body)
        except RecursionError:
            return self._error("INVALID_PARAMETER_VALUE", "the request body nests too deeply to be parsed", 400)
        except ValueError:  # a JSON string whose content is not JSON: MLflow's handler would 500
            return self._error("INVALID_PARAMETER_VALUE", "the request body is a JSON string that is not JSON", 400)
        if body is not None and not isinstance(body, dict):
            # MLflow's handlers answer a JSON array or scalar with an HTML 500, which clients
            # retry; the gated server answers what it is: a bad request.
            return self._error(
                "INVALID_PARAMETER_VALUE",
                f"the request body must be a JSON object, not a JSON {type(body).__name__}",
                400,
            )
        return None

    def _before_request(self) -> Any:
        from flask import request

        if request.method in ("GET", "HEAD", "OPTIONS"):
            return None
        bad = self._body_error()
        if bad is not None:
            return bad
        entry = self._ops.get(request.endpoint or "")
        if entry is None:
            return None
        request_class, fn = entry
        try:
            return self._guard(request_class, fn)
        except Exception as exc:
            _logger.exception("carbon gate failed on %s %s", request.method, request.path)
            text = " ".join(str(exc).split())[:300] or type(exc).__name__
            return self._deny(
                f"carbon gate could not evaluate this request ({type(exc).__name__}: {text}); "
                "it refuses until it can (fail closed). Check the server log."
            )

    def _guard(self, request_class: type, fn: Callable[[Any], Pending | None]) -> Any:
        from flask import g
        from mlflow.exceptions import MlflowException

        try:
            message = seams.parse_request(request_class)
        except MlflowException:
            return None  # the handler parses the same way and answers with MLflow's own 400
        except (RecursionError, ValueError) as exc:
            return self._error("INVALID_PARAMETER_VALUE", f"the request body cannot be parsed: {exc}", 400)
        try:
            pending = fn(message)
        except TargetMissing:
            return None  # the handler answers RESOURCE_DOES_NOT_EXIST and changes nothing
        except Forbidden as forbidden:
            return self._deny(str(forbidden))
        except Deny as deny:
            override = self._override()
            if override is None:
                return self._deny(str(deny))
            pending = self._record_override(request_class.__name__, message, str(deny), override)
        if pending is not None:
            if pending.version is None and not pending.on_model:
                g.mlflow_green_pending = pending  # written after the version exists
            else:
                self._write(pending)
        return None

    def _after_request(self, response: Any) -> Any:
        from flask import g

        pending = g.pop("mlflow_green_pending", None)
        after = g.pop("mlflow_green_after", None)
        if response.status_code != 200:
            return response
        try:
            if pending is not None:
                body = json.loads(response.get_data(as_text=True))
                version = str(body["model_version"]["version"])
                self._write(Pending(pending.name, version, pending.tags))
            if after is not None:
                replaced = after(response)
                if replaced is not None:
                    return replaced
        except Exception:
            _logger.exception("carbon gate could not complete its record after %s", response.status)
        return response

    @staticmethod
    def _error(code: str, message: str, status: int) -> Any:
        from flask import Response

        body = json.dumps({"error_code": code, "message": message})
        return Response(body, status=status, mimetype="application/json")

    @classmethod
    def _deny(cls, message: str) -> Any:
        events.record_refusal(message)  # the audit trail; never raises
        return cls._error("PERMISSION_DENIED", message, 403)

    # -- stores ------------------------------------------------------------------------------
    @staticmethod
    def _backend() -> StoreBackend:
        return StoreBackend(seams.tracking_store(), seams.registry_store())

    def _write(self, pending: Pending) -> None:
        backend = self._backend()
        if pending.on_model:
            backend.set_registered_model_tags(pending.name, pending.tags)
        else:
            assert pending.version is not None
            backend.set_model_version_tags(pending.name, pending.version, pending.tags)

    # -- administrator override --------------------------------------------------------------
    def _override(self) -> str | None:
        """The override reason when the request carries the administrator token, else None."""
        from flask import request

        given = request.headers.get(OVERRIDE_HEADER, "")
        if not self._admin_token or not given:
            return None
        if not hmac.compare_digest(given.encode(), self._admin_token.encode()):
            return None
        return request.headers.get(OVERRIDE_REASON_HEADER, "").strip() or "no reason given"

    def _record_override(self, operation: str, message: Any, denial: str, reason: str) -> Pending | None:
        from flask import g

        events.record_override(denial, reason)  # the audit trail; raises, so unrecorded = refused
        user = events.current_user() or "holder of the admin token"
        record = f"{_now()} {operation} by {user}: {reason}. Refusal overridden: {denial}"[:_MAX_TAG_VALUE]
        _logger.warning("carbon gate override: %s", record)
        name = getattr(message, "name", "")
        version = getattr(message, "version", "") or None
        if operation in ("SetRegisteredModelAlias", "TransitionModelVersionStage") and version:
            verdict: Verdict | None = getattr(g, "mlflow_green_verdict", None)
            tags = verdict.evidence_tags() if verdict is not None else {}
            tags[OVERRIDE_TAG] = record
            return Pending(name, str(version), tags)
        if operation == "CreateModelVersion":
            return Pending(name, None, {OVERRIDE_TAG: record})
        if operation in ("CreateRegisteredModel", "DeleteRegisteredModel", "RenameRegisteredModel"):
            return None  # the name is new or goes away: the server log keeps the record
        if operation == "SetRegisteredModelTag":
            reset = rules.budget_reset(name, message.key, message.value)
            return Pending(name, None, {**reset.tags, OVERRIDE_TAG: record}, on_model=True)
        if operation == "DeleteRegisteredModelTag":
            reset = rules.budget_reset(name, message.key, None)
            return Pending(name, None, {**reset.tags, OVERRIDE_TAG: record}, on_model=True)
        return Pending(name, None, {OVERRIDE_TAG: record}, on_model=True)

    # -- the frozen record -------------------------------------------------------------------
    def _freeze(self, backend: StoreBackend, name: str, version: str) -> dict[str, str]:
        """Compute the version's footprint now and return the record tag to keep on it."""
        mv = backend.get_model_version(name, version)
        fp = model_version_footprint(
            backend,
            name,
            version,
            include_lineage=self.policy.for_model(name).include_lineage,
            model_version=mv,
            use_record=False,
        )
        final = False
        if fp.source_run_id and not fp.missing:
            try:
                final = str(backend.get_run(fp.source_run_id).info.status) in _TERMINAL
            except Exception as exc:
                if not rules.not_found(exc):
                    raise
        old = decode_record(dict(mv.tags or {}).get(schema.GATE_FOOTPRINT))
        if old is not None and old[1] and fp.missing and not old[0].missing:
            return {}  # a referent vanished since: the final record stands
        return {schema.GATE_FOOTPRINT: encode_record(fp, final=final, frozen_at=_now())}

    def _freeze_after_create(self, name: str, response: Any) -> None:
        """Freeze the footprint of the version the handler just created."""
        body = json.loads(response.get_data(as_text=True))
        version = str(body["model_version"]["version"])
        backend = self._backend()
        backend.set_model_version_tags(name, version, self._freeze(backend, name, version))

    def _run_update(self, msg: Any) -> Pending | None:
        """When a run's status changes, re-freeze the versions registered from it."""
        from flask import g

        if not msg.HasField("status"):
            return None
        run_id = rules.run_id_of(msg)

        def refreeze(_response: Any) -> None:
            backend = self._backend()
            for mv in backend.versions_of_run(run_id):
                tags = self._freeze(backend, mv.name, str(mv.version))
                backend.set_model_version_tags(mv.name, str(mv.version), tags)

        g.mlflow_green_after = refreeze
        return None

    # -- promotions ----------------------------------------------------------------------------
    def _promotion(self, name: str, version: str, *, alias: str | None, stage: str | None) -> Pending | None:
        from flask import g

        policy = self.policy.for_model(name)
        if alias is not None and not policy.alias_gated(alias):
            return None
        if stage is not None and not policy.stage_gated(stage):
            return None
        backend = self._backend()
        # One read of the model: its tags (budgets) and its aliases (what to restore on undo).
        model = rules.target(lambda: backend.get_registered_model(name))
        model_tags = dict(model.tags or {})
        if not model_is_budgeted(policy, model_tags):
            return None
        mv = rules.target(lambda: backend.get_model_version(name, str(version)))
        if decode_record(dict(mv.tags or {}).get(schema.GATE_FOOTPRINT)) is None:
            # A version made before the gate froze records: computed on its first promotion
            # (every figure at its worst over the history) and frozen from then on.
            backend.set_model_version_tags(name, str(version), self._freeze(backend, name, str(version)))
            mv = backend.get_model_version(name, str(version))
        verdict = evaluate_with(
            backend, self.policy, name, version, alias=alias, stage=stage, model_tags=model_tags, model_version=mv
        )
        g.mlflow_green_verdict = verdict
        if not verdict.passed:
            raise Deny(f"carbon gate: {name} version {version} cannot take {verdict.target}: " + " ".join(verdict.reasons))
        if alias is not None:
            holder = dict(model.aliases or {}).get(alias)
            previous = str(holder) if holder is not None else None
        else:
            previous = str(mv.current_stage)
        g.mlflow_green_after = lambda _r: self._recheck(name, str(version), alias, stage, model_tags, previous)
        evidence = rules.evidence_to_write(dict(mv.tags or {}), verdict.evidence_tags())
        return Pending(name, str(version), evidence) if evidence else None

    def _recheck(
        self, name: str, version: str, alias: str | None, stage: str | None, seen: dict[str, str], previous: str | None
    ) -> Any:
        """After the promotion committed: if a budget changed meanwhile (another request, any
        server process), judge again under the budgets now in the database; undo and refuse
        if it no longer passes (compare-and-set through the store).

        Fails closed: when the re-check itself cannot be made (the store errs), the promotion is
        undone and refused too; when even the undo fails, the answer is still a refusal that says
        so, and the audit trail and ``mlflow-green audit`` show the alias or stage."""
        target = f"alias {alias}" if alias is not None else f"stage {stage}"
        try:
            backend = self._backend()
            now = backend.registered_model_tags(name)
            if _budget_tags(now) == _budget_tags(seen):
                return None
            verdict = evaluate_with(backend, self.policy, name, version, alias=alias, stage=stage, model_tags=now)
            if verdict.passed:
                return None
            reason = (
                f"carbon gate: {name} version {version} cannot take {verdict.target}: a budget changed while "
                "it was being promoted, and under the budgets now in force: " + " ".join(verdict.reasons)
            )
        except Exception as exc:
            _logger.exception("carbon gate could not re-check the promotion of %s version %s", name, version)
            text = " ".join(str(exc).split())[:200] or type(exc).__name__
            reason = (
                f"carbon gate: {name} version {version} cannot take {target}: the budgets could not be read "
                f"again after the promotion ({type(exc).__name__}: {text}), so it refuses (fail closed)"
            )
        try:
            self._undo(name, version, alias, previous)
        except Exception as exc:
            _logger.exception("carbon gate could not undo the promotion of %s version %s", name, version)
            reason += (
                f"; the promotion could not be undone ({type(exc).__name__}): {target} may still point at "
                f"version {version} - `mlflow-green audit --model {name}` tells whether it breaks a budget"
            )
        else:
            reason += "; the promotion was undone"
        return self._deny(reason)

    def _undo(self, name: str, version: str, alias: str | None, previous: str | None) -> None:
        """Put the alias (or the version's stage) back where it was before the promotion."""
        store = self._backend().registry_store
        if alias is not None:
            if previous:
                store.set_registered_model_alias(name, alias, previous)
            else:
                store.delete_registered_model_alias(name, alias)
        elif previous is not None:
            store.transition_model_version_stage(name, version, previous, archive_existing_versions=False)

    def _set_alias(self, msg: Any) -> Pending | None:
        return self._promotion(msg.name, msg.version, alias=msg.alias, stage=None)

    def _transition_stage(self, msg: Any) -> Pending | None:
        return self._promotion(msg.name, msg.version, alias=None, stage=msg.stage)

    # -- creation ------------------------------------------------------------------------------
    def _create_model(self, msg: Any) -> Pending | None:
        rules.check_new_model_tags([(t.key, t.value) for t in msg.tags])
        return None

    def _create_version(self, msg: Any) -> Pending | None:
        from flask import g

        name = msg.name
        source = msg.source.strip()
        self._check_copied_gate_tags(source, {t.key: t.value for t in msg.tags if rules.is_gate_tag(t.key)})
        g.mlflow_green_after = lambda response: self._freeze_after_create(name, response)
        policy = self.policy.for_model(name)
        is_copy = source.lower().startswith("models:/") and "/" in source[len("models:/") :].strip("/")
        if policy.gate_create == "none" or (policy.gate_create == "copies" and not is_copy):
            return None
        backend = self._backend()
        tags = rules.target(lambda: backend.registered_model_tags(name))
        if not model_is_budgeted(policy, tags):
            return None
        fp = footprint_of_source(
            backend, source, rules.run_id_of(msg) or None, include_lineage=policy.include_lineage, model_id=msg.model_id or None
        )
        verdict = judge(model=name, version="(new)", footprint=fp, policy=policy, model_tags=tags)
        what = f"a copy of {source}" if is_copy else f"a version from {source}"
        if not verdict.passed:
            raise Deny(f"carbon gate: {what} cannot enter {name}: " + " ".join(verdict.reasons))
        return Pending(name, None, verdict.evidence_tags())

    def _check_copied_gate_tags(self, source: str, given: dict[str, str]) -> None:
        rules.check_copied_gate_tags(self._backend(), source, given)

    # -- tags ----------------------------------------------------------------------------------
    def _version_tag(self, msg: Any) -> Pending | None:
        rules.refuse_gate_tags([msg.key])
        return None

    def _run_tags(self, msg: Any) -> Pending | None:
        """Freeze a run's evidence tags once the run backs a model version.

        ``green.status``, ``green.method.*`` and ``green.lineage`` decide whether evidence is weak
        or what it covers; relabelling them after registration would turn weak evidence strong.
        """
        if "tags" in msg.DESCRIPTOR.fields_by_name:
            changes: list[tuple[str, str | None]] = [(t.key, t.value) for t in msg.tags]
        elif "value" in msg.DESCRIPTOR.fields_by_name:
            changes = [(msg.key, msg.value)]
        else:
            changes = [(msg.key, None)]  # a delete
        evidence = [(k, v) for k, v in changes if rules.is_run_evidence_tag(k)]
        if not evidence:
            return None
        run_id = rules.run_id_of(msg)
        backend = self._backend()
        run = rules.target(lambda: backend.get_run(run_id))
        current = dict(run.data.tags or {})
        changed = [k for k, v in evidence if v is None or current.get(k) != v]
        if not changed:
            return None
        versions = backend.versions_of_run(run_id)
        if versions:
            mv = versions[0]
            raise Deny(
                f"carbon gate: run {run_id} is the source of {mv.name} version {mv.version}; "
                f"its evidence tag {changed[0]} can no longer be changed"
            )
        return None

    def _set_model_tag(self, msg: Any) -> Pending | None:
        rules.refuse_gate_tags([msg.key])
        if parse_budget_tag(msg.key, msg.value) is None:
            return None  # not a budget
        self._require_manage(msg.name, f"changing budget tag {msg.key}")
        backend = self._backend()
        tags = rules.target(lambda: backend.registered_model_tags(msg.name))
        return rules.budget_change(msg.name, msg.key, msg.value, tags)

    def _delete_model_tag(self, msg: Any) -> Pending | None:
        rules.refuse_gate_tags([msg.key])
        if parse_budget_tag(msg.key, "") is None:
            return None
        self._require_manage(msg.name, f"deleting budget tag {msg.key}")
        backend = self._backend()
        if msg.key in rules.target(lambda: backend.registered_model_tags(msg.name)):
            raise Deny(
                f"carbon gate: deleting {msg.key} removes a budget of {msg.name}; only an "
                "administrator override may loosen a budget"
            )
        return None

    def _model_leaves(self, name: str, what: str) -> None:
        backend = self._backend()
        tags = rules.target(lambda: backend.registered_model_tags(name))
        try:
            rules.model_leaves_budgets(self.policy, name, tags, what)
        except Deny:
            self._require_manage(name, what)
            raise

    def _rename_model(self, msg: Any) -> Pending | None:
        self._model_leaves(msg.name, f"renaming to {msg.new_name!r}")
        return None

    def _delete_model(self, msg: Any) -> Pending | None:
        self._model_leaves(msg.name, "deleting")
        return None


def _budget_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if parse_budget_tag(k, v) is not None}


def wrap_for_server(flask_app: Any) -> Any:
    """The object the server runs: FastAPI around Flask under uvicorn, Flask itself otherwise."""
    return seams.wrap_for_server(flask_app)
