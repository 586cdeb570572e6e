"""``GreenTracker``: measurement windows per epoch, accounting, journal and logging of one run.

The framework adapters (Hugging Face, Lightning) and the plain-loop ``epochs(n)`` iterator
are thin wrappers around it. Its parts, each in its own module:

- :mod:`.session` — the MLflow run (attached, started or pending), its journal and sender,
  and the end of the run (journal end record, last sends, report artifacts, run end);
- :mod:`.pipeline` — the seams of the epoch pipeline (extra metrics, epoch observers);
- :mod:`.budget` — the budget policy; :mod:`.sink` — journal then sender, per epoch;
- :mod:`.problems` — ``green.status`` and the warnings said once; :mod:`.accuracy` — the
  accuracy applied to the epochs and where it came from; :mod:`.report` — the end-of-run report;
- :mod:`.distributed` — the rank policy: only global rank 0 talks to MLflow; the other ranks
  of a distributed job measure their own GPU and take part in the per-epoch sum;
  :mod:`.scaleout` — shares of shared devices, multi-node locations, the job's epoch.

The lower modules never import this one: what they need of a tracker is a small Protocol of
their own (:class:`~.active.Measuring`, :class:`~.signals.Closable`) or plain arguments.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mlflow_green import _settings
from mlflow_green.errors import ConfigError
from mlflow_green.tracking import schema
from mlflow_green.tracking.accuracy import RunAccuracy
from mlflow_green.tracking.active import pop_active, push_active
from mlflow_green.tracking.attestation import RunAttestation, resolve_signing_key
from mlflow_green.tracking.budget import check_budget
from mlflow_green.tracking.config import GreenConfig, current_config, whole_number
from mlflow_green.tracking.distributed import DistInfo, broadcast_flag, dist_info
from mlflow_green.tracking.inputs import RunInputs, open_meter, provenance_tags, resolve_inputs
from mlflow_green.tracking.pipeline import (
    EpochContext,
    FinishedEpoch,
    IntensityClock,
    contributed_metrics,
    energy_of,
    notify_observers,
)
from mlflow_green.tracking.problems import RunProblems
from mlflow_green.tracking.record import EpochRecord, EpochTable, Ledger
from mlflow_green.tracking.report import build_report, summary_text
from mlflow_green.tracking.resume import ResumePoint, share_resume_point
from mlflow_green.tracking.scaleout import ScaleOut
from mlflow_green.tracking.signals import boundary, install_sigterm, uninstall_sigterm

if TYPE_CHECKING:
    from mlflow_green.meter import EnergyMeter, HardwareInfo
    from mlflow_green.tracking.logger import AsyncLogger
    from mlflow_green.tracking.session import RunSession
    from mlflow_green.tracking.sink import EpochSink

__all__ = ["GreenTracker"]

_log = logging.getLogger("mlflow_green")
_EMPTY_TABLE = EpochTable()

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
        meter: EnergyMeter | None = None,
        start_epoch: int | None = None,
        continues_run: str | None = None,
        **options: Any,
    ) -> None:
        self.total_epochs = whole_number(total_epochs, "total_epochs", 1)
        self.start_epoch = whole_number(start_epoch, "start_epoch", 0)
        self._continues_run = continues_run or None  # a checkpoint's run (see RunSession.resume_point)
        # epochs(n) without start= on a resumed run: n more epochs after the run's history.
        self._segment_epochs: int | None = None
        self._resume = ResumePoint()
        base = config if config is not None else current_config()
        self.config = base.with_options(**options) if options else base
        if options.get("signing_key") is not None:  # given here: a bad key file is said now
            resolve_signing_key(options["signing_key"])
        self._requested_run_id = run_id
        self._run_name = run_name
        self._requested_tracking_uri = tracking_uri
        self._read_run_accuracy = read_run_accuracy
        self._auto_begin = auto_begin
        self.should_stop = False
        self.stop_reason: str | None = None
        self._started = False
        self._closed = False
        self._window_open = False
        self._window_name = ""
        self._accuracy = RunAccuracy()
        self._problems = RunProblems()  # green.status; the sender thread reports here too
        self._meter: EnergyMeter | None = meter
        self._ledger: Ledger | None = None
        self._session: RunSession | None = None
        self._sink: EpochSink | None = None
        self._intensity: IntensityClock | None = None
        self._inputs: RunInputs | None = None
        self._tags: dict[str, str] = {}
        self._dist = DistInfo()
        self._scale = ScaleOut(self._dist, "off")  # replaced at start()
        self._hardware: HardwareInfo | None = None
        # Signs the run's epoch records (tracking.attestation); None without a signing key.
        self._attestation: RunAttestation | None = None
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

    @property
    def status(self) -> str:
        """``ok`` or ``degraded: <why>`` (the ``green.status`` tag)."""
        return self._problems.status

    @property
    def run_id(self) -> str | None:
        """The MLflow run id (None while the run is pending, on other ranks, or disabled)."""
        return self._session.run_id if self._session is not None else None

    @property
    def journal_id(self) -> str | None:
        """The journal's name: the run id, or ``pending-...`` while the run does not exist."""
        return self._session.journal_id if self._session is not None else None

    @property
    def tracking_uri(self) -> str | None:
        """The tracking URI the run lives on (rank 0, once started)."""
        return self._session.tracking_uri if self._session is not None else None

    @property
    def sender(self) -> AsyncLogger | None:
        """The background sender of this run's epochs (rank 0, once started)."""
        return self._session.sender if self._session is not None else None

    def start(self) -> GreenTracker:
        """Open the meter, resolve the run and the accounting inputs; idempotent."""
        if self._started:
            return self
        self._started = True
        if not self.enabled:
            return self
        try:
            self._start()
        except BaseException:
            # An error under MLFLOW_GREEN_STRICT=1 or a bad input: no `with` block's __exit__
            # runs, so leave no active tracker, SIGTERM handler, meter or sender behind.
            try:
                self.close(status="FAILED")
            except Exception:
                _log.debug("closing a tracker whose start failed failed", exc_info=True)
            raise
        return self

    def _start(self) -> None:
        self._dist = dist_info()
        self._scale = ScaleOut(self._dist, self.config.share)
        self._meter = meter = open_meter(self.config, self._dist, self._meter, self._degrade)
        self._hardware = meter.hardware
        self._inputs = inputs = resolve_inputs(self.config, meter.hardware, self._dist)
        self._intensity = IntensityClock(inputs.intensity_source, self._degrade)
        self._scale.gather_inputs(inputs)  # every node's location (a collective)
        if self.is_logging:
            self._open_run()
        elif self.start_epoch is not None:
            self._resume = ResumePoint(next_epoch=self.start_epoch)
        self._resume = share_resume_point(self._resume, self._dist.rank, self._dist.has_group)
        if self._segment_epochs is not None:
            self.total_epochs = self._resume.next_epoch + self._segment_epochs
        self._ledger = Ledger(
            pue=inputs.pue,
            embodied=inputs.embodied,
            total_epochs=self.total_epochs,
            resume=self._resume,
        )
        install_sigterm(self)
        push_active(self)
        if self._dist.has_group:
            # Rank 0 spent a while opening the run, and its sender thread is sending the
            # provenance tags (holding the interpreter lock): let that finish (bounded), then
            # line the ranks up and open the first window on every rank right after, so that
            # their first windows cover the same time.
            if self.sender is not None:
                self.sender.flush(timeout_s=5.0)
            broadcast_flag(False, self._dist)
        if self._auto_begin:
            self.begin_epoch()

    def _open_run(self) -> None:
        from mlflow_green.tracking.session import RunSession
        from mlflow_green.tracking.sink import EpochSink

        session = RunSession(
            self.config,
            run_id=self._requested_run_id,
            run_name=self._run_name,
            tracking_uri=self._requested_tracking_uri,
            on_degrade=self._degrade,
            on_warn=self._warn_once,
            on_accuracy=self._accuracy_resolved,
        )
        self._session = session
        session.open()
        self._resume = session.resume_point(self.start_epoch, continues=self._continues_run)
        self._sink = EpochSink(
            session.journal,
            session.sender,
            every_n=self.config.log_every_n_epochs,
            on_problem=self._degrade,
        )
        assert self._inputs is not None and self._hardware is not None
        tags = provenance_tags(self._inputs, self._hardware, self.config, self.status)
        tags.update(self._scale.tags())  # green.location=mixed and the per-node breakdown
        if self._resume.resumed:
            tags[schema.TAG_SEGMENTS] = ",".join(map(str, self._resume.segment_starts))
            if self._continues_run and self._continues_run != self.run_id:
                tags[schema.TAG_RESUMED_FROM] = self._continues_run
        self._set_tags(tags)
        self._attestation = RunAttestation.open(
            self.config.signing_key, degrade=self._degrade, warn=self._warn_once, run_id=self.run_id,
            existed=not session.started_run, tracking_uri=self.tracking_uri, prior=session.prior_journal,
        )
        session.resend(self._resume.unsent)

    def _accuracy_resolved(self, step: int, key: str, value: float) -> None:
        # Called from the sender thread: the accuracy the run held when epoch `step` ended.
        ledger = self._ledger
        if ledger is not None:
            index = step - ledger.records.first_epoch
            if 0 <= index < len(ledger.records):
                ledger.set_accuracy(index, value)
        self._accuracy.read_back(key)

    # -- epochs ---------------------------------------------------------------------------

    def begin_epoch(self) -> None:
        """Open the measurement window of the next epoch (``epoch_end`` closes it)."""
        self.start()
        if self._window_open or not self.enabled:
            return
        assert self._meter is not None
        with boundary(self):  # a SIGTERM meanwhile waits: the meter may hold its lock
            self._window_name = f"epoch-{len(self.records)}"
            self._meter.begin(self._window_name)
            self._window_open = True

    def log_accuracy(self, value: float, *, name: str | None = None) -> None:
        """The model's latest accuracy, used from the current epoch on."""
        self._accuracy.give(value, name)

    def report_tokens(self, n: int) -> None:
        """Training tokens processed since the last report (for ``green/g_per_mtoken``)."""
        self._impact_step(lambda impact: impact.add_tokens(n))

    def set_tokens(self, total: int) -> None:
        """The run's training tokens so far (HF Trainer's ``num_input_tokens_seen``)."""
        self._impact_step(lambda impact: impact.set_tokens(total))

    def set_parameters(self, n: int) -> None:
        """The model's parameter count (for ``green/kg_per_bparam``), unless given as an option."""
        self._impact_step(lambda impact: impact.set_parameters(n))

    def _impact_step(self, step: Any) -> None:
        self.start()
        impact = self._inputs.impact if self.enabled and self._inputs else None
        if impact is not None:
            step(impact)

    def epoch_end(
        self,
        metrics: Mapping[str, Any] | None = None,
        *,
        accuracy: float | None = None,
        tokens: int | None = None,
    ) -> EpochRecord | None:
        """Close the epoch's window, account for it, journal it and queue it for MLflow.

        ``metrics`` are your own metrics of this epoch: they are logged in the same batch at
        ``step = epoch`` and the accuracy is read from them (``accuracy_metric``). ``tokens``:
        the training tokens of this epoch (``green/g_per_mtoken``). Returns the epoch's record
        (None when mlflow_green is disabled). On a distributed job every rank must call it (it
        is a collective).
        """
        self.start()
        if not self.enabled:
            return None
        if tokens is not None:
            self.report_tokens(tokens)
        with boundary(self):
            return self._epoch_end(metrics, accuracy)

    def _epoch_end(self, metrics: Mapping[str, Any] | None, accuracy: float | None) -> EpochRecord:
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
                and not self._accuracy.fresh
                and self.sender is not None
                and self.run_id is not None
            ):
                # The user logs it to the run (mlflow.log_metric): the logger thread reads it
                # back before sending this epoch — a read of the run costs milliseconds.
                from_run = True
        self._accuracy.fresh = False
        lap = self._auto_begin and not self.should_stop
        record = self._close_window(user_metrics, lap=lap, accuracy_from_run=from_run)
        if lap and self.should_stop and self._window_open:
            # The budget stopped training at this epoch: no next window after all.
            assert self._meter is not None
            self._meter.end(self._window_name)
            self._window_open = False
        return record

    def _close_window(
        self, user_metrics: dict[str, float], *, lap: bool = False, accuracy_from_run: bool = False
    ) -> EpochRecord:
        meter = self._meter
        assert meter is not None and self._ledger is not None
        if lap:
            # The next epoch's window opens at the same sampler read that closes this one.
            next_name = f"epoch-{len(self.records) + 1}"
            measurement = meter.lap(self._window_name, next_name)
            self._window_name = next_name
        else:
            measurement = meter.end(self._window_name)
            self._window_open = False
        for problem in measurement.problems:
            self._degrade(problem)
        energy = local = energy_of(measurement)
        # On a multi-node job every rank brings its own node's intensity to the reduce.
        logs_intensity = self.is_logging or self._scale.multi_node
        intensity = self._intensity.at(local) if logs_intensity and self._intensity else None
        accuracy = self._accuracy.value
        assert self._inputs is not None
        reduced = self._scale.reduce(
            measurement,
            local,
            intensity_g_per_kwh=intensity,
            accuracy=accuracy,
            degraded=self._problems.degraded,
            pue=self._inputs.pue,
        )
        if reduced is not None:
            energy, intensity, accuracy = reduced.energy, reduced.intensity_g_per_kwh, reduced.accuracy
            if self.is_logging:
                for rank in reduced.degraded_ranks:
                    if rank != self._dist.rank:
                        # Only a flag travels: that rank's own log has the reason.
                        self._degrade(f"rank {rank}: measurement degraded (see that rank's log)")
        record = self._ledger.add(
            energy,
            intensity_g_per_kwh=float(intensity if intensity is not None else 0.0),
            accuracy=accuracy,
            extra_metrics={**user_metrics, **self._scale.metrics(measurement, reduced)},
        )
        self._apply_budget(record)
        if self.is_logging:
            self._finish_epoch(record, accuracy_from_run=accuracy_from_run)
        return record

    def _apply_budget(self, record: EpochRecord) -> None:
        verdict = check_budget(record, self.config.budget_kg, self.config.on_budget)
        if verdict is None:
            return
        if not verdict.stop:
            self._warn_once("budget-warn", f"mlflow_green: {verdict.reason}")
        elif not self.should_stop:
            self.should_stop = True
            self.stop_reason = verdict.reason
            if self.is_logging:
                self._set_tags({schema.TAG_STOP_REASON: verdict.reason})
            self._warn_once("budget-stop", f"mlflow_green: stopping training — {verdict.reason}")

    def _finish_epoch(self, record: EpochRecord, *, accuracy_from_run: bool = False) -> None:
        """The pipeline's seams (extra metrics, observers), then the journal and the sender."""
        timestamp_ms = int((record.start_unix_s + record.epoch_seconds) * 1000)
        metrics = record.metrics()
        metrics[schema.SEGMENT] = float(self._resume.segment)
        impact = self._inputs.impact if self._inputs else None
        if impact is not None:  # issue 19: market-based CO2, water, SCI-for-AI units
            try:
                metrics.update(impact.epoch(record))
            except Exception as exc:
                self._hook_failed("market-based/water metrics", exc)
        context = EpochContext(
            record=record,
            run_id=self.run_id,
            location=self._inputs.location if self._inputs else None,
            intensity_source=self._inputs.intensity_source if self._inputs else None,
            config=self.config,
        )
        contributed_metrics(context, metrics, self._hook_failed)
        resolve = None
        if accuracy_from_run:
            self._accuracy.deferred = True
            # The latest accuracy the run held when this epoch ended; `accuracy` if none.
            resolve = {
                "accuracy": record.accuracy,
                "before_ms": int(time.time() * 1000),
                "keys": list(self.config.accuracy_metrics),
            }
        notify_observers(
            FinishedEpoch(record.step, dict(metrics), timestamp_ms, self.run_id, self.journal_id),
            self._hook_failed,
        )
        if self._sink is not None:
            self._sink.put(
                record.step, metrics, timestamp_ms, resolve=resolve, send_now=self.should_stop
            )
        if self._attestation is not None:  # hashed into the run's chain, journaled after the epoch
            journal = self._sink.journal if self._sink is not None else None
            self._attestation.epoch(record, metrics, tags=self._tags, hardware=self._hardware,
                                    sampler=self.config.sampler, deferred=accuracy_from_run, journal=journal)

    def _hook_failed(self, what: str, exc: Exception) -> None:
        if _settings.strict():
            raise exc
        self._degrade(f"{what} failed ({exc})")

    # -- problems -------------------------------------------------------------------------

    def _warn_once(self, key: str, message: str) -> None:
        if key.startswith("budget") and (self.config.silent or not self.is_logging):
            self._problems.first_time(key)  # every rank takes the same decision; rank 0 says it
            return
        self._problems.warn_once(key, message)

    def _degrade(self, why: str) -> None:
        """Record a problem: ``green.status`` becomes ``degraded: ...`` (any thread)."""
        status = self._problems.degrade(why)
        if status is not None and self._sink is not None:
            self._set_tags({schema.TAG_STATUS: status})

    def _set_tags(self, tags: dict[str, str]) -> None:
        self._tags.update(tags)
        if self._sink is not None:
            self._sink.tags(tags)

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
        uninstall_sigterm(self)
        try:
            self._stop_measuring(record_partial)
        except BaseException:
            # The partial epoch failed (strict mode): the run still ends; that error is raised.
            try:
                self._end_run(status)
            except Exception:
                _log.debug("ending the run after a failed last epoch failed", exc_info=True)
            raise
        self._end_run(status)

    def _stop_measuring(self, record_partial: bool) -> None:
        meter = self._meter
        try:
            if self._window_open:
                assert meter is not None
                if record_partial:
                    self._close_window({})
                else:
                    meter.end(self._window_name)
                    self._window_open = False
        finally:
            pop_active(self)
            if meter is not None:
                try:
                    meter.close()
                except Exception:
                    _log.debug("meter close failed", exc_info=True)

    def _end_run(self, status: str) -> None:
        if self._sink is not None:  # rank 0, its run opened
            self._finish_run(status)
        elif self._session is not None:  # opening the run failed half-way
            self._session.abort(status)

    def _final_tags(self) -> dict[str, str]:
        final_tags = {schema.TAG_STATUS: self.status}
        accuracy_key = self._accuracy.tag()  # "reported": report_accuracy() / accuracy=
        if accuracy_key:
            final_tags[schema.TAG_ACCURACY_METRIC] = accuracy_key
        return final_tags

    def _finish_run(self, status: str) -> None:
        session, sink = self._session, self._sink
        assert session is not None and sink is not None and session.sender is not None
        sink.send_waiting()
        if self._accuracy.deferred:
            # Accuracies read back from the run go into the report: let the sender get them
            # (bounded: with the store down they stay unresolved; recover resolves them).
            session.sender.flush(timeout_s=15.0)
        self._set_tags(self._final_tags())
        attestation = self._attestation
        if attestation is not None:
            attestation.sign(run_id=self.run_id or self.journal_id, tags=self._tags, journal=session.journal)
        report = build_report(
            self.records,
            totals=self._ledger.totals() if self._ledger is not None else {},
            run_id=self.run_id,
            journal_id=self.journal_id,
            status=self.status,
            stop_reason=self.stop_reason,
            total_epochs=self.total_epochs,
            budget_kg=self.config.budget_kg,
            provenance=self._tags,
        )
        errors = session.finish(
            report,
            status=status,
            send_report=self.config.report,
            attest=attestation.log if attestation is not None else None,
        )
        if not self.config.silent and self.records:
            print(summary_text(report), flush=True)
        if errors and _settings.strict():
            raise errors[0]
