"""``ledger --by model``: which runs stand behind each registered model.

A model's runs are its versions' source runs (resolved as the gate resolves them: copies and
MLflow 3 logged models followed) plus their lineage: the parent run, the parent's other children
(sweep siblings), the source run's children and the runs named by ``green.lineage`` on the run
or the version. Lineage is read from the runs the ledger already holds; nothing is fetched run
by run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from mlflow_green.tracking import schema

__all__ = ["runs_by_model"]

_PARENT = "mlflow.parentRunId"


def _lineage_ids(raw: str | None) -> list[str]:
    return [p.strip() for p in (raw or "").replace(";", ",").split(",") if p.strip()]


def _versions(client: Any) -> Iterable[Any]:
    token = None
    while True:
        page = client.search_model_versions(max_results=10_000, page_token=token)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def runs_by_model(client: Any, runs: Sequence[Any]) -> tuple[dict[str, list[str]], list[str]]:
    """``(run id -> sorted model names, notes)`` for the ledger's ``runs`` (``LedgerRun``)."""
    from mlflow_green.registry.footprint import ClientBackend, resolve_source_run

    index = {r.run_id: r for r in runs}
    children: dict[str, list[str]] = defaultdict(list)
    for r in runs:
        parent = r.tags.get(_PARENT)
        if parent:
            children[parent].append(r.run_id)
    backend = ClientBackend(client)
    owners: dict[str, set[str]] = defaultdict(set)
    for mv in _versions(client):
        try:
            run_id, _, _ = resolve_source_run(backend, mv.source, mv.run_id)
        except Exception:  # an unreadable copy chain: the version's own run id is the lineage
            run_id = mv.run_id
        if not run_id:
            continue
        members = {run_id, *children.get(run_id, ())}
        source = index.get(run_id)
        tags = source.tags if source is not None else {}
        parent = tags.get(_PARENT)
        if parent:
            members.add(parent)
            members.update(children.get(parent, ()))
        members.update(_lineage_ids(tags.get(schema.TAG_LINEAGE)))
        members.update(_lineage_ids((mv.tags or {}).get(schema.TAG_LINEAGE)))
        for member in members:
            owners[member].add(mv.name)
    shared = sum(1 for rid, names in owners.items() if len(names) > 1 and rid in index)
    notes = (
        [f"{shared} runs stand behind several models and count in each of their rows"]
        if shared
        else []
    )
    return {rid: sorted(names) for rid, names in owners.items()}, notes
