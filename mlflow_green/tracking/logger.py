"""Batched, asynchronous logging to MLflow: one ``log_batch`` per epoch, off the training thread.

A single background thread sends the queued epochs in step order. Each send has a short
timeout of mlflow_green's own and a bounded number of attempts, whatever MLflow's retry
settings are (its HTTP client would otherwise retry with backoff for minutes). When the
tracking server cannot be reached the epoch stays pending (it is in the journal already) and
the next epochs try once; as soon as a send succeeds the backlog is sent too. A batch whose
delivery is unknown (a timeout after the request left) is re-sent only after the run's
metric history shows that its step is absent, so no step is ever logged twice.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from mlflow_green.tracking.journal import Journal
from mlflow_green.tracking.schema import PREFIX

__all__ = [
    "AsyncLogger",
    "ClientTransport",
    "RestTransport",
    "RunTransport",
    "Transport",
    "make_transport",
    "unreachable",
]

_log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_S = 0.5
# MLflow's REST API limits on one log_batch call.
_MAX_METRICS_PER_BATCH = 1000
_MAX_TAGS_PER_BATCH = 100


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    timestamp_ms: int
    step: int


class TransientError(Exception):
    """The tracking store could not be reached, or answered with a retryable status."""


class Transport(Protocol):
    """How batches reach the tracking store."""

    def log_batch(self, run_id: str, metrics: list[MetricPoint], tags: dict[str, str]) -> None: ...

    def logged_steps(self, run_id: str, key: str) -> set[int]: ...


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class RestTransport:
    """MLflow's REST API with our own timeout and no hidden retries."""

    def __init__(self, tracking_uri: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        from mlflow.utils.credentials import get_default_host_creds

        self._creds = get_default_host_creds(tracking_uri)
        self._timeout_s = timeout_s

    def _request(
        self, endpoint: str, method: str, *, missing_ok: bool = False, **kwargs: Any
    ) -> Any:
        """The JSON answer; None for a 404 when ``missing_ok``."""
        import requests
        from mlflow.utils.rest_utils import http_request

        try:
            response = http_request(
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
        except (requests.RequestException, OSError) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # MlflowException wrapping a connection failure
            if "connect" in str(exc).lower() or "max retries" in str(exc).lower():
                raise TransientError(str(exc)) from exc
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
        steps: set[int] = set()
        token: str | None = None
        while True:
            params: dict[str, Any] = {"run_id": run_id, "metric_key": key, "max_results": 25000}
            if token:
                params["page_token"] = token
            data = self._request("/api/2.0/mlflow/metrics/get-history", "GET", params=params)
            steps.update(int(m.get("step", 0)) for m in data.get("metrics", []))
            token = data.get("next_page_token")
            if not token:
                return steps


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
            self._client.log_batch(run_id, metrics=chunk, tags=ts, synchronous=True)
            ts = []

    def logged_steps(self, run_id: str, key: str) -> set[int]:
        return {int(m.step) for m in self._client.get_metric_history(run_id, key)}

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
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        response = http_request(
            get_default_host_creds(tracking_uri),
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


def short_reason(exc: BaseException, *, timeout_s: float | None = None) -> str:
    """A few words for a network failure (requests' messages run to several hundred chars)."""
    text = f"{type(exc).__name__}: {exc}"
    low = text.lower()
    if "refused" in low:
        return "connection refused"
    if "timed out" in low or "timeout" in low:
        return f"no answer within {timeout_s:g} s" if timeout_s else "timed out"
    if "name or service not known" in low or "getaddrinfo" in low or "nodename nor servname" in low:
        return "host name not resolved"
    if "ssl" in low or "certificate" in low:
        return "TLS error"
    return " ".join(text.split())[:160]


_STOP = object()


class AsyncLogger:
    """One background thread that sends epochs and tags of one run, in order.

    ``on_problem(message, error)`` is called from the logger thread the first time the store
    cannot be reached (``error`` is None) or refuses a batch (``error`` is the exception).

    ``run_id`` may be None when the run does not exist yet (the server was down at start):
    then ``create_run()`` is tried before each send, once per drain, and as soon as it
    returns the run id everything queued goes to that run; ``on_run_created(run_id)`` is
    called from the logger thread. Until then the epochs wait (they are journaled).
    """

    def __init__(
        self,
        run_id: str | None,
        transport: Transport,
        *,
        journal: Journal | None = None,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff_s: float = DEFAULT_BACKOFF_S,
        on_problem: Callable[[str, BaseException | None], None] | None = None,
        create_run: Callable[[], str] | None = None,
        on_run_created: Callable[[str], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self._create_run = create_run
        self._on_run_created = on_run_created
        self._transport = transport
        self._journal = journal
        self._attempts = max(1, attempts)
        self._backoff_s = backoff_s
        self._on_problem = on_problem
        self._queue: queue.Queue[Any] = queue.Queue()
        self._pending: dict[int, list[MetricPoint]] = {}
        self._uncertain: set[int] = set()
        self._pending_tags: dict[str, str] = {}
        self._acked: list[int] = []
        self._healthy = True
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mlflow-green-logger", daemon=True)
        self._thread.start()

    # -- training-thread side -------------------------------------------------------------

    def log_epoch(self, step: int, metrics: dict[str, float], timestamp_ms: int) -> None:
        """Queue one epoch's batch; returns at once."""
        points = [MetricPoint(k, float(v), int(timestamp_ms), int(step)) for k, v in metrics.items()]
        self._queue.put(("epoch", int(step), points))

    def set_tags(self, tags: dict[str, str]) -> None:
        """Queue tags (sent with or after the next batch); returns at once."""
        if tags:
            self._queue.put(("tags", {k: str(v) for k, v in tags.items()}))

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until everything queued so far was handled; False on timeout."""
        done = threading.Event()
        self._queue.put(("flush", done))
        return done.wait(timeout_s)

    def close(self, timeout_s: float | None = 30.0) -> bool:
        """Send what is left (one last try for a backlog) and stop the thread.

        Returns False when the thread did not finish in time; it is a daemon and is left behind.
        """
        if self._closed:
            return not self._thread.is_alive()
        self._closed = True
        self._queue.put(("retry", None))
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def acked_steps(self) -> list[int]:
        with self._lock:
            return sorted(self._acked)

    @property
    def unsent_steps(self) -> list[int]:
        """Steps not (yet) acknowledged by the store."""
        with self._lock:
            return sorted(self._pending)

    @property
    def unsent_tags(self) -> dict[str, str]:
        with self._lock:
            return dict(self._pending_tags)

    @property
    def reachable(self) -> bool:
        return self._healthy

    @property
    def errors(self) -> list[BaseException]:
        """Non-transient errors met by the thread (a refused batch, a bug)."""
        with self._lock:
            return list(self._errors)

    # -- logger-thread side ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                kind = item[0]
                if kind == "epoch":
                    with self._lock:
                        self._pending[item[1]] = item[2]
                    self._drain(attempts=self._attempts if self._healthy else 1)
                elif kind == "tags":
                    with self._lock:
                        self._pending_tags.update(item[1])
                    self._drain(attempts=self._attempts if self._healthy else 1)
                elif kind == "retry":
                    self._drain(attempts=self._attempts if self._healthy else 1)
                elif kind == "flush":
                    item[1].set()
            except BaseException as exc:  # the thread must survive anything
                self._record_error(exc)

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)
        if self._on_problem is not None:
            try:
                self._on_problem(f"MLflow refused green metrics of run {self.run_id}: {exc}", exc)
            except Exception:
                _log.debug("on_problem callback failed", exc_info=True)

    def _mark_unreachable(self, why: str) -> None:
        if self._healthy:
            self._healthy = False
            if self._on_problem is not None:
                try:
                    self._on_problem(f"MLflow tracking store unreachable ({why})", None)
                except Exception:
                    _log.debug("on_problem callback failed", exc_info=True)

    def _ensure_run(self, attempts: int) -> bool:
        """True when the run exists (creating it if it is still pending)."""
        if self.run_id is not None:
            return True
        if self._create_run is None:
            return False
        create = self._create_run
        created: list[str] = []
        result = self._attempt(lambda: created.append(create()), attempts)
        if result is None:
            # Refused for good (a deleted experiment...): `mlflow-green recover` will say why.
            self._create_run = None
        if not created:
            return False
        self.run_id = created[0]
        if self._on_run_created is not None:
            try:
                self._on_run_created(created[0])
            except Exception as exc:
                self._record_error(exc)
        return True

    @property
    def run_created(self) -> bool:
        return self.run_id is not None

    def _drain(self, *, attempts: int) -> None:
        """Send every pending step in order, then pending tags; stop at the first failure."""
        if not self._ensure_run(attempts):
            return
        with self._lock:
            steps = sorted(self._pending)
        for step in steps:
            with self._lock:
                points = self._pending.get(step)
            if points is None:
                continue
            if not self._send_epoch(step, points, attempts=attempts):
                return
            # The store answered: the backlog goes out with full attempts from now on.
            attempts = self._attempts
        with self._lock:
            tags = dict(self._pending_tags)
        run_id = self.run_id
        assert run_id is not None
        if tags and self._attempt(lambda: self._transport.log_batch(run_id, [], tags), attempts):
            with self._lock:
                for k, v in tags.items():
                    if self._pending_tags.get(k) == v:
                        del self._pending_tags[k]

    def _send_epoch(self, step: int, points: list[MetricPoint], *, attempts: int) -> bool:
        run_id = self.run_id
        assert run_id is not None  # _drain made sure

        def send() -> None:
            if step in self._uncertain and points:
                # A previous try may have landed: look before sending again.
                key = next((p.key for p in points if p.key.startswith(PREFIX)), points[0].key)
                if step in self._transport.logged_steps(run_id, key):
                    return
            self._uncertain.add(step)
            self._transport.log_batch(run_id, points, {})

        result = self._attempt(send, attempts)
        if result is None:
            # Refused for good (not transient): drop from the queue; the journal keeps it.
            with self._lock:
                self._pending.pop(step, None)
            return True
        if result:
            self._uncertain.discard(step)
            with self._lock:
                self._pending.pop(step, None)
                self._acked.append(step)
            if self._journal is not None:
                try:
                    self._journal.ack([step])
                except Exception as exc:
                    self._record_error(exc)
        return result

    def _attempt(self, fn: Callable[[], None], attempts: int) -> bool | None:
        """True on success, False when the store is unreachable, None when it refused."""
        for i in range(attempts):
            try:
                fn()
            except TransientError as exc:
                if i + 1 < attempts:
                    time.sleep(self._backoff_s * (2**i))
                    continue
                self._mark_unreachable(str(exc)[:200])
                return False
            except Exception as exc:
                if _looks_transient(exc):
                    if i + 1 < attempts:
                        time.sleep(self._backoff_s * (2**i))
                        continue
                    self._mark_unreachable(str(exc)[:200])
                    return False
                self._record_error(exc)
                return None
            self._healthy = True
            return True
        return False


def _looks_transient(exc: BaseException) -> bool:
    """Errors of a local store that a retry may cure (a locked SQLite file, a lost connection)."""
    text = str(exc).lower()
    return any(w in text for w in ("locked", "temporarily", "timeout", "timed out", "connection"))
