"""``mlflow-green audit`` on a local store: violations of today's budgets, and the event trail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlflow_green.registry.events import EventLog, GateEvent
from tests._servers import free_port
from tests.registry._helpers import log_green_run, register, unique


def cli(argv: list[str]) -> int:
    from mlflow_green.cli import main as cli_main

    return cli_main.main(argv)


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('audit-store') / 'mlflow.db'}"


@pytest.fixture
def client(store_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    yield MlflowClient(tracking_uri=store_uri, registry_uri=store_uri)


def _audit(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = cli(["audit", "--json", *argv])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def test_budget_tightened_after_promotion_is_listed(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    exp = client.create_experiment(unique("exp"))
    name = unique("m")
    v1 = register(client, name, log_green_run(client, exp, 3.0), model_tags={"green.budget.total_co2eq_kg": "5"})
    client.set_registered_model_alias(name, "champion", v1)
    client.transition_model_version_stage(name, v1, "Production")
    assert _audit(capsys, "--model", name)[0] == 0

    client.set_registered_model_tag(name, "green.budget.total_co2eq_kg", "2")  # after the promotion
    code, data = _audit(capsys, "--model", name)
    assert code == 1
    found = {(v["alias"], v["stage"]): v for v in data["violations"]}
    assert set(found) == {("champion", None), (None, "Production")}
    for v in found.values():
        assert v["version"] == v1 and v["total_co2eq_kg"] == pytest.approx(3.0)
        assert "total_co2eq_kg" in v["reasons"][0] and "exceeds" in v["reasons"][0]
        assert [c["budget"] for c in v["checks"]] == ["total_co2eq_kg"]
    assert data["targets_checked"] == 2 and data["models_checked"] == 1


def test_per_alias_budget_hits_only_its_alias(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    exp = client.create_experiment(unique("exp"))
    name = unique("m")
    v1 = register(client, name, log_green_run(client, exp, 3.0), model_tags={"green.budget.total_co2eq_kg": "5"})
    client.set_registered_model_alias(name, "champion", v1)
    client.set_registered_model_alias(name, "canary", v1)
    client.set_registered_model_tag(name, "green.budget.champion.total_co2eq_kg", "1")
    code, data = _audit(capsys, "--model", name)
    assert code == 1
    assert [(v["alias"], v["version"]) for v in data["violations"]] == [("champion", v1)]


def test_policy_decides_what_is_gated_and_budgeted(client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = client.create_experiment(unique("exp"))
    name = unique("pol")
    v1 = register(client, name, log_green_run(client, exp, 3.0))  # no budget tags at all
    client.set_registered_model_alias(name, "champion", v1)
    client.set_registered_model_alias(name, "canary", v1)
    policy = tmp_path / "policy.yaml"
    policy.write_text('defaults:\n  gated_aliases: [champion]\nmodels:\n  "pol-*":\n    budgets: {total_co2eq_kg: 1}\n')
    assert _audit(capsys, "--model", name)[0] == 0  # without the policy: no budget applies
    code, data = _audit(capsys, "--model", name, "--policy", str(policy))
    assert code == 1
    assert [v["alias"] for v in data["violations"]] == ["champion"]  # canary is not gated


def test_missing_and_simulated_evidence_are_violations(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    exp = client.create_experiment(unique("exp"))
    name = unique("m")
    tags = {"green.budget.total_co2eq_kg": "50"}
    bare = register(client, name, log_green_run(client, exp, None), model_tags=tags)
    sim = register(client, name, log_green_run(client, exp, 1.0, method="simulated"))
    client.set_registered_model_alias(name, "a", bare)
    client.set_registered_model_alias(name, "b", sim)
    code, data = _audit(capsys, "--model", name)
    assert code == 1
    by_alias = {v["alias"]: v["reasons"] for v in data["violations"]}
    assert "Missing evidence" in by_alias["a"][0]
    assert any("simulated" in r for r in by_alias["b"])


def test_whole_registry_and_text_output(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    exp = client.create_experiment(unique("exp"))
    over = unique("m")
    v = register(client, over, log_green_run(client, exp, 9.0), model_tags={"green.budget.total_co2eq_kg": "5"})
    client.set_registered_model_alias(over, "champion", v)
    plain = unique("m")
    register(client, plain, log_green_run(client, exp, 9.0))
    client.set_registered_model_alias(plain, "champion", "1")
    assert cli(["audit"]) == 1
    captured = capsys.readouterr()
    assert f"{over} alias 'champion' -> version {v}:" in captured.out
    assert plain not in captured.out
    assert "violate the budgets in force" in captured.err and len(captured.err.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--model", "no-such-model"], "not found"),
        (["--events", "--since", "yesterday"], "ISO 8601"),
        (["--events", "--limit", "0"], "--limit"),
        (["--since", "2026-01-01"], "--events"),
        (["--tracking-uri", f"http://127.0.0.1:{free_port()}"], "cannot reach"),
    ],
)
def test_errors_exit_2_with_one_line(client: Any, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    assert cli(["audit", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def _event(model: str, at: str, kind: str = "refusal") -> GateEvent:
    return GateEvent(
        kind=kind, at=at, user="alice", method="POST", path="/api/2.0/mlflow/registered-models/alias",
        operation="SetRegisteredModelAlias", model=model, version="3", target="alias=champion",
        message="carbon gate: over budget", override_reason="hotfix" if kind == "override" else None,
        figures={"total_co2eq_kg": 4.0}, budgets=[{"budget": "total_co2eq_kg", "limit": 2.0}],
    )


def test_events_from_the_store_database(client: Any, store_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    name = unique("ev")
    code, data = _audit(capsys, "--events", "--model", name)
    assert code == 0 and data == {"events": []}
    log = EventLog.from_uri(store_uri)
    log.append(_event(name, "2026-11-01T10:00:00+00:00"))
    log.append(_event(name, "2026-11-20T10:00:00+00:00", "override"))
    log.append(_event(unique("other"), "2026-11-21T10:00:00+00:00"))
    code, data = _audit(capsys, "--events", "--model", name)
    assert code == 0
    assert [e["kind"] for e in data["events"]] == ["refusal", "override"]
    first = data["events"][0]
    assert first["user"] == "alice" and first["figures"] == {"total_co2eq_kg": 4.0}
    assert first["budgets"] == [{"budget": "total_co2eq_kg", "limit": 2.0}]
    code, data = _audit(capsys, "--events", "--model", name, "--since", "2026-11-10")
    assert [e["kind"] for e in data["events"]] == ["override"]
    assert cli(["audit", "--events", "--model", name]) == 0
    text = capsys.readouterr().out
    assert "override by alice" in text and "overridden (hotfix)" in text and "alias=champion" in text


def test_help_describes_audit_and_events(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["audit", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for needle in ("--events", "--since", "budgets in force", "refusals", "overrides", "exit 0 none, 1 some"):
        assert needle in out, needle
