"""``mlflow server --app-name green-gate``: MLflow's tracking server with the carbon gate.

The policy (``MLFLOW_GREEN_POLICY``) is read when this module is imported; ``mlflow server``
imports it before starting any worker, so an invalid policy stops the server with one line.
"""

from __future__ import annotations

from mlflow_green.registry._gate import Gate, wrap_for_server

_gate = Gate.from_env()


def _build() -> object:
    from mlflow.server import app as flask_app

    from mlflow_green.reports.server_page import mount_green_page

    _gate.install(flask_app)
    mount_green_page(flask_app)
    return wrap_for_server(flask_app)


app = _build()

__all__ = ["app"]
