"""``mlflow_green.hf.GreenCallback``: the Hugging Face ``TrainerCallback``, to pass to a ``Trainer``.

``mlflow_green.autolog()`` adds it to every ``Trainer.train``; pass it yourself when you prefer::

    from mlflow_green.hf import GreenCallback
    trainer = transformers.Trainer(..., callbacks=[GreenCallback(country="FRA")])

Resuming (``trainer.train(resume_from_checkpoint=...)``): the restored ``TrainerState`` says
which epoch training resumes at; the green steps continue the active run's history.
"""

from __future__ import annotations

from mlflow_green.tracking.hf import GreenHFCallback as GreenCallback

__all__ = ["GreenCallback"]
