"""``mlflow-green model-card``: the Hugging Face ``co2_eq_emissions`` block of a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlflow_green.cli._common import add_json_flag, emit
from mlflow_green.errors import ConfigError

__all__ = ["add_parser", "run"]


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-id", required=True, dest="run_id", help="the MLflow run to describe")
    parser.add_argument(
        "--write",
        type=Path,
        metavar="README.md",
        help="merge the block into this model card's YAML front matter (created when absent)",
    )
    parser.add_argument(
        "--training-type",
        dest="training_type",
        choices=("pre-training", "fine-tuning"),
        help="default: the run's green.training_type tag, else fine-tuning when a base model "
        "parameter was logged, else pre-training",
    )
    parser.add_argument(
        "--format",
        dest="card_format",
        choices=("hf", "eu-ai-act"),
        default="hf",
        help="hf: the Hugging Face co2_eq_emissions block (default); eu-ai-act: the energy and "
        "compute fields of the EU AI Act GPAI Model Documentation Form, from the run and its lineage",
    )
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from mlflow_green.reports.model_card import co2_eq_emissions, merge_front_matter, render_block

    if args.card_format == "eu-ai-act":
        return _eu_ai_act(args)
    try:
        mlflow_run = MlflowClient().get_run(args.run_id)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            raise ConfigError(
                f"run {args.run_id!r} not found; check --run-id and MLFLOW_TRACKING_URI"
            ) from None
        raise
    block = co2_eq_emissions(mlflow_run, training_type=args.training_type)
    text = render_block(block).rstrip("\n")
    if args.write:
        path: Path = args.write
        try:
            # newline="" keeps CRLF cards byte-identical outside the merged block
            with open(path, encoding="utf-8", newline="") as fh:
                card = fh.read()
        except FileNotFoundError:
            card = ""
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        merged = merge_front_matter(card, block)
        try:
            with open(path, "w", encoding="utf-8", newline="") as fh:
                fh.write(merged)
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
        text += f"\nwrote co2_eq_emissions into {path}"
    emit(args, {"co2_eq_emissions": block}, text)
    return 0


def _eu_ai_act(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from mlflow_green.reports.eu_ai_act import eu_ai_act_documentation, format_eu_ai_act

    if args.write:
        raise ConfigError(
            "--write merges the Hugging Face block only; drop it with --format eu-ai-act"
        )
    client = MlflowClient()
    try:
        client.get_run(args.run_id)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            raise ConfigError(
                f"run {args.run_id!r} not found; check --run-id and MLFLOW_TRACKING_URI"
            ) from None
        raise
    doc = eu_ai_act_documentation(client, args.run_id)
    emit(args, doc, format_eu_ai_act(doc))
    return 0
