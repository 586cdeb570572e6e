"""The Hugging Face model-card ``co2_eq_emissions`` block of a run, and merging it into a card.

The block follows the Hub's model-card metadata::

    co2_eq_emissions:
      emissions: 123.4            # grams CO2eq, operational (energy x PUE x intensity)
      source: "mlflow_green 0.1.0; gpu: counter; cpu: rapl; ram: estimate; intensity: static:ember@2023"
      training_type: fine-tuning  # or pre-training
      geographical_location: FRA
      hardware_used: 2 x NVIDIA A100-SXM4-80GB

``emissions`` is the operational figure, comparable with CodeCarbon/AutoTrain numbers on the
Hub; the embodied share is named in ``source`` so that nobody mistakes one for the other.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from mlflow_green.errors import ConfigError
from mlflow_green.tracking import schema

__all__ = ["CARD_KEY", "co2_eq_emissions", "merge_front_matter", "render_block"]

CARD_KEY = "co2_eq_emissions"
TAG_TRAINING_TYPE = "green.training_type"
_TRAINING_TYPES = ("pre-training", "fine-tuning")
# Parameters a fine-tuning run logs (HF Trainer logs the model config, `_name_or_path` included).
_BASE_MODEL_PARAMS = (
    "_name_or_path",
    "model_name_or_path",
    "base_model",
    "pretrained_model_name_or_path",
)


def _training_type(run: Any, explicit: str | None) -> str:
    value = explicit or run.data.tags.get(TAG_TRAINING_TYPE)
    if value:
        value = value.strip().lower()
        if value not in _TRAINING_TYPES:
            raise ConfigError(f"training type {value!r}: use pre-training or fine-tuning")
        return value
    params = run.data.params
    return "fine-tuning" if any(params.get(p) for p in _BASE_MODEL_PARAMS) else "pre-training"


def _hardware(tags: dict[str, str]) -> str:
    model = tags.get(schema.TAG_GPU_MODEL, "").strip()
    count_raw = tags.get(schema.TAG_GPU_COUNT, "").strip()
    try:
        count = int(float(count_raw)) if count_raw else 0
    except ValueError:
        count = 0
    if model and count > 0:
        suffix = " (simulated)" if tags.get(schema.TAG_METHOD_GPU) == "simulated" else ""
        return f"{count} x {model}{suffix}"
    return "CPU"


def co2_eq_emissions(run: Any, *, training_type: str | None = None) -> dict[str, Any]:
    """The ``co2_eq_emissions`` mapping of an MLflow run measured by mlflow_green."""
    from mlflow_green._version import __version__

    metrics, tags = run.data.metrics, run.data.tags
    if schema.CUM_CO2EQ_KG not in metrics:
        raise ConfigError(
            f"run {run.info.run_id} has no {schema.CUM_CO2EQ_KG} metric: it was not measured by mlflow_green"
        )
    grams = float(metrics[schema.CUM_CO2EQ_KG]) * 1000.0
    parts = [f"mlflow_green {tags.get(schema.TAG_VERSION, __version__)}"]
    for component, tag in (
        ("gpu", schema.TAG_METHOD_GPU),
        ("cpu", schema.TAG_METHOD_CPU),
        ("ram", schema.TAG_METHOD_RAM),
    ):
        if tags.get(tag):
            parts.append(f"{component}: {tags[tag]}")
    if tags.get(schema.TAG_INTENSITY_SOURCE):
        parts.append(f"intensity: {tags[schema.TAG_INTENSITY_SOURCE]}")
    if tags.get(schema.TAG_PUE):
        parts.append(f"PUE {tags[schema.TAG_PUE]}")
    if schema.CUM_EMBODIED_KG in metrics:
        parts.append(
            f"operational only; embodied {float(metrics[schema.CUM_EMBODIED_KG]) * 1000:.4g} g not included"
        )
    if tags.get(schema.TAG_STATUS, "ok") != "ok":
        parts.append(tags[schema.TAG_STATUS])
    return {
        "emissions": round(grams, 6),
        "source": "; ".join(parts),
        "training_type": _training_type(run, training_type),
        "geographical_location": tags.get(schema.TAG_LOCATION) or "unknown",
        "hardware_used": _hardware(tags),
    }


def render_block(block: dict[str, Any]) -> str:
    """``co2_eq_emissions:`` and its mapping as YAML text (ends with a newline)."""
    return yaml.safe_dump({CARD_KEY: block}, sort_keys=False, allow_unicode=True, width=1000)


_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*(\r?\n|\Z)", re.DOTALL | re.MULTILINE)
# The block ends at the first line that starts in column 0 (the next key, or a comment).
_TOP_LEVEL = re.compile(r"^\S")


def merge_front_matter(card: str, block: dict[str, Any]) -> str:
    """Put ``block`` under ``co2_eq_emissions`` in the card's YAML front matter.

    Only the ``co2_eq_emissions`` entry changes: every other line of the front matter, and the
    body, stay byte-identical. A card without front matter gets one.
    """
    rendered = render_block(block)
    match = _FRONT.match(card)
    if match is None:
        return f"---\n{rendered}---\n" + card
    inner = match.group(1)
    try:
        parsed = yaml.safe_load(inner) if inner.strip() else {}
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"the model card's front matter is not valid YAML: {' '.join(str(exc).split())[:200]}"
        ) from None
    if parsed is not None and not isinstance(parsed, dict):
        raise ConfigError(
            "the model card's front matter is not a YAML mapping; fix it before merging"
        )
    newline = "\r\n" if "\r\n" in inner else "\n"
    lines = inner.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(rf"^{CARD_KEY}\s*:", line)), None)
    if start is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += newline
        new_inner = "".join(lines) + rendered.replace("\n", newline)
    else:
        end = start + 1
        while end < len(lines) and not _TOP_LEVEL.match(lines[end]):
            end += 1
        # blank lines before the next key are layout, not part of the block: keep them
        while end - 1 > start and not lines[end - 1].strip():
            end -= 1
        new_inner = "".join(lines[:start]) + rendered.replace("\n", newline) + "".join(lines[end:])
    merged = card[: match.start(1)] + new_inner + card[match.end(1) :]
    check = yaml.safe_load(_FRONT.match(merged).group(1))  # type: ignore[union-attr]
    if not isinstance(check, dict) or check.get(CARD_KEY) != block:
        raise ConfigError(
            "could not merge co2_eq_emissions into this front matter; edit it by hand"
        )
    return merged
