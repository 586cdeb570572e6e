"""``make bench``: the CPU benchmark set, one after the other, and one table at the end.

Runs overhead, epoch-boundary cost, gate latency, leaderboard at scale and memory with sizes
chosen to finish within about 10 minutes on a 2-core machine, prints each benchmark's table as
it finishes, then the combined table and one ``MISSED`` line per target that was missed. The
exit code is 0 either way (a benchmark that crashes is reported as ``FAILED`` and exits 1).
The GPU benchmark (``gpu_accuracy.py``) is separate: it needs an NVIDIA GPU.

    python benchmarks/run_all.py [--quick] [--only NAME[,NAME...]]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Row,
    format_table,
    machine_description,
    missed_lines,
    now_utc,
    print_report,
)

# name -> (module, keyword arguments of run() for the full set, for --quick)
PLAN: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "overhead": ("overhead", {"rounds": 3, "epochs": 20}, {"rounds": 1, "epochs": 3, "train_samples": 1024}),
    "epoch_boundary": ("epoch_boundary", {"epochs": 300}, {"epochs": 30, "server": False}),
    "gate_latency": (
        "gate_latency",
        {"rounds": 6, "requests_1": 50, "per_client_20": 3, "postgres": True},
        {"rounds": 1, "requests_1": 5, "per_client_20": 1, "postgres": False},
    ),
    "leaderboard": ("leaderboard_scale", {"runs": 10_000, "rounds": 2}, {"runs": 200, "rounds": 1}),
    "memory": ("memory", {"epochs": 10_000}, {"epochs": 300}),
    "ledger": ("ledger_scale", {"runs": 10_000, "rounds": 2}, {"runs": 200, "rounds": 1}),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(PLAN)}")
    args = parser.parse_args(argv)
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or list(PLAN)
    unknown = [n for n in chosen if n not in PLAN]
    if unknown:
        print(f"run_all: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(PLAN)}", file=sys.stderr)
        return 2
    print(f"mlflow_green benchmarks, {now_utc()}")
    print(f"machine: {machine_description()}", flush=True)
    rows: list[Row] = []
    failed: list[str] = []
    durations: list[str] = []
    t_all = time.perf_counter()
    for name in chosen:
        module_name, full, quick = PLAN[name]
        module = importlib.import_module(module_name)
        run: Callable[..., tuple[list[Row], list[str]]] = module.run
        t0 = time.perf_counter()
        try:
            bench_rows, extra = run(**(quick if args.quick else full))
        except Exception as exc:
            traceback.print_exc()
            failed.append(f"FAILED: {name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        finally:
            durations.append(f"{name} {time.perf_counter() - t0:.0f} s")
        print_report(name, bench_rows, extra)
        rows += bench_rows
    total_s = time.perf_counter() - t_all
    print("\n== all benchmarks ==")
    print(format_table(rows))
    print(f"time: {', '.join(durations)}; total {total_s / 60:.1f} min")
    print(f"machine load at the end: {machine_description().rsplit('; ', 1)[-1]}")
    lines = missed_lines(rows) + failed
    for line in lines:
        print(line)
    if not lines:
        print("every target met")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
