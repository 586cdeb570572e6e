"""Self-contained HTML for leaderboards: inline CSS and an inline SVG plot, no external asset.

Every value that comes from a run (names, tags, metric keys) is escaped.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from mlflow_green.reports.leaderboard import Leaderboard, LeaderboardRow, format_number
from mlflow_green.reports.plot import pareto_svg

__all__ = ["CSS", "leaderboard_section", "page", "render_leaderboard_html"]

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d2433;background:#f7f8fa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 6px} h3{font-size:15px;margin:18px 0 6px}
.sub{color:#5b6475;font-size:13px;margin:0 0 12px}
section{background:#fff;border:1px solid #e1e4ea;border-radius:8px;padding:14px 18px;margin:14px 0}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{padding:5px 8px;border-bottom:1px solid #eceef2;text-align:right;white-space:nowrap}
th{background:#f1f3f6;font-weight:600;position:sticky;top:0}
td.name,th.name{text-align:left;white-space:normal}
tr.pareto td{background:#eef8f1} .badge{display:inline-block;padding:1px 6px;border-radius:9px;font-size:11px}
.front{background:#1b7f3b;color:#fff} .sim{background:#fff3cd;color:#7a5b00} .deg{background:#fde2e1;color:#8a1c13}
.pass{background:#1b7f3b;color:#fff} .fail{background:#b42318;color:#fff} .none{background:#e1e4ea;color:#333}
.pareto-plot{max-width:760px;width:100%;height:auto;display:block;margin:8px 0}
.muted{color:#6b7385;font-size:12px} code{font-size:12px}
"""


def page(title: str, body: str) -> str:
    """A whole HTML document around ``body`` (already escaped HTML)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n"
    )


def _cell(value: float | None, *, percent: bool = False) -> str:
    return f"<td>{escape(format_number(value, percent=percent))}</td>"


def _row_html(
    row: LeaderboardRow, rank: int, run_link: Callable[[LeaderboardRow], str] | None
) -> str:
    name = escape(row.run_name)
    if run_link is not None:
        name = f'<a href="{escape(run_link(row), quote=True)}">{name}</a>'
    badges = []
    if row.pareto:
        badges.append('<span class="badge front" title="on the Pareto frontier">Pareto</span>')
    if row.simulated:
        badges.append(
            '<span class="badge sim" title="energy from a simulated sampler">simulated</span>'
        )
    if row.status and row.status != "ok":
        badges.append(
            f'<span class="badge deg" title="{escape(row.status, quote=True)}">degraded</span>'
        )
    return (
        f'<tr class="{"pareto" if row.pareto else ""}" data-run-id="{escape(row.run_id, quote=True)}">'
        f'<td>{rank}</td><td class="name">{name} {" ".join(badges)}</td>'
        + _cell(row.accuracy)
        + _cell(row.energy_kwh)
        + _cell(row.co2eq_kg)
        + _cell(row.co2eq_market_kg)
        + _cell(row.embodied_kg)
        + _cell(row.total_co2eq_kg)
        + _cell(row.water_l)
        + _cell(row.embodied_share, percent=True)
        + _cell(row.accuracy_per_kg)
        + _cell(row.green_score)
        + "</tr>"
    )


def leaderboard_section(
    board: Leaderboard,
    *,
    run_link: Callable[[LeaderboardRow], str] | None = None,
    heading_level: int = 2,
) -> str:
    """One experiment's leaderboard as an HTML ``<section>``: plot, table, skipped runs."""
    h = f"h{heading_level}"
    metric = (
        board.metric
        or "per run: green.accuracy_metric tag, else eval_accuracy/val_accuracy/val_acc/accuracy"
    )
    parts = [
        f'<section class="leaderboard" data-experiment-id="{escape(board.experiment_id, quote=True)}">',
        f"<{h}>{escape(board.experiment_name)}</{h}>",
        f'<p class="sub">experiment {escape(board.experiment_id)} · {board.total_ranked} measured runs · '
        f"sorted by {escape(board.sort)} · accuracy metric: {escape(metric)}</p>",
    ]
    if board.rows:
        parts.append(
            pareto_svg(board.rows, title=f"{board.experiment_name}: accuracy vs total CO2eq")
        )
        parts.append(
            '<table><thead><tr><th>#</th><th class="name">run</th><th>accuracy</th>'
            "<th>energy kWh</th><th>operational kg</th><th>market-based kg</th><th>embodied kg</th>"
            "<th>total kg</th><th>water L</th>"
            "<th>embodied share</th><th>accuracy / kg</th><th>Green Score</th></tr></thead><tbody>"
        )
        parts.extend(_row_html(r, i, run_link) for i, r in enumerate(board.rows, 1))
        parts.append("</tbody></table>")
        if len(board.rows) < board.total_ranked:
            parts.append(
                f'<p class="muted">{len(board.rows)} of {board.total_ranked} runs shown.</p>'
            )
    else:
        parts.append('<p class="muted">No run of this experiment carries green/ metrics yet.</p>')
    if board.skipped:
        names = ", ".join(escape(s.run_name) for s in board.skipped[:20])
        more = f" and {len(board.skipped) - 20} more" if len(board.skipped) > 20 else ""
        parts.append(
            f'<p class="muted">Not ranked ({len(board.skipped)}, no green/ metrics): {names}{more}</p>'
        )
    parts.append("</section>")
    return "".join(parts)


def render_leaderboard_html(board: Leaderboard, *, title: str | None = None) -> str:
    """The standalone HTML report written by ``mlflow-green leaderboard --html``."""
    from mlflow_green._version import __version__

    title = title or f"Carbon leaderboard: {board.experiment_name}"
    body = (
        f"<h1>{escape(title)}</h1>"
        f'<p class="sub">Accuracy against total CO2eq (operational + embodied). Runs on the Pareto '
        f"frontier cannot be beaten on one without losing on the other. mlflow_green {escape(__version__)}.</p>"
        + leaderboard_section(board)
    )
    return page(title, body)
