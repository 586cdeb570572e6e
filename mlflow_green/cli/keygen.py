"""``mlflow-green keygen``: an Ed25519 key pair for signing runs (private key mode 0600)."""

from __future__ import annotations

import argparse

from mlflow_green.cli._common import add_json_flag, emit


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="directory for NAME.key (private) and NAME.pub")
    parser.add_argument("--name", default="green", help="file name stem (default: green)")
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from mlflow_green.attestation import generate_key_pair

    private, public, key_id = generate_key_pair(args.out, args.name)
    text = (
        f"{key_id}\n"
        f"  private key: {private} (mode 0600: keep it where trusted training runs; "
        f"MLFLOW_GREEN_SIGNING_KEY={private})\n"
        f"  public key:  {public} (goes into the gate policy's trusted_keys)"
    )
    emit(args, {"key_id": key_id, "private_key": str(private), "public_key": str(public)}, text)
    return 0
