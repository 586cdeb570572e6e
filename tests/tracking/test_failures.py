"""Errors are classified once, by type and MLflow error code, never by words of the message."""

from __future__ import annotations

import sqlite3

import pytest
import requests
import sqlalchemy.exc
from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2

from mlflow_green.tracking.failures import (
    TRANSIENT_MLFLOW_CODES,
    TransientError,
    is_transient,
    short_reason,
)


def _wrapped(inner: BaseException) -> MlflowException:
    """As MLflow's HTTP client does: an MlflowException raised while handling ``inner``."""
    try:
        try:
            raise inner
        except Exception as e:
            raise MlflowException(f"API request failed with exception {e}")  # noqa: B904
    except MlflowException as exc:
        return exc


TRANSIENT = [
    TransientError("x"),
    requests.ConnectionError("x"),
    requests.Timeout("x"),
    ConnectionRefusedError(111, "refused"),
    TimeoutError("t"),
    sqlite3.OperationalError("database is locked"),
    sqlalchemy.exc.OperationalError("stmt", {}, Exception("lost")),
    _wrapped(requests.ConnectionError("Max retries exceeded")),
    *[MlflowException("m", error_code=getattr(databricks_pb2, code)) for code in sorted(TRANSIENT_MLFLOW_CODES)],
]
PERMANENT = [
    ValueError("connection timeout locked temporarily"),  # the words alone mean nothing
    MlflowException("connection refused", error_code=databricks_pb2.INVALID_PARAMETER_VALUE),
    MlflowException("gone", error_code=databricks_pb2.RESOURCE_DOES_NOT_EXIST),
    MlflowException("no", error_code=databricks_pb2.PERMISSION_DENIED),
    FileNotFoundError(2, "no such file"),
    PermissionError(13, "denied"),
    RuntimeError("bug"),
    MlflowException("Run 'x' is not active"),  # MLflow's default code, INTERNAL_ERROR
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__ + ":" + str(getattr(e, "error_code", "")))
def test_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: type(e).__name__ + ":" + str(getattr(e, "error_code", "")))
def test_permanent(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_short_reason_names_the_cause_in_a_few_words() -> None:
    assert short_reason(ConnectionRefusedError(111, "Connection refused")) == "connection refused"
    assert short_reason(_wrapped(requests.ReadTimeout("read")), timeout_s=3) == "no answer within 3 s"
    assert len(short_reason(RuntimeError("x" * 1000))) <= 160
