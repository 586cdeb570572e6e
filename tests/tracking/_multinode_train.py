"""Run by two torchrun agents (``--nnodes 2``): each node's location comes from its environment."""

from __future__ import annotations

import sys
import time

import torch
import torch.distributed as dist

import mlflow_green


def main() -> None:
    dist.init_process_group("gloo")
    model = torch.nn.Linear(4, 1)
    for _ in mlflow_green.epochs(int(sys.argv[1]), silent=True):
        model(torch.randn(8, 4)).pow(2).mean().backward()
        time.sleep(0.3)
        dist.barrier()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
