"""The Pareto plot: accuracy against total CO2eq, frontier drawn as a step line.

Two renderers share one layout decision (which points, log or linear x axis, which labels):
:func:`save_pareto_png` uses matplotlib (imported lazily, Agg backend) and
:func:`pareto_svg` writes a small self-contained SVG with no dependency, for the HTML report
and the server's ``/green`` page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from mlflow_green.errors import ConfigError
from mlflow_green.reports.leaderboard import LeaderboardRow

__all__ = ["LOG_SPREAD", "MAX_LABELS", "PlotData", "pareto_svg", "plot_data", "save_pareto_png"]

#: Use a log x axis when the largest total CO2eq is this many times the smallest.
LOG_SPREAD = 30.0
#: Beyond this many points only the frontier is labeled (a wall of names helps nobody).
MAX_LABELS = 30

_FRONT_COLOR = "#1b7f3b"
_OTHER_COLOR = "#8a8f98"


@dataclass(frozen=True)
class PlotData:
    """What is drawn: points as (total_kg, accuracy, name, on_frontier), axis and labels."""

    points: list[tuple[float, float, str, bool]]
    frontier: list[tuple[float, float]]
    log_x: bool
    labeled: list[bool]


def plot_data(rows: Sequence[LeaderboardRow]) -> PlotData:
    """Choose what to draw for ``rows``: runs with both an accuracy and a total CO2eq."""
    points = [
        (r.total_co2eq_kg, r.accuracy, r.run_name, r.pareto)
        for r in rows
        if r.total_co2eq_kg is not None and r.accuracy is not None
    ]
    totals = [p[0] for p in points]
    positive = [t for t in totals if t > 0]
    log_x = (
        len(positive) == len(totals)
        and len(positive) >= 2
        and max(positive) / min(positive) > LOG_SPREAD
    )
    frontier = sorted((p[0], p[1]) for p in points if p[3])
    if len(points) <= MAX_LABELS:
        labeled = [True] * len(points)
    else:
        budget = MAX_LABELS
        labeled = []
        for p in points:
            labeled.append(p[3] and budget > 0)
            budget -= int(p[3])
    return PlotData(points=points, frontier=frontier, log_x=log_x, labeled=labeled)  # type: ignore[arg-type]


def _step_xy(frontier: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Vertices of the attainable-accuracy step: flat until the next frontier run's cost."""
    xs: list[float] = []
    ys: list[float] = []
    for i, (x, y) in enumerate(frontier):
        if i:
            xs.append(x)
            ys.append(frontier[i - 1][1])
        xs.append(x)
        ys.append(y)
    return xs, ys


def save_pareto_png(
    rows: Sequence[LeaderboardRow], path: str | Path, *, title: str = "Accuracy vs total CO2eq"
) -> Path:
    """Write the Pareto plot as a PNG at ``path`` (matplotlib, Agg backend)."""
    try:
        # A bare Figure renders through Agg without touching pyplot's global backend state.
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(
            "--png needs matplotlib: pip install 'mlflow-green[plot]' (or use --html)"
        ) from None
    data = plot_data(rows)
    out = Path(path)
    fig = Figure(figsize=(8, 5), dpi=120)
    ax = fig.subplots()
    if data.points:
        for on_front, color, label in (
            (False, _OTHER_COLOR, "run"),
            (True, _FRONT_COLOR, "Pareto frontier"),
        ):
            xs = [p[0] for p in data.points if p[3] == on_front]
            ys = [p[1] for p in data.points if p[3] == on_front]
            if xs:
                ax.scatter(xs, ys, s=36, color=color, label=label, zorder=3)
        sx, sy = _step_xy(data.frontier)
        if len(sx) > 1:
            ax.plot(sx, sy, color=_FRONT_COLOR, linewidth=1.5, zorder=2)
        for (x, y, name, _), show in zip(data.points, data.labeled, strict=True):
            if show:
                ax.annotate(
                    name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8, zorder=4
                )
        if data.log_x:
            ax.set_xscale("log")
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(
            0.5,
            0.5,
            "no run has both an accuracy and a total CO2eq",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    ax.set_xlabel(
        "total CO2eq (kg, operational + embodied)" + (", log scale" if data.log_x else "")
    )
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


# --- dependency-free SVG ------------------------------------------------------------------

_W, _H = 760, 420
_ML, _MR, _MT, _MB = 64, 24, 20, 52


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


def _pad(lo: float, hi: float, frac: float = 0.06) -> tuple[float, float]:
    if hi == lo:
        delta = abs(lo) * 0.1 or 1.0
        return lo - delta, hi + delta
    span = hi - lo
    return lo - span * frac, hi + span * frac


def _fmt_tick(v: float) -> str:
    return f"{v:.3g}"


def pareto_svg(rows: Sequence[LeaderboardRow], *, title: str = "") -> str:
    """The Pareto plot as an inline ``<svg>`` element (every label escaped)."""
    data = plot_data(rows)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" role="img" '
        f'class="pareto-plot" aria-label="{escape(title or "accuracy versus total CO2eq")}">'
    ]
    if title:
        parts.append(f"<title>{escape(title)}</title>")
    if not data.points:
        parts.append(
            f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle" fill="#555">'
            "no run has both an accuracy and a total CO2eq</text></svg>"
        )
        return "".join(parts)

    def tx(v: float) -> float:
        return math.log10(v) if data.log_x else v

    xs = [tx(p[0]) for p in data.points]
    ys = [p[1] for p in data.points]
    x0, x1 = _pad(min(xs), max(xs))
    y0, y1 = _pad(min(ys), max(ys))
    pw, ph = _W - _ML - _MR, _H - _MT - _MB

    def sx(v: float) -> float:
        return _ML + (tx(v) - x0) / (x1 - x0) * pw

    def sy(v: float) -> float:
        return _MT + ph - (v - y0) / (y1 - y0) * ph

    parts.append(
        f'<rect x="{_ML}" y="{_MT}" width="{pw}" height="{ph}" fill="#fff" stroke="#ccc"/>'
    )
    if data.log_x:
        xticks = [10.0**k for k in range(math.ceil(x0), math.floor(x1) + 1)]
    else:
        xticks = _nice_ticks(x0, x1)
    for t in xticks:
        x = sx(t)
        parts.append(f'<line x1="{x:.1f}" y1="{_MT}" x2="{x:.1f}" y2="{_MT + ph}" stroke="#eee"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{_MT + ph + 16}" text-anchor="middle" font-size="11" '
            f'fill="#444">{_fmt_tick(t)}</text>'
        )
    for t in _nice_ticks(y0, y1):
        y = sy(t)
        parts.append(f'<line x1="{_ML}" y1="{y:.1f}" x2="{_ML + pw}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(
            f'<text x="{_ML - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#444">{_fmt_tick(t)}</text>'
        )
    xlabel = "total CO2eq (kg, operational + embodied)" + (", log scale" if data.log_x else "")
    parts.append(
        f'<text x="{_ML + pw / 2}" y="{_H - 12}" text-anchor="middle" font-size="12">'
        f"{escape(xlabel)}</text>"
        f'<text x="14" y="{_MT + ph / 2}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 14 {_MT + ph / 2})">accuracy</text>'
    )
    step_x, step_y = _step_xy(data.frontier)
    if len(step_x) > 1:
        pts = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(step_x, step_y, strict=True))
        parts.append(
            f'<polyline class="frontier" points="{pts}" fill="none" stroke="{_FRONT_COLOR}" '
            'stroke-width="1.6"/>'
        )
    for (x, y, name, on_front), show in zip(data.points, data.labeled, strict=True):
        color = _FRONT_COLOR if on_front else _OTHER_COLOR
        cx, cy = sx(x), sy(y)
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4.5" fill="{color}">'
            f"<title>{escape(name)}: accuracy {y:.4g}, {x:.4g} kg CO2eq</title></circle>"
        )
        if show:
            parts.append(
                f'<text x="{cx + 6:.1f}" y="{cy - 6:.1f}" font-size="11" fill="#222">'
                f"{escape(name)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)
