"""The carbon gate inside ``mlflow server``: a Flask ``before_request`` hook on MLflow's own app.

Requests are recognised by the handler Flask routed them to (``request.endpoint``), not by their
spelling, so every path variant that reaches a registry handler — ``/api/2.0`` or
``/ajax-api/2.0``, a static prefix, doubled or percent-encoded slashes — meets the gate, and one
that reaches no handler changes nothing. Bodies are parsed by MLflow's own request parser, so the
gate sees exactly the fields the handler will act on (JSON body or query string).

A refusal is MLflow error JSON ``PERMISSION_DENIED`` with HTTP 403 — never a 5xx, which MLflow
clients retry and whose message they hide. An error inside the gate refuses too (fail closed).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from mlflow_green.errors import ConfigError
from mlflow_green.registry import events
from mlflow_green.registry.api import evaluate_with
from mlflow_green.registry.footprint import StoreBackend, footprint_of_source
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

ENV_ADMIN_TOKEN = "MLFLOW_GREEN_ADMIN_TOKEN"
OVERRIDE_HEADER = "X-MLflow-Green-Override"
OVERRIDE_REASON_HEADER = "X-MLflow-Green-Override-Reason"
OVERRIDE_TAG = "green.gate.override"
_MAX_TAG_VALUE = 4000


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


class _KeyedLocks:
    """One lock per key, created on demand and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], list[Any]] = {}  # key -> [lock, holders and waiters]

    def acquire(self, key: tuple[str, str], timeout: float) -> bool:
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        if entry[0].acquire(timeout=timeout):
            return True
        self._forget(key)
        return False

    def release(self, key: tuple[str, str]) -> None:
        with self._guard:
            entry = self._locks.get(key)
        if entry is not None:
            entry[0].release()
            self._forget(key)

    def _forget(self, key: tuple[str, str]) -> None:
        with self._guard:
            entry = self._locks.get(key)
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    del self._locks[key]


# How long a promotion waits for another promotion of the same model to the same target (in
# this server process) before it goes ahead unserialised.
_PROMOTION_WAIT_S = 30.0


class _Deny(Exception):
    """A refusal: the message names the budget and the figure."""


class _PermissionDeny(_Deny):
    """A refusal for a missing permission: the administrator override does not stand in for it."""


@dataclass
class _Pending:
    """What to record once the request is allowed."""

    name: str
    version: str | None
    tags: dict[str, str]
    on_model: bool = False


def _is_gate_tag(key: str) -> bool:
    return key.strip().lower().startswith(schema.GATE_PREFIX)


def _is_evidence_tag(key: str) -> bool:
    low = key.strip().lower()
    return low == schema.TAG_STATUS or low.startswith("green.method.")


def _not_found(exc: BaseException) -> bool:
    return getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


_MAX_SCOPE = 1000


def _evidence_to_write(current: dict[str, str], evidence: dict[str, str]) -> dict[str, str] | None:
    """The tags to write for ``evidence``, or None when the version already carries it.

    Evidence is rewritten only when it changes. When the verdict, the figures and the reasons
    are those already on the version and only the target differs (a version cleared for
    ``staging`` now taking ``champion``), the target is added to ``green.gate.scope``
    (``staging,champion``): the version shows every target these figures were cleared for.
    ``green.gate.checked_at`` is the time the evidence last changed.
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
        self._ops: dict[str, tuple[type, Callable[[Any], _Pending | None]]] = {}
        # Promotions of one model to one alias or stage, one at a time per server process:
        # MLflow's own alias set answers 400 (a UNIQUE violation) when two requests insert the
        # same alias at once; serialised, both succeed and the last one wins, as in sequence.
        self._promotions = _KeyedLocks()

    @classmethod
    def from_env(cls, *, can_manage_budgets: Callable[[], bool] | None = None) -> Gate:
        return cls(
            load_policy_or_exit(),
            admin_token=os.environ.get(ENV_ADMIN_TOKEN, "").strip(),
            can_manage_budgets=can_manage_budgets,
        )

    def _require_budget_permission(self, name: str, key: str) -> None:
        if self._can_manage_budgets is not None and not self._can_manage_budgets():
            raise _PermissionDeny(
                f"carbon gate: changing budget tag {key} of {name} needs MANAGE permission on "
                "the registered model"
            )

    # -- installation ------------------------------------------------------------------------
    def install(self, flask_app: Any) -> None:
        from mlflow.protos.model_registry_pb2 import (
            CreateModelVersion,
            CreateRegisteredModel,
            DeleteModelVersionTag,
            DeleteRegisteredModelTag,
            RenameRegisteredModel,
            SetModelVersionTag,
            SetRegisteredModelAlias,
            SetRegisteredModelTag,
            TransitionModelVersionStage,
        )
        from mlflow.protos.service_pb2 import DeleteTag, LogBatch, SetTag
        from mlflow.server.handlers import HANDLERS

        table: dict[type, Callable[[Any], _Pending | None]] = {
            SetTag: self._run_tags,
            DeleteTag: self._run_tags,
            LogBatch: self._run_tags,
            SetRegisteredModelAlias: self._set_alias,
            TransitionModelVersionStage: self._transition_stage,
            CreateModelVersion: self._create_version,
            CreateRegisteredModel: self._create_model,
            SetModelVersionTag: self._version_tag,
            DeleteModelVersionTag: self._version_tag,
            SetRegisteredModelTag: self._set_model_tag,
            DeleteRegisteredModelTag: self._delete_model_tag,
            RenameRegisteredModel: self._rename_model,
        }
        # Flask names each endpoint after its handler function (see mlflow.server.__init__).
        self._ops = {HANDLERS[cls].__name__: (cls, fn) for cls, fn in table.items()}
        flask_app.before_request(self._before_request)
        flask_app.after_request(self._after_request)
        flask_app.teardown_request(self._teardown_request)
        self._install_green_page(flask_app)

    # -- request hooks -----------------------------------------------------------------------
    def _before_request(self) -> Any:
        from flask import g, request

        if request.method in ("GET", "HEAD", "OPTIONS"):
            return None
        if request.is_json and request.content_length:
            try:
                body = json.loads(request.get_data(cache=True))
            except ValueError:
                body = {}  # not JSON at all: MLflow's own parser answers 400
            if not isinstance(body, dict):
                # MLflow's handlers answer a JSON array or scalar with an HTML 500, which clients
                # retry; the gated server answers what it is: a bad request.
                return self._error(
                    "INVALID_PARAMETER_VALUE",
                    f"the request body must be a JSON object, not a JSON {type(body).__name__}",
                    400,
                )
        entry = self._ops.get(request.endpoint or "")
        if entry is None:
            return None
        request_class, fn = entry
        try:
            from mlflow.exceptions import MlflowException
            from mlflow.server.handlers import _get_request_message

            try:
                message = _get_request_message(request_class())
            except MlflowException:
                return None  # the handler parses the same way and answers with MLflow's own 400
            try:
                pending = fn(message)
            except _Deny as deny:
                override = None if isinstance(deny, _PermissionDeny) else self._override()
                if override is None:
                    return self._deny(str(deny))
                pending = self._record_override(request_class.__name__, message, str(deny), override)
            except MlflowException as exc:
                if _not_found(exc):
                    return None  # the handler answers RESOURCE_DOES_NOT_EXIST and changes nothing
                raise
            if pending is not None:
                if pending.version is None and not pending.on_model:
                    g.mlflow_green_pending = pending  # written after the version exists
                else:
                    self._write(pending)
        except Exception as exc:
            _logger.exception("carbon gate failed on %s %s", request.method, request.path)
            text = " ".join(str(exc).split())[:300] or type(exc).__name__
            return self._deny(
                f"carbon gate could not evaluate this request ({type(exc).__name__}: {text}); "
                "it refuses until it can (fail closed). Check the server log."
            )
        return None

    def _teardown_request(self, _exc: BaseException | None = None) -> None:
        from flask import g

        key = g.pop("mlflow_green_promotion_lock", None)
        if key is not None:
            self._promotions.release(key)

    def _serialise_promotion(self, name: str, target: str) -> None:
        from flask import g

        key = (name, target)
        if getattr(g, "mlflow_green_promotion_lock", None) is None and self._promotions.acquire(
            key, _PROMOTION_WAIT_S
        ):
            g.mlflow_green_promotion_lock = key

    def _after_request(self, response: Any) -> Any:
        from flask import g

        pending = g.pop("mlflow_green_pending", None)
        if pending is None or response.status_code != 200:
            return response
        try:
            body = json.loads(response.get_data(as_text=True))
            version = str(body["model_version"]["version"])
            self._write(_Pending(pending.name, version, pending.tags))
        except Exception:
            _logger.exception("carbon gate could not record evidence on the new version of %s", pending.name)
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
        from mlflow.server.handlers import _get_model_registry_store, _get_tracking_store

        return StoreBackend(_get_tracking_store(), _get_model_registry_store())

    def _write(self, pending: _Pending) -> None:
        backend = self._backend()
        if pending.on_model:
            from mlflow.entities.model_registry import RegisteredModelTag

            for key, value in pending.tags.items():
                backend.registry_store.set_registered_model_tag(
                    pending.name, RegisteredModelTag(key, value)
                )
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

    def _record_override(
        self, operation: str, message: Any, denial: str, reason: str
    ) -> _Pending | None:
        from flask import g

        events.record_override(denial, reason)  # the audit trail; raises, so unrecorded = refused
        user = getattr(g, "mlflow_authenticated_user", None) or "holder of the admin token"
        record = f"{_now()} {operation} by {user}: {reason}. Refusal overridden: {denial}"
        _logger.warning("carbon gate override: %s", record)
        name = getattr(message, "name", "")
        version = getattr(message, "version", "") or None
        if operation in ("SetRegisteredModelAlias", "TransitionModelVersionStage") and version:
            verdict: Verdict | None = getattr(g, "mlflow_green_verdict", None)
            tags = verdict.evidence_tags() if verdict is not None else {}
            tags[OVERRIDE_TAG] = record[:_MAX_TAG_VALUE]
            return _Pending(name, str(version), tags)
        if operation == "CreateModelVersion":
            return _Pending(name, None, {OVERRIDE_TAG: record[:_MAX_TAG_VALUE]})
        if operation == "CreateRegisteredModel":
            return None  # nothing exists yet to record on; the server log has it
        return _Pending(name, None, {OVERRIDE_TAG: record[:_MAX_TAG_VALUE]}, on_model=True)

    # -- operations ----------------------------------------------------------------------------
    def _promotion(self, name: str, version: str, *, alias: str | None, stage: str | None) -> _Pending | None:
        from flask import g

        # Held until the request ends (teardown), so the handler's write is inside it too.
        self._serialise_promotion(name, f"alias:{alias}" if alias is not None else f"stage:{stage}")
        # Cheapest first: whether the policy gates this alias/stage needs no store read, whether
        # the model has budgets needs its tags; only a gated, budgeted promotion reads further.
        policy = self.policy.for_model(name)
        if alias is not None and not policy.alias_gated(alias):
            return None
        if stage is not None and not policy.stage_gated(stage):
            return None
        backend = self._backend()
        with backend.reading():  # one read session for the model, the version and the runs
            model_tags, mv = backend.model_and_version(name, str(version))
            if not model_is_budgeted(policy, model_tags):
                return None
            if mv is None:  # the handler answers RESOURCE_DOES_NOT_EXIST and changes nothing
                return None
            # Each entity is read once per request and handed down (not re-read by evaluate_with).
            verdict = evaluate_with(
                backend,
                self.policy,
                name,
                version,
                alias=alias,
                stage=stage,
                model_tags=model_tags,
                model_version=mv,
            )
        g.mlflow_green_verdict = verdict
        if not verdict.passed:
            raise _Deny(
                f"carbon gate: {name} version {version} cannot take {verdict.target}: "
                + " ".join(verdict.reasons)
            )
        evidence = _evidence_to_write(dict(mv.tags or {}), verdict.evidence_tags())
        if evidence is None:
            return None  # the version already carries this evidence: no write, no lock
        return _Pending(name, str(version), evidence)

    def _set_alias(self, msg: Any) -> _Pending | None:
        return self._promotion(msg.name, msg.version, alias=msg.alias, stage=None)

    def _transition_stage(self, msg: Any) -> _Pending | None:
        return self._promotion(msg.name, msg.version, alias=None, stage=msg.stage)

    def _create_model(self, msg: Any) -> _Pending | None:
        for tag in msg.tags:
            if _is_gate_tag(tag.key):
                raise _Deny(f"carbon gate: tag {tag.key} is written by the gate only; clients may not set it")
        return None

    def _create_version(self, msg: Any) -> _Pending | None:
        for tag in msg.tags:
            if _is_gate_tag(tag.key):
                raise _Deny(f"carbon gate: tag {tag.key} is written by the gate only; clients may not set it")
        name = msg.name
        policy = self.policy.for_model(name)
        source = msg.source.strip()
        is_copy = source.lower().startswith("models:/") and "/" in source[len("models:/") :].strip("/")
        if policy.gate_create == "none" or (policy.gate_create == "copies" and not is_copy):
            return None
        backend = self._backend()
        with backend.reading():
            tags = backend.registered_model_tags(name)
            if not model_is_budgeted(policy, tags):
                return None
            fp = footprint_of_source(
                backend,
                source,
                msg.run_id or None,
                include_lineage=policy.include_lineage,
                model_id=msg.model_id or None,
            )
        verdict = judge(
            model=name, version="(new)", footprint=fp, policy=policy, model_tags=tags
        )
        what = f"a copy of {source}" if is_copy else f"a version from {source}"
        if not verdict.passed:
            raise _Deny(f"carbon gate: {what} cannot enter {name}: " + " ".join(verdict.reasons))
        return _Pending(name, None, verdict.evidence_tags())

    def _version_tag(self, msg: Any) -> _Pending | None:
        if _is_gate_tag(msg.key):
            raise _Deny(
                f"carbon gate: tag {msg.key} is written by the gate only; clients may not set or "
                "delete it"
            )
        return None

    def _run_tags(self, msg: Any) -> _Pending | None:
        """Freeze a run's evidence tags once the run backs a model version.

        ``green.status`` and ``green.method.*`` decide whether evidence is weak (degraded or
        simulated); relabelling them after registration would turn weak evidence into strong.
        """
        if hasattr(msg, "tags") and not hasattr(msg, "key"):
            changes = [(t.key, t.value) for t in msg.tags]
        else:
            changes = [(msg.key, getattr(msg, "value", None))]
        evidence = [(k, v) for k, v in changes if _is_evidence_tag(k)]
        if not evidence:
            return None
        backend = self._backend()
        run = backend.tracking_store.get_run(msg.run_id)
        current = dict(run.data.tags or {})
        changed = [k for k, v in evidence if v is None or current.get(k) != v]
        if not changed:
            return None
        versions = backend.registry_store.search_model_versions(
            filter_string=f"run_id = '{msg.run_id}'", max_results=1
        )
        if len(versions):
            mv = versions[0]
            raise _Deny(
                f"carbon gate: run {msg.run_id} is the source of {mv.name} version {mv.version}; "
                f"its evidence tag {changed[0]} can no longer be changed"
            )
        return None

    def _set_model_tag(self, msg: Any) -> _Pending | None:
        if _is_gate_tag(msg.key):
            raise _Deny(f"carbon gate: tag {msg.key} is written by the gate only; clients may not set it")
        new = parse_budget_tag(msg.key, msg.value)
        if new is not None:
            self._require_budget_permission(msg.name, msg.key)
        if new is None:
            return None  # not a budget
        if new.limit is None:
            # A malformed budget fails every check, but accepting it would let a later write
            # "repair" it to any figure: a two-step loosening. Budgets are plain numbers.
            raise _Deny(
                f"carbon gate: {msg.key}={msg.value!r} is not a budget; give a plain "
                "non-negative number in the tag's unit (e.g. 50)"
            )
        tags = self._backend().registered_model_tags(msg.name)
        if msg.key not in tags:
            return None  # a new budget only adds a constraint
        old = parse_budget_tag(msg.key, tags[msg.key])
        if old is None or old.limit is None:
            return None
        looser = new.limit < old.limit if new.is_floor else new.limit > old.limit
        if looser:
            raise _Deny(
                f"carbon gate: setting {msg.key} from {old.limit:g} to {new.limit:g} loosens the "
                f"budget of {msg.name}; only an administrator override may loosen a budget"
            )
        return None

    def _delete_model_tag(self, msg: Any) -> _Pending | None:
        if _is_gate_tag(msg.key):
            raise _Deny(f"carbon gate: tag {msg.key} is written by the gate only; clients may not delete it")
        if parse_budget_tag(msg.key, "") is None:
            return None
        self._require_budget_permission(msg.name, msg.key)
        if msg.key in self._backend().registered_model_tags(msg.name):
            raise _Deny(
                f"carbon gate: deleting {msg.key} removes a budget of {msg.name}; only an "
                "administrator override may loosen a budget"
            )
        return None

    def _rename_model(self, msg: Any) -> _Pending | None:
        old_rule = self.policy.rule_label(msg.name)
        new_rule = self.policy.rule_label(msg.new_name)
        if old_rule == new_rule:
            return None
        tags = self._backend().registered_model_tags(msg.name)
        if model_is_budgeted(self.policy.for_model(msg.name), tags) or model_is_budgeted(
            self.policy.for_model(msg.new_name), tags
        ):
            raise _Deny(
                f"carbon gate: renaming {msg.name} to {msg.new_name} moves it from policy rule "
                f"{old_rule or 'defaults'!r} to {new_rule or 'defaults'!r}; only an administrator "
                "override may change which budgets govern a model"
            )
        return None

    # -- /green page ---------------------------------------------------------------------------
    def _install_green_page(self, flask_app: Any) -> None:
        from mlflow.server.handlers import _add_static_prefix

        route = _add_static_prefix("/green")
        if any(rule.rule == route for rule in flask_app.url_map.iter_rules()):
            return

        def green_page() -> Any:
            return _render_green_page()

        flask_app.add_url_rule(route, "mlflow_green_page", green_page, methods=["GET"])


def _render_green_page() -> Any:
    from flask import Response
    from mlflow.server.handlers import (
        STATIC_PREFIX_ENV_VAR,
        _get_model_registry_store,
        _get_tracking_store,
    )

    prefix = os.environ.get(STATIC_PREFIX_ENV_VAR, "").rstrip("/")
    try:
        from mlflow_green.reports.green_page import render_green_page
    except ImportError:
        html = (
            "<!doctype html><html><head><meta charset='utf-8'><title>mlflow-green</title></head>"
            "<body><h1>mlflow-green</h1><p>The carbon gate is active on this server. The green "
            "report page is not installed in this build (module "
            "<code>mlflow_green.reports.green_page</code> is missing).</p></body></html>"
        )
        return Response(html, status=200, mimetype="text/html")
    try:
        html = render_green_page(_get_tracking_store(), _get_model_registry_store(), prefix=prefix)
    except Exception as exc:  # a report must not take the server down, nor answer 5xx
        _logger.exception("the /green page failed")
        text = " ".join(str(exc).split())[:300]
        return Response(
            f"<!doctype html><p>The green page could not be rendered: {type(exc).__name__}: "
            f"{_escape(text)}</p>",
            status=200,
            mimetype="text/html",
        )
    return Response(html, status=200, mimetype="text/html")


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def wrap_for_server(flask_app: Any) -> Any:
    """The object the server runs: FastAPI around Flask under uvicorn, Flask itself otherwise."""
    from mlflow.environment_variables import _MLFLOW_SGI_NAME

    if _MLFLOW_SGI_NAME.get() == "uvicorn":
        from mlflow.server.fastapi_app import create_fastapi_app

        return create_fastapi_app(flask_app)
    return flask_app

