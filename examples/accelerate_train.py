"""Hugging Face Accelerate: ``accelerate launch`` with 2 processes, measured as one MLflow run.

    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \\
        --dynamo_backend no examples/accelerate_train.py [--quick]

On a machine without GPUs this runs 2 CPU processes over gloo (``--multi_gpu`` selects
Accelerate's torchrun launcher; ``--cpu`` alone would start a single process).
``accelerate launch`` starts the processes through torchrun and ``Accelerator()`` sets up
torch.distributed (gloo on CPU, NCCL on GPUs), so ``mlflow_green.epochs(n)`` in every process
is all it takes: each process measures the GPU it drives and its own process tree's share of
the node's CPU and RAM, the energies are summed with one all_reduce per epoch, and the main
process alone writes one MLflow run. On several machines, each machine's location is its own
(``MLFLOW_GREEN_COUNTRY`` etc. in its environment).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import mlflow_green


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--experiment", default="mlflow-green-examples")
    parser.add_argument("--quick", action="store_true", help="2 epochs on 2,000 samples")
    args = parser.parse_args(argv)
    if args.quick or os.environ.get("MLFLOW_GREEN_EXAMPLES_QUICK") == "1":
        args.epochs, args.samples = min(args.epochs, 2), min(args.samples, 2_000)

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    direction = torch.randn(16, generator=torch.Generator().manual_seed(7))
    x = torch.randn(args.samples, 16, generator=g)
    y = ((x @ direction) > 0).long()
    loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    world = accelerator.num_processes
    if accelerator.is_main_process:
        import mlflow

        mlflow.set_experiment(args.experiment)
        mlflow.start_run(run_name=f"accelerate-{world}-processes")
        mlflow.log_params({"num_processes": world, "epochs": args.epochs})
    for epoch in mlflow_green.epochs(args.epochs):
        correct = torch.zeros(2, device=accelerator.device)
        for xb, yb in loader:
            optimizer.zero_grad()
            out = model(xb)
            accelerator.backward(nn.functional.cross_entropy(out, yb))
            optimizer.step()
            correct += torch.tensor([(out.argmax(1) == yb).sum().item(), len(yb)], device=accelerator.device)
        correct = accelerator.reduce(correct, reduction="sum")
        accuracy = float(correct[0] / correct[1])
        mlflow_green.report_accuracy(accuracy)
        if accelerator.is_main_process:
            print(f"epoch {epoch}: accuracy {accuracy:.3f} ({world} processes)")
    if accelerator.is_main_process:
        import mlflow

        run = mlflow.active_run()
        mlflow.end_run()
        if run is not None:
            print(f"run {run.info.run_id} in experiment {args.experiment!r}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
