"""EU AI Act energy/compute documentation: hand-computed figures over a run and its sweep."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from mlflow_green.cli.main import main
from mlflow_green.reports.eu_ai_act import eu_ai_act_documentation, format_eu_ai_act
from mlflow_green.tracking import schema

TAGS = {
    schema.TAG_METHOD_GPU: "counter",
    schema.TAG_METHOD_CPU: "rapl",
    schema.TAG_METHOD_RAM: "estimate",
    schema.TAG_GPU_MODEL: "NVIDIA H100 80GB HBM3",
    schema.TAG_GPU_COUNT: "8",
}


def _run(
    client: MlflowClient, exp: str, name: str, energy: list[float], pue: str, **tags: str
) -> str:
    rid = client.create_run(
        exp, run_name=name, tags={**TAGS, schema.TAG_PUE: pue, **tags}
    ).info.run_id
    metrics, cum = [], 0.0
    for step, kwh in enumerate(energy):
        cum += kwh
        metrics += [Metric(schema.EPOCH_SECONDS, 1800.0, 0, step), Metric(schema.CUM_ENERGY_KWH, cum, 0, step),
                    Metric(schema.CUM_CO2EQ_KG, cum * 0.1, 0, step)]  # fmt: skip
    client.log_batch(rid, metrics=metrics)
    client.set_terminated(rid)
    return rid


@pytest.fixture
def sweep(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[MlflowClient, str, str]:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.create_experiment("gpai")
    parent = client.create_run(exp, run_name="sweep").info.run_id
    client.set_terminated(parent)
    source = _run(client, exp, "best", [100.0, 100.0], "1.1", **{"mlflow.parentRunId": parent})
    client.log_metric(source, "total_flos", 3.0e21)
    _run(client, exp, "tried", [50.0], "1.2", **{"mlflow.parentRunId": parent})
    return client, source, parent


def test_figures_and_methods(sweep: tuple[MlflowClient, str, str]) -> None:
    client, source, _ = sweep
    doc = eu_ai_act_documentation(client, source)
    energy = doc["energy_consumption"]["training_energy_mwh"]
    # (200 kWh x 1.1 + 50 kWh x 1.2) / 1000 = 0.28 MWh; IT energy 0.25 MWh
    assert energy["value"] == pytest.approx(0.28)
    assert energy["it_energy_mwh"] == pytest.approx(0.25)
    assert (
        energy["measured_or_estimated"] == "partly measured, partly estimated"
    )  # RAM is estimated
    assert "gpu: counter" in energy["method"] and "ram: estimate" in energy["method"]
    compute = doc["computational_resources"]
    # three epochs of 30 min; 8 GPUs each
    assert compute["training_time"]["value_hours"] == pytest.approx(1.5)
    assert compute["training_time"]["gpu_hours"] == pytest.approx(12.0)
    assert compute["amount_of_computation_flop"]["value"] == pytest.approx(3.0e21)
    assert compute["hardware"]["value"] == ["8 x NVIDIA H100 80GB HBM3"]
    assert {r["role"] for r in doc["runs"]} == {"source", "parent", "sibling"}
    assert "Code of Practice" in doc["form"] and "Annex XI" in doc["form"]
    text = format_eu_ai_act(doc)
    assert "0.28 MWh" in text and "3e+21 FLOP" in text


def test_cli_json_and_missing_run(sweep: tuple[MlflowClient, str, str], capsys: Any) -> None:
    _, source, _ = sweep
    assert main(["model-card", "--run-id", source, "--format", "eu-ai-act", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "eu-ai-act"
    assert data["energy_consumption"]["training_energy_mwh"]["value"] == pytest.approx(0.28)
    assert main(["model-card", "--run-id", "0" * 32, "--format", "eu-ai-act"]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and len(err.strip().splitlines()) == 1
