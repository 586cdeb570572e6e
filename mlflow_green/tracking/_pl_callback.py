"""The callback for the ``pytorch_lightning`` package (``lightning``'s is in mlflow_green.lightning)."""

from __future__ import annotations

from pytorch_lightning.callbacks import Callback

from mlflow_green.tracking.lightning import GreenLightningCallbackMixin

__all__ = ["GreenPLCallback"]


class GreenPLCallback(GreenLightningCallbackMixin, Callback):  # type: ignore[misc]
    """Measures each training epoch of a ``pytorch_lightning.Trainer`` and logs the green metrics."""
