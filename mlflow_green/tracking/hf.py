"""Hugging Face ``transformers.Trainer`` adapter: a thin ``TrainerCallback``.

Epoch windows follow the callback events. With ``eval_strategy="epoch"`` the Trainer
evaluates *after* ``on_epoch_end``, so the epoch is closed when its evaluation arrives (its
energy and its accuracy belong to that epoch), or at the next ``on_epoch_begin`` /
``on_train_end`` if no evaluation comes. When Hugging Face's ``MLflowCallback`` is active it
opens the run in its ``on_train_begin``, which runs before ours: the green metrics go into
that run, and ending it stays its job.

Normally added by :func:`mlflow_green.autolog`; it can also be passed explicitly with
``Trainer(callbacks=[mlflow_green.hf.GreenCallback()])``.

Resuming (``trainer.train(resume_from_checkpoint=...)``): the restored ``TrainerState`` says
which epoch training resumes at; in the active run (``mlflow.start_run(run_id=...)``, or HF's
MLflowCallback with ``MLFLOW_RUN_ID``) the steps, cumulative figures and projection continue
the run's history (see :mod:`mlflow_green.tracking.resume`).
"""

from __future__ import annotations

import math
from typing import Any

from transformers import TrainerCallback

from mlflow_green.tracking.config import GreenConfig, current_config
from mlflow_green.tracking.epochs import TrackerSteps
from mlflow_green.tracking.tracker import GreenTracker

__all__ = ["GreenHFCallback"]


def _strategy(value: Any) -> str:
    return str(getattr(value, "value", value) or "no").lower()


class GreenHFCallback(TrackerSteps, TrainerCallback):  # type: ignore[misc]
    """Measures each epoch of a ``transformers.Trainer`` run and logs the green metrics."""

    def __init__(self, config: GreenConfig | None = None, **options: Any) -> None:
        if config is None:
            config = current_config()
        self.config = config.with_options(**options) if options else config
        self.tracker: GreenTracker | None = None
        self._pending = False
        self._expect_eval = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        total = getattr(state, "num_train_epochs", None) or getattr(args, "num_train_epochs", 0)
        total_epochs = math.ceil(total) if total and total > 0 else None
        # resume_from_checkpoint: the restored TrainerState says where training resumes.
        done = float(getattr(state, "epoch", 0) or 0) if getattr(state, "global_step", 0) else 0.0
        self.tracker = GreenTracker(
            total_epochs=total_epochs,
            config=self.config,
            run_name=getattr(args, "run_name", None),
            read_run_accuracy=False,
            auto_begin=False,
            start_epoch=math.floor(done) if done > 0 else None,
        )
        self._pending = False
        self._expect_eval = _strategy(getattr(args, "eval_strategy", "no")) == "epoch"
        self._guard("starting the measurement", lambda t: t.start())
        self._count_parameters(kwargs.get("model"))
        return control

    def _count_parameters(self, model: Any) -> None:
        if model is None or self.config.parameters is not None:
            return  # given as an option: that count wins
        from mlflow_green.tracking.impact import count_parameters

        count = count_parameters(model)
        if count:
            self._guard("counting the model's parameters", lambda t: t.set_parameters(count))

    def _take_tokens(self, state: Any) -> None:
        # Trainer counts them (all processes together) when include_num_input_tokens_seen is on.
        seen = getattr(state, "num_input_tokens_seen", 0) or 0
        if seen > 0:
            self._guard("reading the training tokens", lambda t: t.set_tokens(int(seen)))

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self._pending:
            self._finalize(control)
        self._guard("opening an epoch", lambda t: t.begin_epoch())
        return control

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.tracker is None:
            return control
        self._take_tokens(state)
        if self._expect_eval:
            self._pending = True  # the evaluation of this epoch follows
        else:
            self._finalize(control)
        return control

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        self._take_accuracy(metrics)
        if self._pending:
            self._finalize(control)
        return control

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        self._take_accuracy(logs)
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self._pending:
            self._finalize(control)
        self._guard("finishing the run", lambda t: t.close())
        self.tracker = None
        return control

    def abort(self) -> None:
        """Training raised: account the epoch in progress and finish the report."""
        self._guard("finishing the run", lambda t: t.close(status="FAILED", record_partial=True))
        self.tracker = None

    def _take_accuracy(self, metrics: dict[str, Any] | None) -> None:
        picked = self.config.pick_accuracy(metrics)
        if picked is not None:
            self._guard("reading the accuracy", lambda t: t.log_accuracy(picked[1], name=picked[0]))

    def _finalize(self, control: Any) -> None:
        self._pending = False

        def close_epoch(tracker: GreenTracker) -> None:
            tracker.epoch_end()
            if tracker.should_stop:
                control.should_training_stop = True

        self._guard("closing an epoch", close_epoch)
