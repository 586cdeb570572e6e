"""The gated server's own read-only API, under the plugin's prefix ``/green/api/``.

- ``POST /green/api/check`` — body ``{"name", "version", "alias"}`` or ``{"name", "version",
  "stage"}`` (or neither, for the model-wide budgets): the server's verdict, the same JSON as
  ``mlflow-green check --json``. Nothing is promoted and nothing is written.
- ``GET|POST /green/api/audit`` — ``model`` optional: every gated alias and stage whose version
  breaks the budgets in force now (``mlflow-green audit``).
- ``GET|POST /green/api/events`` — ``model``, ``since``, ``limit`` optional: the audit trail of
  refusals and overrides (``mlflow-green audit --events``).

Errors are MLflow error JSON (400 for a bad body, 403 for a missing permission, 404 for an
unknown model or version); never a 5xx. Under ``green-gate-auth`` MLflow's basic-auth has
authenticated the caller first; each endpoint then needs READ permission on the model (an
administrator sees everything; events of no model, and the audit of every model, are filtered
to the models the caller can read).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from mlflow_green.registry import _mlflow_seams as seams
from mlflow_green.registry.audit import audit, verdict_for
from mlflow_green.registry.events import event_log_for_store, parse_since
from mlflow_green.registry.footprint import StoreBackend
from mlflow_green.registry.policy import Policy

__all__ = ["CHECK_ROUTE", "green_api_routes", "install_green_api"]

_logger = logging.getLogger("mlflow_green.gate")

CHECK_ROUTE = "/green/api/check"
AUDIT_ROUTE = "/green/api/audit"
EVENTS_ROUTE = "/green/api/events"
_MAX_EVENTS = 10_000

#: ``can_read(model_name)``: may the caller read this model? ``None`` asks for server-wide data.
CanRead = Callable[[str | None], bool]


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, code: str = "INVALID_PARAMETER_VALUE") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _error(code: str, message: str, status: int) -> Any:
    from flask import Response

    return Response(json.dumps({"error_code": code, "message": message}), status=status, mimetype="application/json")


def _ok(data: Any) -> Any:
    from flask import Response

    return Response(json.dumps(_finite(data)), status=200, mimetype="application/json")


def _finite(value: Any) -> Any:
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _params() -> dict[str, Any]:
    """Query string merged with a JSON object body (the body wins)."""
    from flask import request

    params: dict[str, Any] = dict(request.args.to_dict())
    raw = request.get_data(cache=True)
    if raw and raw.strip():
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise _BadRequest("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _BadRequest(f"the request body must be a JSON object, not a JSON {type(body).__name__}")
        params.update(body)
    return params


def _text(params: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = params.get(key)
    if value is None or value == "":
        if required:
            raise _BadRequest(f"missing field {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _BadRequest(f"field {key!r} must be a string")
    return str(value).strip() or None


def _backend() -> StoreBackend:
    return StoreBackend(seams.tracking_store(), seams.registry_store())


class _Api:
    def __init__(self, policy: Policy, can_read: CanRead | None) -> None:
        self.policy = policy
        self.can_read = can_read

    def _require_read(self, name: str | None) -> None:
        if self.can_read is not None and not self.can_read(name):
            what = f"registered model {name!r}" if name else "every registered model"
            raise _BadRequest(f"READ permission on {what} is required", 403, "PERMISSION_DENIED")

    def _readable(self, name: str | None) -> bool:
        return self.can_read is None or bool(self.can_read(name))

    def check(self, params: dict[str, Any]) -> Any:
        name = _text(params, "name", required=True)
        version = _text(params, "version", required=True)
        alias, stage = _text(params, "alias"), _text(params, "stage")
        if alias and stage:
            raise _BadRequest("give either an alias or a stage, not both")
        assert name is not None and version is not None
        self._require_read(name)
        verdict = verdict_for(_backend(), self.policy, name, version, alias=alias, stage=stage)
        return verdict.to_dict()

    def audit(self, params: dict[str, Any]) -> Any:
        model = _text(params, "model")
        if model is not None:
            self._require_read(model)
        backend = _backend()
        report = audit(
            backend,
            backend.registry_store,
            self.policy,
            model=model,
            can_read=None if self.can_read is None else self._readable,
        )
        return report.to_dict()

    def events(self, params: dict[str, Any]) -> Any:
        from mlflow_green.errors import ConfigError

        model = _text(params, "model")
        since_raw = _text(params, "since")
        limit_raw = _text(params, "limit") or "1000"
        try:
            since = parse_since(since_raw) if since_raw else None
        except ConfigError as exc:
            raise _BadRequest(str(exc).replace("--since", "since")) from None
        if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= _MAX_EVENTS:
            raise _BadRequest(f"limit must be a whole number from 1 to {_MAX_EVENTS}")
        if model is not None:
            self._require_read(model)
        log = event_log_for_store(seams.tracking_store())
        found = log.events(model=model, since=since, limit=int(limit_raw))
        return {"events": [e.to_dict() for e in found if self._readable(e.model)]}

    def serve(self, action: Callable[[dict[str, Any]], Any]) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return _ok(action(_params()))
        except _BadRequest as bad:
            return _error(bad.code, str(bad), bad.status)
        except MlflowException as exc:
            code = str(getattr(exc, "error_code", "") or "INTERNAL_ERROR")
            status = 404 if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") else 400
            if code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
                status = 403
            if code == "INTERNAL_ERROR":
                return self._failed(exc)
            return _error(code, " ".join(str(exc.message).split())[:1000], status)
        except Exception as exc:
            return self._failed(exc)

    @staticmethod
    def _failed(exc: BaseException) -> Any:
        from flask import request

        _logger.exception("mlflow-green API %s failed", request.path)
        text = " ".join(str(exc).split())[:300] or type(exc).__name__
        # Never a 5xx (clients retry those): the gate would refuse what it cannot evaluate.
        return _error(
            "PERMISSION_DENIED",
            f"carbon gate could not evaluate this request ({type(exc).__name__}: {text}); a "
            "promotion would be refused (fail closed). Check the server log.",
            403,
        )


def green_api_routes() -> list[tuple[str, tuple[str, ...]]]:
    """Each mounted API route (with the server's static prefix) and its HTTP methods."""
    return [
        (seams.static_prefix(CHECK_ROUTE), ("POST",)),
        (seams.static_prefix(AUDIT_ROUTE), ("GET", "POST")),
        (seams.static_prefix(EVENTS_ROUTE), ("GET", "POST")),
    ]


def install_green_api(
    flask_app: Any, policy: Policy, *, can_read: CanRead | None = None
) -> Callable[[], dict[str, Any]]:
    """Mount ``/green/api/check``, ``/green/api/audit`` and ``/green/api/events`` (idempotent).

    Returns what the ``/green`` page shows of the gate: a callable giving ``audit`` (the
    violations now) and ``events`` (the latest 100 refusals and overrides), for
    ``mlflow_green.reports.server_page.mount_green_page(..., sections=...)``.
    """
    api = _Api(policy, can_read)
    routes: list[tuple[str, str, Callable[[dict[str, Any]], Any], list[str]]] = [
        (CHECK_ROUTE, "mlflow_green_api_check", api.check, ["POST"]),
        (AUDIT_ROUTE, "mlflow_green_api_audit", api.audit, ["GET", "POST"]),
        (EVENTS_ROUTE, "mlflow_green_api_events", api.events, ["GET", "POST"]),
    ]
    existing = {rule.rule for rule in flask_app.url_map.iter_rules()}
    for route, endpoint, action, methods in routes:
        full = seams.static_prefix(route)
        if full in existing:
            continue

        def view(action: Callable[[dict[str, Any]], Any] = action) -> Any:
            return api.serve(action)

        flask_app.add_url_rule(full, endpoint, view, methods=methods)

    def sections() -> dict[str, Any]:
        return {"audit": api.audit({}), "events": api.events({"limit": "100"})["events"]}

    return sections
