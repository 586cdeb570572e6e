"""The epoch pipeline's seams: where an epoch gets its metrics, and where it passes on its way out.

An epoch goes, on the training thread::

    meter window ─▶ EpochEnergy (energy_of) ─▶ [ranks summed] ─▶ Ledger.add ─▶ EpochRecord
        ─▶ budget check ─▶ metrics = record.metrics() + every MetricContributor's metrics
        ─▶ every EpochObserver sees the FinishedEpoch ─▶ EpochSink (journal, then sender)

Two hooks let another part of the package add to it without editing the tracker:

- :func:`register_metric_contributor` — a function ``(EpochContext) -> Mapping[str, float]``
  whose metrics join the epoch's batch (market-based CO2eq, water...). It is called on global
  rank 0 only, for every epoch (the partial last one included), after the budget check; its
  keys must be new ``green/`` keys of the contract (a key already in the batch is refused).
  The context carries the record, the run's location, intensity source and configuration.
- :func:`register_epoch_observer` — a function ``(FinishedEpoch) -> None`` that sees each
  finished epoch exactly as it will be journaled and sent (step, final metrics, timestamp),
  in step order, before the journal write: a signer can hash it into a chain. Observers may
  not change the metrics.

A hook that raises degrades the run (``green.status``) and is skipped for that epoch; under
``MLFLOW_GREEN_STRICT=1`` it raises. Hooks are process-wide; registering returns a function
that unregisters.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlflow_green.tracking.record import EpochEnergy, EpochRecord

if TYPE_CHECKING:
    from mlflow_green.accounting import IntensitySource, Location
    from mlflow_green.samplers._base import Measurement
    from mlflow_green.tracking.config import GreenConfig

__all__ = [
    "EpochContext",
    "EpochObserver",
    "FinishedEpoch",
    "IntensityClock",
    "MetricContributor",
    "contributed_metrics",
    "energy_of",
    "notify_observers",
    "register_epoch_observer",
    "register_metric_contributor",
]


@dataclass(frozen=True)
class EpochContext:
    """What a :data:`MetricContributor` may use to compute an epoch's extra metrics."""

    record: EpochRecord
    run_id: str | None
    location: Location | None
    intensity_source: IntensitySource | None
    config: GreenConfig


@dataclass(frozen=True)
class FinishedEpoch:
    """An epoch as it goes to the journal and to MLflow: ``metrics`` logged at ``step``."""

    step: int
    metrics: Mapping[str, float]
    timestamp_ms: int
    run_id: str | None
    journal_id: str | None


MetricContributor = Callable[[EpochContext], Mapping[str, float]]
EpochObserver = Callable[[FinishedEpoch], None]

_LOCK = threading.Lock()
_CONTRIBUTORS: list[MetricContributor] = []
_OBSERVERS: list[EpochObserver] = []


def _register(items: list[Any], fn: Any) -> Callable[[], None]:
    with _LOCK:
        items.append(fn)

    def unregister() -> None:
        with _LOCK:
            if fn in items:
                items.remove(fn)

    return unregister


def register_metric_contributor(fn: MetricContributor) -> Callable[[], None]:
    """Add ``fn``'s metrics to every epoch's batch; returns the function that removes it."""
    return _register(_CONTRIBUTORS, fn)


def register_epoch_observer(fn: EpochObserver) -> Callable[[], None]:
    """Show every finished epoch to ``fn``; returns the function that removes it."""
    return _register(_OBSERVERS, fn)


def contributed_metrics(
    context: EpochContext, metrics: dict[str, float], on_error: Callable[[str, Exception], None]
) -> None:
    """Add every contributor's metrics to ``metrics`` (in place)."""
    with _LOCK:
        contributors = list(_CONTRIBUTORS)
    for fn in contributors:
        try:
            extra = {str(k): float(v) for k, v in fn(context).items()}
            clash = sorted(set(extra) & set(metrics))
            if clash:
                raise ValueError(f"metric(s) {', '.join(clash)} already in the epoch's batch")
        except Exception as exc:
            on_error(f"metric contributor {getattr(fn, '__name__', fn)!s}", exc)
            continue
        metrics.update(extra)


def notify_observers(epoch: FinishedEpoch, on_error: Callable[[str, Exception], None]) -> None:
    """Show ``epoch`` to every observer."""
    with _LOCK:
        observers = list(_OBSERVERS)
    for fn in observers:
        try:
            fn(epoch)
        except Exception as exc:
            on_error(f"epoch observer {getattr(fn, '__name__', fn)!s}", exc)


def energy_of(measurement: Measurement) -> EpochEnergy:
    """The energy of one measured window, as the ledger takes it."""
    gpu = measurement.gpu
    return EpochEnergy(
        start_unix_s=measurement.start_unix_s,
        duration_s=measurement.duration_s,
        gpu_energy_kwh=gpu.energy_kwh,
        cpu_energy_kwh=measurement.cpu.energy_kwh,
        ram_energy_kwh=measurement.ram.energy_kwh,
        gpu_power_w=gpu.mean_power_w,
        per_device_kwh=tuple(gpu.per_device_kwh),
        gpu_count=len(gpu.per_device_kwh) or len(gpu.device_names),
    )


class IntensityClock:
    """The grid intensity at each epoch's midpoint, asked of the run's intensity source.

    A source that is the same at every hour is asked once. When the source fails, the
    previous value is kept and ``on_problem`` is told (the run is degraded); under
    ``MLFLOW_GREEN_STRICT=1`` the error is raised.
    """

    def __init__(self, source: IntensitySource, on_problem: Callable[[str], None]) -> None:
        self.source = source
        self._on_problem = on_problem
        self._constant: float | None = None
        self._last: float | None = None

    def at(self, energy: EpochEnergy) -> float:
        """gCO2eq/kWh at the middle of the epoch whose energy this is."""
        from mlflow_green import _settings
        from mlflow_green.errors import IntensityError

        if self._constant is not None:
            return self._constant
        midpoint = energy.start_unix_s + energy.duration_s / 2
        at = _dt.datetime.fromtimestamp(midpoint, tz=_dt.timezone.utc)
        try:
            answer = self.source.intensity(at)
            value = float(answer.g_per_kwh)
            problem = getattr(answer, "problem", None)
            if problem:
                self._on_problem(f"carbon intensity fallback ({problem})")
        except (IntensityError, OSError) as exc:
            if _settings.strict():
                raise
            self._on_problem(f"carbon intensity unavailable ({exc}); previous value kept")
            if self._last is None:
                self._last = float(self.source.intensity(None).g_per_kwh)
            return self._last
        self._last = value
        if getattr(self.source, "time_varying", True) is False and not problem:
            self._constant = value  # the same at every hour: not asked again
        return value
