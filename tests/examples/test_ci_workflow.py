"""examples/ci/carbon-gate.yml: a GitHub Actions workflow whose commands the CLI really accepts."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.examples._helpers import BIN, EXAMPLES

WORKFLOW = EXAMPLES / "ci" / "carbon-gate.yml"


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def _help_flags(subcommand: str) -> set[str]:
    script = Path(BIN) / "mlflow-green"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "mlflow_green.cli.main"]
    out = subprocess.run([*cmd, subcommand, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", out.stdout))


def _commands(workflow: dict[Any, Any], program: str) -> list[list[str]]:
    found = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "")
            for line in script.replace("\\\n", " ").splitlines():
                words = shlex.split(line)
                if words[:1] == [program]:
                    found.append(words)
    return found


def test_structure(workflow: dict[Any, Any]) -> None:
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1); GitHub reads it as "on".
    triggers = workflow.get("on", workflow.get(True))
    assert "workflow_dispatch" in triggers
    assert set(triggers["workflow_dispatch"]["inputs"]) == {"model", "version", "alias"}
    (job,) = workflow["jobs"].values()
    assert job["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    assert job["timeout-minutes"] <= 30
    for step in job["steps"]:
        if "uses" in step:
            assert re.search(r"@v\d+$|@[0-9a-f]{40}$", step["uses"]), f"pin {step['uses']}"
        # Inputs go through env, never into the script text (script injection).
        assert "${{" not in step.get("run", ""), step.get("name")


@pytest.mark.parametrize("subcommand", ["check", "promote"])
def test_commands_use_only_real_flags(workflow: dict[Any, Any], subcommand: str) -> None:
    commands = [c for c in _commands(workflow, "mlflow-green") if c[1] == subcommand]
    assert commands, f"the workflow runs no `mlflow-green {subcommand}`"
    known = _help_flags(subcommand)
    for words in commands:
        used = {w for w in words if w.startswith("--")}
        assert used <= known, f"unknown flags {used - known} (known: {sorted(known)})"
        assert words[words.index("--summary-md") + 1] == "$GITHUB_STEP_SUMMARY"
        for required in ("--model", "--version", "--alias"):
            assert required in used
