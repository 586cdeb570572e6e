"""The organisation's carbon ledger: every measured run's epochs, totalled by period or owner.

Rules (docs/ledger.md):

- Every run with per-epoch ``green/`` metrics counts, whatever its status: finished, failed,
  killed, still running, and deleted (the emissions happened); rows say how many of each.
- Each epoch counts in the period in which it ended: the timestamp MLflow stored with that
  epoch's ``green/`` metrics (the epoch's end). A run that crosses a month boundary is split
  exactly at its epochs; ``--since``/``--until`` select epochs the same way.
- A step logged twice (a replayed journal, a resend) counts once: its latest value.
- Runs recorded before the market-based and water metrics existed: their epochs count with
  ``co2eq_market_kg`` = energy × PUE × the location's residual mix where one is shipped, else
  the epoch's location-based ``co2eq_kg`` (no instruments known: the Scope 2 Guidance's last
  resort), and ``water_l`` = energy × PUE × the country's off-site L/kWh (on-site WUE unknown,
  so not counted). Such epochs are counted in ``derived_epochs``.
- ``--by model``: each registered model's versions' source runs plus their lineage (parent,
  sweep siblings, children, ``green.lineage``); a run behind several models counts in each of
  them (``notes`` says so); the rest in ``not in a model``.

The data path (``_ledger_read``): on MLflow's plain SQL stores, three statements over MLflow's
tables (the experiments' runs, their tags, every ledger metric point); elsewhere (a REST server)
a ``search_runs`` walk over all lifecycle stages and ``get_metric_history`` run by run. What
both sides share (``FIELDS``, ``LedgerRun``, ``Point``) sits in ``_ledger_types``.
"""

from __future__ import annotations

import calendar
import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mlflow_green.errors import ConfigError
from mlflow_green.reports._ledger_types import FIELDS, LedgerRun, Point
from mlflow_green.tracking import schema

__all__ = [
    "FIELDS",
    "GROUPINGS",
    "NOT_IN_A_MODEL",
    "Epoch",
    "Ledger",
    "LedgerRow",
    "LedgerRun",
    "build_ledger",
    "epochs_from_points",
    "format_ledger",
    "ledger",
    "ledger_csv",
    "parse_bound",
    "parse_by",
]

GROUPINGS: tuple[str, ...] = ("month", "quarter", "experiment", "model", "user", "tag:KEY")
NOT_IN_A_MODEL = "not in a model"

@dataclass(frozen=True)
class Epoch:
    """One epoch of one run: when it ended and its figures (after derivation)."""

    run_id: str
    step: int
    ended_ms: int
    values: Mapping[str, float]
    derived: bool = False


@dataclass
class LedgerRow:
    """One group's totals; the flags count the runs and epochs behind them."""

    group: str
    runs: int = 0
    epochs: int = 0
    energy_kwh: float = 0.0
    co2eq_kg: float = 0.0
    co2eq_market_kg: float = 0.0
    embodied_kg: float = 0.0
    total_co2eq_kg: float = 0.0
    water_l: float = 0.0
    deleted_runs: int = 0
    failed_runs: int = 0
    killed_runs: int = 0
    running_runs: int = 0
    derived_epochs: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class Ledger:
    """The rows (sorted by group), the overall total and, per period, each group's total kg."""

    by: str
    rows: list[LedgerRow]
    total: LedgerRow
    since: str | None = None
    until: str | None = None
    experiments: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    chart: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "since": self.since,
            "until": self.until,
            "experiments": list(self.experiments),
            "rows": [r.to_dict() for r in self.rows],
            "total": self.total.to_dict(),
            "notes": list(self.notes),
        }


def parse_by(raw: str) -> str:
    """Validate ``--by``: month, quarter, experiment, model, user or ``tag:KEY``."""
    value = (raw or "").strip()
    if value in GROUPINGS[:-1]:
        return value
    if value.startswith("tag:") and value[4:].strip():
        return "tag:" + value[4:].strip()
    raise ConfigError(f"--by {raw!r} is not a grouping; use one of {', '.join(GROUPINGS)}")


def parse_bound(raw: str | None, what: str, *, end: bool = False) -> int | None:
    """Milliseconds since the epoch for ``--since`` (inclusive) / ``--until`` (exclusive).

    ``YYYY-MM`` and ``YYYY-MM-DD`` name a whole month or day: ``--until`` includes it. A full
    ISO 8601 time is an instant (UTC when no offset is given).
    """
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        raise ConfigError(f"{what} is empty: give a date such as 2026-11-01 or 2026-11")
    try:
        if len(text) == 7 and text[4] == "-":
            year, month = int(text[:4]), int(text[5:])
            start = datetime(year, month, 1, tzinfo=timezone.utc)
            if end:
                days = calendar.monthrange(year, month)[1]
                return int(start.timestamp() * 1000) + days * 86_400_000
            return int(start.timestamp() * 1000)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{what} {raw!r} is not a date: use YYYY-MM, YYYY-MM-DD or an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    ms = int(moment.timestamp() * 1000)
    if end and len(text) == 10:
        ms += 86_400_000
    return ms


def _month(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m")


def _quarter(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return f"{moment.year}-Q{(moment.month - 1) // 3 + 1}"


def _derivation(tags: Mapping[str, str]) -> tuple[float, float | None, float]:
    """``(pue, residual g/kWh or None, off-site L/kWh)`` for a run logged before issue 19."""
    from mlflow_green.accounting import Location, offsite_l_per_kwh, residual_mix, resolve_location
    from mlflow_green.accounting.location import CLOUD_PROVIDERS

    try:
        pue = float(tags.get(schema.TAG_PUE, "1") or 1.0)
    except ValueError:
        pue = 1.0
    pue = pue if math.isfinite(pue) and pue >= 1.0 else 1.0
    label = (tags.get(schema.TAG_LOCATION) or "").strip()
    location = Location.world()
    try:
        head, _, tail = label.partition("/")
        if tail and head.lower() in CLOUD_PROVIDERS:
            location = resolve_location(cloud_provider=head, cloud_region=tail, use_env=False)
        elif head and head.lower() not in {"world", "mixed"}:
            location = resolve_location(head, tail or None, use_env=False)
    except ConfigError:
        location = Location.world()
    mix = residual_mix(location)
    offsite, _ = offsite_l_per_kwh(location)
    return pue, (mix.g_per_kwh if mix else None), offsite


def epochs_from_points(run: LedgerRun, points: Iterable[Point]) -> list[Epoch]:
    """The run's epochs from its logged points (one per step; a re-logged step once)."""
    latest: dict[tuple[int, str], tuple[int, float]] = {}
    for key, step, timestamp, value in points:
        old = latest.get((step, key))
        if old is None or timestamp >= old[0]:
            latest[(step, key)] = (timestamp, value)
    by_step: dict[int, dict[str, tuple[int, float]]] = defaultdict(dict)
    for (step, key), stamped in latest.items():
        by_step[step][key] = stamped
    derivation: tuple[float, float | None, float] | None = None
    epochs: list[Epoch] = []
    for step in sorted(by_step):
        logged = by_step[step]
        if not any(
            k in logged for k in (schema.ENERGY_KWH, schema.CO2EQ_KG, schema.TOTAL_CO2EQ_KG)
        ):
            continue
        values = {
            name: (v if math.isfinite(v := logged[key][1]) else 0.0) if key in logged else 0.0
            for name, key in FIELDS.items()
        }
        derived = False
        if schema.CO2EQ_MARKET_KG not in logged or schema.WATER_L not in logged:
            derivation = derivation or _derivation(run.tags)
            pue, residual, offsite = derivation
            if schema.CO2EQ_MARKET_KG not in logged:
                values["co2eq_market_kg"] = (
                    values["energy_kwh"] * pue * residual / 1000.0
                    if residual is not None
                    else values["co2eq_kg"]
                )
            if schema.WATER_L not in logged:
                values["water_l"] = values["energy_kwh"] * pue * offsite
            derived = True
        ended = max(stamped[0] for stamped in logged.values())
        epochs.append(Epoch(run.run_id, step, ended, values, derived))
    return epochs


def _groups(
    by: str, run: LedgerRun, epoch: Epoch, models: Mapping[str, Sequence[str]]
) -> Sequence[str]:
    if by == "month":
        return (_month(epoch.ended_ms),)
    if by == "quarter":
        return (_quarter(epoch.ended_ms),)
    if by == "experiment":
        return (run.experiment_name,)
    if by == "user":
        return (run.user or "(unknown user)",)
    if by == "model":
        return models.get(run.run_id) or (NOT_IN_A_MODEL,)
    key = by[4:]
    value = run.tags.get(key)
    return (value if value else f"(no {key})",)


def _add(row: LedgerRow, epoch: Epoch) -> None:
    row.epochs += 1
    for name in FIELDS:
        setattr(row, name, getattr(row, name) + epoch.values[name])
    row.derived_epochs += epoch.derived


def _count_run(row: LedgerRow, run: LedgerRun) -> None:
    row.runs += 1
    row.deleted_runs += run.deleted
    row.failed_runs += run.status == "FAILED"
    row.killed_runs += run.status == "KILLED"
    row.running_runs += run.status in {"RUNNING", "SCHEDULED"}


def build_ledger(
    runs: Iterable[LedgerRun],
    epochs: Mapping[str, Sequence[Epoch]],
    *,
    by: str,
    since_ms: int | None = None,
    until_ms: int | None = None,
    models: Mapping[str, Sequence[str]] | None = None,
    since: str | None = None,
    until: str | None = None,
    experiments: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> Ledger:
    """Total ``epochs`` (per run id) of ``runs`` by ``by``; pure, no MLflow."""
    by = parse_by(by)
    model_map = models or {}
    rows: dict[str, LedgerRow] = {}
    total = LedgerRow("total")
    chart: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    period = _quarter if by == "quarter" else _month
    for run in runs:
        counted: set[str] = set()
        in_total = False
        for epoch in epochs.get(run.run_id, ()):
            if since_ms is not None and epoch.ended_ms < since_ms:
                continue
            if until_ms is not None and epoch.ended_ms >= until_ms:
                continue
            groups = _groups(by, run, epoch, model_map)
            for group in groups:
                row = rows.setdefault(group, LedgerRow(group))
                if group not in counted:
                    _count_run(row, run)
                    counted.add(group)
                _add(row, epoch)
                chart[period(epoch.ended_ms)][group] += epoch.values["total_co2eq_kg"]
            _add(total, epoch)
            if not in_total:
                _count_run(total, run)
                in_total = True
    ordered = sorted(rows.values(), key=lambda r: (r.group == NOT_IN_A_MODEL, r.group))
    return Ledger(
        by=by,
        rows=ordered,
        total=total,
        since=since,
        until=until,
        experiments=tuple(experiments),
        notes=tuple(notes),
        chart={p: dict(g) for p, g in sorted(chart.items())},
    )


def ledger(
    client: Any,
    *,
    by: str,
    experiments: Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
) -> Ledger:
    """The ledger of the tracking server behind ``client``.

    ``client`` is an ``MlflowClient`` or a tracking store (the ``/green`` page passes the
    server's own); ``--by model`` needs a client (it reads the registry).
    """
    by = parse_by(by)
    since_ms = parse_bound(since, "--since")
    until_ms = parse_bound(until, "--until", end=True)
    if since_ms is not None and until_ms is not None and until_ms <= since_ms:
        raise ConfigError(
            f"--until {until} is not after --since {since}: swap them or widen the range"
        )
    from mlflow_green.reports._ledger_read import experiments_of, read_runs_and_points

    names = experiments_of(client, experiments)
    runs, points = read_runs_and_points(client, names)
    wanted = {r.run_id for r in runs}
    by_id = {r.run_id: r for r in runs}
    epochs = {
        rid: epochs_from_points(by_id[rid], pts) for rid, pts in points.items() if rid in wanted
    }
    models: dict[str, list[str]] = {}
    notes: list[str] = []
    if by == "model":
        from mlflow_green.reports._ledger_models import runs_by_model

        models, notes = runs_by_model(client, runs)
    return build_ledger(
        runs,
        epochs,
        by=by,
        since_ms=since_ms,
        until_ms=until_ms,
        models=models,
        since=since,
        until=until,
        experiments=sorted(names.values()),
        notes=notes,
    )


def _figure(value: float) -> str:
    return "0" if value == 0 else f"{value:.4g}"


def format_ledger(book: Ledger) -> str:
    """The plain-text table printed by ``mlflow-green ledger``."""
    headers = (
        "group",
        "runs",
        "epochs",
        "energy_kwh",
        "co2eq_kg",
        "market_kg",
        "embodied_kg",
        "total_kg",
        "water_l",
    )
    body = [
        (r.group, str(r.runs), str(r.epochs), *(_figure(getattr(r, f)) for f in FIELDS))
        for r in [*book.rows, book.total]
    ]
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(headers)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    span = f" from {book.since}" if book.since else ""
    span += f" until {book.until}" if book.until else ""
    lines = [f"carbon ledger by {book.by}{span}", fmt(headers)]
    lines += [fmt(line) for line in body[:-1]]
    lines += ["-" * len(fmt(headers)), fmt(body[-1])]
    t = book.total
    flags = [
        f"{n} {what}"
        for n, what in (
            (t.deleted_runs, "deleted"),
            (t.failed_runs, "failed"),
            (t.killed_runs, "killed"),
            (t.running_runs, "still running"),
        )
        if n
    ]
    if flags:
        lines.append(f"included runs: {', '.join(flags)} (the emissions happened)")
    if t.derived_epochs:
        lines.append(
            f"{t.derived_epochs} epochs predate the market/water metrics: market_kg from the residual mix "
            "(else location-based), water_l off-site only"
        )
    lines += list(book.notes)
    return "\n".join(lines)


def ledger_csv(book: Ledger) -> str:
    """CSV of the rows (and a final ``total`` row), the JSON field names as the header."""
    buf = io.StringIO()
    rows = [r.to_dict() for r in [*book.rows, book.total]]
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
