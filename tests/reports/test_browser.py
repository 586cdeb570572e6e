"""Headless Chromium (the Debian package, driven by Playwright) against a real gated server."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests._servers import MlflowServer, start_mlflow_server
from tests.reports._factory import DEMO_FRONTIER, DEMO_RUNS, make_demo_experiment

CHROMIUM = "/usr/bin/chromium"
IMG_DIR = Path(__file__).resolve().parents[2] / "docs" / "img"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs the Debian chromium package"),
]


@pytest.fixture(scope="module")
def gated(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MlflowServer, str, list[str]]]:
    from mlflow import MlflowClient

    server = start_mlflow_server(tmp_path_factory.mktemp("green-gate"), app_name="green-gate")
    try:
        client = MlflowClient(server.url, registry_uri=server.url)
        exp_id = make_demo_experiment(client, "bert-sweep")
        run_ids = [
            r.info.run_id
            for r in client.search_runs([exp_id])
            if "green/cum_total_co2eq_kg" in r.data.metrics
        ]
        client.create_registered_model("sentiment", tags={"green.budget.total_co2eq_kg": "1.0"})
        client.create_model_version("sentiment", f"runs:/{run_ids[0]}/model", run_id=run_ids[0])
        yield server, exp_id, run_ids
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def test_green_page_shows_the_runs(gated, browser):
    server, exp_id, _ = gated
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    response = page.goto(f"{server.url}/green", wait_until="load")
    assert response is not None and response.status == 200
    table = page.locator(f'section.leaderboard[data-experiment-id="{exp_id}"] table')
    names = [n.strip().split(" ")[0] for n in table.locator("td.name").all_inner_texts()]
    assert sorted(names) == sorted(name for name, *_ in DEMO_RUNS)
    pareto = page.locator(f'section.leaderboard[data-experiment-id="{exp_id}"] tr.pareto td.name')
    assert {t.split(" ")[0] for t in pareto.all_inner_texts()} == DEMO_FRONTIER
    assert page.locator("svg.pareto-plot circle").count() == len(DEMO_RUNS)
    assert page.locator('section.model[data-model="sentiment"]').is_visible()
    IMG_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMG_DIR / "green-page.png"), full_page=True)
    page.close()


def test_mlflow_compare_view_shows_green_metrics(gated, browser):
    server, exp_id, run_ids = gated
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    runs = quote(json.dumps(run_ids[:3]))
    exps = quote(json.dumps([exp_id]))
    page.goto(f"{server.url}/#/compare-runs?runs={runs}&experiments={exps}", wait_until="load")
    page.get_by_text("green/cum_total_co2eq_kg").first.wait_for(timeout=60_000)
    page.get_by_text("green/embodied_share").first.wait_for(timeout=10_000)
    close = page.locator('button[aria-label*="lose" i]')  # the Assistant side panel, if shown
    if close.count():
        close.first.click()
    # frame the metrics table (the green/ keys side by side) rather than the plots above it
    page.get_by_text("green/accuracy_per_kg").first.scroll_into_view_if_needed()
    page.get_by_text("Metrics", exact=True).last.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(1000)  # let the layout settle before the picture
    IMG_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMG_DIR / "mlflow-compare.png"), full_page=False)
    page.close()


def test_leaderboard_report_renders(gated, browser, tmp_path):
    from mlflow import MlflowClient

    from mlflow_green.reports.html import render_leaderboard_html
    from mlflow_green.reports.leaderboard import leaderboard

    server, _, _ = gated
    board = leaderboard(MlflowClient(server.url), "bert-sweep")
    report = tmp_path / "report.html"
    report.write_text(render_leaderboard_html(board))
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.as_uri())
    assert page.locator("table tbody tr").count() == len(DEMO_RUNS)
    box = page.locator("svg.pareto-plot").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 150
    assert page.locator("svg.pareto-plot polyline.frontier").count() == 1
    assert all(re.match(r"^file:", u) for u in requests)  # self-contained: nothing fetched
    page.close()
