"""Ledger at scale: ``mlflow-green ledger --by month`` over 10,000 runs vs ``mlflow.search_runs``.

The store is written once with SQLAlchemy bulk inserts into MLflow's own tables (runs, tags,
metrics, latest_metrics) and cached in ``benchmarks/.cache/``: each run has 2 to 6 epochs, each
epoch every per-epoch ledger key (energy, location- and market-based CO2eq, embodied, total,
water) plus the cumulative keys, with epoch end times spread over twelve months.

Timed in one process, alternating, after one untimed call of each: the ledger by month over
the experiment (``reports.ledger.ledger``: the ``search_runs`` walk for runs and tags, then every
epoch of every run in one SQL statement) against a bare ``mlflow.search_runs(experiment_ids=
[...])`` of the same runs (a DataFrame of their latest metrics). The figure is the ratio of the
medians. For scale, the run-by-run path (``get_metric_history`` per run and key, what a REST
store gets) is timed on the first 200 runs and extrapolated.

    python benchmarks/ledger_scale.py [--quick] [--runs N] [--rounds R] [--rebuild]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CACHE_DIR, Row, print_report

BENCH = "ledger"
EXPERIMENT = "ledger-bench"
SCHEMA_VERSION = 1
_MONTH_MS = 30 * 86_400_000


def _epoch_metrics(
    rng: random.Random, epochs: int, end_ms: int
) -> list[tuple[str, float, int, int]]:
    from mlflow_green.tracking import schema

    out: list[tuple[str, float, int, int]] = []
    cum = dict.fromkeys(("e", "c", "m", "b", "t", "w"), 0.0)
    for step in range(epochs):
        ts = end_ms - (epochs - 1 - step) * rng.randint(600_000, 20 * 86_400_000)
        e = rng.uniform(0.01, 2.0)
        c, m, b = e * 0.3, e * 0.1, e * 0.02
        w = e * 2.0
        for k, v in zip("ecmbtw", (e, c, m, b, c + b, w), strict=True):
            cum[k] += v
        out += [
            (schema.ENERGY_KWH, e, ts, step),
            (schema.CO2EQ_KG, c, ts, step),
            (schema.CO2EQ_MARKET_KG, m, ts, step),
            (schema.EMBODIED_KG, b, ts, step),
            (schema.TOTAL_CO2EQ_KG, c + b, ts, step),
            (schema.WATER_L, w, ts, step),
            (schema.CUM_ENERGY_KWH, cum["e"], ts, step),
            (schema.CUM_CO2EQ_KG, cum["c"], ts, step),
            (schema.CUM_CO2EQ_MARKET_KG, cum["m"], ts, step),
            (schema.CUM_EMBODIED_KG, cum["b"], ts, step),
            (schema.CUM_TOTAL_CO2EQ_KG, cum["t"], ts, step),
            (schema.CUM_WATER_L, cum["w"], ts, step),
        ]
    return out


def _build_store(db: Path, runs: int) -> None:
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlRun, SqlTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import insert

    tmp = db.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    store = SqlAlchemyStore(f"sqlite:///{tmp}", str(db.parent / "artifacts"))
    exp_id = store.create_experiment(EXPERIMENT)
    rng = random.Random(20261203)
    now_ms = int(time.time() * 1000)
    run_rows, metric_rows, latest_rows, tag_rows = [], [], [], []
    for i in range(runs):
        rid = uuid.UUID(int=rng.getrandbits(128)).hex
        end = now_ms - rng.randint(0, 12 * _MONTH_MS)
        run_rows.append(
            {
                "run_uuid": rid, "name": f"run-{i:05d}", "source_type": "LOCAL", "source_name": "bench",
                "entry_point_name": "", "user_id": f"user{i % 7}", "status": "FINISHED",
                "start_time": end - 3_600_000, "end_time": end, "deleted_time": None,
                "source_version": "", "lifecycle_stage": "active",
                "artifact_uri": f"{db.parent}/artifacts/{rid}", "experiment_id": int(exp_id),
            }
        )  # fmt: skip
        latest: dict[str, dict[str, object]] = {}
        for key, value, ts, step in _epoch_metrics(rng, rng.randint(2, 6), end):
            row = {
                "key": key,
                "value": value,
                "timestamp": ts,
                "step": step,
                "is_nan": False,
                "run_uuid": rid,
            }
            metric_rows.append(row)
            latest[key] = row
        latest_rows += latest.values()
        tags = {"mlflow.runName": f"run-{i:05d}", "mlflow.user": f"user{i % 7}", "team": f"t{i % 3}",
                "green.location": "FRA", "green.status": "ok"}  # fmt: skip
        tag_rows += [{"key": k, "value": v, "run_uuid": rid} for k, v in tags.items()]
    with store.ManagedSessionMaker() as session:
        session.execute(insert(SqlRun.__table__), run_rows)
        session.execute(insert(SqlMetric.__table__), metric_rows)
        session.execute(insert(SqlLatestMetric.__table__), latest_rows)
        session.execute(insert(SqlTag.__table__), tag_rows)
    store.engine.dispose()
    tmp.replace(db)


def _cached_store(runs: int, rebuild: bool) -> tuple[Path, float | None]:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    db = CACHE_DIR / f"ledger-{runs}-v{SCHEMA_VERSION}.db"
    if db.exists() and not rebuild:
        return db, None
    t0 = time.perf_counter()
    _build_store(db, runs)
    return db, time.perf_counter() - t0


def _slow_path_seconds(client: object, run_ids: list[str]) -> float:
    from mlflow_green.reports import _ledger_read

    t0 = time.perf_counter()
    _ledger_read._client_points(client, run_ids)
    return time.perf_counter() - t0


def run(*, runs: int, rounds: int, rebuild: bool = False) -> tuple[list[Row], list[str]]:
    import mlflow
    from mlflow import MlflowClient

    from mlflow_green.reports.ledger import ledger

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    cached, build_s = _cached_store(runs, rebuild)
    workdir = Path(tempfile.mkdtemp(prefix="mlflow-green-bench-ledger-"))
    try:
        db = workdir / "store.db"
        shutil.copy(cached, db)
        uri = f"sqlite:///{db}"
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(uri)
        exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id

        def bare() -> int:
            return len(mlflow.search_runs(experiment_ids=[exp_id]))

        def book() -> int:
            return ledger(client, by="month", experiments=[EXPERIMENT]).total.runs

        counts = {"search_runs": bare(), "ledger": book()}
        if counts["search_runs"] != runs or counts["ledger"] != runs:
            raise RuntimeError(f"expected {runs} runs, got {counts}")
        times: dict[str, list[float]] = {"search_runs": [], "ledger": []}
        for r in range(rounds):
            order = (("search_runs", bare), ("ledger", book))
            for name, fn in order if r % 2 == 0 else order[::-1]:
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        sample = [r.info.run_id for r in client.search_runs([exp_id], max_results=min(200, runs))]
        slow = _slow_path_seconds(client, sample) * runs / len(sample)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    base, ours = statistics.median(times["search_runs"]), statistics.median(times["ledger"])
    rows = [
        Row(
            BENCH,
            f"ledger by month / mlflow.search_runs, {runs} runs",
            ours / base,
            "x",
            ("<=", 1.0),
        ),
        Row(BENCH, "mlflow.search_runs median", base, "s"),
        Row(BENCH, "ledger median", ours, "s"),
        Row(BENCH, "run-by-run history reads (extrapolated) / search_runs", slow / base, "x"),
    ]
    extra = [
        f"{rounds} timed rounds each, alternating; store "
        + (f"built in {build_s:.1f} s" if build_s is not None else "from the cache")
        + f"; run-by-run path timed on {len(sample)} runs and scaled to {runs}"
    ]
    return rows, extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run for the smoke test")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached store")
    args = parser.parse_args(argv)
    runs = args.runs or (200 if args.quick else 10_000)
    rounds = args.rounds or (1 if args.quick else 3)
    rows, extra = run(runs=runs, rounds=rounds, rebuild=args.rebuild)
    print_report(f"ledger over {runs} runs vs a bare search", rows, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
