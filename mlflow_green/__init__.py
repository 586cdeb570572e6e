"""mlflow_green: measured, comparable and enforceable carbon cost for every MLflow model."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
