"""A plain PyTorch training loop measured epoch by epoch with ``mlflow_green.epochs(n)``.

    python examples/plain_pytorch.py                 # 5 epochs, under 2 minutes on a CPU
    python examples/plain_pytorch.py --quick         # 2 tiny epochs (the test suite's mode)

Each iteration of ``mlflow_green.epochs(n)`` is one measured window; its ``green/`` metrics
are logged at ``step = epoch`` into the active MLflow run, with the provenance tags
(``green.method.cpu=estimate`` on a machine without RAPL, ``green.method.gpu=none`` without
an NVIDIA GPU). Where the run goes: MLFLOW_TRACKING_URI (MLflow's default otherwise).
"""

from __future__ import annotations

import argparse
import os
import sys

import mlflow
import torch
from torch import nn

import mlflow_green


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved spirals: a small problem a 2-layer MLP learns in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * 3 * torch.pi
    label = torch.randint(0, 2, (n,), generator=g)
    sign = label.float() * 2 - 1
    x = torch.stack([t.cos() * t * sign, t.sin() * t * sign], dim=1) / 10
    x += 0.05 * torch.randn(n, 2, generator=g)
    return x, label


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--experiment", default="mlflow-green-examples")
    parser.add_argument("--run-name", default="plain-pytorch")
    parser.add_argument("--quick", action="store_true", help="2 epochs on 2,000 samples")
    args = parser.parse_args(argv)
    if args.quick or os.environ.get("MLFLOW_GREEN_EXAMPLES_QUICK") == "1":
        args.epochs, args.samples = min(args.epochs, 2), min(args.samples, 2_000)

    torch.manual_seed(0)
    x, y = make_data(args.samples, seed=0)
    x_val, y_val = make_data(args.samples // 4, seed=1)
    model = nn.Sequential(
        nn.Linear(2, args.hidden), nn.ReLU(), nn.Linear(args.hidden, args.hidden), nn.ReLU(),
        nn.Linear(args.hidden, 2),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()

    mlflow.set_experiment(args.experiment)
    with mlflow.start_run(run_name=args.run_name) as run:
        mlflow.log_params({"epochs": args.epochs, "samples": args.samples, "hidden": args.hidden})
        for epoch in mlflow_green.epochs(args.epochs):
            model.train()
            for xb, yb in zip(x.split(128), y.split(128), strict=True):
                optimizer.zero_grad()
                loss = loss_fn(model(xb), yb)
                loss.backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
            mlflow.log_metrics({"train_loss": loss.item(), "val_accuracy": accuracy}, step=epoch)
            # The accuracy behind green/accuracy_per_kg for this epoch.
            mlflow_green.report_accuracy(accuracy)
            print(f"epoch {epoch}: loss {loss.item():.3f}  val_accuracy {accuracy:.3f}")
    print(f"run {run.info.run_id} in experiment {args.experiment!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
