"""Is a model version's evidence attested? Each of its runs verified against its signed chain.

Used by the gate (client and server) when the policy lists ``trusted_keys`` or says
``on_unattested: deny``. On the server the runs are read through its own stores and artifact
repository (no HTTP to itself).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlflow_green.attestation import TrustedKey, Verification
from mlflow_green.registry.footprint import ClientBackend, Footprint, StoreBackend
from mlflow_green.tracking.attestation import ClientRunReader, verify_run

__all__ = ["StoreRunReader", "reader_for", "version_attestation"]


class StoreRunReader:
    """Reads a run for verification through the tracking server's own stores."""

    def __init__(self, tracking_store: Any) -> None:
        self.store = tracking_store

    def get_run(self, run_id: str) -> Any:
        """The run, as the store returns it."""
        return self.store.get_run(run_id)

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """Every ``(step, value)`` logged for ``key``."""
        return [(int(m.step), float(m.value)) for m in self.store.get_metric_history(run_id, key)]

    def artifact_text(self, run_id: str, path: str) -> str | None:
        """The artifact's text read from the run's artifact repository; None when absent."""
        # The same resolution as MLflow's own get-artifact handler: a proxied root
        # (mlflow-artifacts:/...) is read from the server's artifacts destination.
        from mlflow_green.registry import _mlflow_seams as seams

        repo, base = seams.run_artifact_repo(self.store.get_run(run_id).info.artifact_uri)
        full = f"{base.rstrip('/')}/{path}" if base else path
        parent = str(Path(full).parent)
        names = {Path(f.path).name for f in repo.list_artifacts(parent) if not f.is_dir}
        if Path(full).name not in names:
            return None
        with tempfile.TemporaryDirectory(prefix="mlflow-green-gate-") as tmp:
            local = repo.download_artifacts(full, tmp)
            return Path(local).read_bytes().decode("utf-8", errors="replace")


def reader_for(backend: Any) -> Any:
    """The run reader matching a footprint backend."""
    if isinstance(backend, StoreBackend):
        return StoreRunReader(backend.tracking_store)
    if isinstance(backend, ClientBackend):
        return ClientRunReader(backend.client)
    raise TypeError(f"no run reader for {type(backend).__name__}")


def version_attestation(backend: Any, footprint: Footprint, trusted: Sequence[TrustedKey]) -> Verification:
    """Verified when every run of the footprint verifies for a trusted key; else the first
    failure, its run named. A read that fails is an unverified answer, never an exception."""
    if not footprint.runs:
        return Verification(False, "unsigned", "the version has no run to attest")
    reader = reader_for(backend)
    results = []
    for run in footprint.runs:
        try:
            result = verify_run(run.run_id, trusted=trusted, reader=reader)
        except Exception as exc:  # a read failure must deny (fail closed), never a 5xx
            result = Verification(False, "malformed", f"cannot read the attestation ({type(exc).__name__}: {exc})")
        if not result.verified:
            return Verification(
                False,
                result.reason,
                f"run {run.run_id}: {result.detail}",
                key_id=result.key_id,
                key_name=result.key_name,
                steps=result.steps,
            )
        results.append(result)
    first = results[0]
    keys = sorted({r.key_id or "" for r in results})
    names = sorted({r.key_name for r in results if r.key_name})
    return Verification(
        True,
        "verified",
        f"{len(results)} run(s) signed by key {', '.join(keys)}" + (f" ({', '.join(names)})" if names else ""),
        key_id=first.key_id if len(keys) == 1 else ",".join(keys),
        key_name=", ".join(names) or None,
        steps=sum(r.steps for r in results),
        unattested=tuple(sorted({k for r in results for k in r.unattested})),
    )
