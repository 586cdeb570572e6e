"""Run under ``python -m torch.distributed.run --nproc-per-node 2``: a plain loop on gloo."""

from __future__ import annotations

import sys
import time

import torch
import torch.distributed as dist

import mlflow_green


def main() -> None:
    dist.init_process_group("gloo")
    model = torch.nn.Linear(4, 1)
    for _ in mlflow_green.epochs(int(sys.argv[1]), silent=True, intensity=100):
        loss = model(torch.randn(8, 4)).pow(2).mean()
        loss.backward()
        time.sleep(0.3)
        dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
