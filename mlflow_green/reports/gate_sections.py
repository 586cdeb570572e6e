"""The ``/green`` page's gate sections: the budget audit and the trail of refusals and overrides.

Both take the JSON the CLI prints (``mlflow-green audit --json`` and ``audit --events --json``),
so the page and the command show the same list. Everything is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from mlflow_green.reports.leaderboard import format_number

__all__ = ["audit_section", "events_section"]

_EVENTS_SHOWN = 100


def _num(value: Any) -> str:
    return "-" if value is None else format_number(float(value))


def audit_section(report: Mapping[str, Any]) -> str:
    """Aliases and stages whose version breaks the budgets in force now."""
    violations = list(report.get("violations", []))
    parts = [
        '<section class="audit"><h2>Budget audit</h2>',
        f'<p class="sub">{int(report.get("targets_checked", 0))} gated aliases and stages of '
        f'{int(report.get("models_checked", 0))} models checked against the budgets in force now '
        "(<code>mlflow-green audit</code>).</p>",
    ]
    if not violations:
        parts.append('<p class="muted">No alias or stage violates the budgets in force.</p></section>')
        return "".join(parts)
    parts.append(
        '<table><thead><tr><th class="name">model</th><th class="name">alias / stage</th>'
        '<th>version</th><th>total kg</th><th>energy kWh</th><th class="name">why</th></tr></thead><tbody>'
    )
    for v in violations:
        where = f"alias {v.get('alias')}" if v.get("alias") else f"stage {v.get('stage')}"
        reasons = "; ".join(str(r) for r in v.get("reasons", []))
        parts.append(
            f'<tr class="violation"><td class="name">{escape(str(v.get("model")))}</td>'
            f'<td class="name">{escape(where)}</td><td>{escape(str(v.get("version")))}</td>'
            f"<td>{_num(v.get('total_co2eq_kg'))}</td><td>{_num(v.get('energy_kwh'))}</td>"
            f'<td class="name">{escape(reasons)}</td></tr>'
        )
    parts.append("</tbody></table></section>")
    return "".join(parts)


def events_section(events: Sequence[Mapping[str, Any]]) -> str:
    """The newest refusals and overrides, newest first."""
    parts = [
        '<section class="events"><h2>Gate events</h2>',
        '<p class="sub">Refusals and administrator overrides recorded by the gate '
        "(<code>mlflow-green audit --events</code>).</p>",
    ]
    if not events:
        parts.append('<p class="muted">No refusal or override recorded.</p></section>')
        return "".join(parts)
    parts.append(
        '<table><thead><tr><th>when (UTC)</th><th>kind</th><th class="name">who</th>'
        '<th class="name">request</th><th class="name">model / target</th>'
        '<th class="name">message</th></tr></thead><tbody>'
    )
    for e in list(reversed(list(events)))[:_EVENTS_SHOWN]:
        kind = str(e.get("kind"))
        request = f"{e.get('method')} {e.get('path')} ({e.get('operation')})"
        target = " ".join(
            str(x) for x in (e.get("model"), e.get("version") and f"v{e.get('version')}", e.get("target")) if x
        )
        message = str(e.get("message", ""))
        if e.get("override_reason"):
            message = f"overridden ({e.get('override_reason')}): {message}"
        parts.append(
            f'<tr class="event {escape(kind, quote=True)}"><td>{escape(str(e.get("at")))}</td>'
            f"<td>{escape(kind)}</td><td class=\"name\">{escape(str(e.get('user') or 'anonymous'))}</td>"
            f'<td class="name">{escape(request)}</td><td class="name">{escape(target) or "-"}</td>'
            f'<td class="name">{escape(message)}</td></tr>'
        )
    parts.append("</tbody></table>")
    if len(events) > _EVENTS_SHOWN:
        parts.append(f'<p class="muted">{_EVENTS_SHOWN} newest of {len(events)} shown.</p>')
    parts.append("</section>")
    return "".join(parts)
