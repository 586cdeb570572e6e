"""``mlflow server --app-name green-gate-auth``: MLflow's basic-auth app, then the carbon gate.

Authentication and MLflow's permission checks run first (their ``before_request`` hook is
registered first), so an unauthenticated or unauthorised call is refused before the gate reads
anything. Configure basic-auth as for ``--app-name basic-auth`` (``MLFLOW_AUTH_CONFIG_PATH``,
``MLFLOW_AUTH_ADMIN_PASSWORD``, ``MLFLOW_FLASK_SERVER_SECRET_KEY``).
"""

from __future__ import annotations

from typing import Any

from mlflow_green.registry import _mlflow_seams as seams
from mlflow_green.registry import events
from mlflow_green.registry._gate import Gate
from mlflow_green.registry.green_api import green_api_routes, install_green_api


def _can_manage_budgets() -> bool:
    """Basic-auth lets EDIT set model tags; budgets (green.budget.*) need MANAGE or admin."""
    return bool(seams.auth("sender_is_admin")() or seams.auth("validate_can_manage_registered_model")())


def _can_read_model(name: str | None) -> bool:
    """READ permission on registered model ``name``; ``None`` (server-wide data): admins only."""
    if seams.auth("sender_is_admin")():
        return True
    if name is None:
        return False
    return bool(seams.model_permission(name).can_read)


def _authenticated_user() -> str | None:
    """The user basic-auth authenticated for this request. Newer MLflow releases keep it in
    ``flask.g``; older ones are asked again (only when an event is recorded)."""
    from flask import g, request

    user = getattr(g, "mlflow_authenticated_user", None)
    if user or request.authorization is None:
        return user or None
    authorization = seams.auth("authenticate_request")()
    return getattr(authorization, "username", None) or None


def _authenticated() -> bool:
    return True  # basic-auth has authenticated the caller; each endpoint checks READ itself


def _authorize_green_api() -> None:
    """Give basic-auth a rule for ``/green/api/*``: with ``MLFLOW_BASIC_AUTH_FAIL_CLOSED`` (on by
    default) it refuses every route it has none for, to everyone but administrators."""
    validators = seams.auth("BEFORE_REQUEST_VALIDATORS")
    for path, methods in green_api_routes():
        for method in methods:
            validators[(path, method)] = _authenticated


# Validated at import: ``mlflow server`` imports this module before it starts any worker.
_gate = Gate.from_env(can_manage_budgets=_can_manage_budgets)


def _refuse_malformed_basic_auth() -> Any:
    """401 for an Authorization header that is not ``Basic user:password``.

    MLflow 3.17's basic-auth answers such a header (e.g. ``Bearer <token>``) with an HTML 500
    when its credential cache is on (it hashes a missing username); clients retry 5xx. Custom
    ``authorization_function`` set-ups may accept other schemes, so they are left alone.
    """
    from flask import Response, request

    if not seams.auth("auth_config").authorization_function.endswith(":authenticate_request_basic_auth"):
        return None
    auth = request.authorization
    if auth is None or (auth.type == "basic" and auth.username is not None and auth.password is not None):
        return None
    body = '{"error_code": "UNAUTHENTICATED", "message": "use HTTP Basic authentication (user:password)"}'
    return Response(
        body,
        status=401,
        mimetype="application/json",
        headers={"WWW-Authenticate": 'Basic realm="mlflow"'},
    )


def _inside_mlflow_server_command() -> bool:
    try:
        import click

        ctx = click.get_current_context(silent=True)
    except Exception:
        return False
    return ctx is not None and ctx.command.name == "server"


def _preflight_auth() -> None:
    """In the ``mlflow server`` process, before any worker, fail on bad auth config in one line.

    MLflow does this itself only for ``--app-name basic-auth``; without it a missing admin
    password or secret key would crash every worker (uvicorn restarts them in a loop) instead
    of stopping the command with one clear error.
    """
    if not _inside_mlflow_server_command():
        return
    try:
        checks = [seams.auth("get_flask_server_secret_key"), seams.auth("bootstrap_admin_user")]
    except seams.SeamMissing:
        return  # an MLflow release whose basic-auth checks its set-up in each worker only
    try:
        for check in checks:
            check()
    except Exception as exc:
        line = " ".join(str(exc).split())[:500] or type(exc).__name__
        raise SystemExit(f"mlflow-green: green-gate-auth cannot start: {line}") from None


def create_app() -> object:
    """The app factory ``mlflow server`` calls in each worker, like ``basic-auth``'s."""
    from mlflow.server import app as flask_app  # MLflow's documented base for a server plugin

    create_auth_app = seams.auth("create_app")

    # basic-auth's own factory returns FastAPI around Flask under uvicorn, Flask under gunicorn.
    flask_app.before_request(_refuse_malformed_basic_auth)  # runs before basic-auth's own hook
    served = create_auth_app(flask_app)  # its before_request (authentication) comes next
    from mlflow_green.reports.server_page import mount_green_page

    events.set_user_resolver(_authenticated_user)
    sections = install_green_api(flask_app, _gate.policy, can_read=_can_read_model)
    _authorize_green_api()
    _gate.install(flask_app)
    mount_green_page(flask_app, sections=sections)
    return served


_preflight_auth()

# The ``mlflow.app`` entry point names ``app``: a plain function, so ``mlflow server`` treats it
# as a factory (uvicorn ``--factory``, gunicorn ``app()``) and calls it once per worker.
app = create_app

__all__ = ["app", "create_app"]
