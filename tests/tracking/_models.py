"""Tiny models and datasets for the framework tests (seconds each on a CPU)."""

from __future__ import annotations

from typing import Any


def tiny_bert(num_labels: int = 2) -> Any:
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=32,
        num_labels=num_labels,
    )
    return BertForSequenceClassification(config)


class RandomTokens:
    """A tokenizer-free dataset of random token ids with labels (a torch-style Dataset)."""

    def __init__(self, n: int = 32, length: int = 12, seed: int = 0) -> None:
        import torch

        gen = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 64, (n, length), generator=gen)
        # A learnable label: whether the first token is in the lower half of the vocabulary.
        self.labels = (self.ids[:, 0] < 32).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        return {
            "input_ids": self.ids[i],
            "attention_mask": torch.ones_like(self.ids[i]),
            "labels": self.labels[i],
        }


def accuracy_metrics(eval_pred: Any) -> dict[str, float]:
    logits, labels = eval_pred
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}
