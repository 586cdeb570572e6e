"""Every command README.md shows is run: here, by another named test, or by the demo.

Convention (an HTML comment on the line before a fenced block):

- ``<!-- test -->`` before a ```bash block: run here, in order, in one temporary directory
  with a SQLite tracking URI (``examples/`` and ``docker/`` are linked into it);
- ``<!-- test: write FILE -->`` before any block: its text is saved as FILE there first;
- ``<!-- covered-by: PATH -->``: PATH (a test or the demo) runs these commands; it must exist
  and name every script the block runs;
- ``<!-- skip: reason -->``: only for set-up commands (make, pip install), with the reason.

A ```bash block without one of these fails the test.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.examples._helpers import REPO, example_env

README = REPO / "README.md"
_BLOCK = re.compile(r"(?:<!--\s*(?P<marker>[^>]*?)\s*-->\s*\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)


@dataclass(frozen=True)
class Block:
    lang: str
    marker: str
    body: str
    line: int

    @property
    def kind(self) -> str:
        return self.marker.split(":", 1)[0].strip()

    @property
    def argument(self) -> str:
        return self.marker.split(":", 1)[1].strip() if ":" in self.marker else ""


def blocks() -> list[Block]:
    text = README.read_text()
    return [
        Block(m["lang"], m["marker"] or "", m["body"], text.count("\n", 0, m.start()) + 1)
        for m in _BLOCK.finditer(text)
    ]


def _commands(body: str) -> list[str]:
    joined = body.replace("\\\n", " ")
    return [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def test_every_bash_block_is_run_or_accounted_for() -> None:
    bash = [b for b in blocks() if b.lang in {"bash", "sh", "shell", "console"}]
    assert bash, "README.md has no bash blocks"
    for b in bash:
        assert b.kind in {"test", "covered-by", "skip"}, f"README.md:{b.line}: bash block without a marker"
        if b.kind == "skip":
            assert b.argument, f"README.md:{b.line}: a skip needs a reason"
            for cmd in _commands(b.body):
                assert cmd.split()[0] in {"make", "pip"}, f"README.md:{b.line}: only set-up may be skipped: {cmd}"


@pytest.mark.parametrize(
    "block", [b for b in blocks() if b.kind == "covered-by"], ids=lambda b: f"line{b.line}"
)
def test_covered_blocks_name_a_real_runner(block: Block) -> None:
    runner = REPO / block.argument
    assert runner.is_file(), f"README.md:{block.line}: {block.argument} does not exist"
    runner_text = runner.read_text()
    for cmd in _commands(block.body):
        # Every script or app the commands run is named by the runner.
        for name in re.findall(r"(?:examples|docker)/([\w.-]+\.(?:py|sh|yml))", cmd):
            assert name in runner_text or Path(name).stem in runner_text, (
                f"README.md:{block.line}: {block.argument} does not run {name}"
            )
        for app in re.findall(r"--app-name\s+([\w-]+)", cmd):
            assert app in runner_text, f"README.md:{block.line}: {block.argument} does not start {app}"


def test_local_links_exist() -> None:
    text = README.read_text()
    for target in re.findall(r"\]\(([^)#\s]+)\)", text):
        if "://" in target:
            continue
        assert (REPO / target).exists(), f"README.md links to {target}, which does not exist"


def test_makefile_demo_runs_the_demo_script() -> None:
    makefile = (REPO / "Makefile").read_text()
    demo = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert demo and "examples/demo.py" in demo.group(1)


@pytest.mark.slow
def test_runnable_blocks(tmp_path: Path) -> None:
    for name in ("examples", "docker"):
        (tmp_path / name).symlink_to(REPO / name)
    env = example_env(f"sqlite:///{tmp_path / 'mlflow.db'}")
    ran = 0
    for b in blocks():
        if b.kind == "test" and b.argument.startswith("write "):
            (tmp_path / b.argument.removeprefix("write ").strip()).write_text(b.body)
        elif b.kind == "test":
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", b.body],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert result.returncode == 0, (
                f"README.md:{b.line} block failed ({result.returncode}):\n{b.body}\n"
                f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}"
            )
            assert "Traceback" not in result.stderr, result.stderr[-3000:]
            ran += 1
    assert ran >= 3
    # The leaderboard wrote its Pareto plot and HTML report.
    assert (tmp_path / "pareto.png").read_bytes().startswith(b"\x89PNG")
    assert "quickstart" in (tmp_path / "leaderboard.html").read_text()
    # `promote --summary-md` wrote the CI job summary table of a passing verdict.
    summary = (tmp_path / "summary.md").read_text()
    assert "quickstart-model" in summary and "pass" in summary


def test_configuration_table_lists_every_environment_variable() -> None:
    """Every MLFLOW_GREEN_* variable the package reads, and the contract's, is in the table."""
    text = README.read_text()
    table = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    used: set[str] = {"ELECTRICITYMAPS_API_TOKEN"}
    for path in (REPO / "mlflow_green").rglob("*.py"):
        used |= set(re.findall(r"\bMLFLOW_GREEN_[A-Z][A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    for test_file in (REPO / "tests").glob("conftest.py"):
        used |= set(re.findall(r"\bMLFLOW_GREEN_TEST_[A-Z0-9_]+\b", test_file.read_text()))
    missing = sorted(name for name in used if f"`{name}" not in table)
    assert not missing, f"README.md's configuration table lacks {missing}"
