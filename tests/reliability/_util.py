"""Helpers of the reliability suite: the CLI as a subprocess, and metric-history bookkeeping."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from mlflow_green.tracking import schema

REPO_ROOT = Path(__file__).resolve().parents[2]

# The keys every epoch carries whatever the run (projections need a known epoch count).
EPOCH_KEYS: tuple[str, ...] = tuple(schema.PER_EPOCH_KEYS) + tuple(schema.CUMULATIVE_KEYS)


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def __str__(self) -> str:  # what pytest shows when an assertion on it fails
        return (
            f"mlflow-green {' '.join(self.args)} -> {self.returncode}\n"
            f"--- stdout ---\n{self.stdout[-2000:]}\n--- stderr ---\n{self.stderr[-4000:]}"
        )


def cli_path() -> str:
    found = shutil.which("mlflow-green", path=str(Path(sys.executable).parent))
    return found or "mlflow-green"


def child_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """This process's environment (the test's isolated one) plus ``extra`` (None unsets)."""
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore")
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _scratch_dir() -> Path:
    # MLflow's default tracking URI is ./mlflow.db: never let a CLI call create one in the repo.
    path = Path(tempfile.gettempdir()) / f"mlflow-green-reliability-{os.getuid()}"
    path.mkdir(exist_ok=True)
    return path


def run_cli(
    *args: str,
    env: Mapping[str, str | None] | None = None,
    timeout: float = 90.0,
    cwd: Path | None = None,
) -> CliResult:
    """``mlflow-green ARGS`` as a real subprocess."""
    try:
        proc = subprocess.run(
            [cli_path(), *args],
            capture_output=True,
            text=True,
            env=child_env(env),
            timeout=timeout,
            cwd=str(cwd or _scratch_dir()),
        )
    except subprocess.TimeoutExpired as exc:  # a hang is a finding of its own case, not a crash
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return CliResult(tuple(args), -9, out, err + f"\n[timed out after {timeout:g} s]")
    return CliResult(tuple(args), proc.returncode, proc.stdout, proc.stderr)


def run_cli_many(
    cases: Sequence[tuple[Sequence[str], Mapping[str, str | None] | None]],
    *,
    workers: int = 4,
    timeout: float = 90.0,
) -> list[CliResult]:
    """Several CLI calls at once (each is a separate process; the machine is I/O bound on start)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_cli, *args, env=env, timeout=timeout) for args, env in cases]
        return [f.result() for f in futures]


def assert_one_line_usage_error(result: CliResult, *needles: str) -> str:
    """Exit 2, exactly one non-empty stderr line, no traceback; returns the line."""
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, str(result)
    assert result.returncode == 2, str(result)
    lines = result.stderr_lines
    assert len(lines) == 1, str(result)
    line = lines[0]
    low = line.lower()
    for needle in needles:
        assert needle.lower() in low, f"{needle!r} not in {line!r}"
    return line


def metric_steps(base_url: str, run_id: str, key: str) -> list[int]:
    """Every step logged for ``key`` in the run, duplicates included, through the REST API."""
    response = requests.get(
        f"{base_url}/api/2.0/mlflow/metrics/get-history",
        params={"run_id": run_id, "metric_key": key, "max_results": 25000},
        timeout=30,
    )
    response.raise_for_status()
    return sorted(int(m.get("step", 0)) for m in response.json().get("metrics", []))


def local_metric_steps(client: Any, run_id: str, key: str) -> list[int]:
    return sorted(int(m.step) for m in client.get_metric_history(run_id, key))


def lost_and_duplicated(
    steps_by_key: Mapping[str, Iterable[int]], expected_steps: Iterable[int]
) -> tuple[int, int, dict[str, str]]:
    """(records lost, records duplicated, per-key problems) against the expected steps.

    A record is one (key, step) pair: missing counts as lost, each extra copy as duplicated.
    """
    expected = sorted(set(expected_steps))
    lost = duplicated = 0
    problems: dict[str, str] = {}
    for key, steps in steps_by_key.items():
        counts = Counter(steps)
        missing = [s for s in expected if counts[s] == 0]
        extra = {s: c - 1 for s, c in counts.items() if c > 1}
        unexpected = sorted(s for s in counts if s not in expected)
        lost += len(missing)
        duplicated += sum(extra.values())
        if missing or extra or unexpected:
            problems[key] = f"missing {missing}, duplicated {extra}, unexpected {unexpected}"
    return lost, duplicated, problems


def run_tags(base_url: str, run_id: str) -> dict[str, str]:
    response = requests.get(f"{base_url}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=30)
    response.raise_for_status()
    return {t["key"]: t["value"] for t in response.json()["run"]["data"].get("tags", [])}
