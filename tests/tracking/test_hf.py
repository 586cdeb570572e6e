"""A real transformers.Trainer fine-tuning a tiny BERT, with autolog on."""

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
from tests.tracking._models import RandomTokens, accuracy_metrics, tiny_bert

pytest.importorskip("transformers")

EPOCHS = 3


def make_trainer(
    tmp_path: Path, *, report_to: str = "none", eval_strategy: str = "epoch", epochs: int = EPOCHS,
    save_strategy: str = "no",
) -> Any:
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(tmp_path / "hf-out"),
        num_train_epochs=epochs,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        eval_strategy=eval_strategy,
        logging_strategy="epoch",
        save_strategy=save_strategy,
        report_to=report_to,
        disable_tqdm=True,
        use_cpu=True,
        learning_rate=1e-3,
        seed=0,
        run_name="tiny-bert",
    )
    return Trainer(
        model=tiny_bert(),
        args=args,
        train_dataset=RandomTokens(24),
        eval_dataset=RandomTokens(16, seed=1) if eval_strategy != "no" else None,
        compute_metrics=accuracy_metrics if eval_strategy != "no" else None,
    )


def _runs(client: Any) -> list[Any]:
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def _assert_accuracy_per_kg(client: Any, run_id: str) -> None:
    acc = [v for _, v in history(client, run_id, "eval_accuracy")]
    per_kg = history(client, run_id, schema.ACCURACY_PER_KG)
    cum = dict(history(client, run_id, schema.CUM_TOTAL_CO2EQ_KG))
    assert [s for s, _ in per_kg] == list(range(EPOCHS))
    for (step, value), accuracy in zip(per_kg, acc, strict=True):
        assert math.isclose(value, accuracy / cum[step], rel_tol=1e-9)


@pytest.mark.parametrize("report_to", ["mlflow", "none"])
def test_trainer_logs_every_epoch_into_one_run(
    report_to: str, tmp_path: Path, mlflow_local: str, green_autolog: None
) -> None:
    import mlflow
    import transformers

    import mlflow_green

    mlflow_green.autolog(sampler="simulated:300", country="FRA", silent=True)
    if report_to == "mlflow":
        # Everything at once: MLflow's own autolog, HF's MLflowCallback and ours.
        mlflow.autolog(log_models=False, silent=True)
    try:
        make_trainer(tmp_path, report_to=report_to).train()
    finally:
        mlflow.autolog(disable=True)

    client = mlflow.MlflowClient()
    runs = _runs(client)
    assert len(runs) == 1, "exactly one run, shared with Hugging Face's MLflowCallback"
    run = runs[0]
    assert run.info.status == "FINISHED"
    run_id = run.info.run_id
    assert_every_epoch(client, run_id, EPOCHS)
    assert_simulated_power(client, run_id, 300)
    assert_cumulative(client, run_id)
    # eval_accuracy is in the run only when Hugging Face logs it; the green keys always are.
    if report_to == "mlflow":
        _assert_accuracy_per_kg(client, run_id)
        assert "train_loss" in run.data.metrics
    else:
        assert [s for s, _ in history(client, run_id, schema.ACCURACY_PER_KG)] == list(range(EPOCHS))
    tags = run.data.tags
    assert tags[schema.TAG_METHOD_GPU] == "simulated"
    assert tags[schema.TAG_LOCATION] == "FRA"
    assert tags[schema.TAG_STATUS] == "ok"
    assert tags[schema.TAG_ACCURACY_METRIC] == "eval_accuracy"
    assert {f.path for f in client.list_artifacts(run_id, "green")} == {
        "green/report.json",
        "green/report.html",
    }
    # The patch adds the callback for the call only.
    assert transformers.Trainer.train.__mlflow_green_patch__


def test_user_run_and_no_eval(tmp_path: Path, mlflow_local: str, green_autolog: None) -> None:
    import mlflow

    import mlflow_green

    mlflow_green.autolog(sampler="simulated:300", country="FRA", silent=True)
    with mlflow.start_run() as run:
        make_trainer(tmp_path, eval_strategy="no").train()
        assert mlflow.active_run().info.run_id == run.info.run_id, "our callback must not end the user's run"
    client = mlflow.MlflowClient()
    assert len(_runs(client)) == 1
    assert_every_epoch(client, run.info.run_id, EPOCHS)
    assert history(client, run.info.run_id, schema.ACCURACY_PER_KG) == []


def test_budget_stop_ends_training_cleanly(tmp_path: Path, mlflow_local: str, green_autolog: None) -> None:
    import mlflow

    import mlflow_green

    # Any positive footprint projected over 3 epochs exceeds a budget this small.
    mlflow_green.autolog(sampler="simulated:300", intensity=500, budget_kg=1e-12, on_budget="stop", silent=True)
    trainer = make_trainer(tmp_path)
    trainer.train()
    assert trainer.state.epoch == pytest.approx(1.0)
    client = mlflow.MlflowClient()
    run = _runs(client)[0]
    assert [s for s, _ in history(client, run.info.run_id, schema.ENERGY_KWH)] == [0]
    assert "budget" in run.data.tags[schema.TAG_STOP_REASON]


def test_train_from_a_checkpoint_continues_the_run(tmp_path: Path, mlflow_local: str, green_autolog: None) -> None:
    import mlflow

    import mlflow_green

    mlflow_green.autolog(sampler="simulated:300", country="FRA", silent=True, report=False)
    client = mlflow.MlflowClient()
    with mlflow.start_run() as run:
        make_trainer(tmp_path, epochs=2, save_strategy="epoch").train()
    checkpoints = sorted((tmp_path / "hf-out").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    with mlflow.start_run(run_id=run.info.run_id):
        make_trainer(tmp_path, epochs=4, save_strategy="no").train(resume_from_checkpoint=str(checkpoints[-1]))
    run_id = run.info.run_id
    assert_every_epoch(client, run_id, 4)
    assert_cumulative(client, run_id)
    assert dict(history(client, run_id, schema.SEGMENT)) == {0: 0.0, 1: 0.0, 2: 1.0, 3: 1.0}
    assert client.get_run(run_id).data.tags[schema.TAG_SEGMENTS] == "0,2"


def test_the_callback_is_importable_as_mlflow_green_hf_green_callback() -> None:
    from transformers import TrainerCallback

    from mlflow_green.hf import GreenCallback

    assert issubclass(GreenCallback, TrainerCallback)
    assert GreenCallback(sampler="simulated:300").config.sampler == "simulated:300"
