"""A Lightning ``Trainer.fit`` measured by ``mlflow_green.autolog()``.

    python examples/lightning_example.py           # 5 epochs, under 2 minutes on a CPU
    python examples/lightning_example.py --quick   # 2 tiny epochs (the test suite's mode)

autolog adds a thin callback to every ``Trainer.fit``: each training epoch is a measured
window, the accuracy comes from ``trainer.callback_metrics`` (``val_acc`` here), and only
rank zero logs. Lightning's own ``MLFlowLogger`` shares the run: the ``green/`` metrics sit
next to ``val_acc`` and ``train_loss`` in one MLflow run.
"""

from __future__ import annotations

import argparse
import os
import sys

import lightning as L
import mlflow
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import mlflow_green


def make_data(n: int, seed: int) -> TensorDataset:
    """Points in 8 dimensions labelled by the sign of a fixed random projection, plus noise."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(8, generator=torch.Generator().manual_seed(42))
    x = torch.randn(n, 8, generator=g)
    y = ((x @ direction + 0.3 * torch.randn(n, generator=g)) > 0).long()
    return TensorDataset(x, y)


class Classifier(L.LightningModule):
    def __init__(self, hidden: int = 64, lr: float = 1e-2) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        x, y = batch
        self.log("val_acc", (self.net(x).argmax(1) == y).float().mean(), on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=8_000)
    parser.add_argument("--experiment", default="mlflow-green-examples")
    parser.add_argument("--quick", action="store_true", help="2 epochs on 1,000 samples")
    args = parser.parse_args(argv)
    if args.quick or os.environ.get("MLFLOW_GREEN_EXAMPLES_QUICK") == "1":
        args.epochs, args.samples = min(args.epochs, 2), min(args.samples, 1_000)

    from lightning.pytorch.loggers import MLFlowLogger

    L.seed_everything(0, verbose=False)
    train = DataLoader(make_data(args.samples, 0), batch_size=128, shuffle=True)
    val = DataLoader(make_data(args.samples // 5, 1), batch_size=256)

    mlflow_green.autolog()
    logger = MLFlowLogger(
        experiment_name=args.experiment,
        run_name="lightning",
        tracking_uri=mlflow.get_tracking_uri(),
    )
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accelerator="auto",
        devices=1,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Classifier(), train, val)
    print(f"run {logger.run_id} in experiment {args.experiment!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
