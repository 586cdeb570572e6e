"""``mlflow-green check``: is a model version within its carbon budget? (exit 0 yes, 1 no, 2 error)

Against a tracking server the answer is the server's own (``POST /green/api/check``); a local
store is evaluated in this process. Both print the same JSON and text.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow_green.cli._common import add_json_flag, emit
from mlflow_green.errors import ConfigError
from mlflow_green.registry.audit import refused

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
    parser.description = (
        "Check a model version against its carbon budgets. Against a tracking server "
        "(http(s) URI) the verdict is the server's own (POST /green/api/check on a gated "
        "server: its policy, nothing promoted); a local store is evaluated here. Exit 0 the "
        "promotion would pass, 1 over budget or without evidence, 2 usage or connection error."
    )
    add_target_options(parser, alias_required=False)
    for action in parser._actions:
        if action.dest == "policy":
            action.help = "policy YAML file for a local store or --local (default: MLFLOW_GREEN_POLICY); a server uses its own"
    parser.add_argument("--stage", help="stage the version is meant for (Staging, Production)")
    parser.add_argument(
        "--write-evidence",
        dest="write_evidence",
        action="store_true",
        help="write the green.gate.* evidence tags on the version (local evaluation only; a "
        "gated server writes its own evidence on promotion)",
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="evaluate in this process with the client's policy even against a tracking server "
        "(for a plain server without the gate); the result is then NOT the server's verdict",
    )


def _fmt(value: Any) -> str:
    return "unknown" if value is None else f"{float(value):.6g}"


def _target(data: Mapping[str, Any]) -> str:
    if data.get("alias"):
        return f"alias '{data['alias']}'"
    if data.get("stage"):
        return f"stage '{data['stage']}'"
    return "its model-wide budgets"


def verdict_summary(data: Mapping[str, Any]) -> str:
    """One line: the gate's answer and the first reason (from a verdict's JSON)."""
    head = f"{data['model']} version {data['version']} for {_target(data)}"
    reasons = list(data.get("reasons") or [])
    if data.get("passed"):
        figures = f"{_fmt(data.get('total_co2eq_kg'))} kg CO2eq, {_fmt(data.get('energy_kwh'))} kWh"
        return f"PASS: {head} is within budget ({figures})"
    if not refused(data):
        return f"PASS: {head} is not gated by the policy; a promotion is not refused ({reasons[0] if reasons else 'no budgets'})"
    return f"FAIL: {head}: {reasons[0] if reasons else 'refused'}"


def verdict_text(verdict: Any) -> str:
    """The human output of ``check`` for a Verdict or its JSON."""
    data: Mapping[str, Any] = verdict if isinstance(verdict, Mapping) else verdict.to_dict()
    checks = list(data.get("checks") or [])
    lines = [verdict_summary(data)]
    for c in checks:
        lines.append(f"  [{'pass' if c['passed'] else 'FAIL'}] {c['sentence']}")
    if not checks:
        lines.append("  (no budgets apply to this model)")
    sentences = {c["sentence"] for c in checks}
    lines.extend(f"  [FAIL] {r}" for r in data.get("reasons") or [] if r not in sentences)
    lines.extend(f"  [warn] {w}" for w in data.get("warnings") or [])
    if data.get("attestation") is not None:
        from mlflow_green.registry.verdict import attestation_text

        lines.append(f"  attestation: {attestation_text(data['attestation'])}")
    if data.get("gated") is False and (data.get("alias") or data.get("stage")):
        lines.append(f"  note: {_target(data)} is not gated by the policy; a server would not refuse it")
    return "\n".join(lines)


def verdict_markdown(data: Mapping[str, Any]) -> str:
    """A Markdown table for a CI job summary (from a verdict's JSON)."""
    mark = "✅ pass" if not refused(data) else "❌ fail"
    lines = [
        f"### Carbon gate: {data['model']} v{data['version']} ({_target(data)}) — {mark}",
        "",
        "| budget | limit | figure | result | |",
        "|---|---|---|---|---|",
    ]
    for c in data.get("checks") or []:
        unit = c.get("unit", "")
        scope = f" @{c['scope']}" if c.get("scope") else ""
        lines.append(
            f"| `{c['budget']}`{scope} | {_fmt(c.get('limit'))} {unit} | {_fmt(c.get('figure'))} {unit} | "
            f"{'pass' if c['passed'] else '**fail**'} | {c['sentence']} |"
        )
    if not data.get("checks"):
        lines.append("| (no budgets) | | | | |")
    fp = data.get("footprint") or {}
    runs = fp.get("runs") if isinstance(fp, Mapping) else None
    lines += [
        "",
        f"Footprint: {_fmt(data.get('total_co2eq_kg'))} kg CO2eq total, {_fmt(data.get('co2eq_kg'))} kg "
        f"operational, {_fmt(data.get('energy_kwh'))} kWh over {len(runs or [])} run(s).",
    ]
    lines += [f"- ❌ {r}" for r in data.get("reasons") or []]
    lines += [f"- ⚠️ {w}" for w in data.get("warnings") or []]
    return "\n".join(lines) + "\n"


def write_summary(path: str | None, verdict: Any) -> None:
    if not path:
        return
    data = verdict if isinstance(verdict, Mapping) else verdict.to_dict()
    try:
        with Path(path).open("a", encoding="utf-8") as fh:
            fh.write(verdict_markdown(data))
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


def _tracking_uri(args: argparse.Namespace) -> str:
    if args.tracking_uri:
        return str(args.tracking_uri)
    from mlflow.tracking import get_tracking_uri

    return str(get_tracking_uri())


def _local_verdict(args: argparse.Namespace) -> dict[str, Any]:
    from mlflow_green.registry import api

    client = api._client(None, args.tracking_uri)
    fn = api.check if args.write_evidence else api.evaluate
    verdict = fn(args.model, args.version, alias=args.alias, stage=args.stage, policy=args.policy, client=client)
    return verdict.to_dict()


def _server_verdict(args: argparse.Namespace, uri: str) -> dict[str, Any]:
    from mlflow_green.registry.remote import NotAGatedServer, server_check

    if args.policy_given:
        raise ConfigError(
            "--policy: a tracking server judges with its own policy; drop --policy, or add --local "
            "to evaluate with this file instead of asking the server"
        )
    if args.write_evidence:
        raise ConfigError(
            "--write-evidence: a gated server writes its own evidence when it promotes; drop it, "
            "or add --local to evaluate (and write) from this process"
        )
    try:
        return server_check(uri, args.model, str(args.version), alias=args.alias, stage=args.stage)
    except NotAGatedServer as exc:
        raise ConfigError(
            f"{exc}; add --local to evaluate here with the client's policy (not the server's verdict)"
        ) from None


def run(args: argparse.Namespace) -> int:
    fail_fast_http()
    from mlflow_green.registry import api
    from mlflow_green.registry.remote import is_server_uri

    if args.alias and args.stage:
        raise ConfigError("give either --alias or --stage, not both")
    # A bad policy file is the user's to fix: say so before touching any store.
    args.policy_given = bool(args.policy)
    args.policy = api._policy(args.policy)
    uri = _tracking_uri(args)
    server = is_server_uri(uri) and not args.local
    try:
        data = _server_verdict(args, uri) if server else _local_verdict(args)
    except ConfigError:
        raise
    except Exception as exc:
        line = translate_mlflow_error(exc, args)
        if line is None:
            raise
        raise ConfigError(line) from None
    write_summary(args.summary_md, data)
    emit(args, data, verdict_text(data))
    if is_server_uri(uri) and args.local:
        sys.stderr.write(
            "mlflow-green: note: evaluated here with the client's policy (--local), not the "
            "server's verdict\n"
        )
    if refused(data):
        sys.stderr.write(f"mlflow-green: {verdict_summary(data)}\n")
        return 1
    return 0
