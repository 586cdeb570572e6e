"""autolog(): eager validation, patching, reconfiguring, disabling."""

from __future__ import annotations

from typing import Any

import pytest

import mlflow_green
from mlflow_green.errors import ConfigError
from mlflow_green.tracking import autolog as autolog_module


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"on_budget": "abort"}, "on_budget"),
        ({"budget_kg": 0}, "budget_kg"),
        ({"budget_kg": "much"}, "budget_kg"),
        ({"log_every_n_epochs": 0}, "log_every_n_epochs"),
        ({"log_every_n_epochs": 1.5}, "log_every_n_epochs"),
        ({"sampler": "gpu-please"}, "sampler"),
        ({"country": "XYZ"}, "XYZ"),
        ({"pue": 0.5}, "pue"),
        ({"intensity": -3}, "intensity"),
        ({"accuracy_metric": ""}, "accuracy_metric"),
        ({"lifetime_years": 0}, "lifetime_years"),
    ],
)
def test_bad_options_fail_at_the_call(options: dict[str, Any], message: str, green_autolog: None) -> None:
    with pytest.raises(ConfigError, match=message):
        mlflow_green.autolog(**options)
    assert not autolog_module.is_enabled()


def _is_patched(owner: Any, name: str) -> bool:
    return getattr(owner.__dict__.get(name), "__mlflow_green_patch__", False)


def test_patch_disable_reenable(green_autolog: None) -> None:
    from lightning.pytorch import Trainer as LitTrainer
    from transformers import Trainer as HfTrainer

    original_train = HfTrainer.__dict__["train"]
    original_fit = LitTrainer.__dict__["fit"]
    mlflow_green.autolog(sampler="simulated:300", silent=True)
    assert _is_patched(HfTrainer, "train") and _is_patched(LitTrainer, "fit")
    assert autolog_module.current_config().sampler == "simulated:300"

    mlflow_green.autolog(sampler="simulated:100", budget_kg=2.0, on_budget="stop")
    assert autolog_module.current_config().budget_kg == 2.0
    assert autolog_module.current_config().sampler == "simulated:100"

    mlflow_green.autolog(disable=True)
    assert HfTrainer.__dict__["train"] is original_train
    assert LitTrainer.__dict__["fit"] is original_fit
    assert not autolog_module.is_enabled()

    mlflow_green.autolog()
    assert _is_patched(HfTrainer, "train") and _is_patched(LitTrainer, "fit")


def test_environment_disables(monkeypatch: pytest.MonkeyPatch, green_autolog: None) -> None:
    from transformers import Trainer as HfTrainer

    monkeypatch.setenv("MLFLOW_GREEN_DISABLE", "1")
    mlflow_green.autolog(sampler="simulated:300")
    assert not _is_patched(HfTrainer, "train")
    assert not autolog_module.is_enabled()


def test_disabled_training_runs_unmeasured(tmp_path: Any, mlflow_local: str, green_autolog: None) -> None:
    import mlflow

    from tests.tracking.test_lightning import loaders, make_module, make_trainer

    mlflow_green.autolog(sampler="simulated:300", silent=True)
    mlflow_green.autolog(disable=True)
    train, val = loaders()
    make_trainer(tmp_path, max_epochs=1).fit(make_module(), train, val)
    assert mlflow.MlflowClient().search_runs(["0"]) == []


def test_coexists_with_mlflow_pytorch_autolog(tmp_path: Any, mlflow_local: str, green_autolog: None) -> None:
    import mlflow

    from mlflow_green.tracking import schema
    from tests.tracking._checks import assert_every_epoch
    from tests.tracking.test_lightning import loaders, make_module, make_trainer

    mlflow.pytorch.autolog(log_models=False, silent=True)
    try:
        mlflow_green.autolog(sampler="simulated:300", silent=True, intensity=100)
        train, val = loaders()
        make_trainer(tmp_path, max_epochs=2).fit(make_module(), train, val)
    finally:
        mlflow.pytorch.autolog(disable=True)
    client = mlflow.MlflowClient()
    runs = client.search_runs(["0"])
    assert len(runs) == 1, "one run shared by mlflow.pytorch.autolog and mlflow_green"
    assert_every_epoch(client, runs[0].info.run_id, 2)
    assert "val_acc" in runs[0].data.metrics
    assert runs[0].data.tags[schema.TAG_ACCURACY_METRIC] == "val_acc"


def test_frameworks_imported_later_are_patched_on_import() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mlflow_green\n"
        "mlflow_green.autolog(sampler='simulated:300')\n"
        "assert 'lightning' not in sys.modules\n"
        "from lightning.pytorch import Trainer\n"
        "print(getattr(Trainer.__dict__['fit'], '__mlflow_green_patch__', False))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "True"
