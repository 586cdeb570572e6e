"""One classification of the errors met at a transport edge: transient or permanent.

Every place that talks to a tracking store (the sender thread, the run session, recovery, the
CLI) asks :func:`is_transient` once, where the call failed, instead of matching words in the
message. The decision is made from the exception's *type* and, for ``MlflowException``, its
error code; the chain of causes is followed (MLflow's HTTP client wraps the ``requests`` error
it met in an ``MlflowException`` raised inside the ``except`` block, so it is the context):

- transient (a retry, later, may succeed): network errors (``requests``' ``ConnectionError`` and
  ``Timeout``, ``OSError`` such as a refused connection or a socket timeout), a database that is
  locked or lost its connection (SQLAlchemy's ``OperationalError``/``DisconnectionError``,
  ``sqlite3.OperationalError``), :class:`TransientError`, and an ``MlflowException`` whose code
  says so (``TEMPORARILY_UNAVAILABLE`` — MLflow's SQL store wraps a locked or lost database in
  it —, ``REQUEST_LIMIT_EXCEEDED``, ``DEADLINE_EXCEEDED``, ``ABORTED``);
- permanent: anything else (a refused batch, a missing run, bad input, a bug). MLflow's
  default code ``INTERNAL_ERROR`` is not a sign of a transient fault by itself (MLflow raises
  it for many refusals); a server's 5xx answer is classified by the REST transport, which
  sees the status.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

__all__ = ["TRANSIENT_MLFLOW_CODES", "TransientError", "is_transient", "short_reason"]

# MLflow error codes (``mlflow.protos.databricks_pb2`` names) that a later retry may cure.
TRANSIENT_MLFLOW_CODES = frozenset(
    {
        "TEMPORARILY_UNAVAILABLE",
        "REQUEST_LIMIT_EXCEEDED",
        "DEADLINE_EXCEEDED",
        "ABORTED",
    }
)


class TransientError(Exception):
    """The tracking store could not be reached, or answered with a retryable status."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes/contexts, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _transient_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [TransientError, OSError, sqlite3.OperationalError]
    try:
        import requests

        types += [requests.ConnectionError, requests.Timeout]
    except ImportError:  # pragma: no cover - requests comes with MLflow
        pass
    try:
        import sqlalchemy.exc as sa_exc

        types += [sa_exc.OperationalError, sa_exc.DisconnectionError, sa_exc.TimeoutError]
    except ImportError:  # pragma: no cover - MLflow without its SQL extras
        pass
    return tuple(types)


def _mlflow_transient(exc: BaseException) -> bool:
    """An ``MlflowException`` whose error code says a retry may cure it."""
    try:
        from mlflow.exceptions import MlflowException
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, MlflowException) and str(exc.error_code) in TRANSIENT_MLFLOW_CODES


def is_transient(exc: BaseException) -> bool:
    """True when a later retry of the failed call may succeed (see the module docstring)."""
    types = _transient_types()
    for link in _chain(exc):
        # A file the store cannot find or may not open is not cured by waiting.
        if isinstance(link, (FileNotFoundError, PermissionError, IsADirectoryError)):
            return False
        if isinstance(link, types):
            return True
        if _mlflow_transient(link):
            return True
    return False


def short_reason(exc: BaseException, *, timeout_s: float | None = None) -> str:
    """A few words for a network failure (``requests``' messages run to several hundred chars)."""
    for link in _chain(exc):
        name = type(link).__name__
        if isinstance(link, ConnectionRefusedError) or (name == "NewConnectionError" and (
            "refused" in str(link).lower()
        )):
            return "connection refused"
        if isinstance(link, TimeoutError) or name in ("Timeout", "ReadTimeout", "ConnectTimeout"):
            return f"no answer within {timeout_s:g} s" if timeout_s else "timed out"
        if name == "NameResolutionError" or (isinstance(link, OSError) and link.errno in (-2, -3)):
            return "host name not resolved"
        if name in ("SSLError", "SSLCertVerificationError"):
            return "TLS error"
    text = f"{type(exc).__name__}: {exc}"
    low = text.lower()
    # requests folds the root cause into the message of a wrapping error; the classification
    # above has already been made by type, this is only the wording.
    if "refused" in low:
        return "connection refused"
    if "timed out" in low:
        return f"no answer within {timeout_s:g} s" if timeout_s else "timed out"
    return " ".join(text.split())[:160]
