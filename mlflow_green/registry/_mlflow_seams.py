"""The private MLflow names the gated server needs, in one place.

MLflow offers no public name for what a server plugin needs to read a request exactly as the
handler reads it (the request parser), to reach the server's own stores, to recognise which
handler a request was routed to, or to wrap the Flask app as ``mlflow server`` does under
uvicorn. Every such name is imported here and nowhere else in ``mlflow_green``;
``tests/registry/test_mlflow_seams.py`` checks each one, so an MLflow release that lacks one
fails that test with the name, not a server that misbehaves.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = [
    "AUTH_OPTIONAL",
    "AUTH_SEAMS",
    "SEAMS",
    "SeamMissing",
    "auth",
    "endpoints",
    "handler_table",
    "model_permission",
    "parse_request",
    "registry_store",
    "resolve",
    "run_artifact_repo",
    "static_prefix",
    "static_prefix_env",
    "tracking_store",
    "wrap_for_server",
]

# (module, attribute, what the gate uses it for)
SEAMS: tuple[tuple[str, str, str], ...] = (
    ("mlflow.server.handlers", "_get_request_message", "parse a request as the handler does"),
    ("mlflow.server.handlers", "_get_tracking_store", "the server's tracking store"),
    ("mlflow.server.handlers", "_get_model_registry_store", "the server's registry store"),
    ("mlflow.server.handlers", "HANDLERS", "request message class -> handler function"),
    ("mlflow.server.handlers", "get_endpoints", "the routes MLflow mounts (path, handler, methods)"),
    ("mlflow.server.handlers", "_add_static_prefix", "the --static-prefix applied to /green"),
    ("mlflow.server.handlers", "STATIC_PREFIX_ENV_VAR", "where the server keeps --static-prefix"),
    ("mlflow.environment_variables", "_MLFLOW_SGI_NAME", "whether the server runs uvicorn"),
    ("mlflow.server.fastapi_app", "create_fastapi_app", "the ASGI app mlflow server runs"),
    ("mlflow.server.handlers", "_is_servable_proxied_run_artifact_root", "a proxied artifact root"),
    ("mlflow.server.handlers", "_get_artifact_repo_mlflow_artifacts", "the server's artifact store"),
    (
        "mlflow.server.handlers",
        "_get_proxied_run_artifact_destination_path",
        "a proxied run's path in the server's artifact store",
    ),
)

#: MLflow's basic-auth app (``mlflow[auth]``), for ``--app-name green-gate-auth`` only: the gate
#: reuses its permission checks rather than re-implementing them.
AUTH_SEAMS: tuple[tuple[str, str, str], ...] = (
    ("mlflow.server.auth", "create_app", "mount basic-auth on the server's Flask app"),
    ("mlflow.server.auth", "auth_config", "which authorization function basic-auth uses"),
    ("mlflow.server.auth", "sender_is_admin", "whether the caller is an administrator"),
    ("mlflow.server.auth", "validate_can_manage_registered_model", "MANAGE on the request's model"),
    ("mlflow.server.auth", "_get_registered_model_permission", "READ on a named model (/green/api)"),
    ("mlflow.server.auth", "BEFORE_REQUEST_VALIDATORS", "give /green/api/* a basic-auth rule"),
    ("mlflow.server.auth", "bootstrap_admin_user", "fail before any worker on a bad auth set-up"),
    ("mlflow.server.auth", "get_flask_server_secret_key", "fail before any worker on a bad auth set-up"),
    # What older MLflow 3 releases offer instead of _get_registered_model_permission.
    ("mlflow.server.auth", "authenticate_request", "the caller's user name (older releases)"),
    ("mlflow.server.auth", "store", "basic-auth's permission store (older releases)"),
    ("mlflow.server.auth", "_get_permission_from_store_or_default", "a default for no grant (older releases)"),
)

#: Auth seams that some supported MLflow releases lack, each with what stands in for it: the
#: per-name permission (MLflow 3.0-3.x before role-based permissions) is composed from the older
#: names; the start-up checks run only where MLflow has them (older releases check in each worker).
AUTH_OPTIONAL: dict[str, tuple[str, ...]] = {
    "_get_registered_model_permission": ("authenticate_request", "store", "_get_permission_from_store_or_default"),
    "bootstrap_admin_user": (),
    "get_flask_server_secret_key": (),
    "authenticate_request": (),
    "store": (),
    "_get_permission_from_store_or_default": (),
}

#: Seams of the uvicorn server, which older MLflow 3 releases (gunicorn/Flask only) lack: their
#: absence means the server runs Flask, which needs no wrapping.
UVICORN_SEAMS: frozenset[tuple[str, str]] = frozenset(
    {
        ("mlflow.environment_variables", "_MLFLOW_SGI_NAME"),
        ("mlflow.server.fastapi_app", "create_fastapi_app"),
    }
)


class SeamMissing(ImportError):
    """An MLflow private name the gate depends on is absent from the installed MLflow."""


def resolve(module: str, attribute: str) -> Any:
    """``module.attribute``, or :class:`SeamMissing` naming it and the installed MLflow."""
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        import mlflow

        raise SeamMissing(
            f"mlflow-green needs {module}.{attribute}, which MLflow {mlflow.__version__} does not "
            f"provide ({type(exc).__name__}: {exc}); install an MLflow version mlflow-green supports"
        ) from exc


def auth(attribute: str) -> Any:
    """A name of MLflow's basic-auth app (one of :data:`AUTH_SEAMS`)."""
    if not any(a == attribute for _, a, _ in AUTH_SEAMS):
        raise KeyError(f"{attribute} is not one of the basic-auth seams; add it to AUTH_SEAMS")
    return resolve("mlflow.server.auth", attribute)


def model_permission(name: str) -> Any:
    """basic-auth's permission (``.can_read``, ``.can_manage``...) of the caller on registered
    model ``name``, on every supported MLflow release."""
    try:
        return auth("_get_registered_model_permission")(name)
    except SeamMissing:  # a release before role-based permissions: its own store and default
        username = auth("authenticate_request")().username
        store = auth("store")
        return auth("_get_permission_from_store_or_default")(
            lambda: store.get_registered_model_permission(name, username).permission
        )


def parse_request(request_class: type) -> Any:
    """The current Flask request parsed into ``request_class`` exactly as MLflow's handlers do:
    JSON body or query string, proto names and JSON names (``run_uuid``/``runUuid``)."""
    return resolve("mlflow.server.handlers", "_get_request_message")(request_class())


def tracking_store() -> Any:
    """The tracking store of the running server."""
    return resolve("mlflow.server.handlers", "_get_tracking_store")()


def registry_store() -> Any:
    """The model registry store of the running server."""
    return resolve("mlflow.server.handlers", "_get_model_registry_store")()


def handler_table() -> dict[type, Callable[..., Any]]:
    """Request message class -> MLflow handler function (Flask names endpoints after it)."""
    return dict(resolve("mlflow.server.handlers", "HANDLERS"))


def endpoints() -> list[tuple[str, Callable[..., Any], list[str]]]:
    """Every route MLflow's server mounts: ``(path, handler, methods)``."""
    return list(resolve("mlflow.server.handlers", "get_endpoints")())


def static_prefix(path: str) -> str:
    """``path`` under the server's ``--static-prefix``."""
    return str(resolve("mlflow.server.handlers", "_add_static_prefix")(path))


def static_prefix_env() -> str:
    """The environment variable in which ``mlflow server`` passes ``--static-prefix``."""
    return str(resolve("mlflow.server.handlers", "STATIC_PREFIX_ENV_VAR"))


def wrap_for_server(flask_app: Any) -> Any:
    """The object the server runs: FastAPI around Flask under uvicorn, Flask itself otherwise."""
    try:
        sgi = resolve("mlflow.environment_variables", "_MLFLOW_SGI_NAME")
    except SeamMissing:  # an MLflow release before the uvicorn server: Flask runs as it is
        return flask_app
    if sgi.get() == "uvicorn":
        return resolve("mlflow.server.fastapi_app", "create_fastapi_app")(flask_app)
    return flask_app


def run_artifact_repo(root: str) -> tuple[Any, str]:
    """The artifact repository and base path holding a run whose artifact URI is ``root``,
    resolved as MLflow's own get-artifact handler does (a proxied ``mlflow-artifacts:/`` root
    is read from the server's artifacts destination)."""
    module = "mlflow.server.handlers"
    if resolve(module, "_is_servable_proxied_run_artifact_root")(root):
        repo = resolve(module, "_get_artifact_repo_mlflow_artifacts")()
        base = resolve(module, "_get_proxied_run_artifact_destination_path")(proxied_artifact_root=root)
        import mlflow.server.handlers as handlers

        # Workspace scoping exists only on newer MLflow releases: absent means unscoped.
        scoped = getattr(handlers, "_get_workspace_scoped_repo_path_if_enabled", lambda p: p)
        return repo, str(scoped(base))
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return get_artifact_repository(root), ""
