"""Start real ``mlflow server`` subprocesses on 127.0.0.1 for integration tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

PG_DSN_BASE = "postgresql+psycopg2://postgres@127.0.0.1:5432"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def create_postgres_database(prefix: str = "mlflow_green_test") -> str:
    """Create a fresh PostgreSQL database and return its SQLAlchemy URI."""
    import psycopg2  # type: ignore[import-untyped]

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return f"{PG_DSN_BASE}/{name}"


def drop_postgres_database(uri: str) -> None:
    import psycopg2  # type: ignore[import-untyped]

    name = uri.rsplit("/", 1)[1]
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def mysql_available() -> bool:
    """MariaDB/MySQL on 127.0.0.1:3306 and the PyMySQL driver."""
    try:
        import pymysql  # type: ignore[import-untyped]  # noqa: F401

        with socket.create_connection(("127.0.0.1", 3306), timeout=1):
            return True
    except (ImportError, OSError):
        return False


def _mysql(statement: str) -> None:
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def create_mysql_database(prefix: str = "mlflow_green_test") -> str:
    """Create a fresh MariaDB/MySQL database (root, no password) and return its SQLAlchemy URI."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _mysql(f"CREATE DATABASE `{name}`")
    return f"mysql+pymysql://root@127.0.0.1:3306/{name}"


def drop_mysql_database(uri: str) -> None:
    _mysql(f"DROP DATABASE IF EXISTS `{uri.rsplit('/', 1)[1]}`")


@contextmanager
def sql_store(kind: str, tmp_path: Path, prefix: str = "mlflow_green_test") -> Iterator[str]:
    """A fresh MLflow store URI on ``kind`` (sqlite, postgresql or mysql); skips the test where
    that database does not run on 127.0.0.1, and drops the database afterwards."""
    import pytest

    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'mlflow.db'}"
        return
    if kind == "postgresql":
        if not postgres_available():
            pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
        create, drop = create_postgres_database, drop_postgres_database
    else:
        if not mysql_available():
            pytest.skip("MariaDB/MySQL (with PyMySQL) is not available on 127.0.0.1:3306")
        create, drop = create_mysql_database, drop_mysql_database
    uri = create(prefix)
    try:
        yield uri
    finally:
        drop(uri)


@dataclass
class MlflowServer:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    backend_uri: str
    artifacts_dir: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self, timeout: float = 90.0) -> None:
        """Start the same server again on the same port (after stop/kill)."""
        self.stop()
        new = _launch(self.args, self.env, self.log_path, self.port, timeout)
        self.process = new


def _launch(
    args: Sequence[str], env: Mapping[str, str], log_path: Path, port: int, timeout: float
) -> subprocess.Popen[bytes]:
    # With --static-prefix every route, /health included, lives under the prefix.
    prefix = ""
    if "--static-prefix" in args:
        prefix = "/" + str(list(args)[list(args).index("--static-prefix") + 1]).strip("/")
    log = open(log_path, "ab")  # handed to the child process
    proc = subprocess.Popen(
        list(args), stdout=log, stderr=subprocess.STDOUT, env=dict(env), start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited with {proc.returncode}:\n{log_path.read_text(errors='replace')[-4000:]}"
            )
        try:
            if requests.get(f"{url}{prefix}/health", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.25)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError(f"mlflow server did not start in {timeout}s:\n{log_path.read_text(errors='replace')[-4000:]}")


def start_mlflow_server(
    workdir: Path,
    *,
    backend_uri: str | None = None,
    app_name: str | None = None,
    gunicorn: bool = False,
    static_prefix: str | None = None,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 120.0,
    jobs: bool = False,
) -> MlflowServer:
    """Start ``mlflow server`` bound to 127.0.0.1 on a free port and wait for /health.

    ``jobs=False`` (tests) switches off MLflow's job runner (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION``):
    seven consumer processes that import MLflow for tens of CPU-seconds at every start and
    take no part in tracking or the registry. The benchmarks keep MLflow's default (on).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    backend_uri = backend_uri or f"sqlite:///{workdir / 'mlflow.db'}"
    artifacts = workdir / "artifacts"
    artifacts.mkdir(exist_ok=True)
    port = free_port()
    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    args = [
        mlflow_bin,
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        str(artifacts),
        "--workers",
        "1",
    ]
    if app_name:
        args += ["--app-name", app_name]
    if gunicorn:
        args += ["--gunicorn-opts", "--timeout 120"]
    if static_prefix:
        args += ["--static-prefix", static_prefix]
    args += list(extra_args)
    full_env = dict(os.environ)
    full_env.pop("MLFLOW_TRACKING_URI", None)
    full_env["MLFLOW_GREEN_STRICT"] = full_env.get("MLFLOW_GREEN_STRICT", "1")
    if not jobs:
        full_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    full_env.update(env or {})
    log_path = workdir / f"server-{port}.log"
    proc = _launch(args, full_env, log_path, port, timeout)
    return MlflowServer(
        url=f"http://127.0.0.1:{port}",
        port=port,
        process=proc,
        log_path=log_path,
        backend_uri=backend_uri,
        artifacts_dir=artifacts,
        args=args,
        env=full_env,
    )


def grant_model_permission(admin: Any, username: str, name: str, permission: str) -> None:
    """Grant ``username`` ``permission`` on registered model ``name`` (replacing any grant) with
    basic-auth's client, on every supported MLflow release (3.0's per-resource calls, or the
    later resource-typed ones)."""
    if hasattr(admin, "grant_user_permission"):
        try:
            admin.revoke_user_permission(username, "registered_model", name)
        except Exception:
            pass  # none granted yet
        admin.grant_user_permission(username, "registered_model", name, permission)
        return
    try:
        admin.delete_registered_model_permission(name, username)
    except Exception:
        pass  # none granted yet
    admin.create_registered_model_permission(name, username, permission)


def start_auth_server(work: Path, admin_password: str, *, env: dict[str, str] | None = None) -> MlflowServer:
    """``mlflow server --app-name green-gate-auth`` in ``work``: basic-auth with user ``admin``
    (``admin_password``), READ by default, a credential cache (PBKDF2 on every request is slow
    on a loaded machine); ``env`` adds to the server's environment."""
    ini = work / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{work / 'auth.db'}\n"
        "admin_username = admin\n"
        f"admin_password = {admin_password}\n"  # MLflow 3.0-3.x read it here; newer: the env var
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 300\n"
    )
    server_env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-static-secret-key-for-the-test-server",
        **(env or {}),
    }
    return start_mlflow_server(work, app_name="green-gate-auth", env=server_env)
