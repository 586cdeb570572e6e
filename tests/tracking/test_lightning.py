"""A real Lightning Trainer with autolog on."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from mlflow_green.tracking import schema
from tests.tracking._checks import (
    assert_cumulative,
    assert_every_epoch,
    assert_simulated_power,
    history,
)

pytest.importorskip("lightning")

EPOCHS = 3


def _flavor(flavor: str) -> Any:
    import importlib

    return importlib.import_module("lightning.pytorch" if flavor == "lightning" else flavor)


def make_module(flavor: str = "lightning") -> Any:
    import torch

    LightningModule = _flavor(flavor).LightningModule

    class Tiny(LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 2)

        def training_step(self, batch: Any, _: int) -> Any:
            x, y = batch
            return torch.nn.functional.cross_entropy(self.layer(x), y)

        def validation_step(self, batch: Any, _: int) -> None:
            x, y = batch
            acc = (self.layer(x).argmax(-1) == y).float().mean()
            self.log("val_acc", acc, on_epoch=True)

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return Tiny()


def loaders() -> tuple[Any, Any]:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=gen)
    y = (x[:, 0] > 0).long()
    data = TensorDataset(x, y)
    return DataLoader(data, batch_size=8), DataLoader(data, batch_size=16)


def make_trainer(tmp_path: Path, flavor: str = "lightning", **kwargs: Any) -> Any:
    Trainer = _flavor(flavor).Trainer
    kwargs.setdefault("logger", False)
    kwargs.setdefault("max_epochs", EPOCHS)
    kwargs.setdefault("enable_checkpointing", False)
    return Trainer(
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
        **kwargs,
    )


@pytest.mark.parametrize("flavor", ["lightning", "pytorch_lightning"])
def test_fit_logs_every_epoch(flavor: str, tmp_path: Path, mlflow_local: str, green_autolog: None) -> None:
    import mlflow

    import mlflow_green

    pytest.importorskip(flavor)
    mlflow_green.autolog(sampler="simulated:300", country="FRA", silent=True)
    train, val = loaders()
    trainer = make_trainer(tmp_path, flavor)
    trainer.fit(make_module(flavor), train, val)

    client = mlflow.MlflowClient()
    runs = client.search_runs(["0"])
    assert len(runs) == 1
    run_id = runs[0].info.run_id
    assert_every_epoch(client, run_id, EPOCHS)
    assert_simulated_power(client, run_id, 300)
    assert_cumulative(client, run_id)
    per_kg = history(client, run_id, schema.ACCURACY_PER_KG)
    cum = dict(history(client, run_id, schema.CUM_TOTAL_CO2EQ_KG))
    assert [s for s, _ in per_kg] == list(range(EPOCHS))
    final_acc = float(trainer.callback_metrics["val_acc"])
    assert math.isclose(per_kg[-1][1], final_acc / cum[EPOCHS - 1], rel_tol=1e-6)
    assert runs[0].data.tags[schema.TAG_ACCURACY_METRIC] == "val_acc"
    from mlflow_green.tracking.lightning import GreenLightningCallbackMixin

    assert not any(isinstance(c, GreenLightningCallbackMixin) for c in trainer.callbacks)


def test_mlflow_logger_run_is_shared(tmp_path: Path, mlflow_local: str, green_autolog: None) -> None:
    import mlflow
    from lightning.pytorch.loggers import MLFlowLogger

    import mlflow_green

    mlflow_green.autolog(sampler="simulated:300", silent=True, intensity=100)
    logger = MLFlowLogger(experiment_name="lit", tracking_uri=mlflow_local)
    train, val = loaders()
    trainer = make_trainer(tmp_path, logger=logger)
    trainer.fit(make_module(), train, val)
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("lit")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].info.run_id == logger.run_id
    assert_every_epoch(client, logger.run_id, EPOCHS)
    assert "val_acc" in runs[0].data.metrics
    assert len(client.search_runs(["0"])) == 0


def test_budget_stop_sets_should_stop(tmp_path: Path, mlflow_local: str, green_autolog: None) -> None:
    import mlflow

    import mlflow_green

    mlflow_green.autolog(sampler="simulated:300", intensity=500, budget_kg=1e-12, on_budget="stop", silent=True)
    train, val = loaders()
    trainer = make_trainer(tmp_path)
    trainer.fit(make_module(), train, val)
    assert trainer.current_epoch == 1
    client = mlflow.MlflowClient()
    run = client.search_runs(["0"])[0]
    assert [s for s, _ in history(client, run.info.run_id, schema.ENERGY_KWH)] == [0]
    assert run.data.tags[schema.TAG_STOP_REASON].startswith("budget")


@pytest.mark.parametrize("strict", ["0", "1"])
def test_a_telemetry_bug_never_breaks_training(
    strict: str, tmp_path: Path, mlflow_local: str, green_autolog: None,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    import mlflow_green
    from mlflow_green.tracking.tracker import GreenTracker

    def broken(self: GreenTracker, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("accounting exploded")

    monkeypatch.setenv("MLFLOW_GREEN_STRICT", strict)
    monkeypatch.setattr(GreenTracker, "epoch_end", broken)
    mlflow_green.autolog(sampler="simulated:300", silent=True, intensity=100)
    train, val = loaders()
    trainer = make_trainer(tmp_path, max_epochs=2)
    if strict == "1":
        with pytest.raises(RuntimeError, match="exploded"):
            trainer.fit(make_module(), train, val)
    else:
        trainer.fit(make_module(), train, val)
        assert trainer.current_epoch == 2
        assert sum("exploded" in r.getMessage() for r in caplog.records) == 1


def test_fit_from_a_checkpoint_continues_the_run_with_autolog_only(
    tmp_path: Path, mlflow_local: str, green_autolog: None
) -> None:
    import mlflow
    from lightning.pytorch.callbacks import ModelCheckpoint

    import mlflow_green

    mlflow.pytorch.autolog(disable=True)  # whatever an earlier test left: MLflow opens no run
    mlflow_green.autolog(sampler="simulated:300", country="FRA", silent=True, report=False)
    train, val = loaders()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    make_trainer(tmp_path, max_epochs=2, enable_checkpointing=True, callbacks=[ckpt]).fit(
        make_module(), train, val
    )
    client = mlflow.MlflowClient()
    (run,) = client.search_runs(["0"])
    # A new process would start here: the checkpoint's callback state names the run.
    trainer = make_trainer(tmp_path, max_epochs=4, enable_checkpointing=True)
    trainer.fit(make_module(), train, val, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert len(client.search_runs(["0"])) == 1
    run_id = run.info.run_id
    assert_every_epoch(client, run_id, 4)
    assert_cumulative(client, run_id)
    assert dict(history(client, run_id, schema.SEGMENT)) == {0: 0.0, 1: 0.0, 2: 1.0, 3: 1.0}
    finished = client.get_run(run_id)
    assert finished.data.tags[schema.TAG_SEGMENTS] == "0,2"
    assert finished.info.status == "FINISHED"


@pytest.mark.parametrize("opener", ["mlflow-autolog", "user"])
def test_a_resume_logging_into_another_run_continues_the_checkpoints_figures(
    tmp_path: Path, mlflow_local: str, green_autolog: None, opener: str
) -> None:
    """MLflow's own autolog opens a fresh run for every fit (so does a user who starts one): the
    checkpoint names the first run, so the new run's epochs and cumulative figures continue its
    (the model logged there carries the whole job's footprint), and the tag says from where."""
    import mlflow
    from lightning.pytorch.callbacks import ModelCheckpoint

    import mlflow_green

    mlflow.pytorch.autolog(disable=True)
    mlflow_green.autolog(sampler="simulated:300", country="FRA", silent=True, report=False)
    train, val = loaders()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    make_trainer(tmp_path, max_epochs=2, enable_checkpointing=True, callbacks=[ckpt]).fit(make_module(), train, val)
    client = mlflow.MlflowClient()
    (first,) = client.search_runs(["0"])
    first_total = first.data.metrics[schema.CUM_TOTAL_CO2EQ_KG]
    resume = str(tmp_path / "ckpt" / "last.ckpt")
    trainer = make_trainer(tmp_path, max_epochs=4, enable_checkpointing=True)
    if opener == "mlflow-autolog":
        mlflow.pytorch.autolog(log_models=False, silent=True)
        try:
            trainer.fit(make_module(), train, val, ckpt_path=resume)
        finally:
            mlflow.pytorch.autolog(disable=True)
        (second,) = [r for r in client.search_runs(["0"]) if r.info.run_id != first.info.run_id]
    else:
        with mlflow.start_run() as active:
            trainer.fit(make_module(), train, val, ckpt_path=resume)
        second = client.get_run(active.info.run_id)
    run_id = second.info.run_id
    steps = [m.step for m in client.get_metric_history(run_id, schema.CUM_TOTAL_CO2EQ_KG)]
    assert sorted(steps) == [2, 3]
    cum = {m.step: m.value for m in client.get_metric_history(run_id, schema.CUM_TOTAL_CO2EQ_KG)}
    per_epoch = {m.step: m.value for m in client.get_metric_history(run_id, schema.TOTAL_CO2EQ_KG)}
    assert cum[3] == pytest.approx(first_total + per_epoch[2] + per_epoch[3], rel=1e-9)
    tags = client.get_run(run_id).data.tags
    assert tags[schema.TAG_RESUMED_FROM] == first.info.run_id
    assert tags[schema.TAG_SEGMENTS] == "0,2"
    # The first run is left as it was: two epochs, its own total.
    assert client.get_run(first.info.run_id).data.metrics[schema.CUM_TOTAL_CO2EQ_KG] == first_total


def test_the_callback_is_an_importable_class_users_can_pass(tmp_path: Path, mlflow_local: str) -> None:
    import mlflow

    from mlflow_green.lightning import GreenCallback

    train, val = loaders()
    trainer = make_trainer(tmp_path, max_epochs=2, callbacks=[GreenCallback(sampler="simulated:300", country="FRA", silent=True)])
    trainer.fit(make_module(), train, val)
    client = mlflow.MlflowClient()
    (run,) = client.search_runs(["0"])
    assert_every_epoch(client, run.info.run_id, 2)
