"""``mlflow-green verify``: does a run equal its signed attestation? (exit 0 yes, 1 no, 2 error)"""

from __future__ import annotations

import argparse
import sys

from mlflow_green.cli._common import add_json_flag, emit
from mlflow_green.errors import ConfigError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-id", dest="run_id", required=True, help="the run to verify")
    parser.add_argument(
        "--public-key",
        dest="public_keys",
        action="append",
        default=[],
        metavar="FILE",
        help="a trusted public key (PEM file from `mlflow-green keygen`); repeatable. "
        "Default: the trusted_keys of the policy (--policy or MLFLOW_GREEN_POLICY)",
    )
    parser.add_argument("--policy", help="policy YAML whose trusted_keys are trusted (default: MLFLOW_GREEN_POLICY)")
    parser.add_argument("--tracking-uri", dest="tracking_uri", help="default: MLFLOW_TRACKING_URI")
    add_json_flag(parser)


def _trusted(args: argparse.Namespace) -> list:  # type: ignore[type-arg]
    from mlflow_green.tracking.attestation import trusted_keys_from_files

    if args.public_keys:
        return trusted_keys_from_files(args.public_keys)
    from mlflow_green.registry.api import _policy

    policy = _policy(args.policy)
    return list(getattr(policy, "trusted_keys", ()) or ()) if policy is not None else []


def run(args: argparse.Namespace) -> int:
    from mlflow_green.cli.check import fail_fast_http

    fail_fast_http()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from mlflow_green.tracking.attestation import verify_run

    trusted = _trusted(args)
    client = MlflowClient(tracking_uri=args.tracking_uri) if args.tracking_uri else MlflowClient()
    try:
        result = verify_run(args.run_id, trusted=trusted, client=client)
    except MlflowException as exc:
        from mlflow_green.tracking.failures import is_transient, short_reason

        code = getattr(exc, "error_code", "")
        text = " ".join(str(exc.message).split())[:300]
        if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            raise ConfigError(f"run {args.run_id!r} not found: {text}") from None
        if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            raise ConfigError(f"the tracking server refused the request ({code}): {text}") from None
        if is_transient(exc):
            raise ConfigError(
                f"cannot reach the MLflow tracking server ({short_reason(exc)}); check MLFLOW_TRACKING_URI"
            ) from None
        raise ConfigError(f"MLflow error {code}: {text}") from None
    data = {"run_id": args.run_id, **result.as_dict()}
    if result.verified:
        text = f"verified: run {args.run_id}: {result.detail}"
        if result.unattested:
            text += f" (not attested: {', '.join(result.unattested)}, derived from the run's own metrics)"
    else:
        text = f"NOT verified ({result.reason}): run {args.run_id}: {result.detail}"
    emit(args, data, text)
    if not result.verified:
        if args.json:
            sys.stderr.write(f"mlflow-green: not verified ({result.reason}): {result.detail}\n")
        return 1
    return 0
