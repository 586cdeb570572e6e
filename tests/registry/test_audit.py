"""The gate's answer from a verdict (:func:`refused`), and the audit's fail-closed listing."""

from __future__ import annotations

from typing import Any

import pytest

from mlflow_green.registry.audit import audit, refused
from mlflow_green.registry.footprint import ClientBackend
from mlflow_green.registry.policy import Policy
from tests.registry._helpers import log_green_run, register, unique


@pytest.mark.parametrize(
    ("passed", "gated", "alias", "stage", "expected"),
    [
        (True, True, "champion", None, False),
        (False, True, "champion", None, True),
        (False, False, "canary", None, False),  # an ungated alias: the server promotes
        (False, False, None, "Archived", False),
        (False, True, None, "Production", True),
        (False, False, None, None, True),  # model-wide: any failure is a failure
        (True, False, None, None, False),
    ],
)
def test_refused(passed: bool, gated: bool, alias: str | None, stage: str | None, expected: bool) -> None:
    assert refused({"passed": passed, "gated": gated, "alias": alias, "stage": stage}) is expected


def test_a_target_that_cannot_be_evaluated_is_listed(client: Any, experiment_id: str) -> None:
    name = unique("m")
    version = register(client, name, log_green_run(client, experiment_id, 1.0), model_tags={"green.budget.total_co2eq_kg": "5"})
    client.set_registered_model_alias(name, "champion", version)

    class Broken(ClientBackend):
        def get_model_version(self, name: str, version: str) -> Any:
            raise RuntimeError("store unavailable")

    report = audit(Broken(client), client, Policy(), model=name)
    (entry,) = report.violations
    assert entry.alias == "champion" and "could not be evaluated" in entry.reasons[0]
    assert report.errors and "store unavailable" in report.errors[0]
    assert audit(ClientBackend(client), client, Policy(), model=name).violations == ()


def test_can_read_leaves_out_other_models(client: Any, experiment_id: str) -> None:
    names = [unique("m"), unique("m")]
    for name in names:
        v = register(client, name, log_green_run(client, experiment_id, 9.0), model_tags={"green.budget.total_co2eq_kg": "5"})
        client.set_registered_model_alias(name, "champion", v)
    report = audit(ClientBackend(client), client, Policy(), can_read=lambda n: n == names[0])
    assert [v.model for v in report.violations] == [names[0]]
