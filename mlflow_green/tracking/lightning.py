"""Lightning adapter (``lightning`` and ``pytorch_lightning``): a thin ``Callback``.

The window of an epoch runs from ``on_train_epoch_start`` to ``on_train_epoch_end``, which
Lightning calls after the epoch's validation, so the accuracy is in
``trainer.callback_metrics``. When the trainer logs with an ``MLFlowLogger`` the green
metrics go into that logger's run. Every rank measures its own GPU; global rank 0 logs.
With ``on_budget="stop"`` the callback sets ``trainer.should_stop``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from mlflow_green.tracking.config import GreenConfig, current_config
from mlflow_green.tracking.epochs import abandon, guarded
from mlflow_green.tracking.tracker import GreenTracker

__all__ = ["GreenLightningCallbackMixin", "green_callback_class"]


class GreenLightningCallbackMixin:
    """The hooks; combined with the flavour's ``Callback`` base by :func:`green_callback_class`."""

    def __init__(self, config: GreenConfig | None = None, **options: Any) -> None:
        if config is None:
            config = current_config()
        self.config = config.with_options(**options) if options else config
        self.tracker: GreenTracker | None = None

    def _guard(self, what: str, fn: Callable[[GreenTracker], object]) -> None:
        """Run a step on the tracker; a failure stops measuring, never the training."""
        tracker = self.tracker
        if tracker is None:
            return

        def step() -> bool:
            fn(tracker)
            return True

        if not guarded(what, step, False):
            self.tracker = None
            abandon(tracker)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        max_epochs = getattr(trainer, "max_epochs", None)
        max_steps = getattr(trainer, "max_steps", -1)
        total = max_epochs if max_epochs and max_epochs > 0 and (max_steps is None or max_steps < 0) else None
        run_id, tracking_uri = _mlflow_logger_run(trainer)
        self.tracker = GreenTracker(
            total_epochs=total,
            config=self.config,
            run_id=run_id,
            tracking_uri=tracking_uri,
            read_run_accuracy=False,
            auto_begin=False,
        )
        self._guard("starting the measurement", lambda t: t.start())

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._guard("opening an epoch", lambda t: t.begin_epoch())

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        def close_epoch(tracker: GreenTracker) -> None:
            picked = self.config.pick_accuracy(dict(getattr(trainer, "callback_metrics", {}) or {}))
            if picked is not None:
                tracker.log_accuracy(picked[1], name=picked[0])
            tracker.epoch_end()
            if tracker.should_stop:
                trainer.should_stop = True

        self._guard("closing an epoch", close_epoch)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._guard("finishing the run", lambda t: t.close())
        self.tracker = None

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.abort()

    def abort(self) -> None:
        """Training raised: account the epoch in progress and finish the report."""
        self._guard("finishing the run", lambda t: t.close(status="FAILED", record_partial=True))
        self.tracker = None


def _mlflow_logger_run(trainer: Any) -> tuple[str | None, str | None]:
    """The run of the trainer's ``MLFlowLogger``, if it has one."""
    for logger in getattr(trainer, "loggers", None) or ():
        if type(logger).__name__ == "MLFlowLogger" and getattr(trainer, "is_global_zero", True):
            try:
                return logger.run_id, getattr(logger, "_tracking_uri", None)
            except Exception:
                return None, None
    return None, None


@functools.cache
def green_callback_class(flavor: str) -> type:
    """``GreenLightningCallback`` for ``lightning`` or ``pytorch_lightning``."""
    if flavor == "lightning":
        from lightning.pytorch.callbacks import Callback
    elif flavor == "pytorch_lightning":
        from pytorch_lightning.callbacks import Callback  # type: ignore[no-redef,assignment]
    else:
        raise ValueError(f"unknown Lightning flavour {flavor!r}")
    return type(
        "GreenLightningCallback",
        (GreenLightningCallbackMixin, Callback),
        {"__doc__": "Measures each training epoch and logs the green metrics (mlflow_green).",
         "__module__": __name__},
    )
