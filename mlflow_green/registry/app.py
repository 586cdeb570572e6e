"""``mlflow server --app-name green-gate``: MLflow's app with the carbon gate (work in progress)."""

from mlflow.server import app

__all__ = ["app"]
