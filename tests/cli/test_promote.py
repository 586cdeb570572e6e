from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cli.test_check import cli
from tests.registry._helpers import log_green_run, register, unique


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('promote-store') / 'mlflow.db'}"


@pytest.fixture
def client(store_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    yield MlflowClient(tracking_uri=store_uri, registry_uri=store_uri)


def test_promote_within_budget_sets_alias_and_evidence(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    exp = client.create_experiment(unique("exp"))
    name = unique("m")
    v = register(client, name, log_green_run(client, exp, 1.0), model_tags={"green.budget.champion.total_co2eq_kg": "2"})
    assert cli(["promote", "--model", name, "--version", v, "--alias", "champion", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["promoted"] is True and data["verdict"] == "pass"
    mv = client.get_model_version_by_alias(name, "champion")
    assert str(mv.version) == v
    assert mv.tags["green.gate.verdict"] == "pass" and mv.tags["green.gate.total_co2eq_kg"] == "1"


def test_promote_over_budget_is_refused_exit_1(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    exp = client.create_experiment(unique("exp"))
    name = unique("m")
    v = register(client, name, log_green_run(client, exp, 3.0), model_tags={"green.budget.champion.total_co2eq_kg": "2"})
    assert cli(["promote", "--model", name, "--version", v, "--alias", "champion"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mlflow-green: promotion refused:") and "total_co2eq_kg" in err and "3 kg" in err
    assert "champion" not in client.get_registered_model(name).aliases
    assert client.get_model_version(name, v).tags["green.gate.verdict"] == "fail"


def test_promote_needs_an_alias(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["promote", "--model", "m", "--version", "1"]) == 2
    assert "--alias" in capsys.readouterr().err


def test_override_needs_the_admin_token(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    exp = client.create_experiment(unique("exp"))
    name = unique("m")
    v = register(client, name, log_green_run(client, exp, 3.0), model_tags={"green.budget.total_co2eq_kg": "2"})
    code = cli(["promote", "--model", name, "--version", v, "--alias", "champion", "--override-reason", "hotfix"])
    assert code == 2
    assert "MLFLOW_GREEN_ADMIN_TOKEN" in capsys.readouterr().err
