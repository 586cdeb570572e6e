"""The ``/green`` page's budget audit and gate events sections: content, empty states, escaping."""

from __future__ import annotations

from typing import Any

from mlflow_green.reports.gate_sections import audit_section, events_section
from mlflow_green.reports.green_page import render_green_page

HOSTILE = "<script>alert(1)</script>"


def _violation(**kw: Any) -> dict[str, Any]:
    base = {
        "model": "m", "version": "3", "alias": "champion", "stage": None,
        "reasons": ["Total CO2eq 4 kg CO2eq exceeds the total_co2eq_kg budget of 2 kg CO2eq."],
        "total_co2eq_kg": 4.0, "energy_kwh": 10.0, "checks": [],
    }
    base.update(kw)
    return base


def test_audit_section_lists_each_violation_escaped() -> None:
    html = audit_section(
        {
            "violations": [_violation(), _violation(model=HOSTILE, alias=None, stage="Production")],
            "models_checked": 2, "targets_checked": 5, "errors": [],
        }
    )
    assert "5 gated aliases and stages of 2 models" in html
    assert html.count('<tr class="violation">') == 2
    assert "alias champion" in html and "stage Production" in html and "budget of 2" in html
    assert HOSTILE not in html and "&lt;script&gt;" in html


def test_empty_states() -> None:
    assert "No alias or stage violates" in audit_section({"violations": [], "models_checked": 0, "targets_checked": 0})
    assert "No refusal or override recorded" in events_section([])


def test_events_section_newest_first_with_override_reason() -> None:
    events = [
        {"kind": "refusal", "at": "2026-11-01T00:00:00.000+00:00", "user": None, "method": "POST",
         "path": "/api/2.0/mlflow/registered-models/alias", "operation": "SetRegisteredModelAlias",
         "model": "m", "version": "3", "target": "alias=champion", "message": "over budget", "override_reason": None},
        {"kind": "override", "at": "2026-11-02T00:00:00.000+00:00", "user": HOSTILE, "method": "POST",
         "path": "/api/2.0/mlflow/registered-models/alias", "operation": "SetRegisteredModelAlias",
         "model": "m", "version": "3", "target": "alias=champion", "message": "over budget",
         "override_reason": "incident 42"},
    ]
    html = events_section(events)
    assert html.index("2026-11-02") < html.index("2026-11-01")
    assert "overridden (incident 42)" in html and "anonymous" in html
    assert HOSTILE not in html


def test_page_includes_the_sections_only_when_given(tmp_path: Any) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    plain = render_green_page(client, None)
    assert "Budget audit" not in plain and "Gate events" not in plain
    full = render_green_page(
        client, None, audit={"violations": [_violation()], "models_checked": 1, "targets_checked": 1}, events=[]
    )
    assert "Budget audit" in full and "Gate events" in full and "budget of 2" in full
