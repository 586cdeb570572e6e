"""Fixtures of the reliability suite and its one-line summary at the end of the session.

The summary line (see ``_tally.py``) is printed by ``pytest_terminal_summary`` in
``tests/conftest.py`` whenever a test of this package ran, including under ``make test`` (which
runs all of ``tests/`` under pytest-xdist: the workers' counts are summed in the controller). Set
``MLFLOW_GREEN_RELIABILITY_JSON=path`` to also write the counts and what was tried as JSON.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._servers import MlflowServer, start_mlflow_server
from tests.reliability._tally import TALLY, Tally


@pytest.fixture
def tally() -> Tally:
    """The session counter: ``tally.fault(...)``, ``.bad_input(...)``, ``.bypass(...)``, ``.records(...)``."""
    return TALLY


def pytest_runtest_setup(item: pytest.Item) -> None:
    # A conftest's runtest hooks see only the items of its own directory.
    TALLY.ran = True


@pytest.fixture(scope="session")
def fault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A plain ``mlflow server`` the fault tests may kill and restart (they leave it running)."""
    server = start_mlflow_server(tmp_path_factory.mktemp("reliability-fault-server"))
    yield server
    server.stop()


@pytest.fixture
def live_fault_server(fault_server: MlflowServer) -> MlflowServer:
    """``fault_server``, started again if an earlier test left it dead."""
    if fault_server.process.poll() is not None:
        fault_server.restart()
    return fault_server
