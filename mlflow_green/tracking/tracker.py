"""``GreenTracker``: measurement windows per epoch, accounting, journal and logging of one run.

The framework adapters (Hugging Face, Lightning) and the plain-loop ``epochs(n)`` iterator
are thin wrappers around it. Only global rank 0 talks to MLflow; the other ranks of a
distributed job measure their own GPU and take part in the per-epoch sum.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

from mlflow_green import _settings
from mlflow_green.errors import ConfigError, GreenError
from mlflow_green.tracking import schema
from mlflow_green.tracking.config import GreenConfig
from mlflow_green.tracking.distributed import (
    DistInfo,
    broadcast_flag,
    dist_info,
    local_gpu_index,
    reduce_epoch,
    reduce_hardware,
)
from mlflow_green.tracking.record import EpochEnergy, EpochRecord, EpochTable, Ledger

__all__ = [
    "Epochs",
    "GreenTracker",
    "abandon",
    "active_tracker",
    "epochs",
    "guarded",
    "report_accuracy",
]

_log = logging.getLogger("mlflow_green")
T = TypeVar("T")

_ACTIVE: list[GreenTracker] = []
_EMPTY_TABLE = EpochTable()
_ACTIVE_LOCK = threading.Lock()


def active_tracker() -> GreenTracker | None:
    """The innermost tracker currently measuring, if any."""
    with _ACTIVE_LOCK:
        return _ACTIVE[-1] if _ACTIVE else None


def report_accuracy(value: float) -> None:
    """Tell the running tracker the model's latest accuracy (used for ``green/accuracy_per_kg``).

    Call it inside ``for epoch in mlflow_green.epochs(n):`` (or while a ``GreenTracker`` is
    open), typically after evaluating; the value applies to the epoch in progress.
    """
    tracker = active_tracker()
    if tracker is None:
        if _settings.disabled():
            return
        raise ConfigError(
            "report_accuracy() needs a running tracker: call it inside "
            "'for epoch in mlflow_green.epochs(n)' or a GreenTracker block"
        )
    tracker.log_accuracy(value)


def _config_from(config: GreenConfig | None, options: dict[str, Any]) -> GreenConfig:
    if config is None:
        from mlflow_green.tracking.autolog import current_config

        config = current_config()
    return config.with_options(**options) if options else config


class GreenTracker:
    """Measures a training run epoch by epoch and logs the ``green/`` metrics to MLflow.

    Use it as a context manager around the training loop and call :meth:`epoch_end` after
    each epoch (``meter=`` takes an :class:`~mlflow_green.meter.EnergyMeter` over samplers
    of your own; by default one is built from ``sampler=``)::

        with mlflow_green.GreenTracker(total_epochs=10) as tracker:
            for epoch in range(10):
                train_one_epoch()
                tracker.epoch_end({"val_acc": evaluate()})
                if tracker.should_stop:
                    break

    It attaches to the active MLflow run, or starts one (and ends it) when none is active.
    When the tracking server does not answer at start, training starts anyway: ``run_id`` is
    None, every epoch is journaled under ``journal_id`` (``pending-...``), ``green.status``
    says so, and the run is created as soon as the server answers (then ``run_id`` is set)
    or later by ``mlflow-green recover``.
    Options are those of :func:`mlflow_green.autolog` (``sampler=``, ``country=``,
    ``budget_kg=``...); options not given come from the last ``autolog()`` call, then from
    the environment.
    """

    def __init__(
        self,
        total_epochs: int | None = None,
        *,
        config: GreenConfig | None = None,
        run_id: str | None = None,
        run_name: str | None = None,
        tracking_uri: str | None = None,
        read_run_accuracy: bool = True,
        auto_begin: bool = True,
        meter: Any | None = None,
        **options: Any,
    ) -> None:
        if total_epochs is not None:
            if (
                isinstance(total_epochs, bool)
                or not isinstance(total_epochs, (int, float))
                or total_epochs != int(total_epochs)
                or total_epochs < 1
            ):
                raise ConfigError(f"total_epochs={total_epochs!r} must be a whole number >= 1")
            total_epochs = int(total_epochs)
        self.config = _config_from(config, options)
        self.total_epochs = total_epochs
        self._requested_run_id = run_id
        self._run_name = run_name
        self._requested_tracking_uri = tracking_uri
        self._read_run_accuracy = read_run_accuracy
        self._auto_begin = auto_begin
        self.run_id: str | None = None
        # The journal's name: the run id, or a ``pending-...`` id while the run does not exist
        # (the tracking server was down at start).
        self.journal_id: str | None = None
        self._pending_run: Any = None
        self.tracking_uri: str | None = None
        self.should_stop = False
        self.stop_reason: str | None = None
        self.status = schema.STATUS_OK
        self._started = False
        self._closed = False
        self._started_run = False
        self._window_open = False
        self._window_name = ""
        self._accuracy: float | None = None
        self._accuracy_key: str | None = None
        # True when the accuracy was given during the current epoch (not read back from the run).
        self._accuracy_fresh = False
        # Set when an accuracy was given (report_accuracy, accuracy=, the user's metrics) or
        # read back from the run by the logger thread (the metric's name).
        self._accuracy_given = False
        self._run_accuracy_key: str | None = None
        # Epochs handed to the logger with "read the accuracy back from the run".
        self._accuracy_deferred = False
        self._warned: set[str] = set()
        self._problems: list[str] = []
        # Epochs journaled, not yet handed to the logger (log_every_n_epochs > 1):
        # (step, journal end offset) or (step, None, (metrics, timestamp_ms, resolve)).
        self._pending_batch: list[tuple[Any, ...]] = []
        self._meter: Any = meter
        self._ledger: Ledger | None = None
        self._journal: Any = None
        self._logger: Any = None
        self._intensity_source: Any = None
        self._constant_intensity: float | None = None
        self._last_intensity: float | None = None
        self._tags: dict[str, str] = {}
        self._dist = DistInfo()
        self._hardware: Any = None
        # MLFLOW_GREEN_DISABLE=1 turns every tracker into a no-op, the loop runs as is.
        self.enabled = not _settings.disabled()

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> GreenTracker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failed = exc_type is not None and exc_type is not GeneratorExit
        # A crash mid-epoch still spent the energy of that epoch: account for it.
        self.close(status="FAILED" if failed else "FINISHED", record_partial=failed)

    @property
    def records(self) -> EpochTable:
        """Every epoch's record so far (a compact table; indexing gives :class:`EpochRecord`)."""
        return self._ledger.records if self._ledger is not None else _EMPTY_TABLE

    @property
    def is_logging(self) -> bool:
        """True on the process that writes to MLflow (global rank 0)."""
        return self._dist.is_global_zero

    def start(self) -> GreenTracker:
        """Open the meter, resolve the run and the accounting inputs; idempotent."""
        if self._started:
            return self
        self._started = True
        if not self.enabled:
            return self
        self._dist = dist_info()
        self._open_meter()
        self._resolve_accounting()
        if self.is_logging:
            self._open_run()
        with _ACTIVE_LOCK:
            _ACTIVE.append(self)
        if self._dist.has_group:
            # Rank 0 spent a while opening the run, and its logger thread is sending the
            # provenance tags (holding the interpreter lock): let that finish (bounded), then
            # line the ranks up and open the first window on every rank right after, so that
            # their first windows cover the same time.
            if self._logger is not None:
                self._logger.flush(timeout_s=5.0)
            broadcast_flag(False, self._dist)
        if self._auto_begin:
            self.begin_epoch()
        return self

    def _open_meter(self) -> None:
        from mlflow_green.meter import EnergyMeter

        if self._meter is not None:  # given by the caller (a custom sampler set)
            self._meter.start()
            self._hardware = self._meter.hardware
            return

        components: tuple[str, ...] = ("gpu", "cpu", "ram")
        gpu_indices: list[int] | None = None
        if self._dist.world_size > 1:
            # One process per GPU: measure ours only; CPU and RAM once per node.
            gpu_indices = [local_gpu_index(self._dist)]
            from mlflow_green.samplers import parse_spec

            spec = parse_spec(self.config.sampler)
            if spec.kind == "simulated" and gpu_indices[0] >= spec.devices:
                # 'simulated:300' under torchrun: each process simulates the GPU it drives.
                gpu_indices = None
            if not self._dist.is_local_zero:
                components = ("gpu",)
            if not self._dist.has_group:
                self._degrade(
                    "torch.distributed is not initialised: energy of the other ranks is not included"
                )
        try:
            self._meter = EnergyMeter.from_spec(
                self.config.sampler,
                components=components,
                gpu_indices=gpu_indices,
                poll_interval_s=self.config.poll_interval_s,
            )
        except GreenError as exc:
            if _settings.strict():
                raise
            self._degrade(f"no energy measurement ({exc})")
            self._meter = EnergyMeter.from_spec("none", components=components)
        self._meter.start()
        self._hardware = self._meter.hardware

    def _resolve_accounting(self) -> None:
        import mlflow_green.accounting as acct

        cfg = self.config
        location = acct.resolve_location(
            country=cfg.country,
            region=cfg.region,
            cloud_provider=cfg.cloud_provider,
            cloud_region=cfg.cloud_region,
        )
        self._location = location
        self._constant_intensity = None
        self._intensity_source = acct.intensity_source(
            location, fixed=cfg.intensity, token=_settings.env_str(_settings.ENV_EM_TOKEN)
        )
        self._pue = float(acct.resolve_pue(cfg.pue))
        gpu_count_local = int(getattr(self._hardware, "gpu_count", 0) or 0)
        gpu_count = reduce_hardware(gpu_count_local, self._dist)
        self._gpu_count = gpu_count
        gpu_model = getattr(self._hardware, "gpu_model", None)
        self._embodied = acct.embodied_config(
            gpu_model,
            gpu_count=max(gpu_count, 0),
            profile=cfg.embodied_profile,
            device_embodied_kg=cfg.device_embodied_kg,
            node_embodied_kg=cfg.node_embodied_kg,
            devices_per_node=cfg.devices_per_node,
            lifetime_years=cfg.lifetime_years,
            cpu_threads=_usable_cpus(),
        )
        self._ledger = Ledger(pue=self._pue, embodied=self._embodied, total_epochs=self.total_epochs)

    def _open_run(self) -> None:
        import mlflow

        from mlflow_green.tracking.journal import OWNER_EXTERNAL, OWNER_PROCESS, OWNER_TRACKER
        from mlflow_green.tracking.logger import short_reason, unreachable

        self.tracking_uri = self._requested_tracking_uri or mlflow.get_tracking_uri()
        experiment_id: str | None = None
        if self._requested_run_id is not None:
            self.run_id = self._requested_run_id
            owner = OWNER_EXTERNAL
            # The run exists; with its server down the epochs wait in the journal.
            if unreachable(self.tracking_uri) is None:
                try:
                    with _short_http(timeout_s=10):
                        client = mlflow.MlflowClient(self.tracking_uri)
                        experiment_id = client.get_run(self.run_id).info.experiment_id
                except Exception as exc:
                    if not _looks_network(exc):
                        raise
        else:
            active = mlflow.active_run()
            owner = OWNER_PROCESS
            if active is None:
                # MLflow's client retries for minutes against a dead server: look first, and
                # open the run with MLflow's retries off. Training never waits for the server.
                why = unreachable(self.tracking_uri)
                if why is None:
                    try:
                        with _short_http(timeout_s=10):
                            active = mlflow.start_run(run_name=self._run_name)
                    except Exception as exc:
                        if not _looks_network(exc):
                            raise
                        why = short_reason(exc, timeout_s=10)
                if active is None:
                    self._open_pending_run(why or "no answer")
                    return
                self._started_run = True
                owner = OWNER_TRACKER
            self.run_id = active.info.run_id
            experiment_id = active.info.experiment_id
        self._open_journal_and_logger(self.run_id, experiment_id=experiment_id, owner=owner)
        self._set_tags(self._provenance_tags())

    def _open_journal_and_logger(
        self,
        journal_id: str,
        *,
        experiment_id: str | None,
        owner: str,
        pending: Any = None,
    ) -> None:
        from mlflow_green.tracking.journal import Journal
        from mlflow_green.tracking.logger import AsyncLogger, make_transport

        assert self.tracking_uri is not None
        self.journal_id = journal_id
        try:
            self._journal = Journal.open(
                journal_id,
                tracking_uri=self.tracking_uri,
                experiment_id=experiment_id,
                owner=owner,
                pending_run=pending.to_json() if pending is not None else None,
            )
        except OSError as exc:
            if _settings.strict():
                raise
            self._degrade(f"journal not writable ({exc})")
        transport = make_transport(self.tracking_uri)
        create_run = None
        if pending is not None:
            journal = self._journal

            def create_run() -> str:
                from mlflow_green.tracking.pending import create_pending_run

                run_id = create_pending_run(pending, transport)
                if journal is not None:
                    journal.created(run_id)  # before anything is sent to it
                return run_id

        self._logger = AsyncLogger(
            self.run_id,
            transport,
            journal=self._journal,
            on_problem=self._logger_problem,
            create_run=create_run,
            on_run_created=self._run_created,
            accuracy_keys=tuple(self.config.accuracy_metrics),
            on_accuracy=self._accuracy_resolved,
            on_journal_problem=self._journal_problem,
            send_interval_s=self.config.resolved_send_interval_s,
        )

    def _open_pending_run(self, why: str) -> None:
        """The tracking server is down: train now, journal everything, create the run later."""
        from mlflow_green.tracking.journal import OWNER_TRACKER
        from mlflow_green.tracking.pending import capture_pending_run

        assert self.tracking_uri is not None
        pending = capture_pending_run(self.tracking_uri, run_name=self._run_name)
        self._pending_run = pending
        self._started_run = True
        self._open_journal_and_logger(
            pending.journal_id, experiment_id=pending.experiment_id, owner=OWNER_TRACKER, pending=pending
        )
        self._degrade(
            f"tracking server unreachable at start ({why}); epochs journaled as "
            f"{pending.journal_id}, the run is created when the server answers "
            "or by `mlflow-green recover`"
        )
        self._set_tags(self._provenance_tags())

    def _journal_problem(self, why: str) -> None:
        # Called from the logger thread: an fsync of the journal failed (a full disk...).
        self._degrade(f"journal write failed ({why})")

    def _accuracy_resolved(self, step: int, key: str, value: float) -> None:
        # Called from the logger thread: the accuracy the run held when epoch `step` ended.
        if self._ledger is not None and step < len(self._ledger.records):
            self._ledger.set_accuracy(step, value)
        self._run_accuracy_key = key

    def _run_created(self, run_id: str) -> None:
        # Called from the logger thread: the server came back and the pending run exists.
        self.run_id = run_id

    def _provenance_tags(self) -> dict[str, str]:
        from mlflow_green import __version__

        hw = self._hardware
        methods = dict(getattr(hw, "methods", {}) or {})
        source = self._intensity_source
        source_name = getattr(source, "name", None) or getattr(source, "label", None)
        if source_name is None:
            try:
                source_name = source.intensity().source
            except Exception:
                source_name = type(source).__name__
        profile = (
            getattr(self._embodied, "tag", None)
            or getattr(self._embodied, "profile", None)
            or self.config.embodied_profile
            or "default"
        )
        return {
            schema.TAG_VERSION: __version__,
            schema.TAG_LOCATION: str(getattr(self._location, "label", self._location)),
            schema.TAG_INTENSITY_SOURCE: str(source_name),
            schema.TAG_INTENSITY_BASIS: str(getattr(source, "basis", None) or "unspecified"),
            schema.TAG_PUE: f"{self._pue:g}",
            schema.TAG_GPU_MODEL: str(getattr(hw, "gpu_model", None) or "none"),
            schema.TAG_GPU_COUNT: str(self._gpu_count),
            schema.TAG_METHOD_GPU: methods.get("gpu", "none"),
            schema.TAG_METHOD_CPU: methods.get("cpu", "none"),
            schema.TAG_METHOD_RAM: methods.get("ram", "none"),
            schema.TAG_EMBODIED_PROFILE: str(profile),
            schema.TAG_STATUS: self.status,
        }

    # -- epochs ---------------------------------------------------------------------------

    def begin_epoch(self) -> None:
        """Open the measurement window of the next epoch (``epoch_end`` closes it)."""
        self.start()
        if self._window_open or not self.enabled:
            return
        self._window_name = f"epoch-{len(self.records)}"
        self._meter.begin(self._window_name)
        self._window_open = True

    def log_accuracy(self, value: float, *, name: str | None = None) -> None:
        """The model's latest accuracy, used from the current epoch on."""
        try:
            number = float(value.item() if hasattr(value, "item") else value)
        except (TypeError, ValueError):
            raise ConfigError(f"accuracy={value!r} is not a number") from None
        self._accuracy = number
        self._accuracy_fresh = True
        self._accuracy_given = True
        if name:
            self._accuracy_key = name

    def epoch_end(
        self, metrics: Mapping[str, Any] | None = None, *, accuracy: float | None = None
    ) -> EpochRecord | None:
        """Close the epoch's window, account for it, journal it and queue it for MLflow.

        ``metrics`` are your own metrics of this epoch: they are logged in the same batch at
        ``step = epoch`` and the accuracy is read from them (``accuracy_metric``). Returns the
        epoch's record (None when mlflow_green is disabled). On a distributed job every rank
        must call it (it is a collective).
        """
        self.start()
        if not self.enabled:
            return None
        if not self._window_open:
            self.begin_epoch()
        user_metrics: dict[str, float] = {}
        for key, value in (metrics or {}).items():
            try:
                user_metrics[str(key)] = float(value.item() if hasattr(value, "item") else value)
            except (TypeError, ValueError):
                raise ConfigError(f"metric {key!r}={value!r} is not a number") from None
        from_run = False
        if accuracy is not None:
            self.log_accuracy(accuracy)
        else:
            picked = self.config.pick_accuracy(user_metrics)
            if picked is not None:
                self.log_accuracy(picked[1], name=picked[0])
            elif (
                self._read_run_accuracy
                and self.is_logging
                and not self._accuracy_fresh
                and self._logger is not None
                and self.run_id is not None
            ):
                # The user logs it to the run (mlflow.log_metric): the logger thread reads it
                # back before sending this epoch — a read of the run costs milliseconds.
                from_run = True
        self._accuracy_fresh = False
        lap = self._auto_begin and not self.should_stop
        record = self._close_window(user_metrics, lap=lap, accuracy_from_run=from_run)
        if lap and self.should_stop and self._window_open:
            # The budget stopped training at this epoch: no next window after all.
            self._meter.end(self._window_name)
            self._window_open = False
        return record

    def _close_window(
        self, user_metrics: dict[str, float], *, lap: bool = False, accuracy_from_run: bool = False
    ) -> EpochRecord:
        if lap:
            # The next epoch's window opens at the same sampler read that closes this one.
            next_name = f"epoch-{len(self.records) + 1}"
            measurement = self._meter.lap(self._window_name, next_name)
            self._window_name = next_name
        else:
            measurement = self._meter.end(self._window_name)
            self._window_open = False
        for problem in getattr(measurement, "problems", ()) or ():
            self._degrade(problem)
        local = EpochEnergy(
            start_unix_s=measurement.start_unix_s,
            duration_s=measurement.duration_s,
            gpu_energy_kwh=measurement.gpu.energy_kwh,
            cpu_energy_kwh=measurement.cpu.energy_kwh,
            ram_energy_kwh=measurement.ram.energy_kwh,
            gpu_power_w=measurement.gpu.mean_power_w,
            per_device_kwh=tuple(measurement.gpu.per_device_kwh),
            gpu_count=len(measurement.gpu.per_device_kwh) or len(measurement.gpu.device_names),
        )
        intensity = self._intensity_at(local) if self.is_logging else None
        accuracy = self._accuracy
        if self._dist.has_group:
            reduced = reduce_epoch(
                local,
                self._dist,
                intensity_g_per_kwh=intensity,
                accuracy=accuracy,
                degraded=bool(self._problems),
            )
            energy, intensity, accuracy = reduced.energy, reduced.intensity_g_per_kwh, reduced.accuracy
            if self.is_logging:
                for rank in reduced.degraded_ranks:
                    if rank != self._dist.rank:
                        # Only a flag travels: that rank's own log has the reason.
                        self._degrade(f"rank {rank}: measurement degraded (see that rank's log)")
        else:
            energy = local
        assert self._ledger is not None
        record = self._ledger.add(
            energy,
            intensity_g_per_kwh=float(intensity if intensity is not None else 0.0),
            accuracy=accuracy,
            extra_metrics=user_metrics,
        )
        self._check_budget(record)
        if self.is_logging:
            self._journal_and_queue(record, accuracy_from_run=accuracy_from_run)
        return record

    def _intensity_at(self, energy: EpochEnergy) -> float:
        from mlflow_green.errors import IntensityError

        if self._constant_intensity is not None:
            return self._constant_intensity
        midpoint = energy.start_unix_s + energy.duration_s / 2
        at = _dt.datetime.fromtimestamp(midpoint, tz=_dt.timezone.utc)
        try:
            answer = self._intensity_source.intensity(at)
            value = float(answer.g_per_kwh)
            if getattr(answer, "problem", None):
                self._degrade(f"carbon intensity fallback ({answer.problem})")
        except (IntensityError, OSError) as exc:
            if _settings.strict():
                raise
            self._degrade(f"carbon intensity unavailable ({exc}); previous value kept")
            if self._last_intensity is None:
                self._last_intensity = float(self._intensity_source.intensity(None).g_per_kwh)
            return self._last_intensity
        self._last_intensity = value
        if getattr(self._intensity_source, "time_varying", True) is False and not getattr(
            answer, "problem", None
        ):
            self._constant_intensity = value  # the same at every hour: not asked again
        return value

    def _check_budget(self, record: EpochRecord) -> None:
        budget = self.config.budget_kg
        if budget is None:
            return
        projected = record.projected_total_co2eq_kg
        figure = projected if projected is not None else record.cum_total_co2eq_kg
        what = "projected total" if projected is not None else "total so far"
        if figure <= budget:
            return
        reason = (
            f"budget: {what} {figure:.4g} kg CO2eq exceeds budget_kg={budget:g} "
            f"after epoch {record.epoch}"
        )
        if self.config.on_budget == "stop":
            if not self.should_stop:
                self.should_stop = True
                self.stop_reason = reason
                if self.is_logging:
                    self._set_tags({schema.TAG_STOP_REASON: reason})
                self._warn_once("budget-stop", f"mlflow_green: stopping training — {reason}")
        else:
            self._warn_once("budget-warn", f"mlflow_green: {reason}")

    def _journal_and_queue(self, record: EpochRecord, *, accuracy_from_run: bool = False) -> None:
        timestamp_ms = int((record.start_unix_s + record.epoch_seconds) * 1000)
        metrics = record.metrics()
        resolve = None
        if accuracy_from_run:
            self._accuracy_deferred = True
            # The latest accuracy the run held when this epoch ended; `accuracy` if none.
            resolve = {
                "accuracy": record.accuracy,
                "before_ms": int(time.time() * 1000),
                "keys": list(self.config.accuracy_metrics),
            }
        end: int | None = None
        if self._journal is not None and self._journal.failed is None:
            try:
                end = self._journal.epoch(record.step, metrics, timestamp_ms, resolve=resolve)
            except (OSError, ValueError) as exc:
                if _settings.strict():
                    raise
                self._degrade(f"journal write failed ({exc})")
        if end is not None and all(map(math.isfinite, metrics.values())):
            # The logger reads it back from the journal: nothing of it stays in memory here.
            self._pending_batch.append((record.step, end))
        else:
            # No journal, or a NaN/inf the journal keeps only as NaN: hand over the values.
            self._pending_batch.append((record.step, None, (metrics, timestamp_ms, resolve)))
        if len(self._pending_batch) >= self.config.log_every_n_epochs or self.should_stop:
            self._send_pending()

    def _send_pending(self) -> None:
        if self._logger is None:
            return
        steps: list[int] = []
        end = 0
        for item in self._pending_batch:
            if item[1] is not None:
                steps.append(item[0])
                end = item[1]
                continue
            if steps:
                self._logger.log_journaled(steps, end)
                steps = []
            metrics, timestamp_ms, resolve = item[2]
            self._logger.log_epoch(item[0], metrics, timestamp_ms, resolve=resolve)
        if steps:
            self._logger.log_journaled(steps, end)
        self._pending_batch.clear()

    # -- problems -------------------------------------------------------------------------

    def _warn_once(self, key: str, message: str) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        if key.startswith("budget") and (self.config.silent or not self.is_logging):
            return  # every rank takes the same decision; rank 0 says it
        _log.warning(message)

    def _degrade(self, why: str) -> None:
        if why in self._problems:
            return
        self._problems.append(why)
        self.status = schema.degraded("; ".join(self._problems))
        self._warn_once(f"degraded:{why}", f"mlflow_green: measurement degraded: {why}")
        if self._logger is not None:
            self._set_tags({schema.TAG_STATUS: self.status})

    def _logger_problem(self, message: str, error: BaseException | None) -> None:
        if error is None and self._pending_run is not None and self.run_id is None:
            return  # still down since the start: said once already
        hint = (
            f"; epochs are journaled, `mlflow-green recover --run-id {self.journal_id}` "
            "sends them later"
        )
        self._warn_once(f"logger:{error is None}", f"mlflow_green: {message}{hint}")

    def _set_tags(self, tags: dict[str, str]) -> None:
        self._tags.update(tags)
        if self._journal is not None:
            try:
                self._journal.tags(tags)
            except (OSError, ValueError):
                _log.debug("journal tags failed", exc_info=True)
        if self._logger is not None:
            self._logger.set_tags(tags)

    # -- end ------------------------------------------------------------------------------

    def close(self, *, status: str = "FINISHED", record_partial: bool = False) -> None:
        """Finish: flush to MLflow, write the report artifacts, print the summary.

        ``record_partial`` accounts the epoch in progress as a last (partial) epoch.
        Ends the MLflow run only when this tracker started it. Idempotent.
        """
        if self._closed or not self._started or not self.enabled:
            self._closed = True
            return
        self._closed = True
        try:
            if self._window_open:
                if record_partial:
                    self._close_window({})
                else:
                    self._meter.end(self._window_name)
                    self._window_open = False
        finally:
            with _ACTIVE_LOCK:
                if self in _ACTIVE:
                    _ACTIVE.remove(self)
            try:
                self._meter.close()
            except Exception:
                _log.debug("meter close failed", exc_info=True)
        if not self.is_logging:
            return
        self._finish_run(status)

    def _finish_run(self, status: str) -> None:
        from mlflow_green.tracking import report as _report

        self._send_pending()
        if self._accuracy_deferred and self._logger is not None:
            # Accuracies read back from the run go into the report: let the logger get them
            # (bounded: with the store down they stay unresolved; recover resolves them).
            self._logger.flush(timeout_s=15.0)
        final_tags = {schema.TAG_STATUS: self.status}
        accuracy_key = self._accuracy_key or self._run_accuracy_key
        if accuracy_key:
            final_tags[schema.TAG_ACCURACY_METRIC] = accuracy_key
        elif self._accuracy_given:
            final_tags[schema.TAG_ACCURACY_METRIC] = "reported"  # report_accuracy() / accuracy=
        self._set_tags(final_tags)
        report = _report.build_report(self)
        if self._journal is not None:
            try:
                self._journal.end(
                    self.status,
                    _report._jsonable(report),
                    run_status=status,
                    end_time_ms=int(time.time() * 1000),
                )
            except (OSError, ValueError):
                _log.debug("journal end failed", exc_info=True)
        assert self._logger is not None
        finished = self._logger.close(timeout_s=30.0)
        unsent = self._logger.unsent_steps
        run_exists = self.run_id is not None
        report_sent = not self.config.report
        if self.config.report and run_exists and self._logger.reachable and finished:
            try:
                with _short_http(timeout_s=30):
                    _report.log_report_artifacts(self.tracking_uri or "", self.run_id or "", report)
                report_sent = True
            except Exception as exc:
                if _settings.strict() and not _looks_network(exc):
                    raise
                _log.warning("mlflow_green: report artifacts not logged (%s)", exc)
        run_ended = self._end_run(status) if run_exists else False
        if (
            finished
            and run_exists
            and run_ended
            and report_sent
            and not unsent
            and not self._logger.unsent_tags
            and self._journal
        ):
            try:
                self._journal.done()
            except (OSError, ValueError):
                _log.debug("journal done failed", exc_info=True)
        if not run_exists:
            _log.warning(
                "mlflow_green: the tracking server %s never answered: %d epoch(s) are journaled "
                "in %s — run `mlflow-green recover --run-id %s` when it is back (it creates the run)",
                self.tracking_uri,
                len(self.records),
                getattr(self._journal, "path", "the journal"),
                self.journal_id,
            )
        elif unsent or not finished:
            _log.warning(
                "mlflow_green: %d epoch(s) of run %s did not reach MLflow; they are journaled in %s — "
                "run `mlflow-green recover --run-id %s`",
                len(unsent),
                self.run_id,
                getattr(self._journal, "path", "the journal"),
                self.journal_id,
            )
        errors = self._logger.errors
        if self._journal is not None:
            self._journal.close()
        if not self.config.silent and self.records:
            print(_report.summary_text(report), flush=True)
        if errors and _settings.strict():
            raise errors[0]


    def _end_run(self, status: str) -> bool:
        """End the run when this tracker started it; True when nothing is left to end."""
        if not self._started_run:
            return True
        if self._pending_run is not None:
            # Created late by the logger thread: it is not this process's active run.
            from mlflow_green.tracking.logger import make_transport

            try:
                make_transport(self.tracking_uri or "").terminate(
                    self.run_id or "", status, int(time.time() * 1000)
                )
                return True
            except Exception as exc:
                if _settings.strict() and not _looks_network(exc):
                    raise
                _log.warning("mlflow_green: could not end run %s (%s)", self.run_id, exc)
                return False
        import mlflow

        active = mlflow.active_run()
        if active is None or active.info.run_id != self.run_id:
            return True  # the user ended it already
        try:
            with _short_http(timeout_s=5):
                mlflow.end_run(status=status)
            return True
        except Exception as exc:
            # The server is gone: the run stays RUNNING there (`recover` ends it), but it is no
            # longer this process's active run, so the user's next run is not nested into it.
            if _settings.strict() and not _looks_network(exc):
                raise
            _log.warning("mlflow_green: could not end run %s (%s)", self.run_id, exc)
            current = mlflow.active_run()
            while current is not None and current.info.run_id == self.run_id:
                _pop_active_run()
                current = mlflow.active_run()
            return False


@contextlib.contextmanager
def _short_http(*, timeout_s: float) -> Iterator[None]:
    """MLflow's own HTTP calls without its minutes-long retries, for the duration of a block.

    MLflow reads these variables at every request; the block is short and runs at the end
    of training, on the training thread.
    """
    names = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(timeout_s))}
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(names)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _pop_active_run() -> None:
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()
    if stack:
        stack.pop()


def guarded(what: str, fn: Callable[[], T], default: T) -> T:
    """Run a telemetry step for a framework adapter: an unexpected error never breaks training.

    It is logged once as a warning and ``default`` is returned, except under
    ``MLFLOW_GREEN_STRICT=1`` (the test suite), where it is raised. ConfigError (bad input)
    is always raised.
    """
    try:
        return fn()
    except ConfigError:
        raise
    except Exception as exc:
        if _settings.strict():
            raise
        _log.warning("mlflow_green: %s failed, measurement stopped for this run: %s", what, exc)
        return default


def abandon(tracker: GreenTracker) -> None:
    """Best-effort close of a tracker whose measurement failed (errors are only logged)."""
    try:
        tracker.close(status="FINISHED")
    except Exception:
        _log.debug("closing an abandoned tracker failed", exc_info=True)


def _looks_network(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(w in text for w in ("connection", "timed out", "timeout", "max retries", "refused"))


class Epochs:
    """``for epoch in mlflow_green.epochs(n):`` — one measured window per epoch.

    Each iteration's body is one epoch; its window closes when the loop asks for the next
    epoch. Report the accuracy with :func:`mlflow_green.report_accuracy` (or log it to the
    run yourself with ``mlflow.log_metric``: the latest value of the accuracy metric is
    read back). Stops early, cleanly, when the budget says stop. Breaking out of the loop
    accounts the epoch in progress and finishes the run's report.
    """

    def __init__(self, n: int, **options: Any) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"epochs({n!r}): the number of epochs must be a whole number >= 1")
        self.n = n
        self.tracker = GreenTracker(total_epochs=n, **options)
        self._iterating = False

    def __iter__(self) -> Iterator[int]:
        if self._iterating:
            raise ConfigError("an epochs() iterator can be iterated only once")
        self._iterating = True
        return self._gen()

    def _gen(self) -> Iterator[int]:
        tracker = self.tracker
        def close_epoch() -> bool:
            tracker.epoch_end()
            return True

        measuring = guarded("starting the measurement", lambda: bool(tracker.start()), False)
        completed = False
        try:
            for epoch in range(self.n):
                yield epoch
                if measuring:
                    measuring = guarded("closing an epoch", close_epoch, False)
                    if not measuring:
                        abandon(tracker)
                if tracker.should_stop:
                    break
            completed = True
        except GeneratorExit:
            # The loop was left with break (or an exception) inside an epoch: it was spent.
            if measuring:
                guarded("finishing the run", lambda: tracker.close(record_partial=True), None)
            raise
        finally:
            if completed and measuring:
                guarded("finishing the run", tracker.close, None)

    def __enter__(self) -> Epochs:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.tracker.close(status="FAILED" if exc_type else "FINISHED", record_partial=True)

    @property
    def should_stop(self) -> bool:
        return self.tracker.should_stop

    @property
    def records(self) -> EpochTable:
        """Every epoch's record so far (indexing gives :class:`EpochRecord`)."""
        return self.tracker.records


def epochs(n: int, **options: Any) -> Epochs:
    """Iterate over ``range(n)`` measuring each epoch; see :class:`Epochs`.

    Options are those of :func:`mlflow_green.autolog`; what is not given comes from the last
    ``autolog()`` call, then from the environment.
    """
    return Epochs(n, **options)


def _usable_cpus() -> int | None:
    """Logical CPUs this process may run on: the CPU-only embodied share is that many."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()
