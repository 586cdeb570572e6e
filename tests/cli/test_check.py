from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._servers import free_port
from tests.registry._helpers import log_green_run, register, unique


def cli(argv: list[str]) -> int:
    """The real ``mlflow-green`` entry point, limited to the registry subcommands."""
    from mlflow_green.cli import main as cli_main

    saved = dict(cli_main.SUBCOMMANDS)
    # Other subcommands are written by other layers; these tests need only check and promote.
    cli_main.SUBCOMMANDS.clear()
    cli_main.SUBCOMMANDS.update({k: saved[k] for k in ("check", "promote")})
    try:
        return cli_main.main(argv)
    finally:
        cli_main.SUBCOMMANDS.clear()
        cli_main.SUBCOMMANDS.update(saved)


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('cli-store') / 'mlflow.db'}"


@pytest.fixture
def client(store_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    yield MlflowClient(tracking_uri=store_uri, registry_uri=store_uri)


@pytest.fixture
def model(client: Any) -> tuple[str, str, str, str]:
    """(name, version within budget, version over budget, version without evidence)."""
    exp = client.create_experiment(unique("exp"))
    name = unique("m")
    tags = {"green.budget.total_co2eq_kg": "2", "green.budget.champion.energy_kwh": "3"}
    good = register(client, name, log_green_run(client, exp, 1.0, energy_kwh=2.0), model_tags=tags)
    over = register(client, name, log_green_run(client, exp, 4.0, energy_kwh=2.0))
    bare = register(client, name, log_green_run(client, exp, None))
    return name, good, over, bare


def test_pass_exit_0(model: tuple[str, str, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    name, good, _, _ = model
    assert cli(["check", "--model", name, "--version", good]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("PASS:") and "1 kg CO2eq" in out.out
    assert out.err == ""


@pytest.mark.parametrize(
    ("which", "extra", "needle"),
    [
        ("over", [], "exceeds the total_co2eq_kg budget of 2"),
        ("good_at_champion", ["--alias", "champion"], None),
        ("over_at_champion", ["--alias", "champion"], "total_co2eq_kg"),
        ("bare", [], "no green/ metrics"),
    ],
)
def test_fail_exit_1_with_one_line(
    model: tuple[str, str, str, str], capsys: pytest.CaptureFixture[str],
    which: str, extra: list[str], needle: str | None,
) -> None:
    name, good, over, bare = model
    version = {"over": over, "good_at_champion": good, "over_at_champion": over, "bare": bare}[which]
    code = cli(["check", "--model", name, "--version", version, *extra])
    err = capsys.readouterr().err
    if needle is None:
        assert code == 0  # energy 2 kWh is within the champion budget of 3
        return
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err


def test_json_and_summary_md(model: tuple[str, str, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name, _, over, _ = model
    summary = tmp_path / "summary.md"
    code = cli(["check", "--model", name, "--version", over, "--alias", "champion", "--json",
                "--summary-md", str(summary)])
    assert code == 1
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "fail" and data["total_co2eq_kg"] == pytest.approx(4.0)
    assert data["energy_kwh"] == pytest.approx(2.0)
    by_key = {c["budget"]: c for c in data["checks"]}
    assert by_key["total_co2eq_kg"]["passed"] is False and by_key["total_co2eq_kg"]["limit"] == 2.0
    assert by_key["energy_kwh"]["passed"] is True and by_key["energy_kwh"]["scope"] == "champion"
    md = summary.read_text()
    assert "| budget | limit | figure | result |" in md and "**fail**" in md


def test_check_is_read_only_unless_asked(model: tuple[str, str, str, str], client: Any) -> None:
    name, good, _, _ = model
    assert cli(["check", "--model", name, "--version", good]) == 0
    assert "green.gate.verdict" not in client.get_model_version(name, good).tags
    assert cli(["check", "--model", name, "--version", good, "--write-evidence"]) == 0
    assert client.get_model_version(name, good).tags["green.gate.verdict"] == "pass"


def test_malformed_budget_tag_fails_naming_it(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    exp = client.create_experiment(unique("exp"))
    name = unique("m")
    v = register(client, name, log_green_run(client, exp, 1.0), model_tags={"green.budget.total_co2eq_kg": "50kg"})
    assert cli(["check", "--model", name, "--version", v]) == 1
    assert "green.budget.total_co2eq_kg" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["check", "--model", "no-such-model", "--version", "1"], "not found"),
        (["check", "--version", "1"], "--model"),
        (["check", "--model", "m", "--version", "1", "--alias", "a", "--stage", "Production"], "not both"),
    ],
)
def test_usage_errors_exit_2(client: Any, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_invalid_policy_file_exit_2(model: tuple[str, str, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name, good, _, _ = model
    bad = tmp_path / "policy.yaml"
    bad.write_text("defaults:\n  budgets: {total_co2eq_kg: -3}\n")
    assert cli(["check", "--model", name, "--version", good, "--policy", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "negative" in err and str(bad) in err


def test_unreachable_server_is_a_quick_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    assert cli(["check", "--model", "m", "--version", "1"]) == 2
    # MLflow's default retry backoff would wait minutes; the CLI turns retries off.
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert "cannot reach the MLflow tracking server" in err and len(err.strip().splitlines()) == 1
