"""Environment variables of the public contract, read in one place.

Arguments beat environment beat defaults: callers pass their argument first and fall back
to these readers only when the argument is ``None``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from mlflow_green.errors import ConfigError

ENV_COUNTRY = "MLFLOW_GREEN_COUNTRY"
ENV_REGION = "MLFLOW_GREEN_REGION"
ENV_CLOUD_PROVIDER = "MLFLOW_GREEN_CLOUD_PROVIDER"
ENV_CLOUD_REGION = "MLFLOW_GREEN_CLOUD_REGION"
ENV_PUE = "MLFLOW_GREEN_PUE"
ENV_INTENSITY = "MLFLOW_GREEN_INTENSITY"
ENV_EM_TOKEN = "ELECTRICITYMAPS_API_TOKEN"
ENV_POLICY = "MLFLOW_GREEN_POLICY"
ENV_JOURNAL_DIR = "MLFLOW_GREEN_JOURNAL_DIR"
ENV_SAMPLER = "MLFLOW_GREEN_SAMPLER"
ENV_DISABLE = "MLFLOW_GREEN_DISABLE"
# Seconds between sends of epochs to MLflow (an addition to the contract; 0 = every epoch).
ENV_SEND_INTERVAL = "MLFLOW_GREEN_SEND_INTERVAL"
# Charge this process tree's share of shared devices: auto (default), on, off (an addition).
ENV_SHARE = "MLFLOW_GREEN_SHARE"
# Scope 2 market-based method and water (issue 19).
ENV_RENEWABLE_FRACTION = "MLFLOW_GREEN_RENEWABLE_FRACTION"
ENV_MARKET_INTENSITY = "MLFLOW_GREEN_MARKET_INTENSITY"
ENV_WUE = "MLFLOW_GREEN_WUE"
# Set by the test suite: errors that are normally swallowed (and degrade the run) are raised.
ENV_STRICT = "MLFLOW_GREEN_STRICT"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str) -> str | None:
    """The variable's value stripped, or None when unset or blank."""
    value = os.environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean: use 1/0, true/false, yes/no or on/off")


def env_float(name: str, *, minimum: float | None = None) -> float | None:
    raw = env_str(name)
    if raw is None:
        return None
    return parse_float(raw, name, minimum=minimum)


def parse_float(raw: object, what: str, *, minimum: float | None = None) -> float:
    """Parse a finite float, naming ``what`` in the error."""
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{what}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{what}={raw!r} must be a finite number")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{what}={raw!r} must be at least {minimum:g}")
    return value


def parse_fraction(raw: object, what: str) -> float:
    """Parse a share between 0 and 1 inclusive (``0.6``; ``60%`` is read as 0.6)."""
    text = raw.strip() if isinstance(raw, str) else raw
    percent = isinstance(text, str) and text.endswith("%")
    value = parse_float(text[:-1] if percent else text, what, minimum=0.0)  # type: ignore[index]
    if percent:
        value /= 100.0
    if value > 1.0:
        raise ConfigError(f"{what}={raw!r} must be a fraction between 0 and 1 (e.g. 0.6 or 60%)")
    return value


def strict() -> bool:
    """True when swallowed telemetry errors must raise (the test suite sets it)."""
    try:
        return env_bool(ENV_STRICT)
    except ConfigError:
        return False


def disabled() -> bool:
    try:
        return env_bool(ENV_DISABLE)
    except ConfigError:
        return False


def journal_dir() -> Path:
    """Where the crash-safe journal lives: MLFLOW_GREEN_JOURNAL_DIR or the user cache."""
    configured = env_str(ENV_JOURNAL_DIR)
    if configured:
        return Path(configured).expanduser()
    base = env_str("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return root / "mlflow-green" / "journal"
