from __future__ import annotations

import json

import pytest
import yaml
from mlflow import MlflowClient

from mlflow_green.cli.main import main
from tests.reports._factory import green_db, log_green_run, unique

__all__ = ["green_db"]


@pytest.fixture
def run_id(green_db, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", green_db)
    client = MlflowClient(green_db)
    return log_green_run(
        client,
        client.create_experiment(unique("card")),
        "r",
        accuracy=0.9,
        total_kg=0.5,
        embodied_kg=0.05,
    )


def test_prints_block_and_json(run_id, capsys):
    assert main(["model-card", "--run-id", run_id]) == 0
    block = yaml.safe_load(capsys.readouterr().out)["co2_eq_emissions"]
    assert block["emissions"] == pytest.approx(450.0)
    assert main(["model-card", "--run-id", run_id, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["co2_eq_emissions"]
    assert set(data) == {
        "emissions",
        "source",
        "training_type",
        "geographical_location",
        "hardware_used",
    }


def test_write_merges_into_existing_card(run_id, tmp_path, capsys):
    card = tmp_path / "README.md"
    body = "\n# My model\n\nco2_eq_emissions: in the body is not metadata\n"
    card.write_text("---\nlicense: apache-2.0\nlanguage:\n- en\n---\n" + body)
    assert (
        main(
            [
                "model-card",
                "--run-id",
                run_id,
                "--write",
                str(card),
                "--training-type",
                "pre-training",
            ]
        )
        == 0
    )
    text = card.read_text()
    assert text.startswith("---\nlicense: apache-2.0\nlanguage:\n- en\nco2_eq_emissions:\n")
    assert text.endswith("---\n" + body)
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["co2_eq_emissions"]["training_type"] == "pre-training"
    assert main(["model-card", "--run-id", run_id, "--write", str(card)]) == 0  # idempotent
    assert card.read_text().replace("pre-training", "fine-tuning").count("co2_eq_emissions:") == 2


def test_unknown_run(run_id, capsys):
    assert main(["model-card", "--run-id", "0" * 32]) == 2
    assert "not found" in capsys.readouterr().err
