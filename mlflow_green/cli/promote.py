"""``mlflow-green promote``: check, write evidence and set an alias (exit 1 when refused).

Against a gated tracking server the check is the server's own (``POST /green/api/check``) and the
server writes the evidence when it sets the alias; elsewhere the check runs in this process.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mlflow_green.cli._common import emit
from mlflow_green.cli.check import (
    add_target_options,
    fail_fast_http,
    translate_mlflow_error,
    verdict_summary,
    verdict_text,
    write_summary,
)
from mlflow_green.errors import ConfigError
from mlflow_green.registry.audit import refused
from mlflow_green.tracking import _mlflow_compat as compat


def add_parser(parser: argparse.ArgumentParser) -> None:
    add_target_options(parser, alias_required=True)
    parser.add_argument(
        "--override-reason",
        dest="override_reason",
        help="administrator override: promote even over budget, sending MLFLOW_GREEN_ADMIN_TOKEN "
        "to the gated server, which records this reason in green.gate.override",
    )


def _server_promote(args: argparse.Namespace, client: Any) -> int | None:
    """The gated server's verdict, then the alias set (the gate decides it again, atomically).

    None when the server is not gated (a plain ``mlflow server``): the client-side check is then
    the only one, as before.
    """
    from mlflow.exceptions import MlflowException

    from mlflow_green.registry.remote import NotAGatedServer, server_check

    uri = compat.registry_uri(client)
    try:
        data = server_check(uri, args.model, str(args.version), alias=args.alias)
    except NotAGatedServer:
        return None
    if args.policy_given:
        raise ConfigError(
            "--policy: a gated tracking server judges with its own policy; drop --policy"
        )
    refusal = verdict_summary(data) if refused(data) else None
    if refusal is None:
        try:
            client.set_registered_model_alias(args.model, args.alias, str(args.version))
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "PERMISSION_DENIED":
                raise
            text = " ".join(str(exc.message).split())
            refusal = f"the server refused {args.model} version {args.version} for alias '{args.alias}': {text}"
    write_summary(args.summary_md, data)
    if refusal is not None:
        emit(args, {**data, "promoted": False, "message": refusal}, verdict_text(data))
        sys.stderr.write(f"mlflow-green: promotion refused: {refusal}\n")
        return 1
    text = verdict_text(data) + f"\nalias '{args.alias}' now points to {args.model} version {args.version}"
    emit(args, {**data, "promoted": True}, text)
    return 0


def run(args: argparse.Namespace) -> int:
    fail_fast_http()
    from mlflow_green.registry import api
    from mlflow_green.registry.remote import is_server_uri

    # A bad policy file is the user's to fix: say so before touching any store.
    args.policy_given = bool(args.policy)
    args.policy = api._policy(args.policy)
    client = api._client(None, args.tracking_uri)
    try:
        if args.override_reason is None and is_server_uri(compat.registry_uri(client)):
            code = _server_promote(args, client)
            if code is not None:
                return code
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
