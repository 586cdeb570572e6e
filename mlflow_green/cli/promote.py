"""``mlflow-green promote``: check, write evidence and set an alias (exit 1 when refused)."""

from __future__ import annotations

import argparse
import sys

from mlflow_green.cli._common import emit
from mlflow_green.cli.check import (
    add_target_options,
    fail_fast_http,
    translate_mlflow_error,
    verdict_text,
    write_summary,
)
from mlflow_green.errors import ConfigError


def add_parser(parser: argparse.ArgumentParser) -> None:
    add_target_options(parser, alias_required=True)
    parser.add_argument(
        "--override-reason",
        dest="override_reason",
        help="administrator override: promote even over budget, sending MLFLOW_GREEN_ADMIN_TOKEN "
        "to the gated server, which records this reason in green.gate.override",
    )


def run(args: argparse.Namespace) -> int:
    fail_fast_http()
    from mlflow_green.registry import api

    # A bad policy file is the user's to fix: say so before touching any store.
    args.policy = api._policy(args.policy)
    client = api._client(None, args.tracking_uri)
    try:
        verdict = api.promote(
            args.model, args.version, args.alias, policy=args.policy, client=client,
            override_reason=args.override_reason,
        )
    except api.PromotionDenied as denied:
        if denied.verdict is not None:
            write_summary(args.summary_md, denied.verdict)
            emit(args, {**denied.verdict.to_dict(), "promoted": False, "message": str(denied)},
                 verdict_text(denied.verdict))
        sys.stderr.write(f"mlflow-green: promotion refused: {' '.join(str(denied).split())}\n")
        return 1
    except ConfigError:
        raise
    except Exception as exc:
        line = translate_mlflow_error(exc, args)
        if line is None:
            raise
        raise ConfigError(line) from None
    write_summary(args.summary_md, verdict)
    text = verdict_text(verdict) + f"\nalias '{args.alias}' now points to {args.model} version {args.version}"
    emit(args, {**verdict.to_dict(), "promoted": True}, text)
    return 0
