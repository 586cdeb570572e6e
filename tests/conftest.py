from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import MlflowServer, postgres_available, start_mlflow_server

os.environ.setdefault("MLFLOW_GREEN_STRICT", "1")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
# The intensity sources must never reach the network from the test suite by accident.
os.environ.pop("ELECTRICITYMAPS_API_TOKEN", None)

_CONTRACT_ENV = (
    "MLFLOW_GREEN_COUNTRY",
    "MLFLOW_GREEN_REGION",
    "MLFLOW_GREEN_CLOUD_PROVIDER",
    "MLFLOW_GREEN_CLOUD_REGION",
    "MLFLOW_GREEN_PUE",
    "MLFLOW_GREEN_INTENSITY",
    "MLFLOW_GREEN_POLICY",
    "MLFLOW_GREEN_SAMPLER",
    "MLFLOW_GREEN_DISABLE",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
)


_CLI_DEFAULTS = (
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_LOGGING_LEVEL",
)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: hand the reliability counts over
        from tests.reliability._tally import TALLY

        workeroutput["mlflow_green_tally"] = TALLY.state()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    state = getattr(node, "workeroutput", {}).get("mlflow_green_tally")
    if state:
        from tests.reliability._tally import TALLY

        TALLY.merge(state)


def pytest_terminal_summary(terminalreporter: object, exitstatus: int, config: pytest.Config) -> None:
    """The reliability suite's one line: faults, bad inputs, bypasses, records lost."""
    from tests.reliability._tally import TALLY

    if not (TALLY.ran or TALLY.touched):
        return
    terminalreporter.write_sep("=", "reliability summary")  # type: ignore[attr-defined]
    terminalreporter.write_line(TALLY.line())  # type: ignore[attr-defined]
    target = os.environ.get("MLFLOW_GREEN_RELIABILITY_JSON")
    if target:
        Path(target).write_text(TALLY.to_json())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_on = os.environ.get("MLFLOW_GREEN_TEST_GPU", "").lower() in {"1", "true", "yes"}
    pg_on = postgres_available()
    for item in items:
        if "gpu" in item.keywords and not gpu_on:
            item.add_marker(pytest.mark.skip(reason="GPU tests need MLFLOW_GREEN_TEST_GPU=1"))
        if "postgres" in item.keywords and not pg_on:
            item.add_marker(pytest.mark.skip(reason="PostgreSQL is not reachable on 127.0.0.1:5432"))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test starts without contract variables and with its own journal directory."""
    for name in _CONTRACT_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_GREEN_STRICT", "1")
    monkeypatch.setenv("MLFLOW_GREEN_JOURNAL_DIR", str(tmp_path / "journal"))
    uris = _mlflow_uris()
    # The CLI's main() sets these with os.environ.setdefault for its own process; in-process
    # CLI tests must not hand them on to the next test.
    saved = {name: os.environ.get(name) for name in _CLI_DEFAULTS}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _restore_mlflow_uris(uris)


def _mlflow_uris() -> tuple[object, object] | None:
    import sys

    if "mlflow" not in sys.modules:
        return None
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    return tracking_utils._tracking_uri, registry_utils._registry_uri


def _restore_mlflow_uris(uris: tuple[object, object] | None) -> None:
    """Undo a test's mlflow.set_tracking_uri/set_registry_uri (module state outlives monkeypatch)."""
    import sys

    if "mlflow" not in sys.modules:
        return
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    tracking_utils._tracking_uri, registry_utils._registry_uri = uris or (None, None)


@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    """A local SQLite tracking store URI (registry included)."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def mlflow_local(sqlite_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point MLflow at a fresh local SQLite store for this test."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri)
    mlflow.set_tracking_uri(sqlite_uri)
    mlflow.set_registry_uri(sqlite_uri)
    yield sqlite_uri
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A plain ``mlflow server`` on SQLite, shared by the session."""
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
    yield server
    server.stop()
