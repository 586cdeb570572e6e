"""Where the footprint and the gate read and write: an ``MlflowClient`` or the server's stores.

Both go through MLflow's public client and store methods only (no SQL of our own, no ORM rows):
promotions are rare, human- or CI-driven events, where clarity and correctness beat a millisecond.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

__all__ = ["Backend", "ClientBackend", "StoreBackend"]

PARENT_RUN_TAG = "mlflow.parentRunId"
_SEARCH_PAGE = 1000
_WRITE_ATTEMPTS = 3


class Backend(Protocol):
    """What the footprint and the gate read and write; the client and the server stores differ."""

    def get_run(self, run_id: str) -> Any: ...
    def metric_history(self, run_id: str, key: str) -> list[float]: ...
    def metric_maxima(self, run_id: str, keys: Iterable[str]) -> dict[str, float]:
        """Each key's largest finite value over the run's history; keys never logged are absent."""
        ...

    def child_runs(self, experiment_id: str, parent_run_id: str) -> list[Any]: ...
    def get_logged_model(self, model_id: str) -> Any: ...
    def get_model_version(self, name: str, version: str) -> Any: ...
    def get_model_version_by_alias(self, name: str, alias: str) -> Any: ...
    def get_registered_model(self, name: str) -> Any: ...
    def registered_model_tags(self, name: str) -> dict[str, str]:
        """The registered model's tags; MLflow's RESOURCE_DOES_NOT_EXIST when there is no model."""
        ...

    def set_model_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None: ...


def _all_child_runs(search: Any, experiment_id: str, parent_run_id: str) -> list[Any]:
    from mlflow.entities import ViewType

    runs: list[Any] = []
    token = None
    # Deleted runs consumed energy too: a sweep's cost does not vanish when a trial is deleted.
    flt = f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'"
    while True:
        page = search([experiment_id], flt, ViewType.ALL, _SEARCH_PAGE, None, token)
        runs.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return runs


def _maxima_from_histories(backend: Backend, run_id: str, keys: Iterable[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in keys:
        values = [v for v in backend.metric_history(run_id, key) if math.isfinite(v)]
        if values:
            out[key] = max(values)
    return out


def _write_conflict(exc: BaseException) -> bool:
    """A write that lost a race: a concurrent request inserted the same tag row first
    (UNIQUE violation), or SQLite refused the lock upgrade ("database is locked")."""
    try:
        from sqlalchemy.exc import IntegrityError, OperationalError
    except ImportError:  # pragma: no cover - MLflow always brings SQLAlchemy
        return False
    cause = exc.__cause__ or exc.__context__
    return isinstance(exc, (IntegrityError, OperationalError)) or isinstance(
        cause, (IntegrityError, OperationalError)
    )


def retry_on_conflict(write: Any) -> Any:
    """Run ``write`` again when it lost a race (idempotent writes only)."""
    for attempt in range(_WRITE_ATTEMPTS):
        try:
            return write()
        except Exception as exc:
            if attempt + 1 == _WRITE_ATTEMPTS or not _write_conflict(exc):
                raise
    return None  # pragma: no cover - the loop returns or raises


class StoreBackend:
    """Reads and writes through the tracking server's own stores (no HTTP to itself)."""

    def __init__(self, tracking_store: Any, registry_store: Any) -> None:
        self.tracking_store = tracking_store
        self.registry_store = registry_store

    @contextmanager
    def reading(self) -> Iterator[StoreBackend]:
        """Kept for callers of earlier releases: every read is one store call."""
        yield self

    def get_run(self, run_id: str) -> Any:
        return self.tracking_store.get_run(run_id)

    def metric_history(self, run_id: str, key: str) -> list[float]:
        return [m.value for m in self.tracking_store.get_metric_history(run_id, key)]

    def metric_maxima(self, run_id: str, keys: Iterable[str]) -> dict[str, float]:
        return _maxima_from_histories(self, run_id, keys)

    def child_runs(self, experiment_id: str, parent_run_id: str) -> list[Any]:
        return _all_child_runs(self.tracking_store.search_runs, experiment_id, parent_run_id)

    def get_logged_model(self, model_id: str) -> Any:
        return self.tracking_store.get_logged_model(model_id)

    def get_model_version(self, name: str, version: str) -> Any:
        return self.registry_store.get_model_version(name, version)

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        return self.registry_store.get_model_version_by_alias(name, alias)

    def model_and_version(self, name: str, version: str) -> tuple[dict[str, str], Any | None]:
        """The registered model's tags and the version, None when the version does not exist.

        MLflow's RESOURCE_DOES_NOT_EXIST when the registered model does not exist.
        """
        tags = self.registered_model_tags(name)
        try:
            return tags, self.get_model_version(name, str(version))
        except Exception as exc:
            if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return tags, None
            raise

    def get_registered_model(self, name: str) -> Any:
        return self.registry_store.get_registered_model(name)

    def registered_model_tags(self, name: str) -> dict[str, str]:
        return dict(self.registry_store.get_registered_model(name).tags or {})

    def set_model_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities.model_registry import ModelVersionTag

        for key, value in tags.items():
            tag = ModelVersionTag(key, value)
            retry_on_conflict(lambda tag=tag: self.registry_store.set_model_version_tag(name, version, tag))

    def set_registered_model_tags(self, name: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities.model_registry import RegisteredModelTag

        for key, value in tags.items():
            tag = RegisteredModelTag(key, value)
            retry_on_conflict(lambda tag=tag: self.registry_store.set_registered_model_tag(name, tag))

    def versions_of_run(self, run_id: str) -> list[Any]:
        """Every model version registered from ``run_id`` (all models)."""
        out: list[Any] = []
        token = None
        while True:
            page = self.registry_store.search_model_versions(
                filter_string=f"run_id = '{run_id}'", max_results=_SEARCH_PAGE, page_token=token
            )
            out.extend(page)
            token = getattr(page, "token", None)
            if not token:
                return out


class ClientBackend:
    """Reads through an ``MlflowClient`` (a script, CI, or a test)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def get_run(self, run_id: str) -> Any:
        return self.client.get_run(run_id)

    def metric_history(self, run_id: str, key: str) -> list[float]:
        return [m.value for m in self.client.get_metric_history(run_id, key)]

    def metric_maxima(self, run_id: str, keys: Iterable[str]) -> dict[str, float]:
        return _maxima_from_histories(self, run_id, keys)

    def child_runs(self, experiment_id: str, parent_run_id: str) -> list[Any]:
        c = self.client

        def search(ids: Any, flt: str, view: Any, n: int, order: Any, token: Any) -> Any:
            return c.search_runs(ids, flt, view, n, order, token)

        return _all_child_runs(search, experiment_id, parent_run_id)

    def get_logged_model(self, model_id: str) -> Any:
        return self.client.get_logged_model(model_id)

    def get_model_version(self, name: str, version: str) -> Any:
        return self.client.get_model_version(name, version)

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        return self.client.get_model_version_by_alias(name, alias)

    def get_registered_model(self, name: str) -> Any:
        return self.client.get_registered_model(name)

    def registered_model_tags(self, name: str) -> dict[str, str]:
        return dict(self.client.get_registered_model(name).tags or {})

    def set_model_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(name, version, key, value)
