"""Ray Train: a ``TorchTrainer`` with CPU workers on a local Ray cluster, measured as one MLflow run.

    pip install 'mlflow-green[ray]'
    python examples/ray_train.py                    # 2 workers, 3 epochs
    python examples/ray_train.py --workers 4 --quick

``mlflow_green.autolog()`` and ``mlflow_green.epochs(n)`` go *inside* the training function,
which Ray runs in every worker. Ray Train sets up torch.distributed (gloo on CPU, NCCL on GPUs)
and the ``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` variables before it calls the function, so
mlflow_green sees an ordinary distributed job: each worker measures the GPU it drives and its
own process tree's share of its node's CPU and RAM, the energies are summed over the workers
with one all_reduce per epoch, and world rank 0 alone writes one MLflow run for the whole job
— one run whatever the number of workers. The workers need to reach the tracking server:
pass its URI in the function's config (a local ``sqlite:`` file works on one machine; use an
``http://`` server across machines). On a multi-node cluster, set each node's location with
``MLFLOW_GREEN_COUNTRY`` etc. in that node's environment (``ray start`` inherits it).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def train_func(config: dict[str, Any]) -> None:
    """The per-worker training loop (runs in every Ray Train worker)."""
    import mlflow
    import ray.train
    import torch
    import torch.distributed as dist
    from ray.train.torch import prepare_data_loader, prepare_model
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    import mlflow_green

    mlflow.set_tracking_uri(config["tracking_uri"])
    rank = ray.train.get_context().get_world_rank()
    world = ray.train.get_context().get_world_size()
    mlflow_green.autolog(silent=True)  # the options of every epochs()/Trainer in this worker

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    direction = torch.randn(16, generator=torch.Generator().manual_seed(7))
    x = torch.randn(config["samples"], 16, generator=g)
    y = ((x @ direction) > 0).long()
    loader = prepare_data_loader(DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True))
    model = prepare_model(nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 2)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    if rank == 0:
        mlflow.set_experiment(config["experiment"])
        mlflow.start_run(run_name=f"ray-train-{world}-workers")
        mlflow.log_params({"workers": world, "epochs": config["epochs"]})
    for epoch in mlflow_green.epochs(config["epochs"]):
        if world > 1:
            loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
        correct = torch.zeros(2)
        for xb, yb in loader:
            optimizer.zero_grad()
            out = model(xb)
            nn.functional.cross_entropy(out, yb).backward()
            optimizer.step()
            correct += torch.tensor([(out.argmax(1) == yb).sum().item(), len(yb)])
        if dist.is_initialized():
            dist.all_reduce(correct)
        accuracy = float(correct[0] / correct[1])
        mlflow_green.report_accuracy(accuracy)
        ray.train.report({"epoch": epoch, "accuracy": accuracy})
    if rank == 0:
        run = mlflow.active_run()
        mlflow.end_run()
        if run is not None:
            print(f"run {run.info.run_id}: {world} workers, {config['epochs']} epochs")


def _absolute_uri(uri: str) -> str:
    """A tracking URI that means the same store from any working directory."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + os.path.abspath(uri[len("sqlite:///") :])
    if uri.startswith("file:") and not uri.startswith("file:///"):
        return "file://" + os.path.abspath(uri[len("file:") :])
    if "://" not in uri and not uri.startswith(("sqlite:", "databricks")):
        return "file://" + os.path.abspath(uri)  # a plain path: a local file store
    return uri


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--experiment", default="mlflow-green-examples")
    parser.add_argument("--quick", action="store_true", help="2 epochs on 2,000 samples")
    args = parser.parse_args(argv)
    if args.quick or os.environ.get("MLFLOW_GREEN_EXAMPLES_QUICK") == "1":
        args.epochs, args.samples = min(args.epochs, 2), min(args.samples, 2_000)

    import mlflow
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    uri = _absolute_uri(mlflow.get_tracking_uri())  # Ray's workers run in another directory
    ray.init(num_cpus=max(args.workers, 2), include_dashboard=False, log_to_driver=True)
    try:
        trainer = TorchTrainer(
            train_func,
            train_loop_config={
                "tracking_uri": uri,
                "experiment": args.experiment,
                "epochs": args.epochs,
                "samples": args.samples,
            },
            scaling_config=ScalingConfig(num_workers=args.workers, use_gpu=False),
            run_config=RunConfig(storage_path=os.path.abspath("ray_results"), name="mlflow-green"),
        )
        result = trainer.fit()
        print(f"Ray Train finished{' with an error: ' + str(result.error) if result.error else ''}")
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
