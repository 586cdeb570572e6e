"""``mlflow server --app-name green-gate-auth``: basic-auth app with the gate (work in progress)."""

from mlflow.server.auth import create_app

app = create_app()

__all__ = ["app"]
