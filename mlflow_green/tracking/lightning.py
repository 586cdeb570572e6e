"""Lightning adapter (``lightning`` and ``pytorch_lightning``): the hooks of a thin ``Callback``.

The callback classes themselves are :class:`mlflow_green.lightning.GreenCallback` (for
``lightning``; for ``pytorch_lightning`` when only that is installed) and
``mlflow_green.tracking._pl_callback.GreenPLCallback``; ``autolog()`` adds the one of the
trainer's package, or pass it yourself: ``Trainer(callbacks=[GreenCallback()])``.

Resuming (``Trainer.fit(ckpt_path=...)``): the callback's ``state_dict`` (saved in the
checkpoint) holds the run id and the next epoch; restored, training continues that run at
the checkpoint's epoch — steps, cumulative figures and projection continue the run's history
(see :mod:`mlflow_green.tracking.resume`). Without a restored state the trainer's
``current_epoch`` says where training resumes.

The window of an epoch runs from ``on_train_epoch_start`` to ``on_train_epoch_end``, which
Lightning calls after the epoch's validation, so the accuracy is in
``trainer.callback_metrics``. When the trainer logs with an ``MLFlowLogger`` the green
metrics go into that logger's run. Every rank measures its own GPU; global rank 0 logs.
With ``on_budget="stop"`` the callback sets ``trainer.should_stop``.
"""

from __future__ import annotations

from typing import Any

from mlflow_green.tracking.config import GreenConfig, current_config
from mlflow_green.tracking.epochs import TrackerSteps, guarded
from mlflow_green.tracking.tracker import GreenTracker

__all__ = ["GreenLightningCallbackMixin"]

_RUN_ID = "run_id"
_NEXT_EPOCH = "next_epoch"


class GreenLightningCallbackMixin(TrackerSteps):
    """The hooks; combined with the flavour's ``Callback`` base by :func:`green_callback_class`."""

    def __init__(self, config: GreenConfig | None = None, **options: Any) -> None:
        if config is None:
            config = current_config()
        self.config = config.with_options(**options) if options else config
        self.tracker: GreenTracker | None = None
        # From the checkpoint (load_state_dict): the run and epoch to continue.
        self._restored: dict[str, Any] = {}
        # The run this callback reopened (a resume without an MLFlowLogger): ended at fit end.
        self._reopened: str | None = None

    def state_dict(self) -> dict[str, Any]:
        """Saved in Lightning checkpoints: the run id and the next epoch."""
        tracker = self.tracker
        if tracker is None:
            return dict(self._restored)
        return {_RUN_ID: tracker.run_id, _NEXT_EPOCH: tracker.records.first_epoch + len(tracker.records)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restored from a checkpoint before ``on_fit_start``: where training resumes."""
        self._restored = dict(state_dict or {})

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        max_epochs = getattr(trainer, "max_epochs", None)
        max_steps = getattr(trainer, "max_steps", -1)
        total = max_epochs if max_epochs and max_epochs > 0 and (max_steps is None or max_steps < 0) else None
        run_id, tracking_uri = _mlflow_logger_run(trainer)
        restored_run = str(self._restored.get(_RUN_ID) or "") or None
        if run_id is None and restored_run and getattr(trainer, "is_global_zero", True):
            self._reopen(restored_run)
        # Logging into another run than the checkpoint's (one MLflow's autolog or the user just
        # opened, or the MLFlowLogger's): that run's figures continue the checkpoint run's.
        target = run_id or _active_run_id()
        continues = restored_run if restored_run and target != restored_run else None
        start = self._restored.get(_NEXT_EPOCH)
        if start is None:
            current = int(getattr(trainer, "current_epoch", 0) or 0)
            start = current if current > 0 else None
        self.tracker = GreenTracker(
            total_epochs=total,
            config=self.config,
            run_id=run_id,
            tracking_uri=tracking_uri,
            read_run_accuracy=False,
            auto_begin=False,
            start_epoch=int(start) if start is not None else None,
            continues_run=continues,
        )
        self._guard("starting the measurement", lambda t: t.start())
        if self.config.parameters is None:  # given as an option: that count wins
            from mlflow_green.tracking.impact import count_parameters

            count = count_parameters(pl_module)
            if count:
                self._guard("counting the model's parameters", lambda t: t.set_parameters(count))

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

    def _reopen(self, run_id: str) -> None:
        """Continue the checkpoint's run (no MLFlowLogger, no active run): reopen it."""
        import mlflow

        if mlflow.active_run() is not None:
            return

        def reopen() -> bool:
            mlflow.start_run(run_id=run_id)
            self._reopened = run_id
            return True

        guarded("reopening the checkpoint's run", reopen, False)

    def _end_reopened(self, status: str) -> None:
        import mlflow

        active = mlflow.active_run()
        if self._reopened is not None and active is not None and active.info.run_id == self._reopened:
            guarded("ending the run", lambda: mlflow.end_run(status=status), None)
        self._reopened = None

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._guard("finishing the run", lambda t: t.close())
        self.tracker = None
        self._end_reopened("FINISHED")

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.abort()

    def abort(self) -> None:
        """Training raised: account the epoch in progress and finish the report."""
        self._guard("finishing the run", lambda t: t.close(status="FAILED", record_partial=True))
        self.tracker = None
        self._end_reopened("FAILED")


def _active_run_id() -> str | None:
    import mlflow

    active = mlflow.active_run()
    return active.info.run_id if active is not None else None


def _mlflow_logger_run(trainer: Any) -> tuple[str | None, str | None]:
    """The run of the trainer's ``MLFlowLogger``, if it has one."""
    for logger in getattr(trainer, "loggers", None) or ():
        if type(logger).__name__ == "MLFlowLogger" and getattr(trainer, "is_global_zero", True):
            try:
                return logger.run_id, getattr(logger, "_tracking_uri", None)
            except Exception:
                return None, None
    return None, None
