from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from mlflow_green.cli.main import main
from tests.reports._factory import DEMO_FRONTIER, DEMO_RUNS, green_db

__all__ = ["green_db"]

JSON_KEYS = {
    "run_id",
    "run_name",
    "accuracy",
    "energy_kwh",
    "co2eq_kg",
    "embodied_kg",
    "total_co2eq_kg",
    "embodied_share",
    "accuracy_per_kg",
    "pareto",
}


@pytest.fixture
def tracking(green_db, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", green_db)
    # A session fixture elsewhere may have set mlflow's global URI, which beats the variable;
    # tests/conftest.py restores the global after the test.
    mlflow.set_tracking_uri(green_db)
    return green_db


def test_table_png_html(tracking, tmp_path, capsys):
    png, html = tmp_path / "p.png", tmp_path / "r.html"
    assert (
        main(["leaderboard", "--experiment", "demo", "--png", str(png), "--html", str(html)]) == 0
    )
    out = capsys.readouterr().out
    for name, *_ in DEMO_RUNS:
        assert name in out
    assert "skipped 1 runs without green/ metrics: not-measured" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    report = html.read_text()
    assert all(name in report for name, *_ in DEMO_RUNS)


def test_json_rows(tracking, capsys):
    assert (
        main(["leaderboard", "--experiment", "demo", "--json", "--sort", "accuracy", "--top", "3"])
        == 0
    )
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert len(rows) == 3 and all(JSON_KEYS <= set(r) for r in rows)
    assert [r["run_name"] for r in rows] == ["bert-large", "bert-base", "bert-base-long"]
    assert {r["run_name"] for r in rows if r["pareto"]} == DEMO_FRONTIER & {
        r["run_name"] for r in rows
    }
    assert "not-measured" in captured.err


def test_log_artifacts_reuses_report_run(tracking, capsys):
    for _ in range(2):
        assert main(["leaderboard", "--experiment", "demo", "--log-artifacts"]) == 0
    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name("demo")
    report_runs = client.search_runs([exp.experiment_id], "tags.`green.report` = 'leaderboard'")
    assert len(report_runs) == 1
    names = {a.path for a in client.list_artifacts(report_runs[0].info.run_id, "green")}
    assert names == {"green/leaderboard.html", "green/leaderboard.json", "green/pareto.png"}
    # the report run is not ranked nor listed as skipped
    capsys.readouterr()
    main(["leaderboard", "--experiment", "demo"])
    assert "green-leaderboard" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--experiment", "no-such-exp"], "experiment 'no-such-exp' not found"),
        (["--experiment", "demo", "--top", "0"], "--top 0 must be at least 1"),
        (["--experiment", "demo", "--sort", "speed"], "invalid choice"),
    ],
)
def test_errors_are_one_line_exit_2(tracking, capsys, argv, message):
    assert main(["leaderboard", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
