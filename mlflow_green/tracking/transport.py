"""How batches reach the tracking store: MLflow's REST API or its client.

:class:`RestTransport` talks to an http(s) tracking server with mlflow_green's own short timeout
and no hidden retries (MLflow's client would retry with back-off for minutes);
:class:`ClientTransport` uses ``MlflowClient`` for every other store (local SQLite or files,
Databricks...): ``log_batch`` to write, ``get_metric_history`` to read. Both raise
:class:`~mlflow_green.tracking.failures.TransientError` (or an error
:func:`~mlflow_green.tracking.failures.is_transient` calls transient) when the store cannot be
reached now, anything else when it refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from mlflow_green.tracking import _mlflow_compat as compat
from mlflow_green.tracking.failures import TransientError, is_transient, short_reason

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "ClientTransport",
    "MetricPoint",
    "RestTransport",
    "RunTransport",
    "Transport",
    "is_http",
    "make_transport",
    "unreachable",
]

DEFAULT_TIMEOUT_S = 5.0
# MLflow's REST API limits on one log_batch call.
_MAX_METRICS_PER_BATCH = 1000
_MAX_TAGS_PER_BATCH = 100


@dataclass(frozen=True)
class MetricPoint:
    """One metric value of one step, as MLflow stores it."""

    key: str
    value: float
    timestamp_ms: int
    step: int


class Transport(Protocol):
    """How batches reach the tracking store."""

    def log_batch(self, run_id: str, metrics: list[MetricPoint], tags: dict[str, str]) -> None: ...

    def logged_steps(self, run_id: str, key: str) -> set[int]: ...

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, int, float]]: ...


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class RestTransport:
    """MLflow's REST API with our own timeout and no hidden retries."""

    def __init__(self, tracking_uri: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._creds = compat.host_creds(tracking_uri)
        self._timeout_s = timeout_s

    def _request(
        self, endpoint: str, method: str, *, missing_ok: bool = False, **kwargs: Any
    ) -> Any:
        """The JSON answer; None for a 404 when ``missing_ok``."""
        try:
            response = compat.http_request(
                self._creds,
                endpoint,
                method,
                max_retries=0,
                backoff_factor=0,
                backoff_jitter=0,
                timeout=self._timeout_s,
                raise_on_status=False,
                **kwargs,
            )
        except Exception as exc:  # requests' errors, or MlflowException wrapping them
            if is_transient(exc):
                raise TransientError(short_reason(exc, timeout_s=self._timeout_s)) from exc
            raise
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise TransientError(f"HTTP {response.status_code} from {endpoint}")
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code != 200:
            from mlflow.exceptions import MlflowException

            raise MlflowException(
                f"{endpoint} answered HTTP {response.status_code}: {response.text[:300]}"
            )
        return response.json() if response.text else {}

    # -- runs (creating the run of a journal whose server was down at start) --------------

    def experiment_id(self, name: str) -> str:
        """The id of the experiment called ``name``, created when absent (as MLflow does)."""
        data = self._request(
            "/api/2.0/mlflow/experiments/get-by-name", "GET", missing_ok=True,
            params={"experiment_name": name},
        )
        if data and data.get("experiment"):
            return str(data["experiment"]["experiment_id"])
        created = self._request("/api/2.0/mlflow/experiments/create", "POST", json={"name": name})
        return str(created["experiment_id"])

    def find_run(self, experiment_id: str, tag_key: str, tag_value: str) -> str | None:
        data = self._request(
            "/api/2.0/mlflow/runs/search",
            "POST",
            json={
                "experiment_ids": [experiment_id],
                "filter": f"tags.`{tag_key}` = '{tag_value}'",
                "max_results": 1,
                "run_view_type": "ALL",
            },
        )
        runs = data.get("runs") or []
        return str(runs[0]["info"]["run_id"]) if runs else None

    def create_run(
        self, experiment_id: str, *, run_name: str | None, start_time_ms: int, tags: dict[str, str]
    ) -> str:
        body: dict[str, Any] = {
            "experiment_id": experiment_id,
            "start_time": int(start_time_ms),
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        }
        if run_name:
            body["run_name"] = run_name
        data = self._request("/api/2.0/mlflow/runs/create", "POST", json=body)
        return str(data["run"]["info"]["run_id"])

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        body = [{"key": k, "value": v} for k, v in params.items()]
        for chunk in _chunks(body, _MAX_TAGS_PER_BATCH):
            self._request(
                "/api/2.0/mlflow/runs/log-batch", "POST", json={"run_id": run_id, "params": chunk}
            )

    def run_status(self, run_id: str) -> str:
        data = self._request("/api/2.0/mlflow/runs/get", "GET", params={"run_id": run_id})
        return str(data["run"]["info"].get("status", "RUNNING"))

    def terminate(self, run_id: str, status: str, end_time_ms: int) -> None:
        self._request(
            "/api/2.0/mlflow/runs/update",
            "POST",
            json={"run_id": run_id, "status": status, "end_time": int(end_time_ms)},
        )

    def log_batch(self, run_id: str, metrics: list[MetricPoint], tags: dict[str, str]) -> None:
        body_metrics = [
            {"key": m.key, "value": m.value, "timestamp": m.timestamp_ms, "step": m.step}
            for m in metrics
        ]
        body_tags = [{"key": k, "value": v} for k, v in tags.items()]
        # One call per epoch in practice; the loop only matters for huge batches.
        while body_metrics or body_tags:
            chunk_m, body_metrics = body_metrics[:_MAX_METRICS_PER_BATCH], body_metrics[_MAX_METRICS_PER_BATCH:]
            chunk_t, body_tags = body_tags[:_MAX_TAGS_PER_BATCH], body_tags[_MAX_TAGS_PER_BATCH:]
            self._request(
                "/api/2.0/mlflow/runs/log-batch",
                "POST",
                json={"run_id": run_id, "metrics": chunk_m, "tags": chunk_t},
            )

    def logged_steps(self, run_id: str, key: str) -> set[int]:
        return {step for step, _, _ in self.metric_history(run_id, key)}

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, int, float]]:
        """Every logged point of ``key``: (step, timestamp_ms, value)."""
        out: list[tuple[int, int, float]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"run_id": run_id, "metric_key": key, "max_results": 25000}
            if token:
                params["page_token"] = token
            data = self._request("/api/2.0/mlflow/metrics/get-history", "GET", params=params)
            out += [
                (int(m.get("step", 0)), int(m.get("timestamp", 0)), float(m.get("value", math.nan)))
                for m in data.get("metrics", [])
            ]
            token = data.get("next_page_token")
            if not token:
                return out


class ClientTransport:
    """Any other tracking store (local SQLite or files, Databricks...) through MlflowClient."""

    def __init__(self, tracking_uri: str) -> None:
        from mlflow import MlflowClient

        self._client = MlflowClient(tracking_uri)

    def log_batch(self, run_id: str, metrics: list[MetricPoint], tags: dict[str, str]) -> None:
        from mlflow.entities import Metric, RunTag

        ms = [Metric(m.key, m.value, m.timestamp_ms, m.step) for m in metrics]
        ts = [RunTag(k, v) for k, v in tags.items()]
        for chunk in _chunks(ms, _MAX_METRICS_PER_BATCH) if ms else [[]]:
            self._client.log_batch(
                run_id, metrics=chunk, tags=ts[:_MAX_TAGS_PER_BATCH], synchronous=True
            )
            ts = ts[_MAX_TAGS_PER_BATCH:]
        for rest in _chunks(ts, _MAX_TAGS_PER_BATCH):
            self._client.log_batch(run_id, tags=rest, synchronous=True)

    def logged_steps(self, run_id: str, key: str) -> set[int]:
        return {int(m.step) for m in self._client.get_metric_history(run_id, key)}

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, int, float]]:
        return [
            (int(m.step), int(m.timestamp), float(m.value))
            for m in self._client.get_metric_history(run_id, key)
        ]

    def experiment_id(self, name: str) -> str:
        experiment = self._client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        return str(self._client.create_experiment(name))

    def find_run(self, experiment_id: str, tag_key: str, tag_value: str) -> str | None:
        from mlflow.entities import ViewType

        runs = self._client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{tag_key}` = '{tag_value}'",
            run_view_type=ViewType.ALL,
            max_results=1,
        )
        return str(runs[0].info.run_id) if runs else None

    def create_run(
        self, experiment_id: str, *, run_name: str | None, start_time_ms: int, tags: dict[str, str]
    ) -> str:
        run = self._client.create_run(
            experiment_id, start_time=int(start_time_ms), tags=tags, run_name=run_name
        )
        return str(run.info.run_id)

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for chunk in _chunks(items, _MAX_TAGS_PER_BATCH):
            self._client.log_batch(run_id, params=chunk, synchronous=True)

    def run_status(self, run_id: str) -> str:
        return str(self._client.get_run(run_id).info.status)

    def terminate(self, run_id: str, status: str, end_time_ms: int) -> None:
        self._client.set_terminated(run_id, status, end_time=int(end_time_ms))


class RunTransport(Transport, Protocol):
    """A transport that can also create, find and end runs (recovery, a late run creation)."""

    def experiment_id(self, name: str) -> str: ...

    def find_run(self, experiment_id: str, tag_key: str, tag_value: str) -> str | None: ...

    def create_run(
        self, experiment_id: str, *, run_name: str | None, start_time_ms: int, tags: dict[str, str]
    ) -> str: ...

    def log_params(self, run_id: str, params: dict[str, str]) -> None: ...

    def run_status(self, run_id: str) -> str: ...

    def terminate(self, run_id: str, status: str, end_time_ms: int) -> None: ...


def is_http(tracking_uri: str) -> bool:
    scheme = tracking_uri.split(":", 1)[0].lower() if ":" in tracking_uri else ""
    return scheme in ("http", "https")


def make_transport(tracking_uri: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> RunTransport:
    """The REST transport for http(s) servers, MlflowClient for everything else."""
    if is_http(tracking_uri):
        return RestTransport(tracking_uri, timeout_s=timeout_s)
    return ClientTransport(tracking_uri)


def unreachable(tracking_uri: str, *, timeout_s: float = 3.0) -> str | None:
    """Why an http(s) tracking server cannot be reached now, or None (it answered, or the
    store is not a server).

    One request, no retry: any HTTP answer (even 401/404 from a proxy) means reachable.
    """
    if not is_http(tracking_uri):
        return None
    try:
        response = compat.http_request(
            compat.host_creds(tracking_uri),
            "/health",
            "GET",
            max_retries=0,
            backoff_factor=0,
            backoff_jitter=0,
            timeout=timeout_s,
            raise_on_status=False,
        )
    except Exception as exc:  # requests' errors, or MlflowException wrapping them
        return short_reason(exc, timeout_s=timeout_s)
    if response.status_code >= 500 or response.status_code in (408, 429):
        return f"HTTP {response.status_code}"
    return None


