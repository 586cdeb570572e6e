"""Power usage effectiveness: facility energy / IT energy.

``resolve_pue(value)``: the argument, else ``MLFLOW_GREEN_PUE``, else 1.0 (no facility
overhead assumed — the honest default when the data centre is unknown is to count what was
measured, and to say so in the ``green.pue`` tag). Named values are published fleet averages:
``gcp``, ``aws``, ``azure`` and ``on-prem`` (Uptime Institute's industry average), each with its
source and year in ``data/pue.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from mlflow_green import _settings
from mlflow_green.accounting import _data
from mlflow_green.errors import ConfigError

__all__ = ["DEFAULT_PUE", "MAX_PUE", "PueValue", "named_pues", "pue_info", "resolve_pue"]

DEFAULT_PUE = 1.0
# Uptime Institute's surveys put even old enterprise rooms near 2.5; above 5 is a typo.
MAX_PUE = 5.0


@dataclass(frozen=True)
class PueValue:
    """A named, published PUE and where it comes from."""

    name: str
    pue: float
    year: int
    source: str


@cache
def _named() -> dict[str, PueValue]:
    out: dict[str, PueValue] = {}
    for row in _data.rows("pue.csv"):
        value = PueValue(row["name"], float(row["pue"]), int(row["year"]), row["source"])
        for alias in [row["name"], *row["aliases"].split()]:
            out[alias.lower()] = value
    return out


def named_pues() -> tuple[PueValue, ...]:
    """The published values that can be selected by name."""
    seen: dict[str, PueValue] = {}
    for value in _named().values():
        seen.setdefault(value.name, value)
    return tuple(seen.values())


def pue_info(name: str) -> PueValue:
    """The published PUE named ``name`` (``gcp``, ``google``, ``aws``, ``azure``, ``on-prem``...)."""
    value = _named().get(name.strip().lower())
    if value is None:
        names = [v.name for v in named_pues()]
        raise ConfigError(
            f"unknown PUE {name!r}{_data.hint(name, list(_named()))}: give a number >= 1 or one of {', '.join(names)}"
        )
    return value


def _validate(value: float, raw: object, what: str) -> float:
    if value < 1.0:
        raise ConfigError(f"{what}={raw!r} is below 1: PUE is facility energy / IT energy, so it is at least 1.0")
    if value > MAX_PUE:
        raise ConfigError(f"{what}={raw!r} is implausibly high: give a PUE between 1.0 and {MAX_PUE:g}")
    return value


def resolve_pue(value: float | str | None = None) -> float:
    """The PUE to apply: ``value`` (a number or a published name) > ``MLFLOW_GREEN_PUE`` > 1.0."""
    what = "pue"
    if value is None:
        value = _settings.env_str(_settings.ENV_PUE)
        what = _settings.ENV_PUE
        if value is None:
            return DEFAULT_PUE
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            try:
                return pue_info(value).pue
            except ConfigError as exc:
                if what == "pue":
                    raise
                raise ConfigError(f"{what}: {exc}") from None
        value_f = _settings.parse_float(number, what)
        return _validate(value_f, value, what)
    return _validate(_settings.parse_float(value, what), value, what)
