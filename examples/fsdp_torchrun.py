"""Fully Sharded Data Parallel (FSDP2, ``fully_shard``) under torchrun, measured as one MLflow run.

    torchrun --standalone --nproc-per-node 2 examples/fsdp_torchrun.py            # CPU, gloo
    torchrun --standalone --nproc-per-node 8 examples/fsdp_torchrun.py --backend nccl

The model's parameters are sharded over the processes; for mlflow_green it is the same job as
DDP: ``mlflow_green.epochs(n)`` in every process, each process measures the GPU it drives and
its own process tree's share of the node's CPU and RAM, the energies are summed with one
all_reduce per epoch, and global rank 0 alone writes the run. Across nodes
(``--nnodes N --node-rank R --rdzv-endpoint HOST:PORT``) each node's location, PUE and grid
intensity are its own: set ``MLFLOW_GREEN_COUNTRY`` etc. in each node's environment.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import mlflow_green


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    parser.add_argument("--experiment", default="mlflow-green-examples")
    parser.add_argument("--quick", action="store_true", help="2 epochs on 2,000 samples")
    args = parser.parse_args(argv)
    if args.quick or os.environ.get("MLFLOW_GREEN_EXAMPLES_QUICK") == "1":
        args.epochs, args.samples = min(args.epochs, 2), min(args.samples, 2_000)
    if "RANK" not in os.environ:
        raise SystemExit("launch with torchrun: torchrun --standalone --nproc-per-node 2 examples/fsdp_torchrun.py")

    dist.init_process_group(args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cpu")
    if args.backend == "nccl":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    direction = torch.randn(16, generator=torch.Generator().manual_seed(7))
    x = torch.randn(args.samples, 16, generator=g)
    y = ((x @ direction) > 0).long()
    data = TensorDataset(x, y)
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=128, sampler=sampler)

    model = nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2))
    model.to(device)
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    fully_shard(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    if rank == 0:
        import mlflow

        mlflow.set_experiment(args.experiment)
        mlflow.start_run(run_name=f"fsdp-{world}x{args.backend}")
        mlflow.log_params({"world_size": world, "backend": args.backend, "epochs": args.epochs})
    for epoch in mlflow_green.epochs(args.epochs):
        sampler.set_epoch(epoch)
        correct = torch.zeros(2, device=device)
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            out = model(xb)
            nn.functional.cross_entropy(out, yb).backward()
            optimizer.step()
            correct += torch.stack([(out.argmax(1) == yb).sum(), torch.tensor(len(yb), device=device)])
        dist.all_reduce(correct)
        accuracy = (correct[0] / correct[1]).item()
        mlflow_green.report_accuracy(accuracy)
        if rank == 0:
            print(f"epoch {epoch}: accuracy {accuracy:.3f} ({world} processes, FSDP)")
    if rank == 0:
        import mlflow

        run = mlflow.active_run()
        mlflow.end_run()
        if run is not None:
            print(f"run {run.info.run_id} in experiment {args.experiment!r}")
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
