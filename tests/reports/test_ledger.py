"""The ledger against a brute-force sum over the runs' metric histories."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, RunStatus

from mlflow_green.accounting import Location, offsite_l_per_kwh, residual_mix
from mlflow_green.cli.main import main
from mlflow_green.errors import ConfigError
from mlflow_green.reports.ledger import FIELDS, ledger, parse_bound, parse_by
from mlflow_green.tracking import schema


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def _log(
    client: MlflowClient, run_id: str, epochs: list[tuple[int, str, float]], *, new: bool = True
) -> None:
    """Per epoch (step, end time, energy kWh): every ledger key; ``new=False`` leaves out market/water."""
    metrics = []
    for step, when, energy in epochs:
        ts = _ms(when)
        values = {
            schema.ENERGY_KWH: energy,
            schema.CO2EQ_KG: energy * 0.4,
            schema.EMBODIED_KG: energy * 0.05,
            schema.TOTAL_CO2EQ_KG: energy * 0.45,
            schema.CUM_ENERGY_KWH: energy * (step + 1),  # not read by the ledger
        }
        if new:
            values[schema.CO2EQ_MARKET_KG] = energy * 0.1
            values[schema.WATER_L] = energy * 2.5
        metrics += [Metric(k, v, ts, step) for k, v in values.items()]
    client.log_batch(run_id, metrics=metrics)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    uri = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    alpha = client.create_experiment("alpha")
    beta = client.create_experiment("beta")
    ids: dict[str, str] = {}

    def run(name: str, exp: str, **tags: str) -> str:
        r = client.create_run(
            exp, run_name=name, tags={schema.TAG_LOCATION: "FRA", schema.TAG_PUE: "1.0", **tags}
        )
        ids[name] = r.info.run_id
        return r.info.run_id

    # crosses the October/November boundary between its first and second epoch
    a = run("a", alpha)
    _log(
        client,
        a,
        [
            (0, "2026-10-31T23:00:00", 1.0),
            (1, "2026-11-01T01:00:00", 2.0),
            (2, "2026-11-01T03:00:00", 4.0),
        ],
    )
    client.set_terminated(a)
    # logged before market/water existed (derived), failed
    b = run("b", alpha, **{schema.TAG_LOCATION: "DEU", schema.TAG_PUE: "1.2"})
    _log(client, b, [(0, "2026-11-10T00:00:00", 10.0), (1, "2026-11-11T00:00:00", 10.0)], new=False)
    client.set_terminated(b, RunStatus.to_string(RunStatus.FAILED))
    # killed, then deleted
    c = run("c", alpha)
    _log(client, c, [(0, "2026-12-02T00:00:00", 8.0)])
    client.set_terminated(c, RunStatus.to_string(RunStatus.KILLED))
    client.delete_run(c)
    # step 0 re-sent later with another value: the later one counts, once
    d = run("d", alpha)
    _log(client, d, [(0, "2026-11-05T00:00:00", 3.0)])
    _log(client, d, [(0, "2026-11-05T00:00:01", 5.0), (1, "2026-11-06T00:00:00", 1.0)])
    client.set_terminated(d)
    # a sweep in beta: parent without green metrics, the registered child and its sibling
    p = run("parent", beta)
    e = run("e", beta, **{"mlflow.parentRunId": p, "team": "vision"})
    _log(client, e, [(0, "2026-11-20T00:00:00", 6.0)])
    s = run("sibling", beta, **{"mlflow.parentRunId": p})
    _log(client, s, [(0, "2026-11-21T00:00:00", 7.0)])
    plain = run("plain", beta)
    client.log_metric(plain, "loss", 0.5)
    for rid in (p, e, s, plain):
        client.set_terminated(rid)
    client.create_registered_model("m")
    client.create_model_version("m", f"runs:/{e}/model", run_id=e)
    return {"client": client, "uri": uri, "ids": ids}


def _brute(client: MlflowClient, run_ids: list[str], period: Any) -> dict[str, dict[str, float]]:
    """Each run's every key's history, the latest value per step, summed by the epoch's period."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for run_id in run_ids:
        steps: dict[int, dict[str, Metric]] = defaultdict(dict)
        for key in FIELDS.values():
            for m in client.get_metric_history(run_id, key):
                old = steps[m.step].get(key)
                if old is None or m.timestamp >= old.timestamp:
                    steps[m.step][key] = m
        for logged in steps.values():
            group = period(max(m.timestamp for m in logged.values()))
            out[group]["epochs"] += 1
            for name, key in FIELDS.items():
                if key in logged:
                    out[group][name] += logged[key].value
    return out


def _month(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m")


def test_by_month_equals_brute_force_over_histories(store: dict[str, Any]) -> None:
    client, ids = store["client"], store["ids"]
    book = ledger(client, by="month")
    rows = {r.group: r for r in book.rows}
    assert set(rows) == {"2026-10", "2026-11", "2026-12"}
    # new-style runs (every key logged): exact equality with the brute-force sum
    new = [ids[n] for n in ("a", "c", "d", "e", "sibling")]
    expected = _brute(client, new, _month)
    b_nov = 2 * 10.0  # run b's two November epochs
    for group, sums in expected.items():
        row = rows[group]
        extra = b_nov if group == "2026-11" else 0.0
        assert row.epochs == sums["epochs"] + (2 if group == "2026-11" else 0)
        for name in ("energy_kwh", "co2eq_kg", "embodied_kg", "total_co2eq_kg"):
            factor = {
                "energy_kwh": 1,
                "co2eq_kg": 0.4,
                "embodied_kg": 0.05,
                "total_co2eq_kg": 0.45,
            }[name]
            assert getattr(row, name) == pytest.approx(sums[name] + extra * factor), (group, name)
    # the boundary split is exact: a's first epoch in October, the other two in November
    assert rows["2026-10"].energy_kwh == pytest.approx(1.0) and rows["2026-10"].runs == 1
    assert rows["2026-12"].deleted_runs == 1 and rows["2026-12"].killed_runs == 1
    assert rows["2026-11"].failed_runs == 1
    # d's re-sent step 0 counts once, with its later value
    assert expected["2026-11"]["energy_kwh"] == pytest.approx(2 + 4 + 5 + 1 + 6 + 7)
    assert book.total.runs == 6 and book.total.epochs == 10


def test_legacy_epochs_are_derived_from_published_factors(store: dict[str, Any]) -> None:
    book = ledger(
        store["client"],
        by="experiment",
        experiments=["alpha"],
        since="2026-11-10",
        until="2026-11-11",
    )
    (row,) = book.rows
    assert row.group == "alpha" and row.runs == 1 and row.derived_epochs == 2
    deu = Location(country="DEU")
    residual = residual_mix(deu)
    assert residual is not None
    # 20 kWh x PUE 1.2 x Germany's AIB residual mix; water 20 x 1.2 x DEU off-site L/kWh
    assert row.co2eq_market_kg == pytest.approx(20 * 1.2 * residual.g_per_kwh / 1000)
    assert row.water_l == pytest.approx(20 * 1.2 * offsite_l_per_kwh(deu)[0])


def test_bounds_select_epochs_by_their_end(store: dict[str, Any]) -> None:
    book = ledger(store["client"], by="quarter", since="2026-11-01T00:30:00Z", until="2026-11")
    (row,) = book.rows
    assert row.group == "2026-Q4"
    assert row.energy_kwh == pytest.approx(2 + 4 + 20 + 5 + 1 + 6 + 7)


def test_by_model_user_and_tag(store: dict[str, Any]) -> None:
    client = store["client"]
    rows = {r.group: r for r in ledger(client, by="model").rows}
    assert list(rows) == ["m", "not in a model"]
    assert rows["m"].runs == 2 and rows["m"].energy_kwh == pytest.approx(6 + 7)  # e and its sibling
    assert rows["not in a model"].runs == 4
    tags = {r.group: r for r in ledger(client, by="tag:team").rows}
    assert tags["vision"].energy_kwh == pytest.approx(6) and tags["(no team)"].runs == 5
    users = ledger(client, by="user").rows
    assert sum(r.runs for r in users) == 6


def test_client_path_equals_sql_path(
    store: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = ledger(store["client"], by="month").to_dict()
    # A store that is not MLflow's own SQL store: the ledger reads through the client API.
    monkeypatch.setattr("mlflow_green.tracking._mlflow_compat.plain_sql_tables", lambda _store: None)
    slow = ledger(store["client"], by="month").to_dict()
    assert slow == fast


@pytest.mark.parametrize("bad", ["", "week", "tag:", "tags:x"])
def test_bad_by(bad: str) -> None:
    with pytest.raises(ConfigError, match="--by"):
        parse_by(bad)


@pytest.mark.parametrize("bad", ["", "yesterday", "2026-13", "2026-02-30"])
def test_bad_dates(bad: str) -> None:
    with pytest.raises(ConfigError, match="--since"):
        parse_bound(bad, "--since")


def test_until_includes_a_named_day_and_month() -> None:
    assert parse_bound("2026-11-30", "--until", end=True) == _ms("2026-12-01T00:00:00")
    assert parse_bound("2026-11", "--until", end=True) == _ms("2026-12-01T00:00:00")
    assert parse_bound("2026-12", "--until", end=True) == _ms("2027-01-01T00:00:00")


def test_cli_json_csv_html(
    store: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    mlflow.set_tracking_uri(store["uri"])
    csv_path, html_path = tmp_path / "l.csv", tmp_path / "l.html"
    code = main(
        ["ledger", "--by", "experiment", "--json", "--csv", str(csv_path), "--html", str(html_path)]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    keys = {
        "group",
        "runs",
        "epochs",
        "energy_kwh",
        "co2eq_kg",
        "co2eq_market_kg",
        "embodied_kg",
        "total_co2eq_kg",
        "water_l",
    }
    assert keys <= set(data["rows"][0])
    assert [r["group"] for r in data["rows"]] == ["alpha", "beta"]
    assert math.isclose(sum(r["energy_kwh"] for r in data["rows"]), data["total"]["energy_kwh"])
    assert csv_path.read_text().splitlines()[0].startswith("group,runs,epochs,energy_kwh")
    html = html_path.read_text()
    assert "<svg" in html and "alpha" in html and "<rect" in html
    assert main(["ledger", "--by", "month"]) == 0
    out = capsys.readouterr().out
    assert "2026-10" in out and "1 deleted" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ledger", "--by", "week"], "--by"),
        (["ledger", "--by", "month", "--since", "soon"], "--since"),
        (["ledger", "--by", "month", "--experiment", "nope"], "not found"),
    ],
)
def test_cli_errors_are_one_line(
    store: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    argv: list[str],
    message: str,
) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    mlflow.set_tracking_uri(store["uri"])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_green_page_ledger_view_reads_the_server_store(store: dict[str, Any]) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from mlflow_green.reports.ledger_html import ledger_view

    html = ledger_view(SqlAlchemyStore(store["uri"], "/tmp/unused-artifacts"))
    assert "Carbon ledger by month" in html and "2026-10" in html and "<svg" in html
    fast = ledger(store["client"], by="month").total
    assert f"{fast.energy_kwh:.4g}" in html


@pytest.mark.slow
def test_over_a_tracking_server_the_client_path_counts_the_same(mlflow_server: Any) -> None:
    """Through REST (no SQL shortcut): search_runs over every stage, then the histories."""
    import uuid

    client = MlflowClient(mlflow_server.url)
    name = f"ledger-rest-{uuid.uuid4().hex[:8]}"
    exp = client.create_experiment(name)
    a = client.create_run(exp, run_name="a").info.run_id
    _log(client, a, [(0, "2026-01-31T23:59:00", 1.5), (1, "2026-02-01T00:01:00", 2.5)])
    b = client.create_run(exp, run_name="b").info.run_id
    _log(client, b, [(0, "2026-02-03T00:00:00", 4.0)], new=False)
    client.set_terminated(b, RunStatus.to_string(RunStatus.FAILED))
    client.delete_run(b)
    rows = {r.group: r for r in ledger(client, by="month", experiments=[name]).rows}
    expected = _brute(client, [a, b], _month)
    assert set(rows) == set(expected) == {"2026-01", "2026-02"}
    for group, sums in expected.items():
        assert rows[group].epochs == sums["epochs"]
        for field_name in ("energy_kwh", "co2eq_kg", "embodied_kg", "total_co2eq_kg"):
            assert getattr(rows[group], field_name) == pytest.approx(sums[field_name])
    assert rows["2026-02"].deleted_runs == 1 and rows["2026-02"].failed_runs == 1
    assert rows["2026-02"].derived_epochs == 1


def test_only_mlflows_own_sql_store_takes_the_sql_path(store: dict[str, Any]) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from mlflow_green.tracking._mlflow_compat import plain_sql_tables

    class Scoped(SqlAlchemyStore):  # e.g. a workspace-aware store scoping its run queries
        def _get_query(self, *args: Any, **kwargs: Any) -> Any:
            return super()._get_query(*args, **kwargs)

    assert plain_sql_tables(SqlAlchemyStore(store["uri"], "/tmp/unused-artifacts")) is not None
    assert plain_sql_tables(Scoped.__new__(Scoped)) is None
    assert plain_sql_tables(object()) is None
