from __future__ import annotations

import pytest

from mlflow_green.accounting import named_pues, pue_info, resolve_pue
from mlflow_green.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 1.0), (1.3, 1.3), ("1.3", 1.3), ("gcp", 1.10), ("Google", 1.10), ("aws", 1.15),
     ("azure", 1.18), ("microsoft", 1.18), ("on-prem", 1.58), ("uptime", 1.58), (1, 1.0)],
)
def test_resolve_pue(value: float | str | None, expected: float) -> None:
    assert resolve_pue(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", [0.9, "0.5", "nan", "inf", "-1", "gpc", "12", ""])
def test_bad_pue_is_a_config_error(value: float | str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_pue(value)
    assert "\n" not in str(info.value)


def test_argument_beats_environment_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_pue() == 1.0
    monkeypatch.setenv("MLFLOW_GREEN_PUE", "aws")
    assert resolve_pue() == pytest.approx(1.15)
    assert resolve_pue(1.2) == 1.2
    monkeypatch.setenv("MLFLOW_GREEN_PUE", "0.8")
    with pytest.raises(ConfigError, match="MLFLOW_GREEN_PUE"):
        resolve_pue()


def test_named_values_are_cited() -> None:
    names = {v.name for v in named_pues()}
    assert names == {"gcp", "aws", "azure", "on-prem"}
    for value in named_pues():
        assert value.source.startswith(("Google", "AWS", "Microsoft", "Uptime"))
        assert value.year >= 2020
    assert pue_info("GCP").name == "gcp"
