"""The measured footprint of a model version: its source run's final ``green/`` totals (plus lineage).

The same code runs in the client (``MlflowClient``) and inside the gated server (the server's own
stores); :class:`Backend` hides the difference.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlflow_green.registry._backends import (
    PARENT_RUN_TAG,
    Backend,
    ClientBackend,
    StoreBackend,
)
from mlflow_green.tracking import schema

__all__ = [
    "Backend",
    "ClientBackend",
    "Footprint",
    "RunFootprint",
    "StoreBackend",
    "footprint_of_source",
    "model_version_footprint",
    "resolve_source_run",
]

_MAX_COPY_DEPTH = 16


@dataclass(frozen=True)
class RunFootprint:
    """The final cumulative ``green/`` figures of one run (None where the run logged none)."""

    run_id: str
    role: str  # "source", "parent", "child", "sibling" or "lineage"
    total_co2eq_kg: float | None
    co2eq_kg: float | None
    energy_kwh: float | None
    embodied_kg: float | None
    accuracy_per_kg: float | None
    status: str | None
    methods: Mapping[str, str] = field(default_factory=dict)
    co2eq_market_kg: float | None = None  # issue 19; None for runs logged before it

    @property
    def measured(self) -> bool:
        return self.total_co2eq_kg is not None or self.energy_kwh is not None

    @property
    def simulated(self) -> bool:
        return any(m == "simulated" for m in self.methods.values())

    @property
    def degraded(self) -> bool:
        return bool(self.status) and str(self.status).startswith("degraded")


@dataclass(frozen=True)
class Footprint:
    """A model version's footprint, summed over its runs without double counting."""

    runs: tuple[RunFootprint, ...]
    source_run_id: str | None
    copied_from: tuple[str, ...] = ()  # "name/version" chain of copy_model_version sources
    missing: tuple[str, ...] = ()  # sentences: evidence that should be there and is not
    notes: tuple[str, ...] = ()  # sentences worth reporting that decide nothing

    def _sum(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.runs if getattr(r, attr) is not None]
        return math.fsum(values) if values else None

    @property
    def total_co2eq_kg(self) -> float | None:
        return self._sum("total_co2eq_kg")

    @property
    def co2eq_kg(self) -> float | None:
        return self._sum("co2eq_kg")

    @property
    def energy_kwh(self) -> float | None:
        return self._sum("energy_kwh")

    @property
    def embodied_kg(self) -> float | None:
        return self._sum("embodied_kg")

    @property
    def co2eq_market_kg(self) -> float | None:
        """Market-based operational kg; None unless every measured run logged it (fails closed)."""
        measured = [r for r in self.runs if r.measured]
        if not measured or any(r.co2eq_market_kg is None for r in measured):
            return None
        return self._sum("co2eq_market_kg")

    @property
    def accuracy_per_kg(self) -> float | None:
        """The source run's accuracy divided by the whole footprint (lineage included)."""
        source = next((r for r in self.runs if r.role == "source"), None)
        if source is None or source.accuracy_per_kg is None:
            return None
        total = self.total_co2eq_kg
        if source.total_co2eq_kg is None or not total:
            return source.accuracy_per_kg
        accuracy = source.accuracy_per_kg * source.total_co2eq_kg
        return accuracy / total

    @property
    def measured(self) -> bool:
        return any(r.measured for r in self.runs)

    @property
    def simulated_runs(self) -> tuple[str, ...]:
        return tuple(r.run_id for r in self.runs if r.simulated)

    @property
    def degraded_runs(self) -> tuple[RunFootprint, ...]:
        return tuple(r for r in self.runs if r.degraded)

    def figure(self, budget_key: str) -> float | None:
        """The figure a budget key is compared with."""
        return {
            schema.BUDGET_TOTAL_CO2EQ_KG: self.total_co2eq_kg,
            schema.BUDGET_CO2EQ_KG: self.co2eq_kg,
            schema.BUDGET_ENERGY_KWH: self.energy_kwh,
            schema.BUDGET_MIN_ACCURACY_PER_KG: self.accuracy_per_kg,
            schema.BUDGET_CO2EQ_MARKET_KG: self.co2eq_market_kg,
        }[budget_key]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_run_id": self.source_run_id,
            "copied_from": list(self.copied_from),
            "total_co2eq_kg": self.total_co2eq_kg,
            "co2eq_kg": self.co2eq_kg,
            "energy_kwh": self.energy_kwh,
            "embodied_kg": self.embodied_kg,
            "accuracy_per_kg": self.accuracy_per_kg,
            "runs": [
                {
                    "run_id": r.run_id,
                    "role": r.role,
                    "total_co2eq_kg": r.total_co2eq_kg,
                    "co2eq_kg": r.co2eq_kg,
                    "energy_kwh": r.energy_kwh,
                    "embodied_kg": r.embodied_kg,
                    "accuracy_per_kg": r.accuracy_per_kg,
                    "status": r.status,
                    "methods": dict(r.methods),
                }
                for r in self.runs
            ],
            "missing": list(self.missing),
            "notes": list(self.notes),
        }


def _metric(metrics: Mapping[str, float | None], key: str) -> float | None:
    value = metrics.get(key)
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# Every figure is read at its worst over the run's whole history, so that no later write can
# improve it: cumulative totals never decrease, so their maximum is the run's total, and a small
# value logged at a later step cannot shrink the footprint; accuracy per kg is read at its
# minimum, so a large value logged later cannot lift a version over a min_accuracy_per_kg floor.
_CUMULATIVE = (
    schema.CUM_TOTAL_CO2EQ_KG,
    schema.CUM_CO2EQ_KG,
    schema.CUM_ENERGY_KWH,
    schema.CUM_EMBODIED_KG,
    schema.CUM_CO2EQ_MARKET_KG,  # issue 19
)
_AT_MINIMUM = (schema.ACCURACY_PER_KG,)
_RUN_LATEST = (*_CUMULATIVE, *_AT_MINIMUM)


def _worst(backend: Backend, run_id: str, key: str) -> float | None:
    history = backend.metric_history(run_id, key)
    if key in _AT_MINIMUM and any(math.isnan(v) or v == -math.inf for v in history):
        return None  # an unknown value in the history: the worst is unknown
    values = [v for v in history if math.isfinite(v)]
    if not values:
        return None
    return min(values) if key in _AT_MINIMUM else max(values)


def run_footprint(run: Any, role: str, backend: Backend | None = None) -> RunFootprint:
    """One run's figures; with ``backend``, each read at its worst over the run's history."""
    metrics: dict[str, float | None] = dict(run.data.metrics)
    if backend is not None:
        for key in _RUN_LATEST:
            if key in metrics:
                metrics[key] = _worst(backend, run.info.run_id, key)
    tags = run.data.tags
    methods = {
        component: tags[tag]
        for component, tag in (
            ("gpu", schema.TAG_METHOD_GPU),
            ("cpu", schema.TAG_METHOD_CPU),
            ("ram", schema.TAG_METHOD_RAM),
        )
        if tag in tags
    }
    return RunFootprint(
        run_id=run.info.run_id,
        role=role,
        total_co2eq_kg=_metric(metrics, schema.CUM_TOTAL_CO2EQ_KG),
        co2eq_kg=_metric(metrics, schema.CUM_CO2EQ_KG),
        energy_kwh=_metric(metrics, schema.CUM_ENERGY_KWH),
        embodied_kg=_metric(metrics, schema.CUM_EMBODIED_KG),
        accuracy_per_kg=_metric(metrics, schema.ACCURACY_PER_KG),
        status=tags.get(schema.TAG_STATUS),
        methods=methods,
        co2eq_market_kg=_metric(metrics, schema.CUM_CO2EQ_MARKET_KG),
    )


def _not_found(exc: BaseException) -> bool:
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


def _run_id_from_runs_uri(source: str) -> str | None:
    if source.startswith("runs:/"):
        run_id = source[len("runs:/") :].split("/", 1)[0]
        return run_id or None
    return None


class _Missing(Exception):
    """A referent of the footprint (copied-from version, logged model) that does not exist."""


def _lookup(what: str, read: Any, *args: str) -> Any:
    try:
        return read(*args)
    except Exception as exc:
        if _not_found(exc):
            raise _Missing(f"{what} does not exist (any more), so the footprint is unknown") from None
        raise


def _resolve(
    backend: Backend, source: str | None, run_id: str | None
) -> tuple[str | None, tuple[str, ...], tuple[str, ...], Footprint | None]:
    """``(run_id, copy chain, notes, frozen)``; ``frozen`` is the copied-from version's frozen
    record when it has a final one (the copy's footprint is its source's). :class:`_Missing`
    when a referent along the way does not exist."""
    chain: list[str] = []
    notes: list[str] = []
    seen: set[str] = set()
    for _ in range(_MAX_COPY_DEPTH):
        source = source or ""
        if source.startswith("models:/"):
            target = source[len("models:/") :].strip("/")
            if "/" in target or "@" in target:
                if "@" in target and "/" not in target:
                    name, alias = target.split("@", 1)
                    mv = _lookup(
                        f"copied-from model {name}@{alias}",
                        backend.get_model_version_by_alias,
                        name,
                        alias,
                    )
                else:
                    name, version = target.rsplit("/", 1)
                    mv = _lookup(
                        f"copied-from model version {name}/{version}",
                        backend.get_model_version,
                        name,
                        version,
                    )
                ref = f"{mv.name}/{mv.version}"
                if ref in seen:
                    notes.append(f"copy chain loops at models:/{ref}")
                    return None, tuple(chain), tuple(notes), None
                seen.add(ref)
                chain.append(ref)
                frozen = frozen_footprint(dict(mv.tags or {}))
                if frozen is not None:
                    return frozen.source_run_id, tuple(chain), tuple(notes), frozen
                source, run_id = mv.source, mv.run_id
                continue
            if target:
                logged = _lookup(f"logged model {target}", backend.get_logged_model, target)
                logged_run = getattr(logged, "source_run_id", None)
                if logged_run:
                    if run_id and run_id != logged_run:
                        notes.append(
                            f"run_id {run_id} differs from logged model {target}'s source run "
                            f"{logged_run}; the logged model's run is used"
                        )
                    return logged_run, tuple(chain), tuple(notes), None
            return run_id or None, tuple(chain), tuple(notes), None
        if run_id:
            from_uri = _run_id_from_runs_uri(source)
            if from_uri and from_uri != run_id:
                notes.append(f"source {source} names run {from_uri}; the version's run_id {run_id} is used")
            return run_id, tuple(chain), tuple(notes), None
        return _run_id_from_runs_uri(source), tuple(chain), tuple(notes), None
    notes.append(f"copy chain longer than {_MAX_COPY_DEPTH} versions")
    return None, tuple(chain), tuple(notes), None


def resolve_source_run(
    backend: Backend, source: str | None, run_id: str | None
) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """``(run_id, copy chain, notes)`` for a version's ``source``/``run_id`` pair.

    ``models:/name/version`` (copy_model_version) follows the source version; ``models:/m-<id>``
    (an MLflow 3 logged model) uses the logged model's ``source_run_id``, whatever ``run_id`` a
    client sent alongside it. Otherwise the version's ``run_id`` is its source run, and a
    ``runs:/<id>/...`` source only names the run when ``run_id`` is empty: the MLflow server
    refuses a ``runs:/`` source whose run differs from ``run_id``, so the two only disagree in
    versions written straight into a store, where ``run_id`` is the recorded lineage. A referent
    that does not exist gives no run and a note that says which.
    """
    try:
        resolved, chain, notes, _ = _resolve(backend, source, run_id)
    except _Missing as missing:
        return None, (), (str(missing),)
    return resolved, chain, notes


def _lineage_ids(tags: Mapping[str, str]) -> list[str]:
    raw = tags.get(schema.TAG_LINEAGE, "")
    return [part.strip() for part in raw.replace(";", ",").split(",") if part.strip()]


def footprint_of_run(
    backend: Backend,
    run_id: str | None,
    *,
    include_lineage: bool = False,
    extra_lineage: Iterable[str] = (),
    copied_from: tuple[str, ...] = (),
    notes: tuple[str, ...] = (),
) -> Footprint:
    """The footprint of ``run_id`` (and, with ``include_lineage``, of the runs around it)."""
    missing: list[str] = []
    note_list = list(notes)
    if not run_id:
        missing.append("the model version names no source run, so its footprint is unknown")
        return Footprint((), None, copied_from, tuple(missing), tuple(note_list))
    try:
        source = backend.get_run(run_id)
    except Exception as exc:
        if not _not_found(exc):
            raise
        missing.append(f"source run {run_id} does not exist, so the footprint is unknown")
        return Footprint((), run_id, copied_from, tuple(missing), tuple(note_list))

    runs: dict[str, RunFootprint] = {run_id: run_footprint(source, "source", backend)}
    if not runs[run_id].measured:
        missing.append(f"source run {run_id} has no green/ metrics (was mlflow_green.autolog() on?)")

    if include_lineage:
        experiment_id = source.info.experiment_id
        parent_id = source.data.tags.get(PARENT_RUN_TAG)
        if parent_id:
            try:
                parent = backend.get_run(parent_id)
            except Exception as exc:
                if not _not_found(exc):
                    raise
                missing.append(f"parent run {parent_id} does not exist")
            else:
                fp = run_footprint(parent, "parent", backend)
                runs.setdefault(parent_id, fp)
                if not fp.measured:
                    # A sweep's parent is usually a container whose children did the work.
                    note_list.append(f"parent run {parent_id} has no green/ metrics of its own")
                for child in backend.child_runs(parent.info.experiment_id, parent_id):
                    cid = child.info.run_id
                    if cid in runs:
                        continue
                    runs[cid] = run_footprint(child, "sibling", backend)
                    if not runs[cid].measured:
                        missing.append(f"sibling run {cid} (same parent) has no green/ metrics")
        for child in backend.child_runs(experiment_id, run_id):
            cid = child.info.run_id
            if cid in runs:
                continue
            runs[cid] = run_footprint(child, "child", backend)
            if not runs[cid].measured:
                missing.append(f"child run {cid} has no green/ metrics")
        for lid in [*_lineage_ids(source.data.tags), *extra_lineage]:
            if lid in runs:
                continue
            try:
                lrun = backend.get_run(lid)
            except Exception as exc:
                if not _not_found(exc):
                    raise
                missing.append(f"{schema.TAG_LINEAGE} names run {lid}, which does not exist")
                continue
            runs[lid] = run_footprint(lrun, "lineage", backend)
            if not runs[lid].measured:
                missing.append(f"lineage run {lid} has no green/ metrics")
    return Footprint(
        tuple(runs.values()), run_id, copied_from, tuple(missing), tuple(note_list)
    )


def model_version_footprint(
    backend: Backend,
    name: str,
    version: str,
    *,
    include_lineage: bool = False,
    model_version: Any = None,
    use_record: bool = True,
) -> Footprint:
    """The footprint of registered model ``name`` version ``version``.

    Its final frozen record (``green.gate.footprint``) when it has one and ``use_record``;
    otherwise computed now from its source, every figure at its worst over the history.
    """
    mv = model_version if model_version is not None else backend.get_model_version(name, str(version))
    if use_record:
        frozen = frozen_footprint(dict(mv.tags or {}))
        if frozen is not None:
            return frozen
    return footprint_of_source(
        backend,
        mv.source,
        mv.run_id,
        include_lineage=include_lineage,
        version_tags=mv.tags,
        model_id=getattr(mv, "model_id", None),
    )


def footprint_of_source(
    backend: Backend,
    source: str | None,
    run_id: str | None,
    *,
    include_lineage: bool = False,
    version_tags: Mapping[str, str] | None = None,
    model_id: str | None = None,
) -> Footprint:
    """The footprint of a version-to-be with this ``source``/``run_id`` (used to gate copies)."""
    src = (source or "").strip()
    if model_id and not src.lower().startswith(("models:/", "runs:/")):
        # A version registered from an artifact location plus its MLflow 3 logged model id.
        source = f"models:/{model_id}"
    try:
        resolved, chain, notes, frozen = _resolve(backend, source, run_id)
    except _Missing as missing:
        # Fail closed: a referent that disappeared is a failed check, never "unknown, let it pass".
        return Footprint((), None, (), (str(missing),), ())
    if frozen is not None:
        return Footprint(
            frozen.runs,
            frozen.source_run_id,
            (*chain, *frozen.copied_from),
            frozen.missing,
            (*notes, *frozen.notes),
        )
    extra = _lineage_ids(version_tags or {}) if include_lineage else []
    return footprint_of_run(
        backend,
        resolved,
        include_lineage=include_lineage,
        extra_lineage=extra,
        copied_from=chain,
        notes=notes,
    )


# -- the frozen record -----------------------------------------------------------------------
# A version's footprint, computed once by the gated server when the version is created (or when
# its source run ends) and kept on the version as ``green.gate.footprint``: a tag no client may
# write through the gated server. Promotions judge this record, so later deletions, edits and
# metric writes cannot move it. ``final`` is false while the source run was still running.
_RECORD_VERSION = 1
_MAX_RECORD = 90_000


def footprint_from_dict(data: Mapping[str, Any]) -> Footprint:
    """The :class:`Footprint` that :meth:`Footprint.to_dict` wrote."""
    runs = tuple(
        RunFootprint(
            run_id=str(r["run_id"]),
            role=str(r["role"]),
            total_co2eq_kg=r.get("total_co2eq_kg"),
            co2eq_kg=r.get("co2eq_kg"),
            energy_kwh=r.get("energy_kwh"),
            embodied_kg=r.get("embodied_kg"),
            accuracy_per_kg=r.get("accuracy_per_kg"),
            status=r.get("status"),
            methods=dict(r.get("methods") or {}),
        )
        for r in data.get("runs", [])
    )
    return Footprint(
        runs,
        data.get("source_run_id"),
        tuple(data.get("copied_from", [])),
        tuple(data.get("missing", [])),
        tuple(data.get("notes", [])),
    )


def _compacted(fp: Footprint) -> Footprint:
    """``fp`` with every run but the source summed into one: a record that fits in a tag."""
    others = [r for r in fp.runs if r.role != "source"]
    if not others:
        return fp

    def total(attr: str) -> float | None:
        values = [getattr(r, attr) for r in others if getattr(r, attr) is not None]
        return math.fsum(values) if values else None

    methods = {"summary": "simulated"} if any(r.simulated for r in others) else {}
    degraded = next((r.status for r in others if r.degraded), None)
    summary = RunFootprint(
        run_id=f"{len(others)} lineage runs",
        role="lineage",
        total_co2eq_kg=total("total_co2eq_kg"),
        co2eq_kg=total("co2eq_kg"),
        energy_kwh=total("energy_kwh"),
        embodied_kg=total("embodied_kg"),
        accuracy_per_kg=None,
        status=degraded,
        methods=methods,
    )
    source = [r for r in fp.runs if r.role == "source"]
    return Footprint((*source, summary), fp.source_run_id, fp.copied_from, fp.missing[:20], fp.notes[:20])


def encode_record(fp: Footprint, *, final: bool, frozen_at: str) -> str:
    """The ``green.gate.footprint`` tag value for ``fp``."""
    body = {"v": _RECORD_VERSION, "final": final, "frozen_at": frozen_at, "footprint": fp.to_dict()}
    text = json.dumps(body, separators=(",", ":"), sort_keys=True)
    if len(text) > _MAX_RECORD:
        body["footprint"] = _compacted(fp).to_dict()
        text = json.dumps(body, separators=(",", ":"), sort_keys=True)
    return text


def decode_record(value: str | None) -> tuple[Footprint, bool] | None:
    """``(footprint, final)`` from a ``green.gate.footprint`` value; None when absent or unreadable."""
    if not value:
        return None
    try:
        body = json.loads(value)
        if body.get("v") != _RECORD_VERSION:
            return None
        return footprint_from_dict(body["footprint"]), bool(body.get("final"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def frozen_footprint(version_tags: Mapping[str, str]) -> Footprint | None:
    """The version's final frozen footprint, None when it has none (yet)."""
    record = decode_record(version_tags.get(schema.GATE_FOOTPRINT))
    if record is None or not record[1]:
        return None
    return record[0]
