"""``mlflow_green.lightning.GreenCallback``: the Lightning callback, to pass to a ``Trainer``.

``mlflow_green.autolog()`` adds it to every ``Trainer.fit``; pass it yourself when you prefer::

    from mlflow_green.lightning import GreenCallback
    trainer = lightning.Trainer(max_epochs=10, callbacks=[GreenCallback(country="FRA")])

It is built on ``lightning.pytorch.callbacks.Callback`` (on ``pytorch_lightning``'s when only
that package is installed). Options are those of :func:`mlflow_green.autolog`.
"""

from __future__ import annotations

from mlflow_green.tracking.lightning import GreenLightningCallbackMixin

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # only the older package name installed
    from pytorch_lightning.callbacks import Callback  # type: ignore[no-redef,assignment]

__all__ = ["GreenCallback"]


class GreenCallback(GreenLightningCallbackMixin, Callback):  # type: ignore[misc]
    """Measures each training epoch and logs the green metrics (mlflow_green); resumes with
    ``Trainer.fit(ckpt_path=...)`` through its ``state_dict``."""
