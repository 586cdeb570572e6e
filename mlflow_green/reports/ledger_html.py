"""The ledger as HTML: an inline SVG stacked bar chart by period and the table; no assets.

Bars are periods (months, or quarters with ``--by quarter``); each bar is stacked by the
ledger's groups (total kg CO2eq, location-based operational + embodied). Every value from a
run (names, tags) is escaped.
"""

from __future__ import annotations

from html import escape

from mlflow_green.reports.html import page
from mlflow_green.reports.ledger import FIELDS, Ledger, LedgerRow

__all__ = ["ledger_section", "ledger_svg", "ledger_view", "render_ledger_html"]

_COLOURS = ("#1b7f3b", "#2f6db5", "#c26a00", "#8a3ab9", "#b42318", "#0f8b8d", "#7a5b00", "#5b6475")
_MAX_SERIES = 8  # the largest groups get a colour each; the rest share "other"


def _series(book: Ledger) -> list[str]:
    totals: dict[str, float] = {}
    for groups in book.chart.values():
        for group, kg in groups.items():
            totals[group] = totals.get(group, 0.0) + kg
    ranked = sorted(totals, key=lambda g: (-totals[g], g))
    return ranked if len(ranked) <= _MAX_SERIES else [*ranked[: _MAX_SERIES - 1], "other"]


def ledger_svg(book: Ledger, *, width: int = 760, height: int = 280) -> str:
    """Stacked bars of total kg CO2eq per period, one colour per group (escaped labels)."""
    periods = list(book.chart)
    if not periods:
        return '<p class="muted">no epochs in range</p>'
    series = _series(book)
    named = set(series) - {"other"}

    def stack(period: str) -> list[tuple[str, float]]:
        groups = book.chart[period]
        parts = [(g, groups.get(g, 0.0)) for g in series if g != "other"]
        if "other" in series:
            parts.append(("other", sum(v for g, v in groups.items() if g not in named)))
        return parts

    peak = max(sum(v for _, v in stack(p)) for p in periods) or 1.0
    left, bottom, top = 60, 40, 12
    plot_h = height - bottom - top
    bar_w = max(4.0, (width - left - 10) / len(periods) * 0.7)
    step = (width - left - 10) / len(periods)
    out = [
        f'<svg class="pareto-plot" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="total kg CO2eq by period">'
    ]
    out.append(f'<text x="4" y="{top + 10}" font-size="11">{escape(f"{peak:.3g}")} kg</text>')
    out.append(
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#999"/>'
    )
    for i, period in enumerate(periods):
        x = left + i * step + (step - bar_w) / 2
        y = float(height - bottom)
        for j, (group, kg) in enumerate(stack(period)):
            h = kg / peak * plot_h
            if h <= 0:
                continue
            y -= h
            colour = _COLOURS[j % len(_COLOURS)]
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{escape(period)} {escape(group)}: {kg:.4g} kg</title></rect>"
            )
        out.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{height - bottom + 14}" font-size="10" '
            f'text-anchor="middle">{escape(period)}</text>'
        )
    for j, group in enumerate(series):
        lx = left + j * 90
        out.append(
            f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{_COLOURS[j % len(_COLOURS)]}"/>'
            f'<text x="{lx + 14}" y="{height - 5}" font-size="10">{escape(group[:12])}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _tr(row: LedgerRow, *, total: bool = False) -> str:
    cells = "".join(f"<td>{escape(f'{getattr(row, f):.4g}')}</td>" for f in FIELDS)
    flags = ", ".join(
        f"{n} {w}"
        for n, w in (
            (row.deleted_runs, "deleted"),
            (row.failed_runs, "failed"),
            (row.killed_runs, "killed"),
            (row.derived_epochs, "derived epochs"),
        )
        if n
    )
    name = f"<strong>{escape(row.group)}</strong>" if total else escape(row.group)
    return (
        f'<tr><td class="name">{name}</td><td>{row.runs}</td><td>{row.epochs}</td>{cells}'
        f'<td class="name muted">{escape(flags)}</td></tr>'
    )


def ledger_section(book: Ledger) -> str:
    """The ledger as one ``<section>`` (chart and table), for a report or the /green page."""
    head = "".join(f"<th>{escape(h)}</th>" for h in ("runs", "epochs", *FIELDS))
    rows = "".join(_tr(r) for r in book.rows) + _tr(book.total, total=True)
    span = " ".join(
        x
        for x in (
            f"from {book.since}" if book.since else "",
            f"until {book.until}" if book.until else "",
        )
        if x
    )
    notes = "".join(f'<p class="muted">{escape(n)}</p>' for n in book.notes)
    return (
        f"<section><h2>Carbon ledger by {escape(book.by)}</h2>"
        f'<p class="sub">{escape(span or "all time")}; each epoch counts in the period in which it ended; '
        "co2eq_kg is location-based, co2eq_market_kg market-based (Scope 2 dual reporting)</p>"
        f"{ledger_svg(book)}"
        f'<table><thead><tr><th class="name">group</th>{head}<th class="name">included</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>{notes}</section>"
    )


def render_ledger_html(book: Ledger) -> str:
    """A self-contained HTML document of the ledger."""
    return page(f"Carbon ledger by {book.by}", f"<h1>Carbon ledger</h1>{ledger_section(book)}")


def ledger_view(tracking_store: object) -> str:
    """The ``/green`` page's ledger (by month, every experiment); a failure is one line, never
    an error page."""
    from mlflow_green import _settings
    from mlflow_green.reports.ledger import ledger

    try:
        book = ledger(tracking_store, by="month")
    except Exception as exc:
        if _settings.strict():
            raise
        return f'<p class="muted">The carbon ledger could not be read: {escape(type(exc).__name__)}</p>'
    return ledger_section(book)
