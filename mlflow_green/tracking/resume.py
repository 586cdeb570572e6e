"""Resumed runs: where a run's green history ends, so that the next job continues it.

A long job is checkpointed and resumed (a spot instance reclaimed, a SLURM time limit, a
fine-tune continued) into the *same* MLflow run. Its epochs must continue the run's history:
the next step after the last logged ``green/`` step (never one already logged), cumulative
figures from the run's last values, the projection over the whole history. Each job is one
*segment*: ``green/segment`` (0, 1, 2...) is logged with every epoch and the tag
``green.segments`` lists the first step of each segment (``"0,5,9"``).

The history is read from the run (one read per key, at start, only when the run already
exists) and from the run's local journal, whose epochs may not have reached MLflow (the
previous job was killed before its sender sent them): :func:`find_resume_point` merges both,
and those journaled-but-unacknowledged epochs are handed to the new job's sender, which
sends only the steps the run does not have.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from mlflow_green.tracking import schema
from mlflow_green.tracking.journal import JournalState

__all__ = [
    "HISTORY_KEYS",
    "HistoryReader",
    "ResumePoint",
    "find_resume_point",
    "read_run_history",
    "share_resume_point",
]

# The keys a resume needs: per-epoch totals (projection, sums), the cumulative figures, and
# the segment numbers.
HISTORY_KEYS: tuple[str, ...] = (
    schema.TOTAL_CO2EQ_KG,
    schema.ENERGY_KWH,
    schema.GPU_ENERGY_KWH,
    schema.CPU_ENERGY_KWH,
    schema.RAM_ENERGY_KWH,
    schema.EPOCH_SECONDS,
    schema.CUM_ENERGY_KWH,
    schema.CUM_CO2EQ_KG,
    schema.CUM_EMBODIED_KG,
    schema.SEGMENT,
)
# Summed over the earlier epochs, for the run's totals in the report.
_SUMMED = {
    "gpu_energy_kwh": schema.GPU_ENERGY_KWH,
    "cpu_energy_kwh": schema.CPU_ENERGY_KWH,
    "ram_energy_kwh": schema.RAM_ENERGY_KWH,
    "epoch_seconds": schema.EPOCH_SECONDS,
}


class HistoryReader(Protocol):
    """A transport's history read: every logged point of ``key`` as (step, timestamp, value)."""

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, int, float]]: ...


@dataclass(frozen=True)
class ResumePoint:
    """Where a run continues, and its figures so far (all zero for a new run)."""

    next_epoch: int = 0
    segment: int = 0
    # First step of each earlier segment, then of this one.
    segment_starts: tuple[int, ...] = (0,)
    cum_energy_kwh: float = 0.0
    cum_co2eq_kg: float = 0.0
    cum_embodied_kg: float = 0.0
    # Each earlier epoch's total CO2eq and energy, in step order (the projection's history).
    totals_kg: tuple[float, ...] = ()
    energies_kwh: tuple[float, ...] = ()
    # Earlier epochs' sums of gpu/cpu/ram energy and seconds (the report's run totals).
    sums: Mapping[str, float] = field(default_factory=dict)
    # Journaled epochs MLflow never acknowledged: step -> (timestamp_ms, metrics).
    unsent: Mapping[int, tuple[int, dict[str, float]]] = field(default_factory=dict)

    @property
    def resumed(self) -> bool:
        """True when the run had green epochs before this job."""
        return bool(self.totals_kg) or self.segment > 0

    @property
    def prior_epochs(self) -> int:
        """Epochs logged before this job."""
        return len(self.totals_kg)


def read_run_history(reader: HistoryReader, run_id: str) -> dict[int, dict[str, float]]:
    """The run's green history as ``{step: {key: value}}`` (the latest value of each step).

    One read tells a run without green epochs (the usual case: a run just opened); the other
    keys are read only when it has some.
    """
    out: dict[int, dict[str, float]] = {}
    if not reader.metric_history(run_id, HISTORY_KEYS[0]):
        return out
    for key in HISTORY_KEYS:
        for step, _ts, value in sorted(reader.metric_history(run_id, key), key=lambda p: p[1]):
            out.setdefault(int(step), {})[key] = float(value)
    return out


def _segments(steps: dict[int, dict[str, float]]) -> tuple[int, list[int]]:
    """The last segment number and the first step of each segment, from the history."""
    starts: list[int] = []
    last: float | None = None
    for step in sorted(steps):
        seg = steps[step].get(schema.SEGMENT, 0.0)
        if last is None or seg != last:
            starts.append(step)
            last = seg
    return int(last or 0), starts


def find_resume_point(
    history: dict[int, dict[str, float]],
    journal: JournalState | None = None,
    *,
    start: int | None = None,
) -> ResumePoint:
    """Where the run continues: after the last step of the run's history and its journal.

    ``start`` is the epoch the user says training resumes at (a checkpoint's): the run
    continues there unless those steps are logged already — then after the last one (the
    epochs redone since that checkpoint get new steps; their energy was spent twice).
    """
    steps: dict[int, dict[str, float]] = {s: dict(m) for s, m in history.items()}
    unsent: dict[int, tuple[int, dict[str, float]]] = {}
    if journal is not None:
        for step, (ts, metrics) in journal.epochs.items():
            if schema.TOTAL_CO2EQ_KG not in metrics:
                continue
            if step not in journal.acked and step not in history:
                unsent[step] = (ts, dict(metrics))
            merged = dict(metrics)
            merged.update(steps.get(step, {}))
            steps[step] = merged
    steps = {s: m for s, m in steps.items() if schema.TOTAL_CO2EQ_KG in m}
    if not steps:
        first = max(0, int(start or 0))
        return ResumePoint(next_epoch=first, segment_starts=(first,))
    last_step = max(steps)
    last = steps[last_step]
    next_epoch = last_step + 1
    if start is not None and start > next_epoch:
        next_epoch = int(start)
    segment, starts = _segments(steps)
    ordered = [steps[s] for s in sorted(steps)]
    sums = {name: math.fsum(m.get(key, 0.0) for m in ordered) for name, key in _SUMMED.items()}
    return ResumePoint(
        next_epoch=next_epoch,
        segment=segment + 1,
        segment_starts=(*starts, next_epoch),
        cum_energy_kwh=last.get(schema.CUM_ENERGY_KWH, 0.0),
        cum_co2eq_kg=last.get(schema.CUM_CO2EQ_KG, 0.0),
        cum_embodied_kg=last.get(schema.CUM_EMBODIED_KG, 0.0),
        totals_kg=tuple(m[schema.TOTAL_CO2EQ_KG] for m in ordered),
        energies_kwh=tuple(m.get(schema.ENERGY_KWH, 0.0) for m in ordered),
        sums=sums,
        unsent=unsent,
    )


def share_resume_point(point: ResumePoint, rank: int, has_group: bool) -> ResumePoint:
    """Rank 0's resume point on every rank of a distributed job (a collective), so that all
    ranks number epochs, sum and project alike and take the same budget decision."""
    if not has_group:
        return point
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return point
    box: list[ResumePoint | None] = [point if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    shared = box[0]
    return shared if isinstance(shared, ResumePoint) else point
