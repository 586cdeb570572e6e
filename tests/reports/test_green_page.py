from __future__ import annotations

from html.parser import HTMLParser

from mlflow import MlflowClient
from mlflow.tracking._model_registry.utils import _get_store as registry_store
from mlflow.tracking._tracking_service.utils import _get_store as tracking_store

from mlflow_green.reports.green_page import render_green_page
from tests.reports._factory import DEMO_RUNS, green_db, log_green_run, unique

__all__ = ["green_db"]


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_page_from_server_stores(green_db):
    client = MlflowClient(green_db, registry_uri=green_db)
    exp_name = unique("<b>evil</b>")
    exp = client.create_experiment(exp_name)
    run_id = log_green_run(
        client, exp, "<img src=x onerror=alert(1)>", accuracy=0.9, total_kg=1.0, embodied_kg=0.1
    )
    model = unique("clf")
    client.create_registered_model(model, tags={"green.budget.total_co2eq_kg": "2.5"})
    v1 = client.create_model_version(model, "runs:/x/model", run_id=run_id)
    client.set_model_version_tag(model, v1.version, "green.gate.verdict", "pass")
    client.set_model_version_tag(model, v1.version, "green.gate.total_co2eq_kg", "1.0")
    client.set_model_version_tag(model, v1.version, "green.gate.checked_at", "2026-01-01T00:00:00Z")
    client.set_registered_model_alias(model, "champion", v1.version)
    client.create_model_version(model, "runs:/y/model")

    html = render_green_page(tracking_store(green_db), registry_store(green_db), prefix="/mlflow")
    parsed = _Collect()
    parsed.feed(html)
    text = " ".join(parsed.text)
    assert html.startswith("<!DOCTYPE html>")
    assert not any(tag in ("script", "img", "link", "b") for tag, _ in parsed.tags)  # all escaped
    assert exp_name in text and "<img src=x onerror=alert(1)>" in text
    for name, *_ in DEMO_RUNS:  # the demo experiment's runs are listed too
        assert name in text
    assert model in text and "green.budget.total_co2eq_kg" in text and "2.5" in text
    assert "champion" in text and "latest verdict" in text and "not checked" in text
    hrefs = [a.get("href", "") for tag, a in parsed.tags if tag == "a"]
    assert any(h.startswith("/mlflow/#/experiments/") and run_id in h for h in hrefs)
    assert any(h.startswith("/mlflow/#/models/") for h in hrefs)
    assert "not-measured" in text  # unranked runs are named, not hidden


def test_page_from_client_and_without_registry(green_db):
    html = render_green_page(MlflowClient(green_db), None)
    assert "Registered models" not in html and "bert-base" in html
