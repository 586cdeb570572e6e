from __future__ import annotations

import pytest
from mlflow import MlflowClient

from mlflow_green.errors import ConfigError
from mlflow_green.reports.leaderboard import build_leaderboard, format_table, leaderboard
from mlflow_green.tracking import schema
from tests.reports._factory import DEMO_FRONTIER, DEMO_RUNS, green_db, log_green_run, unique

__all__ = ["green_db"]  # the session fixture, imported to be used here


@pytest.fixture
def client(green_db: str) -> MlflowClient:
    return MlflowClient(green_db)


def test_rows_from_latest_cumulative_metrics(client):
    board = leaderboard(client, "demo")
    by_name = {r.run_name: r for r in board.rows}
    assert set(by_name) == {name for name, *_ in DEMO_RUNS}
    for name, acc, total, emb in DEMO_RUNS:
        row = by_name[name]
        assert row.accuracy == pytest.approx(acc)
        assert row.total_co2eq_kg == pytest.approx(total)
        assert row.embodied_kg == pytest.approx(emb)
        assert row.co2eq_kg == pytest.approx(total - emb)
        assert row.energy_kwh == pytest.approx((total - emb) / 0.4)
        assert row.embodied_share == pytest.approx(emb / total)
        assert row.accuracy_per_kg == pytest.approx(acc / total)
        assert row.accuracy_metric == "eval_accuracy"
        assert row.simulated is True
        assert row.green_score is None
    assert {r.run_name for r in board.rows if r.pareto} == DEMO_FRONTIER
    assert [s.run_name for s in board.skipped] == ["not-measured"]
    per_kg = [r.accuracy_per_kg for r in board.rows]
    assert per_kg == sorted(per_kg, reverse=True)
    assert set(board.rows[0].to_dict()) >= {
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


@pytest.mark.parametrize(
    ("sort", "first"),
    [
        ("accuracy", "bert-large"),
        ("total_co2eq_kg", "bert-small"),  # tie with distil-fast broken by name
        ("accuracy_per_kg", "bert-small"),
        ("run_name", "bert-base"),
    ],
)
def test_sort_and_top_keep_frontier_of_all_runs(client, sort, first):
    board = leaderboard(client, "demo", sort=sort, top=2)
    assert board.rows[0].run_name == first
    assert len(board.rows) == 2 and board.total_ranked == len(DEMO_RUNS)
    assert all(r.pareto == (r.run_name in DEMO_FRONTIER) for r in board.rows)


def test_accuracy_metric_choice(client):
    name = unique("metrics")
    exp = client.create_experiment(name)
    log_green_run(
        client,
        exp,
        "tagged",
        accuracy=0.7,
        total_kg=1.0,
        embodied_kg=0.1,
        accuracy_key="f1",
        tags={schema.TAG_ACCURACY_METRIC: "f1"},
    )
    log_green_run(
        client, exp, "val", accuracy=0.6, total_kg=1.0, embodied_kg=0.1, accuracy_key="val_acc"
    )
    log_green_run(client, exp, "none", accuracy=None, total_kg=1.0, embodied_kg=0.1)
    rows = {r.run_name: r for r in leaderboard(client, name).rows}
    assert (rows["tagged"].accuracy_metric, rows["tagged"].accuracy) == ("f1", pytest.approx(0.7))
    assert (rows["val"].accuracy_metric, rows["val"].accuracy) == ("val_acc", pytest.approx(0.6))
    assert rows["none"].accuracy is None and rows["none"].accuracy_per_kg is None
    assert not rows["none"].pareto
    explicit = {r.run_name: r for r in leaderboard(client, name, metric="val_acc").rows}
    assert explicit["val"].accuracy == pytest.approx(0.6)
    assert explicit["tagged"].accuracy is None


def test_green_score_only_with_inference_sci(client):
    name = unique("sci")
    exp = client.create_experiment(name)
    log_green_run(
        client,
        exp,
        "served",
        accuracy=0.9,
        total_kg=1.0,
        embodied_kg=0.1,
        extra_metrics={"green/inference_g_per_request": 0.5},
    )
    log_green_run(client, exp, "trained", accuracy=0.9, total_kg=1.0, embodied_kg=0.1)
    rows = {r.run_name: r for r in leaderboard(client, name).rows}
    assert rows["served"].green_score == pytest.approx(0.9 / 0.5 * 1000)
    assert rows["trained"].green_score is None


def test_paging_reads_every_run(client):
    name = unique("paged")
    exp = client.create_experiment(name)
    for i in range(7):
        log_green_run(
            client, exp, f"r{i}", accuracy=0.5 + i / 100, total_kg=1 + i, embodied_kg=0.1, epochs=1
        )
    board = leaderboard(client, name, page_size=2)
    assert board.total_ranked == 7


def test_same_rows_from_raw_stores(client, green_db):
    from mlflow.tracking._tracking_service.utils import _get_store

    from_client = leaderboard(client, "demo")
    from_store = leaderboard(_get_store(green_db), "demo")
    assert [r.to_dict() for r in from_store.rows] == [r.to_dict() for r in from_client.rows]


def test_unknown_experiment_and_bad_options(client):
    with pytest.raises(ConfigError, match="'nope' not found"):
        leaderboard(client, "nope")
    with pytest.raises(ConfigError, match="--sort"):
        build_leaderboard([], sort="speed")
    with pytest.raises(ConfigError, match="--top"):
        build_leaderboard([], top=0)


def test_table_marks_frontier_and_skipped(client):
    text = format_table(leaderboard(client, "demo"))
    lines = text.splitlines()
    frontier_lines = [ln for ln in lines if ln.startswith("*")]
    assert len(frontier_lines) == len(DEMO_FRONTIER)
    assert "skipped 1 runs without green/ metrics: not-measured" in text


def test_market_and_water_columns(client):
    exp = client.create_experiment(unique("market-water"))
    log_green_run(
        client, exp, "new", accuracy=0.9, total_kg=1.0, embodied_kg=0.1,
        extra_metrics={schema.CUM_CO2EQ_MARKET_KG: 0.25, schema.CUM_WATER_L: 12.5},
    )  # fmt: skip
    log_green_run(client, exp, "old", accuracy=0.8, total_kg=2.0, embodied_kg=0.1)
    board = leaderboard(client, client.get_experiment(exp).name, sort="water_l")
    rows = {r.run_name: r for r in board.rows}
    assert rows["new"].co2eq_market_kg == pytest.approx(0.25)
    assert rows["new"].water_l == pytest.approx(12.5)
    assert rows["old"].co2eq_market_kg is None and rows["old"].water_l is None  # not invented
    assert [r.run_name for r in board.rows] == ["new", "old"]
    header = format_table(board).splitlines()[1]
    assert "market_kg" in header and "water_l" in header
