"""``mlflow-green doctor``: what this machine would measure, by which method, and why not better."""

from __future__ import annotations

import argparse
from typing import Any

from mlflow_green.cli._common import add_json_flag, emit

_LABEL = {"gpu": "GPU", "cpu": "CPU", "ram": "RAM"}


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sampler",
        help="sampler spec to diagnose (default: MLFLOW_GREEN_SAMPLER, else auto)",
    )
    add_json_flag(parser)


def _signing() -> dict[str, Any]:
    """Whether runs trained here would be signed (MLFLOW_GREEN_SIGNING_KEY), and by which key."""
    from mlflow_green.errors import ConfigError
    from mlflow_green.tracking.attestation import ENV_SIGNING_KEY, resolve_signing_key

    try:
        key = resolve_signing_key(None)
    except ConfigError as exc:
        return {"key_id": None, "problem": str(exc), "line": f"signing: off — {exc}"}
    if key is None:
        return {"key_id": None, "problem": None,
                "line": f"signing: off — runs are not signed ({ENV_SIGNING_KEY} is not set)"}
    return {"key_id": key.key_id, "problem": None,
            "line": f"signing: on — runs signed by key {key.key_id} ({ENV_SIGNING_KEY}={key.source})"}


def run(args: argparse.Namespace) -> int:
    from mlflow_green import _settings
    from mlflow_green.samplers import diagnose, parse_spec

    spec = parse_spec(args.sampler)
    source = (
        "--sampler"
        if args.sampler is not None
        else (_settings.ENV_SAMPLER if _settings.env_str(_settings.ENV_SAMPLER) else "default")
    )
    found = diagnose(spec.text)
    components: list[dict[str, Any]] = []
    lines = [f"sampler: {spec.text} ({source})"]
    for d in found:
        components.append(
            {
                "component": d.component,
                "method": d.method,
                "reason": d.reason,
                "devices": [{"index": x.index, "name": x.name, "uuid": x.uuid} for x in d.devices],
                "notes": list(d.notes),
            }
        )
        devices = ", ".join(x.name for x in d.devices)
        line = f"{_LABEL[d.component]}: {d.method} — {d.reason}"
        if devices and d.component == "gpu":
            line += f"\n    devices: {devices}"
        for note in d.notes:
            line += f"\n    note: {note}"
        lines.append(line)
    simulated = any(d.method == "simulated" for d in found)
    estimated = [d.component for d in found if (d.base_method or d.method) == "estimate"]
    if simulated:
        lines.append("Numbers marked simulated are not measurements of this machine.")
    if estimated:
        lines.append(
            f"{' and '.join(_LABEL[c] for c in estimated)} energy would be estimated, not measured "
            "(see docs/measurement.md)."
        )
    signing = _signing()
    lines.append(signing.pop("line"))
    data = {"sampler": spec.text, "sampler_source": source, "components": components, "signing": signing}
    emit(args, data, "\n".join(lines))
    return 0
