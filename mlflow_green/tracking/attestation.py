"""Signing a run's epoch records while it trains, and verifying a run against its attestation.

The chain and the cryptography are :mod:`mlflow_green.attestation` (no MLflow); this module
is the MLflow side: which key signs (``autolog(signing_key=...)`` >
``MLFLOW_GREEN_SIGNING_KEY``), what a record holds, and reading a run back to verify it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from mlflow_green import _settings
from mlflow_green.attestation import (
    ARTIFACT_PATH,
    Chain,
    SigningKey,
    TrustedKey,
    Verification,
    load_public_key,
    load_signing_key,
    verify_document,
)
from mlflow_green.errors import ConfigError
from mlflow_green.tracking import schema

_log = logging.getLogger(__name__)

__all__ = [
    "ENV_SIGNING_KEY",
    "TAG_ATTESTATION",
    "ClientRunReader",
    "RunAttestation",
    "RunRef",
    "RunSigner",
    "log_attestation",
    "read_attestation",
    "resolve_signing_key",
    "run_green_history",
    "trusted_keys_from_files",
    "verify_run",
]

ENV_SIGNING_KEY = "MLFLOW_GREEN_SIGNING_KEY"
TAG_ATTESTATION = schema.TAG_ATTESTATION


def resolve_signing_key(signing_key: str | os.PathLike[str] | SigningKey | None) -> SigningKey | None:
    """The key that signs this run: the argument, else ``MLFLOW_GREEN_SIGNING_KEY``, else none.

    A missing, unreadable or wrong-type file is a one-line :class:`ConfigError`.
    """
    if isinstance(signing_key, SigningKey):
        return signing_key
    if signing_key is not None and str(signing_key).strip():
        return load_signing_key(signing_key, what="signing_key")
    env = _settings.env_str(ENV_SIGNING_KEY)
    if env:
        return load_signing_key(env, what=ENV_SIGNING_KEY)
    return None


class RunSigner:
    """The chain of one run, fed each finished epoch; signs the head at the end."""

    def __init__(self, key: SigningKey, *, host: str | None = None) -> None:
        self.key = key
        self.chain = Chain()
        self.host = host or socket.gethostname()
        # The tags signed for the earlier part of a resumed run: still on the run.
        self._earlier_tags: dict[str, str] = {}

    def add(
        self,
        step: int,
        metrics: Mapping[str, float],
        *,
        tags: Mapping[str, str],
        start_unix_s: float,
        end_unix_s: float,
        sampler: Mapping[str, str],
        unattested: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Hash one epoch (its ``green/`` metrics only) into the chain; the item to journal."""
        green = {k: v for k, v in metrics.items() if k.startswith(schema.PREFIX)}
        return self.chain.append(
            step,
            green,
            tags=tags,
            host=self.host,
            start_unix_s=start_unix_s,
            end_unix_s=end_unix_s,
            sampler=sampler,
            unattested=unattested,
        )

    def continue_from(self, document: Any, *, run_id: str) -> bool:
        """Continue the chain of an earlier part of this run (a resumed run) signed by the same
        key: its entries are kept as signed, new ones link to its head. False (nothing kept)
        when the document is not this key's valid signature for this run."""
        from mlflow_green.attestation import canonical

        if not isinstance(document, dict) or document.get("key_id") != self.key.key_id:
            return False
        statement, entries = document.get("statement"), document.get("entries")
        if not isinstance(statement, dict) or not isinstance(entries, list) or statement.get("run_id") != run_id:
            return False
        try:
            import base64

            signature = base64.b64decode(str(document.get("signature", "")), validate=True)
            if not self.key.public.verify(signature, canonical(statement)):
                return False
            chain = Chain()
            chain.extend(entries)
        except (KeyError, TypeError, ValueError):
            return False
        if chain.problem(str(statement.get("head"))) is not None:
            return False
        self.chain = chain
        self._earlier_tags = {str(k): str(v) for k, v in dict(statement.get("tags") or {}).items()}
        return True

    def document(self, *, run_id: str | None, tags: Mapping[str, str]) -> dict[str, Any]:
        """The signed ``green/attestation.json`` over everything added so far."""
        return self.chain.sign(self.key, run_id=run_id, tags={**self._earlier_tags, **tags})

    @property
    def tag_value(self) -> str:
        """The value of ``green.attestation``: ``signed:<key-id>``."""
        return f"signed:{self.key.key_id}"


def sampler_identity(hardware: Any, spec: str | None) -> dict[str, str]:
    """What measured: the sampler spec, each component's method, the devices' names."""
    methods = dict(getattr(hardware, "methods", None) or {})
    return {
        "spec": str(spec or _settings.env_str(_settings.ENV_SAMPLER) or "auto"),
        **{f"method.{k}": str(v) for k, v in sorted(methods.items())},
        "gpu_names": ",".join(map(str, getattr(hardware, "gpu_names", None) or ())),
        "simulated": str(bool(getattr(hardware, "simulated", False))).lower(),
    }


class RunRef(Protocol):
    """Where a run's attestation is logged (a ``RunSession``)."""

    @property
    def tracking_uri(self) -> str | None: ...

    @property
    def run_id(self) -> str | None: ...

    @property
    def journal_id(self) -> str | None: ...


class RunAttestation:
    """The tracker's side of signing one run. A failure degrades the run (the ``degrade``
    callback) and leaves it unsigned; with ``MLFLOW_GREEN_STRICT=1`` it raises."""

    def __init__(self, signer: RunSigner, *, degrade: Callable[[str], None]) -> None:
        self.signer: RunSigner | None = signer
        self.document: dict[str, Any] | None = None
        self._degrade = degrade

    @classmethod
    def open(
        cls,
        signing_key: str | None,
        *,
        degrade: Callable[[str], None],
        warn: Callable[[str, str], None],
        run_id: str | None,
        existed: bool,
        tracking_uri: str | None,
        prior: Any = None,
    ) -> RunAttestation | None:
        """The run's signer (None without a key). A run that existed before (resumed)
        continues its chain: the one its earlier job journaled on this machine (``prior``, a
        JournalState; killed or not), else the one signed in its artifact by this key."""
        try:
            key = resolve_signing_key(signing_key)
        except ConfigError as exc:  # checked at autolog(); the file changed since
            if _settings.strict():
                raise
            degrade(f"signing key unusable ({exc}); the run is not signed")
            return None
        if key is None:
            return None
        attestation = cls(RunSigner(key), degrade=degrade)
        if run_id is not None and not attestation._continue_journaled(prior) and existed:
            attestation._continue(run_id, tracking_uri, warn)
        return attestation

    def _continue_journaled(self, prior: Any) -> bool:
        items = list(getattr(prior, "attest_items", None) or ())
        if not items or self.signer is None:
            return False
        chain = Chain()
        try:
            chain.extend(items)
        except (KeyError, TypeError, ValueError):
            return False
        if chain.problem(chain.head) is not None:
            return False
        self.signer.chain = chain
        document = getattr(prior, "attestation", None)
        if isinstance(document, dict) and document.get("key_id") == self.signer.key.key_id:
            statement = document.get("statement") or {}
            self.signer._earlier_tags = {str(k): str(v) for k, v in dict(statement.get("tags") or {}).items()}
        return True

    def _continue(self, run_id: str, tracking_uri: str | None, warn: Callable[[str, str], None]) -> None:
        from mlflow import MlflowClient

        from mlflow_green.tracking.session import short_http

        try:
            with short_http(timeout_s=15):
                earlier = read_attestation(ClientRunReader(MlflowClient(tracking_uri=tracking_uri)), run_id)
        except Exception:
            _log.debug("reading the run's earlier attestation failed", exc_info=True)
            return
        assert self.signer is not None
        if earlier is not None and not self.signer.continue_from(earlier, run_id=run_id):
            warn(
                "attestation-continue",
                f"mlflow_green: run {run_id} carries an attestation this key cannot continue; "
                "its earlier epochs will not verify",
            )

    def _failed(self, exc: BaseException) -> None:
        if _settings.strict():
            raise exc
        self.signer, self.document = None, None
        self._degrade(f"attestation failed ({exc}); the run is not signed")

    def epoch(
        self,
        record: Any,
        metrics: Mapping[str, float],
        *,
        tags: Mapping[str, str],
        hardware: Any,
        sampler: str | None,
        deferred: bool,
        journal: Any,
    ) -> None:
        """Hash one finished epoch into the chain and journal the item with the epoch."""
        if self.signer is None:
            return
        try:
            item = self.signer.add(
                record.step,
                metrics,
                tags=tags,
                start_unix_s=record.start_unix_s,
                end_unix_s=record.start_unix_s + record.epoch_seconds,
                sampler=sampler_identity(hardware, sampler),
                # Read back from the run's own metrics later by the logger: not measured here.
                unattested=[schema.ACCURACY_PER_KG] if deferred else [],
            )
            if journal is not None and journal.failed is None:
                journal.attest(item)
        except Exception as exc:
            self._failed(exc)

    def sign(self, *, run_id: str | None, tags: Mapping[str, str], journal: Any) -> None:
        """Sign the head with the final tags; journal the document (``recover`` logs it)."""
        if self.signer is None:
            return
        try:
            self.document = self.signer.document(run_id=run_id, tags=tags)
            if journal is not None and journal.failed is None:
                journal.attestation(self.document)
        except Exception as exc:
            self._failed(exc)

    def log(self, run: RunRef) -> bool:
        """Log the signed document and tag to the run; True when done (or nothing to log)."""
        if self.document is None:
            return True
        tracking_uri, run_id, journal_id = run.tracking_uri, run.run_id or "", run.journal_id
        from mlflow import MlflowClient

        from mlflow_green.tracking.session import raise_if_strict_and_permanent, short_http

        try:
            with short_http(timeout_s=30):
                log_attestation(MlflowClient(tracking_uri=tracking_uri), run_id, self.document)
            return True
        except Exception as exc:
            raise_if_strict_and_permanent(exc)
            _log.warning(
                "mlflow_green: attestation not logged (%s); `mlflow-green recover --run-id %s` logs it",
                exc,
                journal_id,
            )
            return False


def log_attestation(client: Any, run_id: str, document: Mapping[str, Any]) -> None:
    """Log the document as ``green/attestation.json`` and set ``green.attestation``."""
    with tempfile.TemporaryDirectory(prefix="mlflow-green-attest-") as tmp:
        path = Path(tmp) / Path(ARTIFACT_PATH).name
        path.write_text(json.dumps(document, indent=1, sort_keys=True), encoding="utf-8")
        client.log_artifact(run_id, str(path), artifact_path=str(Path(ARTIFACT_PATH).parent))
    client.set_tag(run_id, TAG_ATTESTATION, f"signed:{document['key_id']}")


class ClientRunReader:
    """Reads a run for verification through an ``MlflowClient`` (any tracking URI)."""

    def __init__(self, client: Any = None) -> None:
        if client is None:
            from mlflow.tracking import MlflowClient

            client = MlflowClient()
        self.client = client

    def get_run(self, run_id: str) -> Any:
        """The run (info, tags, latest metrics)."""
        return self.client.get_run(run_id)

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """Every ``(step, value)`` logged for ``key``."""
        return [(int(m.step), float(m.value)) for m in self.client.get_metric_history(run_id, key)]

    def artifact_text(self, run_id: str, path: str) -> str | None:
        """The text of an artifact file, None when the run has no such file."""
        parent = str(Path(path).parent)
        names = {Path(f.path).name for f in self.client.list_artifacts(run_id, parent) if not f.is_dir}
        if Path(path).name not in names:
            return None
        with tempfile.TemporaryDirectory(prefix="mlflow-green-verify-") as tmp:
            local = self.client.download_artifacts(run_id, path, tmp)
            return Path(local).read_bytes().decode("utf-8", errors="replace")


def read_attestation(reader: Any, run_id: str) -> Any:
    """The run's attestation document; None when it has none; ``{"_unreadable": why}`` when
    the artifact exists but is not JSON (verification names it malformed)."""
    text = reader.artifact_text(run_id, ARTIFACT_PATH)
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        return {"_unreadable": f"not JSON ({type(exc).__name__})"}


def run_green_history(reader: Any, run: Any) -> dict[str, dict[int, list[float]]]:
    """Every ``green/`` metric of a run: key -> step -> the values logged at that step
    (identical duplicates collapsed)."""
    out: dict[str, dict[int, list[float]]] = {}
    for key in sorted(run.data.metrics):
        if not key.startswith(schema.PREFIX):
            continue
        steps: dict[int, list[float]] = {}
        for step, value in reader.metric_history(run.info.run_id, key):
            values = steps.setdefault(step, [])
            if not any(v == value or (v != v and value != value) for v in values):
                values.append(value)
        out[key] = steps
    return out


def trusted_keys_from_files(sources: Sequence[str]) -> list[TrustedKey]:
    """Public keys from ``--public-key`` files (or PEM text); a bad one is a ConfigError."""
    return [load_public_key(s, what="--public-key") for s in sources]


def verify_run(
    run_id: str, *, trusted: Sequence[TrustedKey], client: Any = None, reader: Any = None
) -> Verification:
    """Verify a run's ``green/`` metric history and provenance tags against its attestation.

    ``trusted`` are the keys accepted; with none, the key named in the document is reported
    as unknown. ``reader`` reads the run (default: a :class:`ClientRunReader` over
    ``client``). MLflow errors (a missing run, an unreachable server) propagate.
    """
    reader = reader if reader is not None else ClientRunReader(client)
    run = reader.get_run(run_id)
    tags = dict(run.data.tags)
    document = read_attestation(reader, run_id)
    if isinstance(document, dict) and "_unreadable" in document:
        return Verification(False, "malformed", f"{ARTIFACT_PATH}: {document['_unreadable']}")
    if document is None and tags.get(TAG_ATTESTATION):
        return Verification(
            False, "malformed", f"tag {TAG_ATTESTATION}={tags[TAG_ATTESTATION]} but no {ARTIFACT_PATH}"
        )
    history = run_green_history(reader, run)
    aliases = []
    journal_id = tags.get(schema.TAG_JOURNAL_ID)
    if journal_id and journal_id.startswith("pending-"):
        aliases.append(journal_id)  # created after the fact from its journal: signed under that id
    result = verify_document(
        document, run_id=run_id, history=history, tags=tags, trusted=trusted, run_aliases=aliases
    )
    if result.verified and tags.get(TAG_ATTESTATION) != f"signed:{result.key_id}":
        return Verification(
            False,
            "changed-tag",
            f"tag {TAG_ATTESTATION} is {tags.get(TAG_ATTESTATION)!r}, the artifact is signed by {result.key_id}",
            key_id=result.key_id,
            key_name=result.key_name,
            steps=result.steps,
        )
    return result
