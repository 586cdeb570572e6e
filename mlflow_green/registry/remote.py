"""Client side of the gated server's ``/green/api/*``: ask the server for its own answers.

The requests go through MLflow's REST helper with the tracking URI's credentials
(``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` or token, TLS settings), so they authenticate as any
MLflow client does. A server without these endpoints (a plain ``mlflow server``) raises
:class:`NotAGatedServer`.
"""

from __future__ import annotations

from typing import Any

from mlflow_green.errors import ConfigError

__all__ = ["NotAGatedServer", "call_server", "is_server_uri", "server_audit", "server_check", "server_events"]


class NotAGatedServer(ConfigError):
    """The tracking server has no ``/green/api`` (it is not ``--app-name green-gate[-auth]``)."""


def is_server_uri(uri: str | None) -> bool:
    """True for an http(s) tracking URI (a tracking server), False for a local store."""
    return str(uri or "").lower().startswith(("http://", "https://"))


def call_server(
    uri: str, route: str, body: dict[str, Any], *, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """POST ``body`` to ``route`` on the tracking server at ``uri`` with the URI's credentials;
    the JSON answer, or MLflow's own exception for an error answer (its error code kept)."""
    from mlflow.exceptions import MlflowException, RestException

    from mlflow_green.tracking import _mlflow_compat as compat

    response = compat.http_request(compat.host_creds(uri), route, "POST", json=body, extra_headers=headers)
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code == 200 and isinstance(data, dict):
        return data
    code = data.get("error_code") if isinstance(data, dict) else None
    if response.status_code in (404, 405) and code is None:
        raise NotAGatedServer(
            f"the tracking server at {uri} has no {route}: it is not a gated server "
            "(mlflow server --app-name green-gate), so it has no verdict to give"
        )
    if isinstance(data, dict) and code:
        raise RestException(data)  # MLflow's own exception for an error JSON (error_code kept)
    text = " ".join(response.text.split())[:300]
    raise MlflowException(f"HTTP {response.status_code} from {route}: {text}")


def server_check(
    uri: str, name: str, version: str, *, alias: str | None = None, stage: str | None = None
) -> dict[str, Any]:
    """The gated server's verdict (``POST /green/api/check``), the JSON of ``check --json``."""
    body: dict[str, Any] = {"name": name, "version": str(version)}
    if alias:
        body["alias"] = alias
    if stage:
        body["stage"] = stage
    return call_server(uri, "/green/api/check", body)


def server_audit(uri: str, *, model: str | None = None) -> dict[str, Any]:
    """The gated server's audit (``/green/api/audit``): violations of today's budgets."""
    return call_server(uri, "/green/api/audit", {"model": model} if model else {})


def server_events(
    uri: str, *, model: str | None = None, since: str | None = None, limit: int = 1000
) -> dict[str, Any]:
    """The gated server's trail of refusals and overrides (``/green/api/events``)."""
    body: dict[str, Any] = {"limit": str(limit)}
    if model:
        body["model"] = model
    if since:
        body["since"] = since
    return call_server(uri, "/green/api/events", body)
