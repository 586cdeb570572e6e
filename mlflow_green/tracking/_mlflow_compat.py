"""Every MLflow name outside its documented API that the tracking layer uses, in one place.

A plugin has to do a few things MLflow's public API has no name for: make a raw HTTP request
with its own timeout and no retries (``http_request``, ``get_default_host_creds``), forget a run
the server could not end (``fluent._active_run_stack``), learn the experiment
``mlflow.set_experiment`` chose without asking the server (``fluent._active_experiment_id``),
resolve MLflow's context tags offline (``context.registry.resolve_tags``), patch a framework
when it is imported (``register_post_import_hook``), know which registry a client talks to
(``MlflowClient._registry_uri``), and read a SQL store's tables in bulk for the ledger
(``ledger_tables``: the store behind a client, MLflow's SQLAlchemy store class and its run,
metric and tag tables).

Each is listed in :data:`PRIVATE_NAMES` and read through :func:`require`, which fails with
one line naming the MLflow release and what is missing; ``tests/tracking/test_mlflow_compat.py``
has one test per name (``make test-compat`` runs it against the oldest and newest MLflow 3.x).
The registry's server-plugin seams live in ``registry/_mlflow_seams.py``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "PRIVATE_ATTRIBUTES",
    "PRIVATE_NAMES",
    "MissingMlflowName",
    "active_experiment_id",
    "host_creds",
    "http_request",
    "plain_sql_tables",
    "pop_active_run",
    "register_post_import_hook",
    "registry_uri",
    "require",
    "resolve_context_tags",
    "tracking_store",
]

# name -> (module, attribute path): what this package reads that MLflow does not document.
PRIVATE_NAMES: dict[str, tuple[str, str]] = {
    "http_request": ("mlflow.utils.rest_utils", "http_request"),
    "get_default_host_creds": ("mlflow.utils.credentials", "get_default_host_creds"),
    "active_run_stack": ("mlflow.tracking.fluent", "_active_run_stack"),
    "active_experiment_id": ("mlflow.tracking.fluent", "_active_experiment_id"),
    "resolve_tags": ("mlflow.tracking.context.registry", "resolve_tags"),
    "register_post_import_hook": ("mlflow.utils.import_hooks", "register_post_import_hook"),
    "SqlAlchemyStore": ("mlflow.store.tracking.sqlalchemy_store", "SqlAlchemyStore"),
    "SqlRun": ("mlflow.store.tracking.dbmodels.models", "SqlRun"),
    "SqlMetric": ("mlflow.store.tracking.dbmodels.models", "SqlMetric"),
    "SqlTag": ("mlflow.store.tracking.dbmodels.models", "SqlTag"),
}

#: Instance attributes read the same way (class, attribute): an MlflowClient's registry URI, which
#: it resolves at construction and has no public property for.
PRIVATE_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "client_registry_uri": ("mlflow.tracking.MlflowClient", "_registry_uri"),
    "client_tracking_store": ("mlflow.tracking.MlflowClient", "_tracking_client.store"),
}


class MissingMlflowName(ImportError):
    """This MLflow release lacks a name mlflow_green relies on."""


def require(name: str) -> Any:
    """The object behind ``PRIVATE_NAMES[name]``; :class:`MissingMlflowName` when absent."""
    module_name, path = PRIVATE_NAMES[name]
    try:
        obj: Any = importlib.import_module(module_name)
        for part in path.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        import mlflow

        raise MissingMlflowName(
            f"mlflow_green needs {module_name}.{path} ({name}), which MLflow "
            f"{mlflow.__version__} does not have; install an MLflow release mlflow_green supports "
            f"(see pyproject.toml) or report it: {exc}"
        ) from exc
    return obj


def http_request(*args: Any, **kwargs: Any) -> Any:
    """MLflow's ``rest_utils.http_request`` (auth, TLS settings and headers of the URI)."""
    return require("http_request")(*args, **kwargs)


def host_creds(tracking_uri: str) -> Any:
    """MLflow's credentials for ``tracking_uri`` (``MLFLOW_TRACKING_TOKEN``/basic auth...)."""
    return require("get_default_host_creds")(tracking_uri)


def registry_uri(client: Any) -> str:
    """The registry URI an ``MlflowClient`` talks to (what it resolved at construction)."""
    _, attribute = PRIVATE_ATTRIBUTES["client_registry_uri"]
    value = getattr(client, attribute, None)
    if value is None:
        import mlflow

        raise MissingMlflowName(
            f"mlflow_green needs MlflowClient.{attribute}, which MLflow {mlflow.__version__} does not "
            "have; install an MLflow release mlflow_green supports (see pyproject.toml)"
        )
    return str(value)


def tracking_store(client: Any) -> Any:
    """The tracking store behind an ``MlflowClient`` (None for anything else)."""
    return getattr(getattr(client, "_tracking_client", None), "store", None)


def plain_sql_tables(store: Any) -> dict[str, Any] | None:
    """MLflow's ``runs``, ``metrics`` and ``tags`` tables when ``store`` is MLflow's own SQLAlchemy
    tracking store with its run queries not overridden (a subclass may scope runs, e.g. by
    workspace); None otherwise, or on a release where these names moved."""
    try:
        base = require("SqlAlchemyStore")
        tables = {t: require(f"Sql{t.title()}").__table__ for t in ("run", "metric", "tag")}
    except MissingMlflowName:
        return None
    hooks = ("_get_query", "_validate_run_accessible", "search_runs")
    plain = (
        isinstance(store, base)
        and hasattr(store, "ManagedSessionMaker")
        and all(getattr(type(store), h, None) is getattr(base, h, None) for h in hooks)
    )
    return tables if plain else None


def pop_active_run(run_id: str) -> None:
    """Forget ``run_id`` as this thread's active run without asking the server to end it."""
    import mlflow

    stack = require("active_run_stack").get()
    while stack and mlflow.active_run() is not None and stack[-1].info.run_id == run_id:
        stack.pop()


def active_experiment_id() -> str | None:
    """The experiment ``mlflow.set_experiment`` chose in this process (None if none)."""
    value = require("active_experiment_id")
    return None if value is None else str(value)


def resolve_context_tags(tags: dict[str, str]) -> dict[str, str]:
    """MLflow's context tags (user, source, git commit...) merged with ``tags``; offline."""
    return {str(k): str(v) for k, v in require("resolve_tags")(dict(tags)).items()}


def register_post_import_hook(hook: Any, module_name: str) -> None:
    """Call ``hook(module)`` when ``module_name`` is imported (now, if it already is)."""
    require("register_post_import_hook")(hook, module_name)
