"""The epoch pipeline's seams: metric contributors and epoch observers, on a real run."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

import pytest

import mlflow_green
from mlflow_green.tracking import schema
from mlflow_green.tracking.journal import journal_path, read_journal
from mlflow_green.tracking.pipeline import (
    EpochContext,
    FinishedEpoch,
    register_epoch_observer,
    register_metric_contributor,
)
from tests.tracking._checks import history

# A key of no built-in metric (green/water_l is built in since issue 19: it would clash).
WATER = "green/example_contributed_l"


@pytest.fixture
def hooks() -> Iterator[list[object]]:
    removers: list[object] = []
    yield removers
    for remove in removers:
        remove()  # type: ignore[operator]


def test_a_contributor_adds_metrics_and_an_observer_sees_each_final_epoch_in_order(
    mlflow_local: str, hooks: list[object]
) -> None:
    import mlflow

    seen: list[FinishedEpoch] = []

    def water(context: EpochContext) -> Mapping[str, float]:
        assert context.location is not None and context.location.label == "FRA"
        return {WATER: context.record.energy_kwh * 1.8}

    hooks += [register_metric_contributor(water), register_epoch_observer(seen.append)]
    with mlflow.start_run() as run:
        for _ in mlflow_green.epochs(3, sampler="simulated:300", country="FRA", silent=True, report=False):
            time.sleep(0.02)
    client = mlflow.MlflowClient()
    energy = dict(history(client, run.info.run_id, schema.ENERGY_KWH))
    assert dict(history(client, run.info.run_id, WATER)) == pytest.approx({s: e * 1.8 for s, e in energy.items()})
    assert [e.step for e in seen] == [0, 1, 2]
    journal = read_journal(journal_path(run.info.run_id))
    for epoch in seen:
        assert epoch.run_id == run.info.run_id
        # The observer saw exactly what was journaled (and sent).
        assert dict(epoch.metrics) == journal.epochs[epoch.step][1]
        assert WATER in epoch.metrics


def test_a_failing_hook_raises_under_strict_and_degrades_otherwise(
    mlflow_local: str, hooks: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    def clash(context: EpochContext) -> Mapping[str, float]:
        return {schema.ENERGY_KWH: 0.0}  # a key already in the batch: refused

    hooks.append(register_metric_contributor(clash))
    with pytest.raises(ValueError, match="already in the epoch's batch"):
        with mlflow.start_run():
            for _ in mlflow_green.epochs(1, sampler="simulated:300", silent=True, report=False, intensity=100):
                pass
    monkeypatch.setenv("MLFLOW_GREEN_STRICT", "0")
    with mlflow.start_run() as run:
        for _ in mlflow_green.epochs(1, sampler="simulated:300", silent=True, report=False, intensity=100):
            pass
    tags = mlflow.MlflowClient().get_run(run.info.run_id).data.tags
    assert tags[schema.TAG_STATUS].startswith("degraded: metric contributor clash failed")


def test_unregistering_removes_the_hook(mlflow_local: str) -> None:
    import mlflow

    calls: list[int] = []
    remove = register_epoch_observer(lambda e: calls.append(e.step))
    remove()
    with mlflow.start_run():
        for _ in mlflow_green.epochs(1, sampler="simulated:300", silent=True, report=False, intensity=100):
            pass
    assert calls == []
