"""The options of ``autolog``, ``epochs`` and ``GreenTracker``, validated once, eagerly."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from mlflow_green._settings import parse_float
from mlflow_green.errors import ConfigError

__all__ = [
    "DEFAULT_ACCURACY_METRICS",
    "DEFAULT_SEND_INTERVAL_S",
    "GreenConfig",
    "current_config",
    "set_current_config",
    "whole_number",
]

# Epochs that end within this many seconds of the last send go to MLflow together (one
# log_batch): short epochs then cost the store one call per interval, not one per epoch.
DEFAULT_SEND_INTERVAL_S = 5.0

# Looked up in this order when ``accuracy_metric`` is not given.
DEFAULT_ACCURACY_METRICS: tuple[str, ...] = (
    "eval_accuracy",
    "val_accuracy",
    "val_acc",
    "accuracy",
    "eval_acc",
    "val_acc_epoch",
    "val/accuracy",
    "val/acc",
    "acc",
)

_SAMPLER_SPEC = re.compile(r"^(auto|none|simulated:.+|replay:.+|[a-z][a-z0-9_+,-]*)$")
OnBudget = Literal["warn", "stop"]


@dataclass(frozen=True)
class GreenConfig:
    """Every option of autolog; ``None`` means "from the environment, else the default"."""

    silent: bool = False
    sampler: str | None = None
    # This job's share of shared devices: auto/on/off (True/False); None: MLFLOW_GREEN_SHARE.
    share: bool | str | None = None
    country: str | None = None
    region: str | None = None
    cloud_provider: str | None = None
    cloud_region: str | None = None
    intensity: float | None = None
    pue: float | str | None = None
    embodied_profile: str | None = None
    device_embodied_kg: float | None = None
    node_embodied_kg: float | None = None
    devices_per_node: int | None = None
    lifetime_years: float | None = None
    accuracy_metric: str | tuple[str, ...] | None = None
    budget_kg: float | None = None
    on_budget: OnBudget = "warn"
    log_every_n_epochs: int = 1
    report: bool = True
    poll_interval_s: float = 0.1
    # Seconds between sends to MLflow: epochs ending closer together go in one batch (every
    # epoch keeps its own step). None: MLFLOW_GREEN_SEND_INTERVAL, else 5 s. 0 sends each
    # epoch as it ends. Closing the run always sends everything at once.
    send_interval_s: float | None = None
    # Path to the Ed25519 private key that signs the run (attestation); None:
    # MLFLOW_GREEN_SIGNING_KEY, else unsigned.
    signing_key: str | None = None
    # Issue 19: Scope 2 market-based emissions, water, SCI-for-AI units (tracking/impact.py).
    renewable_fraction: float | str | None = None
    market_intensity: float | None = None
    wue: float | str | None = None
    parameters: Any = None  # a count, or a torch module whose parameters are counted

    @classmethod
    def create(cls, **options: Any) -> GreenConfig:
        """Build and validate; unknown names and bad values raise ConfigError."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(names))}"
            )
        return cls(**options).validated()

    def with_options(self, **options: Any) -> GreenConfig:
        """A copy with some options replaced (``None`` values keep the current ones)."""
        given = {k: v for k, v in options.items() if v is not None}
        names = {f.name for f in fields(self)}
        unknown = sorted(set(given) - names)
        if unknown:
            raise ConfigError(f"unknown option(s) {', '.join(unknown)}")
        return replace(self, **given).validated()

    def validated(self) -> GreenConfig:
        changes: dict[str, Any] = {}
        if self.on_budget not in ("warn", "stop"):
            raise ConfigError(f"on_budget={self.on_budget!r}: use 'warn' or 'stop'")
        if self.budget_kg is not None:
            budget = parse_float(self.budget_kg, "budget_kg")
            if budget <= 0:
                raise ConfigError(f"budget_kg={self.budget_kg!r} must be greater than 0 (kg CO2eq)")
            changes["budget_kg"] = budget
        if isinstance(self.log_every_n_epochs, bool) or not isinstance(self.log_every_n_epochs, int):
            raise ConfigError(
                f"log_every_n_epochs={self.log_every_n_epochs!r} must be a whole number of epochs >= 1"
            )
        if self.log_every_n_epochs < 1:
            raise ConfigError(f"log_every_n_epochs={self.log_every_n_epochs} must be at least 1")
        if self.intensity is not None:
            changes["intensity"] = parse_float(self.intensity, "intensity", minimum=0)
        for name in ("device_embodied_kg", "node_embodied_kg", "lifetime_years"):
            value = getattr(self, name)
            if value is not None:
                changes[name] = parse_float(value, name, minimum=0)
        if self.lifetime_years is not None and changes["lifetime_years"] == 0:
            raise ConfigError("lifetime_years must be greater than 0")
        if self.devices_per_node is not None:
            dpn = parse_float(self.devices_per_node, "devices_per_node", minimum=1)
            if dpn != int(dpn):
                raise ConfigError(f"devices_per_node={self.devices_per_node!r} must be a whole number")
            changes["devices_per_node"] = int(dpn)
        if self.sampler is not None:
            spec = str(self.sampler).strip()
            if not spec or not _SAMPLER_SPEC.match(spec):
                raise ConfigError(
                    f"sampler={self.sampler!r}: use 'auto', 'none', 'simulated:<watts>[x<devices>]' "
                    "or 'replay:<path>'"
                )
            changes["sampler"] = spec
        if self.share is not None:
            from mlflow_green.samplers.share import share_mode

            changes["share"] = share_mode(self.share)
        if self.signing_key is not None and not isinstance(self.signing_key, str):
            changes["signing_key"] = str(self.signing_key)  # a PathLike
        if self.accuracy_metric is not None:
            metric = self.accuracy_metric
            if isinstance(metric, str):
                names: tuple[str, ...] = (metric,)
            elif isinstance(metric, Sequence):
                names = tuple(str(m) for m in metric)
            else:
                raise ConfigError(f"accuracy_metric={metric!r} must be a metric name or a list of them")
            if not names or not all(n.strip() for n in names):
                raise ConfigError("accuracy_metric must name at least one metric")
            changes["accuracy_metric"] = names[0] if len(names) == 1 else names
        interval = parse_float(self.poll_interval_s, "poll_interval_s")
        if interval <= 0:
            raise ConfigError("poll_interval_s must be greater than 0")
        if self.send_interval_s is not None:
            changes["send_interval_s"] = parse_float(self.send_interval_s, "send_interval_s", minimum=0)
        from mlflow_green.tracking.impact import validated_options

        changes.update(validated_options(self))
        return replace(self, **changes) if changes else self

    @property
    def resolved_send_interval_s(self) -> float:
        """``send_interval_s``, else ``MLFLOW_GREEN_SEND_INTERVAL``, else the default (5 s)."""
        if self.send_interval_s is not None:
            return float(self.send_interval_s)
        from mlflow_green._settings import ENV_SEND_INTERVAL, env_float

        value = env_float(ENV_SEND_INTERVAL, minimum=0)
        return DEFAULT_SEND_INTERVAL_S if value is None else value

    @property
    def accuracy_metrics(self) -> tuple[str, ...]:
        """The metric names read as accuracy, in order of preference."""
        if self.accuracy_metric is None:
            return DEFAULT_ACCURACY_METRICS
        if isinstance(self.accuracy_metric, str):
            return (self.accuracy_metric,)
        return tuple(self.accuracy_metric)

    def pick_accuracy(self, metrics: dict[str, Any] | None) -> tuple[str, float] | None:
        """The first accuracy metric present in ``metrics`` as (name, value)."""
        if not metrics:
            return None
        for name in self.accuracy_metrics:
            if name in metrics:
                value = _as_float(metrics[name])
                if value is not None:
                    return name, value
        return None


def _as_float(value: Any) -> float | None:
    try:
        if hasattr(value, "item"):  # a 0-d tensor or numpy scalar
            value = value.item()
        return float(value)
    except (TypeError, ValueError):
        return None


# The options of the last ``autolog()`` call: the defaults of every tracker, callback and
# ``epochs()`` loop. Kept here (not in autolog) so that the adapters do not import autolog.
_CURRENT: list[GreenConfig] = []


def whole_number(value: Any, what: str, minimum: int) -> int | None:
    """``value`` as an int (None stays None); a ConfigError unless a whole number >= ``minimum``."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value != int(value)
        or value < minimum
    ):
        raise ConfigError(f"{what}={value!r} must be a whole number >= {minimum}")
    return int(value)


def current_config() -> GreenConfig:
    """The configuration of the last ``autolog()`` call (defaults before any call)."""
    return _CURRENT[-1] if _CURRENT else GreenConfig()


def set_current_config(config: GreenConfig | None) -> None:
    """Make ``config`` the defaults (None: back to the built-in defaults)."""
    _CURRENT[:] = [] if config is None else [config]
