from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from mlflow_green.reports.html import render_leaderboard_html
from mlflow_green.reports.leaderboard import Leaderboard, LeaderboardRow
from mlflow_green.reports.plot import pareto_svg, plot_data, save_pareto_png


def _row(name, acc, total, pareto=False):
    return LeaderboardRow(
        run_id=name,
        run_name=name,
        accuracy=acc,
        energy_kwh=total,
        co2eq_kg=total,
        embodied_kg=0.0,
        total_co2eq_kg=total,
        embodied_share=0.0,
        accuracy_per_kg=None if acc is None or not total else acc / total,
        pareto=pareto,
    )


@pytest.mark.parametrize(
    ("totals", "log_x"),
    [([1.0, 2.0, 29.0], False), ([1.0, 2.0, 31.0], True), ([0.0, 100.0], False), ([5.0], False)],
)
def test_log_axis_only_for_wide_spread(totals, log_x):
    assert plot_data([_row(f"r{i}", 0.5, t) for i, t in enumerate(totals)]).log_x is log_x


def test_many_points_label_only_frontier():
    rows = [_row(f"r{i}", i / 100, 1 + i, pareto=i % 10 == 0) for i in range(100)]
    data = plot_data(rows)
    assert sum(data.labeled) == 10
    assert all(p[3] for p, shown in zip(data.points, data.labeled, strict=True) if shown)


def test_svg_is_well_formed_and_escaped():
    rows = [
        _row("<script>x</script>", 0.9, 1.0, True),
        _row("b&c", 0.8, 50.0),
        _row("d", None, 2.0),
    ]
    svg = pareto_svg(rows, title="t")
    root = ET.fromstring(svg)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert len(root.findall("{http://www.w3.org/2000/svg}circle")) == 2


def test_png_written(tmp_path):
    out = save_pareto_png(
        [_row("a", 0.9, 1.0, True), _row("b", 0.95, 100.0, True), _row("c", 0.5, 3.0)],
        tmp_path / "sub" / "p.png",
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_report_self_contained_and_escaped():
    board = Leaderboard(
        "1", "exp <b>", [_row("a\"'<>", 0.9, 1.0, True)], [], 1, "accuracy_per_kg", None
    )
    html = render_leaderboard_html(board)
    assert html.startswith("<!DOCTYPE html>")
    assert "exp &lt;b&gt;" in html and "a&quot;&#x27;&lt;&gt;" in html
    for external in ("<link", "<script", 'src="http', 'href="http', "@import", "url("):
        assert external not in html
