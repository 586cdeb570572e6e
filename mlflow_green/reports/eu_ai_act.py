"""The energy and compute part of an EU AI Act model documentation, from a run and its lineage.

Fields follow the Model Documentation Form of the General-Purpose AI Code of Practice
(Transparency chapter, European Commission, 10 July 2025), which implements AI Act Article
53(1)(a) and Annex XI, Section 1, point 2(d) "the computational resources used to train the
model (e.g. number of floating point operations), training time, and other relevant details
related to the training" and 2(e) "known or estimated energy consumption of the model"
(https://artificialintelligenceact.eu/annex/11/):

- Computational resources: training time; amount of computation used for training (FLOP);
  the methodology used to measure or estimate it.
- Energy consumption: energy used for training, in MWh; whether measured or estimated, and the
  methodology (Annex XI: where unknown it may be estimated from the computational resources).

Every figure names its method and source. The runs counted are the source run plus its
lineage (parent, sweep siblings, children, ``green.lineage``), as the carbon gate counts them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mlflow_green.tracking import schema

__all__ = ["FORM", "eu_ai_act_documentation", "format_eu_ai_act"]

FORM = (
    "General-Purpose AI Code of Practice, Transparency chapter, Model Documentation Form "
    "(European Commission, 10 July 2025); AI Act Annex XI section 1 point 2(d)-(e)"
)
# Metrics a run may carry with its training compute: HF Trainer logs ``total_flos``.
FLOP_METRICS: tuple[str, ...] = ("total_flos", "train/total_flos", "green/flop")
_MEASURED = {"counter", "power", "rapl"}


def _finite(metrics: Mapping[str, float], key: str) -> float | None:
    value = metrics.get(key)
    return float(value) if value is not None and math.isfinite(value) else None


def _method_class(methods: Mapping[str, str]) -> str:
    kinds = {m.split(":", 1)[0] for m in methods.values() if m and m != "none"}
    if "simulated" in kinds:
        return "simulated"
    if kinds and kinds <= _MEASURED | {"share"}:
        return "measured"
    if kinds & (_MEASURED | {"share"}):
        return "partly measured, partly estimated"
    return "estimated" if kinds else "unknown"


def _run_entry(client: Any, run_id: str, role: str) -> dict[str, Any]:
    run = client.get_run(run_id)
    metrics, tags = run.data.metrics, run.data.tags
    seconds = [
        m.value
        for m in client.get_metric_history(run_id, schema.EPOCH_SECONDS)
        if math.isfinite(m.value)
    ]
    try:
        pue = float(tags.get(schema.TAG_PUE, "1") or 1.0)
    except ValueError:
        pue = 1.0
    methods = {c: tags[t] for c, t in (("gpu", schema.TAG_METHOD_GPU), ("cpu", schema.TAG_METHOD_CPU),
                                         ("ram", schema.TAG_METHOD_RAM)) if t in tags}  # fmt: skip
    flop = next((v for k in FLOP_METRICS if (v := _finite(metrics, k)) is not None), None)
    return {
        "run_id": run_id,
        "role": role,
        "status": run.info.status,
        "energy_kwh": _finite(metrics, schema.CUM_ENERGY_KWH),
        "pue": pue,
        "epoch_seconds": sum(seconds),
        "epochs": len(seconds),
        "gpu_model": tags.get(schema.TAG_GPU_MODEL),
        "gpu_count": tags.get(schema.TAG_GPU_COUNT),
        "methods": methods,
        "flop": flop,
        "co2eq_kg": _finite(metrics, schema.CUM_CO2EQ_KG),
        "co2eq_market_kg": _finite(metrics, schema.CUM_CO2EQ_MARKET_KG),
        "embodied_kg": _finite(metrics, schema.CUM_EMBODIED_KG),
        "water_l": _finite(metrics, schema.CUM_WATER_L),
        "location": tags.get(schema.TAG_LOCATION),
        "intensity_source": tags.get(schema.TAG_INTENSITY_SOURCE),
    }


def _sum(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return sum(values) if values else None


def _compute(runs: list[dict[str, Any]]) -> dict[str, Any]:
    hours = sum(r["epoch_seconds"] for r in runs) / 3600.0
    device_hours = sum(r["epoch_seconds"] * int(r["gpu_count"] or 0) for r in runs) / 3600.0
    hardware = sorted({f"{r['gpu_count']} x {r['gpu_model']}" for r in runs if r["gpu_model"]})
    flop = _sum(runs, "flop")
    return {
        "training_time": {
            "value_hours": hours,
            "gpu_hours": device_hours,
            "method": f"measured: sum of green/epoch_seconds over {sum(r['epochs'] for r in runs)} "
            f"epochs of {len(runs)} runs (wall clock of each epoch)",
        },
        "amount_of_computation_flop": {
            "value": flop,
            "method": (
                f"reported by the training framework ({', '.join(FLOP_METRICS)} run metrics), summed"
                if flop is not None
                else "unknown: no run logged a FLOP count (HF Trainer logs total_flos)"
            ),
        },
        "hardware": {
            "value": hardware or None,
            "source": "green.gpu_model and green.gpu_count run tags",
        },
    }


def _energy(runs: list[dict[str, Any]]) -> dict[str, Any]:
    measured = [r for r in runs if r["energy_kwh"] is not None]
    it_kwh = sum(r["energy_kwh"] for r in measured)
    facility_kwh = sum(r["energy_kwh"] * r["pue"] for r in measured)
    methods: dict[str, str] = {}
    for r in measured:
        for component, method in r["methods"].items():
            methods.setdefault(component, method)
    return {
        "training_energy_mwh": {
            "value": facility_kwh / 1000.0 if measured else None,
            "it_energy_mwh": it_kwh / 1000.0 if measured else None,
            "pue": sorted({r["pue"] for r in measured}),
            "measured_or_estimated": _method_class(methods),
            "method": "green/cum_energy_kwh of each run (GPU + CPU + RAM energy per epoch; "
            + "; ".join(f"{c}: {m}" for c, m in sorted(methods.items()))
            + ") x the run's green.pue",
            "source": "mlflow_green per-epoch meter; methods in green.method.* run tags",
        }
    }


def eu_ai_act_documentation(client: Any, run_id: str) -> dict[str, Any]:
    """The energy/compute fields for ``run_id`` and its lineage (an ``MlflowClient``)."""
    from mlflow_green._version import __version__
    from mlflow_green.registry.footprint import ClientBackend, footprint_of_run

    footprint = footprint_of_run(ClientBackend(client), run_id, include_lineage=True)
    runs = [_run_entry(client, r.run_id, r.role) for r in footprint.runs]
    doc: dict[str, Any] = {
        "format": "eu-ai-act",
        "form": FORM,
        "run_id": run_id,
        "generated_by": f"mlflow_green {__version__}",
        "computational_resources": _compute(runs),
        "energy_consumption": _energy(runs),
        "emissions": {
            "co2eq_location_kg": _sum(runs, "co2eq_kg"),
            "co2eq_market_kg": _sum(runs, "co2eq_market_kg"),
            "embodied_kg": _sum(runs, "embodied_kg"),
            "water_l": _sum(runs, "water_l"),
            "source": "green/cum_* run metrics; green.intensity_source, green.market.source and "
            "green.water_source run tags",
        },
        "runs": runs,
        "notes": list(footprint.missing) + list(footprint.notes),
    }
    return doc


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:.3g}{unit}"
    return f"{value}{unit}"


def format_eu_ai_act(doc: Mapping[str, Any]) -> str:
    """The documentation as Markdown, each figure followed by its method."""
    compute, energy = (
        doc["computational_resources"],
        doc["energy_consumption"]["training_energy_mwh"],
    )
    em = doc["emissions"]
    lines = [
        f"## Energy and compute (EU AI Act) — run {doc['run_id']}",
        f"_Fields of the {doc['form']}; generated by {doc['generated_by']}._",
        "",
        "### Computational resources",
        f"- Training time: {_fmt(compute['training_time']['value_hours'], ' h')} "
        f"({_fmt(compute['training_time']['gpu_hours'], ' GPU-hours')}) — {compute['training_time']['method']}",
        f"- Amount of computation used for training: {_fmt(compute['amount_of_computation_flop']['value'], ' FLOP')}"
        f" — {compute['amount_of_computation_flop']['method']}",
        f"- Hardware: {', '.join(compute['hardware']['value'] or ['unknown'])} — {compute['hardware']['source']}",
        "",
        "### Energy consumption",
        f"- Energy used for training: {_fmt(energy['value'], ' MWh')} ({energy['measured_or_estimated']}; "
        f"IT energy {_fmt(energy['it_energy_mwh'], ' MWh')}, PUE {', '.join(f'{p:g}' for p in energy['pue']) or '-'})",
        f"- Methodology: {energy['method']}",
        "",
        "### Emissions (additional)",
        f"- Location-based {_fmt(em['co2eq_location_kg'], ' kg')} CO2eq, market-based "
        f"{_fmt(em['co2eq_market_kg'], ' kg')}, embodied {_fmt(em['embodied_kg'], ' kg')}, water "
        f"{_fmt(em['water_l'], ' L')} — {em['source']}",
        "",
        "### Runs counted",
    ]
    lines += [
        f"- {r['run_id']} ({r['role']}, {r['status']}): {_fmt(r['energy_kwh'], ' kWh')}"
        for r in doc["runs"]
    ]
    lines += [f"- note: {n}" for n in doc["notes"]]
    return "\n".join(lines)
