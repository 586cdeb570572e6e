"""Distributed data-parallel training under torchrun, measured as one MLflow run.

    torchrun --standalone --nproc-per-node 2 examples/ddp_torchrun.py
    torchrun --standalone --nproc-per-node 2 examples/ddp_torchrun.py --quick   # the test suite's mode
    # without the torchrun script: python -m torch.distributed.run --standalone --nproc-per-node 2 ...

Every process runs ``mlflow_green.epochs(n)``: each measures only the GPU it drives (none on
a CPU machine), CPU and RAM are measured once per node by local rank 0, and at each epoch's
end the energies are summed over the ranks with one small all_reduce. Global rank 0 alone
writes the run. Uses the gloo back end, so it runs on CPU; on GPUs use ``--backend nccl``.
To see the per-rank GPU sum without GPUs: MLFLOW_GREEN_SAMPLER=simulated:300 (each process
simulates its own 300 W GPU; the run is then tagged ``simulated``).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import mlflow_green


def make_data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(16, generator=torch.Generator().manual_seed(7))
    x = torch.randn(n, 16, generator=g)
    y = ((x @ direction) > 0).long()
    return TensorDataset(x, y)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=40_000)
    parser.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    parser.add_argument("--experiment", default="mlflow-green-examples")
    parser.add_argument("--quick", action="store_true", help="2 epochs on 2,000 samples")
    args = parser.parse_args(argv)
    if args.quick or os.environ.get("MLFLOW_GREEN_EXAMPLES_QUICK") == "1":
        args.epochs, args.samples = min(args.epochs, 2), min(args.samples, 2_000)
    if "RANK" not in os.environ:
        raise SystemExit("launch with torchrun: torchrun --standalone --nproc-per-node 2 examples/ddp_torchrun.py")

    dist.init_process_group(args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cpu")
    if args.backend == "nccl":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    torch.manual_seed(0)

    train_set, val_set = make_data(args.samples, 0), make_data(args.samples // 5, 1)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(train_set, batch_size=128, sampler=sampler)
    val_loader = DataLoader(
        val_set, batch_size=512, sampler=DistributedSampler(val_set, num_replicas=world, rank=rank, shuffle=False)
    )
    model = DistributedDataParallel(
        nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 2)).to(device),
        device_ids=[device.index] if device.type == "cuda" else None,
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    if rank == 0:
        import mlflow

        mlflow.set_experiment(args.experiment)
        mlflow.start_run(run_name=f"ddp-{world}x{args.backend}")
        mlflow.log_params({"world_size": world, "backend": args.backend, "epochs": args.epochs})

    # Every rank iterates: the per-epoch energy sum is a collective.
    for epoch in mlflow_green.epochs(args.epochs):
        sampler.set_epoch(epoch)
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x.to(device)), y.to(device)).backward()
            optimizer.step()
        model.eval()
        correct_total = torch.zeros(2, device=device)
        with torch.no_grad():
            for x, y in val_loader:
                correct_total[0] += (model(x.to(device)).argmax(1) == y.to(device)).sum()
                correct_total[1] += len(y)
        dist.all_reduce(correct_total)
        accuracy = (correct_total[0] / correct_total[1]).item()
        mlflow_green.report_accuracy(accuracy)
        if rank == 0:
            import mlflow

            mlflow.log_metric("val_accuracy", accuracy, step=epoch)
            print(f"epoch {epoch}: val_accuracy {accuracy:.3f} ({world} processes)")

    if rank == 0:
        import mlflow

        run = mlflow.active_run()
        mlflow.end_run()
        if run is not None:
            print(f"run {run.info.run_id} in experiment {args.experiment!r}")
    # Every rank tears the process group down together: a rank that destroys it while rank 0 is
    # still finishing the run (seconds of I/O) can abort inside Gloo's worker threads.
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
