"""``mlflow server --app-name green-gate``: MLflow's tracking server with the carbon gate.

The policy (``MLFLOW_GREEN_POLICY``) is read when this module is imported; ``mlflow server``
imports it before starting any worker, so an invalid policy stops the server with one line.
"""

from __future__ import annotations

from mlflow_green.registry._gate import Gate, wrap_for_server
from mlflow_green.registry.green_api import install_green_api

_gate = Gate.from_env()


def _build() -> object:
    from mlflow.server import app as flask_app

    from mlflow_green.reports.server_page import mount_green_page

    sections = install_green_api(flask_app, _gate.policy)  # /green/api/*
    _gate.install(flask_app)
    mount_green_page(flask_app, sections=sections)
    return wrap_for_server(flask_app)


app = _build()

__all__ = ["app"]
