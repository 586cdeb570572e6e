"""GreenConfig: options, validation and what the environment supplies."""

from __future__ import annotations

import pytest

from mlflow_green.errors import ConfigError
from mlflow_green.tracking.config import DEFAULT_SEND_INTERVAL_S, GreenConfig


def test_send_interval_comes_from_the_option_then_the_environment_then_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLFLOW_GREEN_SEND_INTERVAL", raising=False)
    assert GreenConfig.create().resolved_send_interval_s == DEFAULT_SEND_INTERVAL_S
    monkeypatch.setenv("MLFLOW_GREEN_SEND_INTERVAL", "0")
    assert GreenConfig.create().resolved_send_interval_s == 0.0
    assert GreenConfig.create(send_interval_s=2.5).resolved_send_interval_s == 2.5


@pytest.mark.parametrize("value", [-1, "soon", float("nan")])
def test_a_bad_send_interval_is_one_clear_error(value: object) -> None:
    with pytest.raises(ConfigError, match="send_interval_s"):
        GreenConfig.create(send_interval_s=value)


def test_a_bad_send_interval_in_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_GREEN_SEND_INTERVAL", "-3")
    with pytest.raises(ConfigError, match="MLFLOW_GREEN_SEND_INTERVAL"):
        _ = GreenConfig.create().resolved_send_interval_s


def test_unknown_options_are_named_with_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown option.*send_intervall.*valid options:.*send_interval_s"):
        GreenConfig.create(send_intervall=1)
