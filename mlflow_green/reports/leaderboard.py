"""Rank an experiment's runs by accuracy per kg CO2eq, with the Pareto frontier marked.

The rows are computed from each run's *latest* metric values (``run.data.metrics``): the
cumulative ``green/cum_*`` keys hold the run totals at their last step.

The same code serves the ``mlflow-green leaderboard`` command (an :class:`MlflowClient`) and
the ``/green`` page of the gated server (the server's own tracking store): both expose
``search_runs``/``get_experiment_by_name`` with the same keyword arguments, which is all
:class:`RunSearcher` asks for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from mlflow_green.errors import ConfigError
from mlflow_green.reports.pareto import pareto_mask
from mlflow_green.tracking import schema

__all__ = [
    "DEFAULT_ACCURACY_METRICS",
    "REPORT_RUN_TAG",
    "SCI_METRIC_KEYS",
    "SORT_KEYS",
    "Leaderboard",
    "LeaderboardRow",
    "RunSearcher",
    "SkippedRun",
    "build_leaderboard",
    "find_experiment",
    "format_number",
    "format_table",
    "iter_runs",
    "leaderboard",
    "row_from_run",
]

#: Tried in order when neither ``--metric`` nor the run's ``green.accuracy_metric`` tag names one.
DEFAULT_ACCURACY_METRICS: tuple[str, ...] = ("eval_accuracy", "val_accuracy", "val_acc", "accuracy")

#: Tag on the run that holds logged leaderboard artifacts; such runs are not ranked.
REPORT_RUN_TAG = "green.report"

# Inference SCI figures (g CO2eq per request) a run may carry, e.g. logged after an
# `mlflow-green sci` measurement; the Green Score exists only where one of them does.
SCI_METRIC_KEYS: tuple[str, ...] = ("green/inference_g_per_request", "green/sci_g_per_unit")

# sort key -> True when larger is better
SORT_KEYS: dict[str, bool] = {
    "accuracy_per_kg": True,
    "accuracy": True,
    "green_score": True,
    "total_co2eq_kg": False,
    "co2eq_kg": False,
    "embodied_kg": False,
    "energy_kwh": False,
    "embodied_share": False,
    "co2eq_market_kg": False,
    "water_l": False,
    "run_name": False,
}

_PAGE_SIZE = 5000  # runs per search page; the SQL store accepts up to 50,000
_GREEN_KEYS = (schema.CUM_TOTAL_CO2EQ_KG, schema.CUM_CO2EQ_KG, schema.CUM_ENERGY_KWH)


class RunSearcher(Protocol):
    """What the leaderboard needs: an ``MlflowClient`` or an MLflow ``AbstractStore``."""

    def search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str,
        run_view_type: int,
        max_results: int,
        order_by: list[str] | None,
        page_token: str | None,
    ) -> Any: ...

    def get_experiment_by_name(self, experiment_name: str) -> Any: ...


@dataclass(frozen=True)
class LeaderboardRow:
    """One run of the leaderboard. Masses in kg, energy in kWh; ``None`` where unknown."""

    run_id: str
    run_name: str
    accuracy: float | None
    energy_kwh: float | None
    co2eq_kg: float | None
    embodied_kg: float | None
    total_co2eq_kg: float | None
    embodied_share: float | None
    accuracy_per_kg: float | None
    pareto: bool = False
    green_score: float | None = None
    accuracy_metric: str | None = None
    status: str | None = None
    simulated: bool = False
    methods: dict[str, str] = field(default_factory=dict)
    start_time_ms: int | None = None
    co2eq_market_kg: float | None = None
    water_l: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SkippedRun:
    """A run left out of the ranking, and why."""

    run_id: str
    run_name: str
    reason: str


@dataclass(frozen=True)
class Leaderboard:
    """The ranked rows of one experiment (already sorted and cut to ``top``)."""

    experiment_id: str
    experiment_name: str
    rows: list[LeaderboardRow]
    skipped: list[SkippedRun]
    total_ranked: int
    sort: str
    metric: str | None

    @property
    def pareto_rows(self) -> list[LeaderboardRow]:
        return [r for r in self.rows if r.pareto]

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "experiment_name": self.experiment_name,
            "sort": self.sort,
            "metric": self.metric,
            "total_ranked": self.total_ranked,
            "rows": [r.to_dict() for r in self.rows],
            "skipped": [asdict(s) for s in self.skipped],
        }


def find_experiment(searcher: RunSearcher, name_or_id: str) -> Any:
    """The experiment called ``name_or_id`` (or with that id); ConfigError when there is none."""
    from mlflow.exceptions import MlflowException

    name = name_or_id.strip()
    if not name:
        raise ConfigError("--experiment is empty: give an experiment name")
    experiment = searcher.get_experiment_by_name(name)
    if experiment is None and name.isdigit() and hasattr(searcher, "get_experiment"):
        try:
            experiment = searcher.get_experiment(name)  # type: ignore[attr-defined]
        except MlflowException:
            experiment = None
    if experiment is None:
        raise ConfigError(
            f"experiment {name!r} not found on this tracking server; check the name or MLFLOW_TRACKING_URI"
        )
    return experiment


def iter_runs(
    searcher: RunSearcher,
    experiment_ids: Sequence[str],
    *,
    filter_string: str = "",
    page_size: int = _PAGE_SIZE,
) -> Iterator[Any]:
    """Every active run of the experiments, page by page (page tokens, not one huge call)."""
    from mlflow.entities import ViewType

    token: str | None = None
    while True:
        page = searcher.search_runs(
            experiment_ids=list(experiment_ids),
            filter_string=filter_string,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=page_size,
            order_by=None,
            page_token=token,
        )
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _accuracy(
    metrics: Mapping[str, float], tags: Mapping[str, str], metric: str | None
) -> tuple[float | None, str | None]:
    if metric:
        return _finite(metrics.get(metric)), metric
    tagged = tags.get(schema.TAG_ACCURACY_METRIC)
    candidates = ((tagged,) if tagged else ()) + DEFAULT_ACCURACY_METRICS
    for key in candidates:
        if key in metrics:
            return _finite(metrics[key]), key
    return None, None


def _green_score(accuracy: float | None, metrics: Mapping[str, float]) -> float | None:
    # The Green Score is an inference figure (accounting.green_score: accuracy per g per
    # request); the leaderboard never invents one from training numbers.
    from mlflow_green.accounting import green_score

    if accuracy is None:
        return None
    for key in SCI_METRIC_KEYS:
        g_per_request = _finite(metrics.get(key))
        if g_per_request is not None and g_per_request > 0:
            return _finite(green_score(accuracy, g_per_request))
    return None


def row_from_run(run: Any, metric: str | None = None) -> LeaderboardRow | None:
    """The leaderboard row of an MLflow run, or None when it carries no ``green/`` totals."""
    metrics: Mapping[str, float] = run.data.metrics
    tags: Mapping[str, str] = run.data.tags
    if not any(key in metrics for key in _GREEN_KEYS):
        return None
    energy = _finite(metrics.get(schema.CUM_ENERGY_KWH))
    operational = _finite(metrics.get(schema.CUM_CO2EQ_KG))
    embodied = _finite(metrics.get(schema.CUM_EMBODIED_KG))
    total = _finite(metrics.get(schema.CUM_TOTAL_CO2EQ_KG))
    if total is None and operational is not None:
        total = operational + (embodied or 0.0)
    share = _finite(metrics.get(schema.EMBODIED_SHARE))
    if share is None and embodied is not None and total:
        share = embodied / total
    accuracy, accuracy_key = _accuracy(metrics, tags, metric)
    # Recomputed rather than read from green/accuracy_per_kg so that --metric is honoured.
    per_kg = accuracy / total if accuracy is not None and total is not None and total > 0 else None
    methods = {
        component: tags[tag]
        for component, tag in (
            ("gpu", schema.TAG_METHOD_GPU),
            ("cpu", schema.TAG_METHOD_CPU),
            ("ram", schema.TAG_METHOD_RAM),
        )
        if tag in tags
    }
    return LeaderboardRow(
        run_id=run.info.run_id,
        run_name=run.info.run_name or run.info.run_id[:8],
        accuracy=accuracy,
        energy_kwh=energy,
        co2eq_kg=operational,
        embodied_kg=embodied,
        total_co2eq_kg=total,
        embodied_share=share,
        accuracy_per_kg=per_kg,
        green_score=_green_score(accuracy, metrics),
        accuracy_metric=accuracy_key,
        status=tags.get(schema.TAG_STATUS),
        simulated="simulated" in methods.values(),
        methods=methods,
        start_time_ms=run.info.start_time,
        co2eq_market_kg=_finite(metrics.get(schema.CUM_CO2EQ_MARKET_KG)),
        water_l=_finite(metrics.get(schema.CUM_WATER_L)),
    )


def _sort_rows(rows: Iterable[LeaderboardRow], sort: str) -> list[LeaderboardRow]:
    descending = SORT_KEYS[sort]

    def key(row: LeaderboardRow) -> tuple[int, Any, str, str]:
        value = getattr(row, sort)
        if value is None:
            return (1, 0, row.run_name, row.run_id)
        if isinstance(value, str):
            return (0, value.lower(), row.run_name, row.run_id)
        return (0, -value if descending else value, row.run_name, row.run_id)

    return sorted(rows, key=key)


def build_leaderboard(
    runs: Iterable[Any],
    *,
    experiment_id: str = "",
    experiment_name: str = "",
    metric: str | None = None,
    sort: str = "accuracy_per_kg",
    top: int | None = None,
) -> Leaderboard:
    """Rows for ``runs``: the frontier is computed over all of them, then sorted and cut."""
    if sort not in SORT_KEYS:
        raise ConfigError(f"--sort {sort!r} is not a column; use one of {', '.join(SORT_KEYS)}")
    if top is not None and top < 1:
        raise ConfigError(f"--top {top} must be at least 1")
    rows: list[LeaderboardRow] = []
    skipped: list[SkippedRun] = []
    for run in runs:
        if run.data.tags.get(REPORT_RUN_TAG):
            continue  # holds leaderboard artifacts; not a training run
        row = row_from_run(run, metric)
        if row is None:
            skipped.append(
                SkippedRun(
                    run.info.run_id,
                    run.info.run_name or run.info.run_id[:8],
                    "no green/ metrics (not measured by mlflow_green)",
                )
            )
        else:
            rows.append(row)
    mask = pareto_mask([(r.accuracy, r.total_co2eq_kg) for r in rows])
    marked = [replace(r, pareto=True) if on else r for r, on in zip(rows, mask, strict=True)]
    ordered = _sort_rows(marked, sort)
    if top is not None:
        ordered = ordered[:top]
    skipped.sort(key=lambda s: (s.run_name, s.run_id))
    return Leaderboard(
        experiment_id=experiment_id,
        experiment_name=experiment_name,
        rows=ordered,
        skipped=skipped,
        total_ranked=len(marked),
        sort=sort,
        metric=metric,
    )


def leaderboard(
    searcher: RunSearcher,
    experiment: str,
    *,
    metric: str | None = None,
    sort: str = "accuracy_per_kg",
    top: int | None = None,
    filter_string: str = "",
    page_size: int = _PAGE_SIZE,
) -> Leaderboard:
    """The leaderboard of the experiment named ``experiment`` (an MlflowClient or a store)."""
    exp = find_experiment(searcher, experiment)
    runs = iter_runs(
        searcher, [exp.experiment_id], filter_string=filter_string, page_size=page_size
    )
    return build_leaderboard(
        runs,
        experiment_id=exp.experiment_id,
        experiment_name=exp.name,
        metric=metric,
        sort=sort,
        top=top,
    )


def format_number(value: float | None, *, percent: bool = False) -> str:
    """Compact human figure: 4 significant digits, ``-`` for unknown."""
    if value is None:
        return "-"
    if percent:
        return f"{value * 100:.1f}%"
    if value == 0:
        return "0"
    return f"{value:.4g}"


def format_table(board: Leaderboard) -> str:
    """The plain-text table printed by ``mlflow-green leaderboard``."""
    headers = (
        "",
        "run",
        "accuracy",
        "energy_kwh",
        "co2eq_kg",
        "market_kg",
        "embodied_kg",
        "total_kg",
        "water_l",
        "embodied",
        "acc_per_kg",
        "score",
    )
    body = [
        (
            "*" if r.pareto else "",
            _clip(r.run_name + (" (sim)" if r.simulated else ""), 32),
            format_number(r.accuracy),
            format_number(r.energy_kwh),
            format_number(r.co2eq_kg),
            format_number(r.co2eq_market_kg),
            format_number(r.embodied_kg),
            format_number(r.total_co2eq_kg),
            format_number(r.water_l),
            format_number(r.embodied_share, percent=True),
            format_number(r.accuracy_per_kg),
            format_number(r.green_score),
        )
        for r in board.rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(headers)]
    left = {0, 1}

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines = [
        f"experiment {board.experiment_name!r} ({board.experiment_id}), sorted by {board.sort}"
    ]
    lines.append(fmt(headers))
    lines.extend(fmt(line) for line in body)
    shown = len(board.rows)
    summary = (
        f"{shown} of {board.total_ranked} runs shown"
        if shown < board.total_ranked
        else f"{shown} runs"
    )
    lines.append(f"{summary}; * = Pareto frontier (max accuracy, min total CO2eq)")
    if any(r.simulated for r in board.rows):
        lines.append("(sim) = energy from a simulated sampler, not a measurement")
    if board.skipped:
        names = ", ".join(s.run_name for s in board.skipped[:10])
        more = f" and {len(board.skipped) - 10} more" if len(board.skipped) > 10 else ""
        lines.append(f"skipped {len(board.skipped)} runs without green/ metrics: {names}{more}")
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
