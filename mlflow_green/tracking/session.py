"""The MLflow run of a tracker: attached, started or pending; its journal, sender and end.

:class:`RunSession` finds the run the green metrics go to — the one named by ``run_id``, the
active run, or a new one — and opens the run's journal and sender. When the tracking server
does not answer at start, training starts anyway: the run is *pending* (journaled under a
``pending-...`` id) and is created by the sender thread as soon as the server answers, or
later by ``mlflow-green recover``. At the end it ends the run it started (and only that one).

Errors from the store are classified once, here at the edge, by
:func:`~mlflow_green.tracking.failures.is_transient`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mlflow_green import _settings
from mlflow_green.tracking import _mlflow_compat as compat
from mlflow_green.tracking import report as _report
from mlflow_green.tracking.config import GreenConfig
from mlflow_green.tracking.failures import is_transient, short_reason
from mlflow_green.tracking.journal import (
    OWNER_EXTERNAL,
    OWNER_PROCESS,
    OWNER_TRACKER,
    Journal,
    JournalState,
    journal_path,
    read_journal,
)
from mlflow_green.tracking.logger import AsyncLogger
from mlflow_green.tracking.pending import PendingRun
from mlflow_green.tracking.resume import ResumePoint, find_resume_point, read_run_history
from mlflow_green.tracking.signals import KILLED
from mlflow_green.tracking.transport import make_transport, unreachable

__all__ = ["RunSession", "short_http"]

_log = logging.getLogger("mlflow_green")


@contextlib.contextmanager
def short_http(*, timeout_s: float) -> Iterator[None]:
    """MLflow's own HTTP calls without its minutes-long retries, for the duration of a block.

    MLflow reads these variables at every request; the block is short and runs at the start
    or the end of training, on the training thread.
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


def raise_if_strict_and_permanent(exc: BaseException) -> None:
    """Under ``MLFLOW_GREEN_STRICT=1`` a refusal (not a network failure) is raised."""
    if _settings.strict() and not is_transient(exc):
        raise exc


class RunSession:
    """The run a tracker logs to, its journal and its sender (global rank 0 only).

    ``run_id`` is set from the sender thread when a pending run is created: it is read and
    written under a lock.
    """

    def __init__(
        self,
        config: GreenConfig,
        *,
        run_id: str | None,
        run_name: str | None,
        tracking_uri: str | None,
        on_degrade: Callable[[str], None],
        on_warn: Callable[[str, str], None],
        on_accuracy: Callable[[int, str, float], None],
    ) -> None:
        self.config = config
        self._requested_run_id = run_id
        self._run_name = run_name
        self._requested_tracking_uri = tracking_uri
        self._on_degrade = on_degrade
        self._on_warn = on_warn  # (key, message): said once per key
        self._on_accuracy = on_accuracy
        self._lock = threading.Lock()
        self._run_id: str | None = None
        self.tracking_uri: str | None = None
        self.experiment_id: str | None = None
        # The journal's name: the run id, or ``pending-...`` while the run does not exist.
        self.journal_id: str | None = None
        self.pending_run: PendingRun | None = None
        self.started_run = False
        self.journal: Journal | None = None
        self.sender: AsyncLogger | None = None
        # The journal an earlier job of this run left here (a resumed run), if any.
        self.prior_journal: JournalState | None = None

    @property
    def run_id(self) -> str | None:
        """The MLflow run id; None while the run is pending."""
        with self._lock:
            return self._run_id

    def _set_run_id(self, run_id: str) -> None:
        with self._lock:
            self._run_id = run_id

    # -- opening --------------------------------------------------------------------------

    def open(self) -> None:
        """Attach to (or start) the run and open its journal and sender."""
        import mlflow

        self.tracking_uri = self._requested_tracking_uri or mlflow.get_tracking_uri()
        if self._requested_run_id is not None:
            self._set_run_id(self._requested_run_id)
            owner = OWNER_EXTERNAL
            # The run exists; with its server down the epochs wait in the journal.
            if unreachable(self.tracking_uri) is None:
                try:
                    with short_http(timeout_s=10):
                        client = mlflow.MlflowClient(self.tracking_uri)
                        self.experiment_id = client.get_run(self._requested_run_id).info.experiment_id
                except Exception as exc:
                    if not is_transient(exc):
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
                        with short_http(timeout_s=10):
                            active = mlflow.start_run(run_name=self._run_name)
                    except Exception as exc:
                        if not is_transient(exc):
                            raise
                        why = short_reason(exc, timeout_s=10)
                if active is None:
                    self._open_pending(why or "no answer")
                    return
                self.started_run = True
                owner = OWNER_TRACKER
            self._set_run_id(active.info.run_id)
            self.experiment_id = active.info.experiment_id
        run_id = self.run_id
        assert run_id is not None
        self.prior_journal = _read_prior_journal(run_id)
        self._open_journal_and_sender(run_id, owner=owner)

    def _open_pending(self, why: str) -> None:
        """The tracking server is down: train now, journal everything, create the run later."""
        from mlflow_green.tracking.pending import capture_pending_run

        assert self.tracking_uri is not None
        pending = capture_pending_run(self.tracking_uri, run_name=self._run_name)
        self.pending_run = pending
        self.started_run = True
        self.experiment_id = pending.experiment_id
        self._open_journal_and_sender(pending.journal_id, owner=OWNER_TRACKER, pending=pending)
        self._on_degrade(
            f"tracking server unreachable at start ({why}); epochs journaled as "
            f"{pending.journal_id}, the run is created when the server answers "
            "or by `mlflow-green recover`"
        )

    def _open_journal_and_sender(
        self, journal_id: str, *, owner: str, pending: PendingRun | None = None
    ) -> None:
        assert self.tracking_uri is not None
        self.journal_id = journal_id
        try:
            self.journal = Journal.open(
                journal_id,
                tracking_uri=self.tracking_uri,
                experiment_id=self.experiment_id,
                owner=owner,
                pending_run=pending.to_json() if pending is not None else None,
            )
        except OSError as exc:
            if _settings.strict():
                raise
            self._on_degrade(f"journal not writable ({exc})")
        transport = make_transport(self.tracking_uri)
        create_run: Callable[[], str] | None = None
        if pending is not None:
            journal = self.journal

            def create_run() -> str:
                from mlflow_green.tracking.pending import create_pending_run

                run_id = create_pending_run(pending, transport)
                if journal is not None:
                    journal.created(run_id)  # before anything is sent to it
                return run_id

        self.sender = AsyncLogger(
            self.run_id,
            transport,
            journal=self.journal,
            on_problem=self._sender_problem,
            create_run=create_run,
            on_run_created=self._set_run_id,
            accuracy_keys=tuple(self.config.accuracy_metrics),
            on_accuracy=self._on_accuracy,
            on_journal_problem=lambda why: self._on_degrade(f"journal write failed ({why})"),
            send_interval_s=self.config.resolved_send_interval_s,
        )

    def _sender_problem(self, message: str, error: BaseException | None) -> None:
        if error is None and self.pending_run is not None and self.run_id is None:
            return  # still down since the start: said once already
        hint = (
            f"; epochs are journaled, `mlflow-green recover --run-id {self.journal_id}` "
            "sends them later"
        )
        self._on_warn(f"logger:{error is None}", f"mlflow_green: {message}{hint}")

    # -- resuming -------------------------------------------------------------------------

    def resume_point(self, start: int | None, *, continues: str | None = None) -> ResumePoint:
        """Where this job continues the run (see :mod:`.resume`); a new run starts at
        ``start`` or 0. A history that cannot be read degrades the run.

        ``continues``: the run a checkpoint belongs to, when this job logs into another run;
        a run of its own with no green history yet then continues that run's figures."""
        history: dict[int, dict[str, float]] = {}
        run_id = self.run_id
        if run_id is not None and not self.started_run:
            history = self._history(run_id, "the run's history", "from the journal only")
        if continues and continues != run_id and not history and not self._journal_has_epochs():
            earlier = self._history(continues, f"the checkpoint's run {continues}", "from zero in this run")
            if earlier:
                return find_resume_point(earlier, None, start=start)
        return find_resume_point(history, self.prior_journal, start=start)

    def _journal_has_epochs(self) -> bool:
        return self.prior_journal is not None and bool(self.prior_journal.epochs)

    def _history(self, run_id: str, what: str, fallback: str) -> dict[int, dict[str, float]]:
        try:
            return read_run_history(make_transport(self.tracking_uri or ""), run_id)
        except Exception as exc:
            raise_if_strict_and_permanent(exc)
            self._on_degrade(
                f"{what} could not be read ({short_reason(exc)}): steps and cumulative figures "
                f"continue {fallback}"
            )
            return {}

    def resend(self, unsent: Mapping[int, tuple[int, dict[str, float]]]) -> None:
        """Queue the epochs a previous job of this run journaled but never sent (it was killed)."""
        if self.sender is not None:
            for step, (ts, metrics) in sorted(unsent.items()):
                self.sender.log_recovered(step, metrics, ts)

    # -- the end --------------------------------------------------------------------------

    def end_run(self, status: str, *, force: bool = False) -> bool:
        """End the run when this session started it (any run with ``force``: the process is
        being killed); True when nothing is left to end."""
        if not self.started_run and not force:
            return True
        run_id = self.run_id
        import mlflow

        active = mlflow.active_run()
        if self.pending_run is not None or (force and (active is None or active.info.run_id != run_id)):
            # Created late by the sender thread: it is not this process's active run.
            try:
                make_transport(self.tracking_uri or "").terminate(
                    run_id or "", status, int(time.time() * 1000)
                )
                return True
            except Exception as exc:
                raise_if_strict_and_permanent(exc)
                _log.warning("mlflow_green: could not end run %s (%s)", run_id, exc)
                return False
        if active is None or active.info.run_id != run_id:
            return True  # the user ended it already
        try:
            with short_http(timeout_s=5):
                mlflow.end_run(status=status)
            return True
        except Exception as exc:
            # The server is gone: the run stays RUNNING there (`recover` ends it), but it is no
            # longer this process's active run, so the user's next run is not nested into it.
            raise_if_strict_and_permanent(exc)
            _log.warning("mlflow_green: could not end run %s (%s)", run_id, exc)
            compat.pop_active_run(run_id or "")
            return False

    def abort(self, status: str) -> None:
        """Opening failed half-way (an error under strict mode): stop the sender, close the
        journal, end the run if this session started it. Best effort: the opening error is
        the one the caller raises."""
        sender, journal = self.sender, self.journal
        steps: list[tuple[str, Callable[[], object]]] = []
        if sender is not None:
            steps.append(("stopping the sender", lambda: sender.close(timeout_s=5.0)))
        if journal is not None:
            steps.append(("closing the journal", journal.close))
        if self.run_id is not None:
            steps.append(("ending the run", lambda: self.end_run(status)))
        for what, step in steps:
            try:
                step()
            except Exception:
                _log.debug("%s after a failed start failed", what, exc_info=True)

    def finish(
        self,
        report: dict[str, Any],
        *,
        status: str,
        send_report: bool,
        attest: Callable[[RunSession], bool] | None,
    ) -> list[BaseException]:
        """End the run: the journal's end record, the sender's last sends, the report
        artifacts (``send_report``), the attestation (``attest``), the run's end (``status``;
        ``KILLED`` ends it whoever opened it). The journal is marked done only when all of it
        reached MLflow; otherwise a warning says how to send the rest. Returns the sender's
        errors."""
        sender, journal = self.sender, self.journal
        assert sender is not None
        if journal is not None:
            try:
                journal.end(
                    str(report.get("status", "")),
                    _report._jsonable(report),
                    run_status=status,
                    end_time_ms=int(time.time() * 1000),
                )
            except (OSError, ValueError):
                _log.debug("journal end failed", exc_info=True)
        finished = sender.close(timeout_s=30.0)
        unsent = sender.unsent_steps
        run_exists = self.run_id is not None
        report_sent = not send_report
        if send_report and run_exists and sender.reachable and finished:
            report_sent = self.log_report(report)
        attested = attest is None or (run_exists and finished and attest(self))
        # Killed (SIGTERM): the process ends now, so the run ends too, whoever opened it.
        run_ended = self.end_run(status, force=status == KILLED) if run_exists else False
        sent_all = finished and report_sent and attested and not unsent and not sender.unsent_tags
        if run_exists and run_ended and sent_all and journal:
            try:
                journal.done()
            except (OSError, ValueError):
                _log.debug("journal done failed", exc_info=True)
        self._say_unsent(
            run_exists, unsent, finished, epochs=len(report.get("epochs", ()))
        )
        errors = sender.errors
        if journal is not None:
            journal.close()
        return errors

    def _say_unsent(self, run_exists: bool, unsent: Any, finished: bool, *, epochs: int) -> None:
        where = getattr(self.journal, "path", "the journal")
        if not run_exists:
            _log.warning(
                "mlflow_green: the tracking server %s never answered: %d epoch(s) are journaled "
                "in %s — run `mlflow-green recover --run-id %s` when it is back (it creates the run)",
                self.tracking_uri, epochs, where, self.journal_id,
            )
        elif unsent or not finished:
            _log.warning(
                "mlflow_green: %d epoch(s) of run %s did not reach MLflow; they are journaled in %s — "
                "run `mlflow-green recover --run-id %s`",
                len(unsent), self.run_id, where, self.journal_id,
            )

    def log_report(self, report: dict[str, Any]) -> bool:
        """Log the report artifacts to the run; False when they could not be."""
        try:
            with short_http(timeout_s=30):
                _report.log_report_artifacts(self.tracking_uri or "", self.run_id or "", report)
            return True
        except Exception as exc:
            raise_if_strict_and_permanent(exc)
            _log.warning("mlflow_green: report artifacts not logged (%s)", exc)
            return False


def _read_prior_journal(run_id: str) -> JournalState | None:
    """The journal of ``run_id`` an earlier job left on this machine, if any."""
    try:
        path = journal_path(run_id)
        # A regular file only: a device (a test's /dev/full) or a FIFO never ends.
        return read_journal(path) if path.is_file() else None
    except (OSError, ValueError):
        _log.debug("could not read the earlier journal of %s", run_id, exc_info=True)
        return None
