"""A small hyper-parameter sweep, every trial measured, then ranked by accuracy per kg CO2eq.

    python examples/sweep.py                 # 6 trials, under 2 minutes on a CPU
    python examples/sweep.py --quick         # 3 tiny trials (the test suite's mode)
    mlflow-green leaderboard --experiment mlflow-green-sweep --png pareto.png

The trials are child runs of one parent run named ``sweep``: with the gate policy's
``include_lineage``, the cost of the whole sweep counts toward the model it produced. At the
end the script prints ``mlflow-green leaderboard`` for the experiment: one row per trial,
the Pareto-optimal ones (no other trial is both more accurate and cleaner) marked.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import torch
from torch import nn

import mlflow_green


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * 3 * torch.pi
    label = torch.randint(0, 2, (n,), generator=g)
    sign = label.float() * 2 - 1
    x = torch.stack([t.cos() * t * sign, t.sin() * t * sign], dim=1) / 10
    return x + 0.05 * torch.randn(n, 2, generator=g), label


def trial(hidden: int, lr: float, epochs: int, data: tuple[torch.Tensor, ...]) -> float:
    """Train one configuration inside the active (child) run; returns the final accuracy."""
    x, y, x_val, y_val = data
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    accuracy = 0.0
    for epoch in mlflow_green.epochs(epochs):
        for xb, yb in zip(x.split(128), y.split(128), strict=True):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()
        with torch.no_grad():
            accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
        mlflow.log_metric("val_accuracy", accuracy, step=epoch)
        mlflow_green.report_accuracy(accuracy)
    return accuracy


def leaderboard_cmd(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "mlflow-green"
    if script.exists():
        return [str(script), "leaderboard", *args]
    return [sys.executable, "-m", "mlflow_green.cli.main", "leaderboard", *args]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", default="mlflow-green-sweep")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples", type=int, default=6_000)
    parser.add_argument("--png", help="also write the Pareto plot to this file")
    parser.add_argument("--quick", action="store_true", help="3 trials of 2 epochs on 1,500 samples")
    args = parser.parse_args(argv)
    grid = list(itertools.product([16, 64, 256], [3e-3, 1e-2]))
    if args.quick or os.environ.get("MLFLOW_GREEN_EXAMPLES_QUICK") == "1":
        grid = [(16, 1e-2), (64, 1e-2), (256, 3e-3)]
        args.epochs, args.samples = min(args.epochs, 2), min(args.samples, 1_500)

    x, y = make_data(args.samples, 0)
    x_val, y_val = make_data(1_000, 1)
    # One configuration for every trial; silent keeps the per-run summaries out of the way.
    mlflow_green.autolog(silent=True)
    mlflow.set_experiment(args.experiment)
    with mlflow.start_run(run_name="sweep") as parent:
        for hidden, lr in grid:
            with mlflow.start_run(run_name=f"h{hidden}-lr{lr:g}", nested=True):
                mlflow.log_params({"hidden": hidden, "lr": lr, "epochs": args.epochs})
                accuracy = trial(hidden, lr, args.epochs, (x, y, x_val, y_val))
                print(f"trial hidden={hidden:<4} lr={lr:<6g} val_accuracy={accuracy:.3f}")
    print(f"sweep run {parent.info.run_id}: {len(grid)} trials in experiment {args.experiment!r}\n")

    extra = ["--png", args.png] if args.png else []
    command = leaderboard_cmd("--experiment", args.experiment, *extra)
    print("$ mlflow-green leaderboard --experiment " + " ".join([args.experiment, *extra]), flush=True)
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
