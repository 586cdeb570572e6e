"""Memory: RSS growth of a process over a 10,000-epoch tracked loop of tiny epochs.

A fresh process runs ``GreenTracker`` (no ``total_epochs``, so no projection) with a fixed
simulated sampler (``simulated:300``, no hardware involved) into a local SQLite store; the epochs do no work, so every epoch's record
goes through accounting, the journal and the logger queue as fast as it can. RSS (from
``/proc/self/statm``, after ``gc.collect()``) is read after a warm-up of 500 epochs and again
after the last epoch (before ``close()``); the figure is the difference. The logger's backlog
at that point is reported too: epochs queued faster than the store takes them are held in
memory until sent. ``--trace`` adds the top growing allocation sites (tracemalloc; slower).

    python benchmarks/memory.py [--quick] [--epochs N] [--trace]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, bench_env, print_report, rss_mb

BENCH = "memory"
WARMUP = 500


def _worker(epochs: int, workdir: Path, trace: bool) -> dict[str, Any]:
    import mlflow

    import mlflow_green

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'memory.db'}")
    mlflow.set_experiment("memory")
    snapshot0 = None
    top: list[str] = []
    with mlflow.start_run():
        # No total_epochs: with it, each epoch re-projects the run from every epoch so far
        # (O(n) per epoch, see epoch_boundary.py), which would make this loop take many minutes.
        tracker = mlflow_green.GreenTracker(sampler="simulated:300", silent=True, report=False)
        tracker.start()
        for e in range(WARMUP):
            tracker.epoch_end({"val_acc": 0.5 + e * 1e-6})
        gc.collect()
        if trace:
            import tracemalloc

            tracemalloc.start(10)
            snapshot0 = tracemalloc.take_snapshot()
        rss0 = rss_mb()
        t0 = time.perf_counter()
        for e in range(epochs):
            tracker.epoch_end({"val_acc": 0.5 + e * 1e-6})
        loop_s = time.perf_counter() - t0
        gc.collect()
        rss1 = rss_mb()
        logger = tracker.sender
        backlog = len(logger.unsent_steps) + logger._queue.qsize() if logger is not None else 0
        records = len(tracker.records)
        if snapshot0 is not None:
            import tracemalloc

            diff = tracemalloc.take_snapshot().compare_to(snapshot0, "traceback")
            for stat in diff[:8]:
                # Most recent frame first: the allocation site, then its callers.
                frames = [f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in reversed(stat.traceback[-4:])]
                top.append(f"{stat.size_diff / 2**20:+.2f} MB in {stat.count_diff:+d} blocks: {' <- '.join(frames)}")
    # Not closing: the figures are taken; draining a backlog would only add minutes.
    return {
        "rss_before_mb": rss0,
        "rss_after_mb": rss1,
        "loop_s": loop_s,
        "epochs": epochs,
        "backlog_epochs": backlog,
        "records_held": records,
        "top": top,
    }


def run(*, epochs: int, trace: bool = False) -> tuple[list[Row], list[str]]:
    workdir = Path(tempfile.mkdtemp(prefix="mlflow-green-bench-memory-"))
    try:
        out = workdir / "result.json"
        env = bench_env({"MLFLOW_GREEN_JOURNAL_DIR": str(workdir / "journal"), "MLFLOW_GREEN_COUNTRY": "FRA"})
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--epochs", str(epochs), "--workdir", str(workdir), "--out", str(out)]
        if trace:
            cmd.append("--trace")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"memory worker failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}")
        res = json.loads(out.read_text())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    growth = res["rss_after_mb"] - res["rss_before_mb"]
    rows = [
        Row(
            BENCH,
            f"RSS growth over {res['epochs']} tracked epochs",
            growth,
            "MB",
            ("<=", 2.0),
            note=f"{res['backlog_epochs']} epochs still queued for the logger, {res['records_held']} records held by the tracker",
        ),
        Row(BENCH, "RSS after warm-up", res["rss_before_mb"], "MB"),
        Row(BENCH, "per-epoch growth", growth * 1024 * 1024 / res["epochs"], "bytes"),
        Row(BENCH, "loop time per epoch", res["loop_s"] * 1000 / res["epochs"], "ms"),
    ]
    extra = ["top growing allocation sites (tracemalloc):", *res["top"]] if res["top"] else []
    return rows, extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run for the smoke test")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--trace", action="store_true", help="tracemalloc: where the growth comes from")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    epochs = args.epochs or (300 if args.quick else 10_000)
    if args.worker:
        result = _worker(epochs, Path(args.workdir), args.trace)
        Path(args.out).write_text(json.dumps(result))
        sys.stdout.flush()
        os._exit(0)  # skip joining the logger thread and its backlog
    rows, extra = run(epochs=epochs, trace=args.trace)
    print_report("memory (RSS growth of a tracked loop)", rows, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
