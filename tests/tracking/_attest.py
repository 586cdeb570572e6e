"""A run logged and signed the way the tracker does it, straight through ``MlflowClient``
(the tracker's own signing is tested end to end in test_attestation.py)."""

from __future__ import annotations

from typing import Any

from mlflow_green.tracking import schema
from mlflow_green.tracking.attestation import RunSigner, log_attestation

TAGS = {
    schema.TAG_METHOD_GPU: "counter",
    schema.TAG_METHOD_CPU: "rapl",
    schema.TAG_METHOD_RAM: "estimate",
    schema.TAG_STATUS: "ok",
    schema.TAG_LOCATION: "FRA",
}


def epoch_metrics(step: int, total_kg: float, steps: int) -> dict[str, float]:
    per = total_kg / steps
    return {
        schema.ENERGY_KWH: per * 2.5,
        schema.TOTAL_CO2EQ_KG: per,
        schema.CUM_ENERGY_KWH: per * 2.5 * (step + 1),
        schema.CUM_CO2EQ_KG: per * 0.8 * (step + 1),
        schema.CUM_EMBODIED_KG: per * 0.2 * (step + 1),
        schema.CUM_TOTAL_CO2EQ_KG: per * (step + 1),
        "val_accuracy": 0.5 + step / 10,  # the user's own metric: outside the evidence
    }


def log_signed_run(
    client: Any,
    experiment_id: str,
    key: Any,
    *,
    total_kg: float = 1.0,
    steps: int = 3,
    tags: dict[str, str] | None = None,
    sign: bool = True,
) -> str:
    """A finished run with ``steps`` epochs, signed by ``key`` (unsigned with sign=False)."""
    from mlflow.entities import Metric, RunTag

    run_tags = {**TAGS, **(tags or {})}
    rid = client.create_run(experiment_id).info.run_id
    signer = RunSigner(key, host="test-host")
    for step in range(steps):
        metrics = epoch_metrics(step, total_kg, steps)
        signer.add(step, metrics, tags=run_tags, start_unix_s=1000.0 + step, end_unix_s=1001.0 + step,
                   sampler={"gpu": "counter"})
        client.log_batch(rid, metrics=[Metric(k, v, 1_700_000_000_000 + step, step) for k, v in metrics.items()])
    client.log_batch(rid, tags=[RunTag(k, v) for k, v in run_tags.items()])
    if sign:
        log_attestation(client, rid, signer.document(run_id=rid, tags=run_tags))
    client.set_terminated(rid)
    return rid
