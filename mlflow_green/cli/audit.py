"""``mlflow-green audit``: aliases and stages over today's budgets; ``--events``: the gate's trail.

Against a tracking server (http(s) URI) both answers come from the server itself
(``/green/api/audit``, ``/green/api/events`` on ``mlflow server --app-name green-gate``), judged
with the server's policy. A local store is audited in this process with the client's policy
(``--policy`` or ``MLFLOW_GREEN_POLICY``); its events are those a gated server recorded in the
same database.

Exit codes: ``audit`` 0 no violation, 1 some, 2 usage or connection error; ``audit --events``
0 (the list, possibly empty) or 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mlflow_green.cli._common import add_json_flag, emit
from mlflow_green.cli.check import fail_fast_http
from mlflow_green.errors import ConfigError

_DESCRIPTION = (
    "List every alias and stage whose model version violates the budgets in force now (a budget "
    "set or tightened after the promotion, a policy change): exit 0 none, 1 some, 2 error. With "
    "--events, list the gate's recorded refusals and administrator overrides (who, when, the "
    "request, the figures and the budget). Against a tracking server the server answers (its "
    "policy, its trail); a local store is audited here."
)


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = _DESCRIPTION
    parser.add_argument("--model", help="only this registered model (default: every model)")
    parser.add_argument(
        "--events",
        action="store_true",
        help="list the recorded refusals and overrides instead of the budget violations",
    )
    parser.add_argument(
        "--since",
        help="with --events: only events at or after this ISO 8601 date or time (UTC by default)",
    )
    parser.add_argument(
        "--limit", default="1000", help="with --events: at most this many, the newest (default 1000)"
    )
    parser.add_argument(
        "--policy", help="policy YAML for a local store (default: MLFLOW_GREEN_POLICY); a server uses its own"
    )
    parser.add_argument("--tracking-uri", dest="tracking_uri", help="default: MLFLOW_TRACKING_URI")
    add_json_flag(parser)


def _uri(args: argparse.Namespace) -> str:
    if args.tracking_uri:
        return str(args.tracking_uri)
    from mlflow.tracking import get_tracking_uri

    return str(get_tracking_uri())


def _limit(raw: str) -> int:
    if not str(raw).isdigit() or not 1 <= int(raw) <= 10_000:
        raise ConfigError(f"--limit {raw!r}: give a whole number from 1 to 10000")
    return int(raw)


def _violations(args: argparse.Namespace, uri: str) -> dict[str, Any]:
    from mlflow_green.registry.remote import is_server_uri, server_audit

    if is_server_uri(uri):
        if args.policy:
            raise ConfigError("--policy: a tracking server audits with its own policy; drop --policy")
        return server_audit(uri, model=args.model)
    from mlflow import MlflowClient

    from mlflow_green.registry.audit import audit
    from mlflow_green.registry.footprint import ClientBackend
    from mlflow_green.registry.policy import policy_from_env

    policy = policy_from_env(args.policy)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return audit(ClientBackend(client), client, policy, model=args.model).to_dict()


def _local_events(args: argparse.Namespace, uri: str) -> dict[str, Any]:
    from pathlib import Path

    from mlflow_green.registry.events import EventLog, parse_since

    since = parse_since(args.since) if args.since else None
    if "://" in uri and not uri.startswith("file:"):
        log = EventLog.from_uri(uri)
    else:
        root = Path(uri.removeprefix("file://").removeprefix("file:"))
        db = root / "mlflow_green_events.db"
        if not db.exists():
            return {"events": []}
        log = EventLog.from_uri(f"sqlite:///{db}")
    try:
        found = log.events(model=args.model, since=since, limit=_limit(args.limit))
    finally:
        log.engine.dispose()
    return {"events": [e.to_dict() for e in found]}


def _events(args: argparse.Namespace, uri: str) -> dict[str, Any]:
    from mlflow_green.registry.events import parse_since
    from mlflow_green.registry.remote import is_server_uri, server_events

    if args.since:
        parse_since(args.since)  # a bad date is the user's to fix, before any request
    limit = _limit(args.limit)
    if is_server_uri(uri):
        return server_events(uri, model=args.model, since=args.since, limit=limit)
    return _local_events(args, uri)


def violations_text(data: dict[str, Any]) -> str:
    found = data.get("violations") or []
    scope = f"{data.get('targets_checked', 0)} gated aliases and stages of {data.get('models_checked', 0)} models checked"
    if not found:
        return f"No alias or stage violates the budgets in force ({scope})."
    lines = [f"{len(found)} aliases or stages violate the budgets in force now ({scope}):"]
    for v in found:
        where = f"alias '{v['alias']}'" if v.get("alias") else f"stage '{v['stage']}'"
        first = (v.get("reasons") or ["refused"])[0]
        lines.append(f"  {v['model']} {where} -> version {v['version']}: {first}")
    return "\n".join(lines)


def events_text(data: dict[str, Any]) -> str:
    found = data.get("events") or []
    if not found:
        return "No refusal or override recorded."
    lines = []
    for e in found:
        who = e.get("user") or "anonymous"
        what = " ".join(
            str(x) for x in (e.get("model"), e.get("version") and f"v{e['version']}", e.get("target")) if x
        )
        head = f"{e['at']} {e['kind']} by {who}: {e['method']} {e['path']} ({e['operation']}) {what}"
        tail = e["message"]
        if e.get("override_reason"):
            tail = f"overridden ({e['override_reason']}): {tail}"
        lines.append(f"{head.rstrip()}: {tail}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    fail_fast_http()
    from mlflow_green.cli.check import translate_mlflow_error

    if not args.events and (args.since or args.limit != "1000"):
        raise ConfigError("--since and --limit go with --events")
    uri = _uri(args)
    try:
        data = _events(args, uri) if args.events else _violations(args, uri)
    except ConfigError:
        raise
    except Exception as exc:
        args.version = "(any)"
        line = translate_mlflow_error(exc, args)
        if line is None:
            raise
        if "not found" in line and args.model:
            line = f"registered model {args.model!r} not found"
        raise ConfigError(line) from None
    if args.events:
        emit(args, data, events_text(data))
        return 0
    emit(args, data, violations_text(data))
    if data.get("violations"):
        sys.stderr.write(f"mlflow-green: {len(data['violations'])} aliases or stages violate the budgets in force\n")
        return 1
    return 0
