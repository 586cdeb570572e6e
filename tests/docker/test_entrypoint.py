"""docker/entrypoint.sh run natively: its validation, the command it builds, and a real gated
server on the local PostgreSQL (the compose file's wiring, without a Docker engine)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests._servers import create_postgres_database, drop_postgres_database, free_port

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
POLICY = REPO / "docker" / "policy.example.yaml"
BIN = Path(sys.executable).parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PORT", "HOST"))}
    # The entrypoint finds python3 and mlflow on PATH, as it does in the image.
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def _run(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT)],
        env=_env(MLFLOW_ENTRYPOINT_DRY_RUN="1", **extra),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dry_run_maps_the_environment_onto_server_flags(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        MLFLOW_BACKEND_STORE_URI=f"sqlite:///{tmp_path}/db/mlflow.db",
        MLFLOW_ARTIFACTS_DESTINATION=str(tmp_path / "art"),
        HOST="127.0.0.1",
        PORT="5123",
        MLFLOW_WORKERS="3",
        MLFLOW_ALLOWED_HOSTS="mlflow:*,localhost:*",
        MLFLOW_STATIC_PREFIX="/mlflow",
    )
    assert result.returncode == 0, result.stderr
    argv = result.stdout.splitlines()
    assert argv[1:4] == ["server", "--app-name", "green-gate"]
    assert "--serve-artifacts" in argv
    rest = [a for a in argv[2:] if a != "--serve-artifacts"]
    flags = dict(zip(rest[::2], rest[1::2], strict=True))
    assert flags["--backend-store-uri"] == f"sqlite:///{tmp_path}/db/mlflow.db"
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == "5123"
    assert flags["--workers"] == "3"
    assert flags["--allowed-hosts"] == "mlflow:*,localhost:*"
    assert flags["--static-prefix"] == "/mlflow"
    # The SQLite directory and the artifacts directory are created up front.
    assert (tmp_path / "db").is_dir() and (tmp_path / "art").is_dir()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "50x0"}, "PORT=50x0 is not a port number"),
        ({"MLFLOW_WORKERS": "two"}, "MLFLOW_WORKERS=two is not a whole number"),
        ({"MLFLOW_APP_NAME": "basic-auth"}, "use green-gate or green-gate-auth"),
        ({"MLFLOW_GREEN_POLICY": "/nonexistent/policy.yaml"}, "is the policy volume mounted?"),
        ({"MLFLOW_DB_WAIT_SECONDS": "-1"}, "MLFLOW_DB_WAIT_SECONDS=-1 is not a whole number"),
        (
            # Nothing listens on port 9: the wait gives up after 1 s, with the password redacted.
            {
                "MLFLOW_BACKEND_STORE_URI": "postgresql+psycopg2://u:secret@127.0.0.1:9/db",
                "MLFLOW_DB_WAIT_SECONDS": "1",
            },
            "database postgresql+psycopg2://u:***@127.0.0.1:9/db is not reachable after 1s",
        ),
    ],
)
def test_bad_configuration_is_one_clear_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = _run(tmp_path, **env)
    assert result.returncode == 2
    errors = [ln for ln in result.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "secret" not in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def gated_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("sh") is None:
        pytest.skip("no POSIX sh")
    from tests._servers import postgres_available

    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    workdir = tmp_path_factory.mktemp("entrypoint")
    uri = create_postgres_database("mlflow_green_entrypoint")
    port = free_port()
    log_path = workdir / "server.log"
    env = _env(
        MLFLOW_BACKEND_STORE_URI=uri,
        MLFLOW_ARTIFACTS_DESTINATION=str(workdir / "artifacts"),
        MLFLOW_GREEN_POLICY=str(POLICY),
        HOST="127.0.0.1",
        PORT=str(port),
        MLFLOW_WORKERS="1",
        MLFLOW_DB_WAIT_SECONDS="30",
    )
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["sh", str(ENTRYPOINT)], env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"entrypoint exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                status = requests.get(f"{url}/health", timeout=2).status_code
            except requests.RequestException:
                status = None
            if status == 200:
                break
            if status is not None and status >= 500:  # up but broken: no point in waiting
                pytest.fail(f"/health answered {status}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"server did not answer /health:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        drop_postgres_database(uri)


def _post(url: str, path: str, body: dict[str, object]) -> requests.Response:
    return requests.post(f"{url}/api/2.0/mlflow/{path}", json=body, timeout=30)


@pytest.mark.slow
@pytest.mark.postgres
def test_entrypoint_serves_the_gate_on_postgres(gated_server: str) -> None:
    url = gated_server
    assert requests.get(f"{url}/health", timeout=5).text.strip() == "OK"
    # A model version whose run has no green/ metrics: the policy mounted by the entrypoint
    # gates `champion` and denies missing evidence.
    exp = _post(url, "experiments/create", {"name": "entrypoint"}).json()["experiment_id"]
    run_id = _post(url, "runs/create", {"experiment_id": exp})
    run_id.raise_for_status()
    info = run_id.json()["run"]["info"]
    _post(url, "registered-models/create", {"name": "clf"}).raise_for_status()
    version = _post(
        url, "model-versions/create",
        {"name": "clf", "source": f"{info['artifact_uri']}/model", "run_id": info["run_id"]},
    )
    assert version.status_code == 200, version.text
    v = version.json()["model_version"]["version"]
    denied = _post(url, "registered-models/alias", {"name": "clf", "alias": "champion", "version": v})
    assert denied.status_code == 403, denied.text
    body = denied.json()
    assert body["error_code"] == "PERMISSION_DENIED"
    assert "green" in body["message"].lower() or "budget" in body["message"].lower()
    # An alias the policy does not gate goes through.
    ok = _post(url, "registered-models/alias", {"name": "clf", "alias": "candidate", "version": v})
    assert ok.status_code == 200, ok.text
    # Clients may not forge evidence.
    forged = _post(
        url,
        "model-versions/set-tag",
        {"name": "clf", "version": v, "key": "green.gate.verdict", "value": "pass"},
    )
    assert forged.status_code == 403, forged.text


def test_every_variable_the_entrypoint_reads_is_documented() -> None:
    script = ENTRYPOINT.read_text()
    # Variables taken from the environment are the ones read with a default or a test.
    read = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):[-+=?]", script))
    internal = {"MLFLOW_GREEN_WAIT_URI", "MLFLOW_GREEN_WAIT_SECONDS"}  # set by the script itself
    documented = (REPO / "docker" / "README.md").read_text()
    header = script.split("set -eu", 1)[0]
    for name in sorted(read - internal):
        assert f"`{name}`" in documented, f"docker/README.md does not document {name}"
        assert name in header, f"the entrypoint's header comment does not list {name}"
