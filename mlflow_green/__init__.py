"""mlflow_green: measured, comparable and enforceable carbon cost for every MLflow model.

``mlflow_green.autolog()`` records per-epoch energy, CO2eq, embodied share and accuracy per
kg of Hugging Face and Lightning training runs; ``mlflow_green.epochs(n)`` and
``mlflow_green.GreenTracker`` do the same for plain PyTorch loops.

Importing this package is light: MLflow, torch and the frameworks are imported only when
something is measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlflow_green._version import __version__

if TYPE_CHECKING:
    from mlflow_green.errors import ConfigError, GreenError
    from mlflow_green.tracking.active import report_accuracy, report_tokens
    from mlflow_green.tracking.autolog import autolog
    from mlflow_green.tracking.epochs import Epochs, epochs
    from mlflow_green.tracking.record import EpochRecord
    from mlflow_green.tracking.recover import recover
    from mlflow_green.tracking.tracker import GreenTracker

__all__ = [
    "ConfigError",
    "EpochRecord",
    "Epochs",
    "GreenError",
    "GreenTracker",
    "__version__",
    "autolog",
    "epochs",
    "recover",
    "report_accuracy",
    "report_tokens",
]

# name -> module it lives in; resolved on first access (PEP 562) to keep `import` cheap.
_LAZY: dict[str, str] = {
    "ConfigError": "mlflow_green.errors",
    "GreenError": "mlflow_green.errors",
    "autolog": "mlflow_green.tracking.autolog",
    "EpochRecord": "mlflow_green.tracking.record",
    "recover": "mlflow_green.tracking.recover",
    "Epochs": "mlflow_green.tracking.epochs",
    "GreenTracker": "mlflow_green.tracking.tracker",
    "epochs": "mlflow_green.tracking.epochs",
    "report_accuracy": "mlflow_green.tracking.active",
    "report_tokens": "mlflow_green.tracking.active",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'mlflow_green' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
