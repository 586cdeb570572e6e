from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def local_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One SQLite tracking+registry store per module (creating one costs seconds)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('registry-store') / 'mlflow.db'}"
    yield uri


@pytest.fixture
def client(local_store: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", local_store)
    return MlflowClient(tracking_uri=local_store, registry_uri=local_store)


@pytest.fixture
def experiment_id(client: Any) -> str:
    from tests.registry._helpers import unique

    return str(client.create_experiment(unique("exp")))
