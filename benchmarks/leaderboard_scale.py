"""Leaderboard at scale: ``mlflow_green.reports.leaderboard`` over 10,000 runs vs ``mlflow.search_runs``.

The runs are written once, straight into a local SQLite MLflow store with SQLAlchemy bulk
inserts into MLflow's own tables (runs, latest_metrics, metrics, tags, params), and the file is
cached in ``benchmarks/.cache/`` (git-ignored) for the next benchmark run. Each run carries what
``mlflow_green.autolog`` leaves on a finished run (cumulative ``green/`` metrics, the accuracy,
the provenance tags) plus two params.

Timed in one process, alternating, after one untimed call of each: the leaderboard of the
experiment (search every page, rows, Pareto frontier, sort) against a bare
``mlflow.search_runs(experiment_ids=[...])`` of the same experiment (a pandas DataFrame). The
figure is the ratio of the medians.

    python benchmarks/leaderboard_scale.py [--quick] [--runs N] [--rounds R] [--rebuild]
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

BENCH = "leaderboard"
EXPERIMENT = "leaderboard-bench"
SCHEMA_VERSION = 1  # bump when the generated content changes, so old cache files are not reused


def _build_store(db: Path, runs: int) -> None:
    """Write ``runs`` finished green runs into a new SQLite store at ``db``."""
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import insert

    from mlflow_green.tracking import schema

    tmp = db.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    uri = f"sqlite:///{tmp}"
    store = SqlAlchemyStore(uri, str(db.parent / "artifacts"))
    exp_id = store.create_experiment(EXPERIMENT)
    rng = random.Random(20260101)
    now_ms = int(time.time() * 1000)
    run_rows, metric_rows, tag_rows, param_rows = [], [], [], []
    for i in range(runs):
        rid = uuid.UUID(int=rng.getrandbits(128)).hex
        name = f"run-{i:05d}"
        start = now_ms - (runs - i) * 60_000
        run_rows.append(
            {
                "run_uuid": rid,
                "name": name,
                "source_type": "LOCAL",
                "source_name": "bench",
                "entry_point_name": "",
                "user_id": "bench",
                "status": "FINISHED",
                "start_time": start,
                "end_time": start + 50_000,
                "deleted_time": None,
                "source_version": "",
                "lifecycle_stage": "active",
                "artifact_uri": f"{db.parent}/artifacts/{rid}",
                "experiment_id": int(exp_id),
            }
        )
        energy = rng.uniform(0.01, 5.0)
        intensity = rng.uniform(20, 600)
        operational = energy * intensity / 1000
        embodied = rng.uniform(0.001, 0.5)
        total = operational + embodied
        accuracy = rng.uniform(0.5, 0.99)
        epochs = rng.randint(1, 50)
        metrics = {
            schema.CUM_ENERGY_KWH: energy,
            schema.CUM_CO2EQ_KG: operational,
            schema.CUM_EMBODIED_KG: embodied,
            schema.CUM_TOTAL_CO2EQ_KG: total,
            schema.EMBODIED_SHARE: embodied / total,
            schema.ACCURACY_PER_KG: accuracy / total,
            schema.ENERGY_KWH: energy / epochs,
            schema.CO2EQ_KG: operational / epochs,
            "val_acc": accuracy,
        }
        for key, value in metrics.items():
            row = {"key": key, "value": value, "timestamp": start + 50_000, "step": epochs - 1, "is_nan": False, "run_uuid": rid}
            metric_rows.append(row)
        tags = {
            "mlflow.runName": name,
            "mlflow.user": "bench",
            schema.TAG_STATUS: "ok",
            schema.TAG_METHOD_GPU: "counter",
            schema.TAG_METHOD_CPU: "rapl",
            schema.TAG_METHOD_RAM: "estimate",
            schema.TAG_ACCURACY_METRIC: "val_acc",
        }
        tag_rows += [{"key": k, "value": v, "run_uuid": rid} for k, v in tags.items()]
        param_rows += [
            {"key": "lr", "value": f"{rng.choice((1e-4, 3e-4, 1e-3)):g}", "run_uuid": rid},
            {"key": "batch_size", "value": str(rng.choice((32, 64, 128))), "run_uuid": rid},
        ]
    with store.ManagedSessionMaker() as session:
        session.execute(insert(SqlRun.__table__), run_rows)
        session.execute(insert(SqlMetric.__table__), metric_rows)
        session.execute(insert(SqlLatestMetric.__table__), metric_rows)
        session.execute(insert(SqlTag.__table__), tag_rows)
        session.execute(insert(SqlParam.__table__), param_rows)
    store.engine.dispose()
    tmp.replace(db)


def _cached_store(runs: int, rebuild: bool) -> tuple[Path, float | None]:
    """The cached store with ``runs`` runs; builds it when absent. Returns (path, build seconds)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    db = CACHE_DIR / f"leaderboard-{runs}-v{SCHEMA_VERSION}.db"
    if db.exists() and not rebuild:
        return db, None
    t0 = time.perf_counter()
    _build_store(db, runs)
    return db, time.perf_counter() - t0


def run(*, runs: int, rounds: int, rebuild: bool = False) -> tuple[list[Row], list[str]]:
    import mlflow
    from mlflow import MlflowClient

    from mlflow_green.reports.leaderboard import leaderboard

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    cached, build_s = _cached_store(runs, rebuild)
    # Work on a copy: the timed code must not be able to change the cache.
    workdir = Path(tempfile.mkdtemp(prefix="mlflow-green-bench-leaderboard-"))
    try:
        db = workdir / "store.db"
        shutil.copy(cached, db)
        uri = f"sqlite:///{db}"
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(uri)
        exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id

        def bare() -> int:
            return len(mlflow.search_runs(experiment_ids=[exp_id]))

        def board() -> int:
            return leaderboard(client, EXPERIMENT).total_ranked

        counts = {"search_runs": bare(), "leaderboard": board()}  # untimed: engine, caches
        if counts["search_runs"] != runs or counts["leaderboard"] != runs:
            raise RuntimeError(f"expected {runs} runs, got {counts}")
        times: dict[str, list[float]] = {"search_runs": [], "leaderboard": []}
        for r in range(rounds):
            order = (("search_runs", bare), ("leaderboard", board))
            for name, fn in order if r % 2 == 0 else order[::-1]:
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    base, ours = statistics.median(times["search_runs"]), statistics.median(times["leaderboard"])
    rows = [
        Row(BENCH, f"leaderboard / mlflow.search_runs, {runs} runs", ours / base, "x", ("<=", 1.2)),
        Row(BENCH, "mlflow.search_runs median", base, "s"),
        Row(BENCH, "leaderboard median", ours, "s"),
    ]
    extra = [
        f"{rounds} timed rounds each, alternating; store "
        + (f"built in {build_s:.1f} s" if build_s is not None else "from the cache")
        + f" ({cached.relative_to(cached.parent.parent.parent)})"
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
    print_report(f"leaderboard over {runs} runs vs a bare search", rows, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
