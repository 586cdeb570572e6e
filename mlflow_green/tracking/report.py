"""End-of-run report: ``green/report.json``, a self-contained ``green/report.html``, a summary.

The HTML has inline CSS and no scripts or external assets, so that MLflow's artifact viewer
(which shows HTML in a sandboxed iframe) renders it as is.
"""

from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from mlflow_green.tracking import schema
from mlflow_green.tracking.record import EpochRecord

__all__ = [
    "CAR_G_PER_KM",
    "CAR_SOURCE",
    "REPORT_HTML",
    "REPORT_JSON",
    "build_report",
    "car_km",
    "log_report_artifacts",
    "render_html",
    "summary_text",
]

REPORT_JSON = "green/report.json"
REPORT_HTML = "green/report.html"

# Average type-approval (WLTP) CO2 of new passenger cars registered in the EU, Iceland and
# Norway in 2023, provisional data of the European Environment Agency (published 2024).
CAR_G_PER_KM = 106.6
CAR_SOURCE = (
    "new EU cars' lab-tested tailpipe average: EEA provisional 2023 data, WLTP type-approval "
    "106.6 gCO2/km (tailpipe only; on the road cars emit more)"
)


def car_km(total_co2eq_kg: float) -> float:
    """Kilometres driven by an average new EU car (2023) that emit ``total_co2eq_kg``."""
    return total_co2eq_kg * 1000.0 / CAR_G_PER_KM


def build_report(
    records: Sequence[EpochRecord],
    *,
    totals: Mapping[str, float],
    run_id: str | None,
    journal_id: str | None,
    status: str,
    stop_reason: str | None,
    total_epochs: int | None,
    budget_kg: float | None,
    provenance: Mapping[str, str],
) -> dict[str, Any]:
    """The run's report as a JSON-able dict: provenance, per-epoch rows, totals.

    ``totals`` are the ledger's run totals; ``journal_id`` differs from ``run_id`` only while
    the run does not exist (server down at start).
    """
    report_totals: dict[str, Any] = dict(totals)
    report_totals["epochs"] = len(records)
    last = records[-1] if records else None
    report_totals["accuracy"] = last.accuracy if last is not None else None
    report_totals["accuracy_per_kg"] = last.accuracy_per_kg if last is not None else None
    if last is not None and last.projected_total_co2eq_kg is not None:
        report_totals["projected_total_co2eq_kg"] = last.projected_total_co2eq_kg
    total_kg = float(report_totals.get("total_co2eq_kg", 0.0))
    return {
        "run_id": run_id,
        "journal_id": journal_id,
        "generated_unix_s": time.time(),
        "status": status,
        "stop_reason": stop_reason,
        "total_epochs": total_epochs,
        "budget_kg": budget_kg,
        "provenance": dict(provenance),
        "totals": report_totals,
        "equivalent": {"car_km": car_km(total_kg), "source": CAR_SOURCE},
        "epochs": [r.to_row() for r in records],
    }


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        if value == 0:
            return "0"
        return f"{value:.{digits}g}"
    return str(value)


def summary_text(report: dict[str, Any]) -> str:
    """The short console summary printed at the end of a run."""
    t = report.get("totals", {})
    total = float(t.get("total_co2eq_kg") or 0.0)
    lines = [
        f"mlflow_green · run {report.get('run_id') or report.get('journal_id')} · "
        f"{t.get('epochs', 0)} epoch(s)",
        f"  energy        {_fmt(t.get('energy_kwh'))} kWh "
        f"(GPU {_fmt(t.get('gpu_energy_kwh'))}, CPU {_fmt(t.get('cpu_energy_kwh'))}, "
        f"RAM {_fmt(t.get('ram_energy_kwh'))})",
        f"  CO2eq         {_fmt(total)} kg total = {_fmt(t.get('co2eq_kg'))} operational "
        f"+ {_fmt(t.get('embodied_kg'))} embodied ({100 * float(t.get('embodied_share') or 0):.1f} %)",
    ]
    if t.get("accuracy_per_kg") is not None:
        lines.append(
            f"  accuracy/kg   {_fmt(t.get('accuracy_per_kg'))} (accuracy {_fmt(t.get('accuracy'))})"
        )
    lines.append(f"  ≈ {car_km(total):.3g} km by car ({CAR_SOURCE})")
    status = report.get("status")
    if status and status != schema.STATUS_OK:
        lines.append(f"  status        {status}")
    if report.get("stop_reason"):
        lines.append(f"  stopped       {report['stop_reason']}")
    return "\n".join(lines)


_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#1f2933;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.sub{color:#52606d;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:16px}
.card{border:1px solid #d9e2ec;border-radius:6px;padding:10px 14px;min-width:150px}
.card .v{font-size:20px;font-weight:600}.card .k{font-size:12px;color:#52606d}
table{border-collapse:collapse;font-size:12px;margin-top:4px}
th,td{border:1px solid #d9e2ec;padding:4px 8px;text-align:right}
th{background:#f0f4f8;position:sticky;top:0}td.l,th.l{text-align:left}
.bar{display:inline-block;height:10px;background:#3f9142;vertical-align:middle}
.bar.e{background:#9aa5b1}
.warn{color:#8a2c0d;font-weight:600}
"""


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page (inline CSS, no script, no external asset)."""
    esc = html.escape
    t = report.get("totals", {})
    total = float(t.get("total_co2eq_kg") or 0.0)
    cards = [
        ("energy", f"{_fmt(t.get('energy_kwh'))} kWh"),
        ("CO2eq total", f"{_fmt(total)} kg"),
        ("operational", f"{_fmt(t.get('co2eq_kg'))} kg"),
        ("embodied", f"{_fmt(t.get('embodied_kg'))} kg"),
        ("embodied share", f"{100 * float(t.get('embodied_share') or 0):.1f} %"),
        ("accuracy per kg", _fmt(t.get("accuracy_per_kg"))),
        ("≈ km by car (new EU cars' lab-tested tailpipe average)", f"{car_km(total):.3g}"),
    ]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>mlflow_green report {esc(str(report.get('run_id')))}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Carbon footprint of this training run</h1>",
        f"<div class='sub'>run {esc(str(report.get('run_id')))} · {t.get('epochs', 0)} epoch(s) · "
        f"status {esc(str(report.get('status')))}</div>",
    ]
    if report.get("stop_reason"):
        parts.append(f"<p class='warn'>Stopped early: {esc(str(report['stop_reason']))}</p>")
    parts.append("<div class='cards'>")
    for label, value in cards:
        parts.append(f"<div class='card'><div class='v'>{esc(value)}</div><div class='k'>{esc(label)}</div></div>")
    parts.append("</div>")
    parts.append(f"<p class='sub'>Car equivalent: {esc(CAR_SOURCE)}.</p>")

    rows = report.get("epochs", [])
    if rows:
        peak = max((float(r.get("total_co2eq_kg") or 0) for r in rows), default=0.0) or 1.0
        cols = [
            ("epoch", "epoch"),
            ("epoch_seconds", "s"),
            ("energy_kwh", "kWh"),
            ("gpu_energy_kwh", "GPU kWh"),
            ("cpu_energy_kwh", "CPU kWh"),
            ("ram_energy_kwh", "RAM kWh"),
            ("gpu_power_w", "GPU W"),
            ("intensity_g_per_kwh", "g/kWh"),
            ("co2eq_kg", "CO2eq kg"),
            ("embodied_kg", "embodied kg"),
            ("total_co2eq_kg", "total kg"),
            ("cum_total_co2eq_kg", "cum. total kg"),
            ("accuracy", "accuracy"),
            ("accuracy_per_kg", "acc./kg"),
            ("projected_total_co2eq_kg", "projected kg"),
        ]
        parts.append("<h2>Per epoch</h2><table><tr>")
        parts += [f"<th>{esc(h)}</th>" for _, h in cols]
        parts.append("<th class='l'>operational / embodied</th></tr>")
        for r in rows:
            parts.append("<tr>")
            parts += [f"<td>{esc(_fmt(r.get(k)))}</td>" for k, _ in cols]
            op = float(r.get("co2eq_kg") or 0) / peak * 160
            em = float(r.get("embodied_kg") or 0) / peak * 160
            parts.append(
                f"<td class='l'><span class='bar' style='width:{op:.1f}px'></span>"
                f"<span class='bar e' style='width:{em:.1f}px'></span></td></tr>"
            )
        parts.append("</table>")

    prov = report.get("provenance", {})
    if prov:
        parts.append("<h2>Provenance</h2><table>")
        for key in sorted(prov):
            parts.append(f"<tr><th class='l'>{esc(key)}</th><td class='l'>{esc(str(prov[key]))}</td></tr>")
        parts.append("</table>")
    parts.append(
        "<p class='sub'>Operational CO2eq = IT energy × PUE × grid intensity; embodied share per "
        "SCI (M = TE × TiR/EL × RR/ToR). Methods marked estimate or simulated are not measurements.</p>"
    )
    parts.append("</body></html>")
    return "".join(parts)


def log_report_artifacts(tracking_uri: str, run_id: str, report: dict[str, Any]) -> None:
    """Upload ``green/report.json`` and ``green/report.html`` to the run."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri or None)
    client.log_text(run_id, json.dumps(_jsonable(report), indent=2), REPORT_JSON)
    client.log_text(run_id, render_html(report), REPORT_HTML)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
