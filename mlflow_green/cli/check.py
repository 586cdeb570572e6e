"""``mlflow-green check``: is a model version within its carbon budget? (exit 0 yes, 1 no, 2 error)"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from mlflow_green.cli._common import add_json_flag, emit
from mlflow_green.errors import ConfigError

# A CI job must learn quickly that the server is unreachable; MLflow's default retries with
# exponential backoff would keep it waiting for minutes. The user's own settings win.
_FAST_FAIL_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}


def fail_fast_http() -> None:
    for key, value in _FAST_FAIL_ENV.items():
        os.environ.setdefault(key, value)


def add_target_options(parser: argparse.ArgumentParser, *, alias_required: bool) -> None:
    parser.add_argument("--model", required=True, help="registered model name")
    parser.add_argument("--version", required=True, help="model version number")
    parser.add_argument(
        "--alias",
        required=alias_required,
        help="alias the version is meant for (selects green.budget.<alias>.* budgets)",
    )
    parser.add_argument("--policy", help="policy YAML file (default: MLFLOW_GREEN_POLICY)")
    parser.add_argument("--tracking-uri", dest="tracking_uri", help="default: MLFLOW_TRACKING_URI")
    parser.add_argument(
        "--summary-md", dest="summary_md", help="also write a Markdown summary to this file (CI job summary)"
    )
    add_json_flag(parser)


def add_parser(parser: argparse.ArgumentParser) -> None:
    add_target_options(parser, alias_required=False)
    parser.add_argument("--stage", help="stage the version is meant for (Staging, Production)")
    parser.add_argument(
        "--write-evidence",
        dest="write_evidence",
        action="store_true",
        help="write the green.gate.* evidence tags on the version (default: read only)",
    )


def verdict_text(verdict: Any) -> str:
    lines = [verdict.summary()]
    for c in verdict.checks:
        lines.append(f"  [{'pass' if c.passed else 'FAIL'}] {c.sentence}")
    if not verdict.checks:
        lines.append("  (no budgets apply to this model)")
    for r in verdict.reasons:
        if not any(r == c.sentence for c in verdict.checks):
            lines.append(f"  [FAIL] {r}")
    for w in verdict.warnings:
        lines.append(f"  [warn] {w}")
    if verdict.gated is False and (verdict.alias or verdict.stage):
        lines.append(f"  note: {verdict.target} is not gated by the policy; a server would not refuse it")
    return "\n".join(lines)


def write_summary(path: str | None, verdict: Any) -> None:
    if not path:
        return
    try:
        with Path(path).open("a", encoding="utf-8") as fh:
            fh.write(verdict.to_markdown())
    except OSError as exc:
        raise ConfigError(f"--summary-md {path}: cannot write ({exc.strerror or exc})") from None


def translate_mlflow_error(exc: BaseException, args: argparse.Namespace) -> str | None:
    """One line for an MLflow error a user can cause, or None when it is not one."""
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return None
    code = getattr(exc, "error_code", "")
    text = " ".join(str(exc.message).split())[:400]
    if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
        return f"model {args.model!r} version {args.version!r} not found: {text}"
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return f"the tracking server refused the request ({code}): {text}"
    from mlflow_green.tracking.failures import is_transient, short_reason

    if is_transient(exc):
        return f"cannot reach the MLflow tracking server ({short_reason(exc)}); check MLFLOW_TRACKING_URI"
    return f"MLflow error {code}: {text}"


def run(args: argparse.Namespace) -> int:
    fail_fast_http()
    from mlflow_green.registry import api

    # A bad policy file is the user's to fix: say so before touching any store.
    args.policy = api._policy(args.policy)
    client = api._client(None, args.tracking_uri)
    try:
        if args.write_evidence:
            verdict = api.check(
                args.model, args.version, alias=args.alias, stage=args.stage,
                policy=args.policy, client=client,
            )
        else:
            verdict = api.evaluate(
                args.model, args.version, alias=args.alias, stage=args.stage,
                policy=args.policy, client=client,
            )
    except ConfigError:
        raise
    except Exception as exc:
        line = translate_mlflow_error(exc, args)
        if line is None:
            raise
        raise ConfigError(line) from None
    write_summary(args.summary_md, verdict)
    emit(args, verdict.to_dict(), verdict_text(verdict))
    if not verdict.passed:
        sys.stderr.write(f"mlflow-green: {verdict.summary()}\n")
        return 1
    return 0
