"""Epoch-boundary cost: the time the training thread spends in mlflow_green per epoch.

Many tiny epochs (a 1 ms sleep each, so the background logger gets the CPU it would get
during real training); ``time.perf_counter`` around the epoch-end call, which closes the
epoch's window (sampler reads), does the accounting, journals the record and hands it to the
logger thread, and opens the next window. Samplers are this machine's own (``auto``). Cases:

- ``GreenTracker.epoch_end(metrics)`` into a local SQLite store;
- the same with ``total_epochs`` known (what ``epochs(n)`` does): the run's total is then
  projected at every epoch end;
- ``for epoch in mlflow_green.epochs(n)`` with the accuracy logged by ``mlflow.log_metric``
  (mlflow_green reads it back from the run at each epoch end);
- ``GreenTracker.epoch_end(metrics)`` against a live ``mlflow server``, then the same run after
  the server was stopped (the tracking URI now points at a closed 127.0.0.1 port): the
  training thread must not wait for the network.

    python benchmarks/epoch_boundary.py [--quick] [--epochs N] [--profile] [--no-server]

``--quick`` leaves out the two server cases.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, percentile, print_report, wait_until_quiet

BENCH = "epoch boundary"
WARMUP = 20
BODY_S = 0.001


def _time_epochs(n: int, end_call: Callable[[int], Any], profiler: cProfile.Profile | None) -> list[float]:
    """Run ``WARMUP + n`` tiny epochs; the epoch-end call's duration of the last n, in ms."""
    durations: list[float] = []
    for epoch in range(WARMUP + n):
        time.sleep(BODY_S)
        if profiler is not None and epoch >= WARMUP:
            profiler.enable()
        t0 = time.perf_counter()
        end_call(epoch)
        t1 = time.perf_counter()
        if profiler is not None and epoch >= WARMUP:
            profiler.disable()
        if epoch >= WARMUP:
            durations.append((t1 - t0) * 1000.0)
    return durations


def _tracker_local(
    n: int, workdir: Path, profiler: cProfile.Profile | None, *, total_known: bool = False
) -> list[float]:
    import mlflow

    import mlflow_green

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'local.db'}")
    mlflow.set_experiment("epoch-boundary")
    total = WARMUP + n if total_known else None
    with mlflow.start_run(), mlflow_green.GreenTracker(total, silent=True, report=False) as tracker:
        return _time_epochs(n, lambda e: tracker.epoch_end({"val_acc": 0.5 + e * 1e-6}), profiler)


def _epochs_loop_readback(n: int, workdir: Path, profiler: cProfile.Profile | None) -> list[float]:
    import mlflow

    import mlflow_green

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'loop.db'}")
    mlflow.set_experiment("epoch-boundary")
    durations: list[float] = []
    total = WARMUP + n + 1
    with mlflow.start_run():
        it = iter(mlflow_green.epochs(total, silent=True, report=False))
        epoch: int | None = next(it)
        while epoch is not None:
            time.sleep(BODY_S)
            mlflow.log_metric("val_acc", 0.5, step=epoch)
            # next() closes the epoch (the epoch-end call) and opens the next one; the last
            # next() also finishes the run, which is not a per-epoch cost and is not timed.
            measured = WARMUP <= epoch < total - 1
            if profiler is not None and measured:
                profiler.enable()
            t0 = time.perf_counter()
            following = next(it, None)
            t1 = time.perf_counter()
            if profiler is not None and measured:
                profiler.disable()
            if measured:
                durations.append((t1 - t0) * 1000.0)
            epoch = following
    return durations


def _tracker_server(n: int, workdir: Path, profiler: cProfile.Profile | None) -> tuple[list[float], list[float], float]:
    """Epoch-end times against a live server, then with the server stopped; and close() time."""
    import mlflow

    import mlflow_green
    from tests._servers import start_mlflow_server

    server = start_mlflow_server(workdir / "server", env={"MLFLOW_GREEN_STRICT": "0"})
    wait_until_quiet([server.process.pid])  # its job runner's start-up is not the training's cost
    try:
        mlflow.set_tracking_uri(server.url)
        mlflow.set_experiment("epoch-boundary")
        run = mlflow.start_run()
        tracker = mlflow_green.GreenTracker(silent=True, report=False)
        tracker.start()
        up = _time_epochs(n, lambda e: tracker.epoch_end({"val_acc": 0.5}), None)
        tracker.sender.flush(30)  # the backlog of the live phase is not the down phase's
        server.stop()
        down = _time_epochs(n, lambda e: tracker.epoch_end({"val_acc": 0.5}), profiler)
        t0 = time.perf_counter()
        tracker.close()
        close_s = time.perf_counter() - t0
        if mlflow.active_run() is not None and mlflow.active_run().info.run_id == run.info.run_id:
            os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
            try:
                mlflow.end_run()
            except Exception:
                pass
    finally:
        server.stop()
        os.environ.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)
    return up, down, close_s


def _stats_rows(case: str, durations: list[float], with_target: bool) -> list[Row]:
    p50, p99 = percentile(durations, 50), percentile(durations, 99)
    return [
        Row(BENCH, f"{case}: p50", p50, "ms", ("<=", 0.5) if with_target else None),
        Row(BENCH, f"{case}: p99", p99, "ms", ("<=", 2.0) if with_target else None),
        Row(BENCH, f"{case}: max", max(durations), "ms"),
    ]


def _profile_text(profiler: cProfile.Profile, title: str, n: int) -> list[str]:
    buf = io.StringIO()
    stats = pstats.Stats(profiler, stream=buf)
    stats.sort_stats("cumulative").print_stats(25)
    return [f"--- cProfile of {n} epoch-end calls: {title} (cumulative) ---", buf.getvalue()]


def run(*, epochs: int, profile: bool = False, server: bool = True) -> tuple[list[Row], list[str]]:
    os.environ.pop("MLFLOW_GREEN_STRICT", None)  # measure what users run: telemetry never raises
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    workdir = Path(tempfile.mkdtemp(prefix="mlflow-green-bench-epoch-"))
    os.environ["MLFLOW_GREEN_JOURNAL_DIR"] = str(workdir / "journal")
    os.environ.setdefault("MLFLOW_GREEN_COUNTRY", "FRA")
    rows: list[Row] = []
    extra: list[str] = []
    try:
        prof = cProfile.Profile() if profile else None
        local = _tracker_local(epochs, workdir, prof)
        rows += _stats_rows("GreenTracker.epoch_end, local SQLite", local, True)
        if prof is not None:
            extra += _profile_text(prof, "GreenTracker.epoch_end, local SQLite", epochs)
        prof = cProfile.Profile() if profile else None
        known = _tracker_local(epochs, workdir, prof, total_known=True)
        case = "GreenTracker(total_epochs=N).epoch_end, local SQLite"
        rows += _stats_rows(case, known, True)
        tail = known[-max(len(known) // 10, 1) :]
        rows.append(Row(BENCH, f"{case}: p50 of the last 10% of epochs", percentile(tail, 50), "ms"))
        if prof is not None:
            extra += _profile_text(prof, case, epochs)
        prof = cProfile.Profile() if profile else None
        loop = _epochs_loop_readback(epochs, workdir, prof)
        rows += _stats_rows("epochs(n) + mlflow.log_metric read-back, local SQLite", loop, True)
        if prof is not None:
            extra += _profile_text(prof, "epochs(n) loop with read-back", epochs)
        if server:
            prof = cProfile.Profile() if profile else None
            up, down, close_s = _tracker_server(epochs, workdir, prof)
            rows += _stats_rows("GreenTracker.epoch_end, live mlflow server", up, True)
            rows += _stats_rows("GreenTracker.epoch_end, server down (closed port)", down, True)
            rows.append(Row(BENCH, "GreenTracker.close() with the server down", close_s, "s"))
            if prof is not None:
                extra += _profile_text(prof, "server down", epochs)
        from mlflow_green.meter import EnergyMeter

        meter = EnergyMeter.from_spec()
        extra.append(f"samplers (auto on this machine): {meter.hardware.methods}; {epochs} timed epochs per case")
        meter.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows, extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run for the smoke test")
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs per case")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the epoch-end calls")
    parser.add_argument("--no-server", action="store_true", help="skip the live/down server cases")
    args = parser.parse_args(argv)
    epochs = args.epochs or (30 if args.quick else 500)
    # --quick skips the server cases: starting an mlflow server costs tens of seconds.
    rows, extra = run(epochs=epochs, profile=args.profile, server=not (args.no_server or args.quick))
    print_report("epoch-boundary cost (training thread, per epoch)", rows, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
