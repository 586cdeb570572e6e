"""Attested evidence: a hash chain of epoch records signed with an Ed25519 key.

Pure code (no MLflow, no I/O except reading and writing key files): the tracking layer feeds
it each finished epoch and logs the document it produces; verification is given a run's
``green/`` metric history and tags, read by the tracking layer.

The chain. Every epoch record is a canonical JSON object (version ``ENTRY_VERSION``)::

    {"v": 1, "step": 3, "prev": "<hash of the previous entry, or 64 zeros>",
     "metrics": {"green/energy_kwh": "0.0123", ...},   # repr() of each float: exact
     "unattested": ["green/accuracy_per_kg"],          # keys whose value comes later
     "tags": {"green.method.gpu": "counter", ...},     # green.* tags in force
     "host": "node-7", "window": {"start_unix_s": "...", "end_unix_s": "..."},
     "sampler": {"gpu": "counter", ...}}

and its hash is the SHA-256 of that encoding (keys sorted, no spaces, UTF-8). Each entry
holds the previous entry's hash, so the last one (the head) covers them all.

The document (``green/attestation.json``, format ``FORMAT`` version ``DOCUMENT_VERSION``)::

    {"format": "mlflow-green/attestation", "version": 1, "algorithm": "ed25519",
     "key_id": "...", "public_key": "<PEM>",
     "statement": {"run_id": ..., "head": ..., "steps": n, "tags": {...final green.* tags}},
     "signature": "<base64 Ed25519 signature of the canonical statement>",
     "entries": [{"entry": {...}, "hash": "..."}, ...]}

What a verified document proves: the figures were produced by mlflow_green holding the key
and were not changed afterwards. It does not prove that the hardware told the truth, nor that
the key was not stolen.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow_green.errors import ConfigError

__all__ = [
    "ARTIFACT_PATH",
    "DOCUMENT_VERSION",
    "ENTRY_VERSION",
    "FORMAT",
    "REASONS",
    "Chain",
    "SigningKey",
    "TrustedKey",
    "Verification",
    "canonical",
    "generate_key_pair",
    "key_id_of",
    "load_public_key",
    "load_signing_key",
    "signed_tags",
    "verify_document",
]

FORMAT = "mlflow-green/attestation"
DOCUMENT_VERSION = 1
ENTRY_VERSION = 1
ARTIFACT_PATH = "green/attestation.json"
_GENESIS = "0" * 64
# Tags a run carries that are not part of the attested evidence: the attestation's own tag,
# and what the registry and budgets write or read (never set by the training client).
# The journal id of a run created after the fact and the lineage a user declares later are
# bookkeeping, not measurements.
_UNSIGNED_TAG_PREFIXES = ("green.attestation", "green.gate.", "green.budget.", "green.journal_id", "green.lineage")

# Why a run is or is not verified (Verification.reason).
REASONS = {
    "verified": "the run's green/ metrics and provenance tags equal the signed chain",
    "unsigned": "the run carries no attestation",
    "malformed": "the attestation artifact cannot be read",
    "unknown-key": "signed by a key that is not trusted",
    "bad-signature": "the signature does not hold for the statement",
    "broken-chain": "an entry of the chain was changed",
    "other-run": "the attestation belongs to another run",
    "altered-value": "a green/ metric value differs from the signed one",
    "missing-step": "a signed step is missing from the run",
    "extra-step": "the run has a green/ metric step or key the chain does not sign",
    "changed-tag": "a provenance tag differs from the signed one",
}


def canonical(obj: Any) -> bytes:
    """The canonical encoding hashed and signed: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _sha256(obj: Any) -> str:
    return hashlib.sha256(canonical(obj)).hexdigest()


def _num(value: float) -> str:
    """A float as the exact text that round-trips (``nan``, ``inf`` included)."""
    return repr(float(value))


def signed_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The provenance tags an attestation covers: every ``green.*`` tag but the unsigned ones."""
    return {
        str(k): str(v)
        for k, v in tags.items()
        if str(k).startswith("green.") and not str(k).startswith(_UNSIGNED_TAG_PREFIXES)
    }


def key_id_of(public_raw: bytes) -> str:
    """The key id: the first 16 hex digits of the SHA-256 of the raw 32-byte public key."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


# -- keys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustedKey:
    """A public key a verifier trusts; ``name`` is the policy's label for it."""

    key_id: str
    public_raw: bytes
    name: str = ""

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when ``signature`` is this key's Ed25519 signature of ``message``."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.public_raw).verify(signature, message)
        except InvalidSignature:
            return False
        return True

    @property
    def pem(self) -> str:
        """The key as a PEM SubjectPublicKeyInfo block."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        key = Ed25519PublicKey.from_public_bytes(self.public_raw)
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()


class SigningKey:
    """An Ed25519 private key loaded from a PEM file (see :func:`load_signing_key`)."""

    def __init__(self, private_key: Any, source: str = "") -> None:
        from cryptography.hazmat.primitives import serialization

        self._key = private_key
        self.source = source
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public = TrustedKey(key_id=key_id_of(raw), public_raw=raw)

    @property
    def key_id(self) -> str:
        """The short fingerprint of the public half."""
        return self.public.key_id

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message``."""
        return bytes(self._key.sign(message))


def _pem_bytes(path: Path, what: str, hint: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist; {hint}") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory, not a PEM file; {hint}") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read ({exc.strerror or exc}); {hint}") from None
    except ValueError:  # a NUL byte in the path
        raise ConfigError(f"{what} {str(path)!r} is not a valid path; {hint}") from None


def load_signing_key(path: str | os.PathLike[str], *, what: str = "signing key") -> SigningKey:
    """Load an unencrypted Ed25519 private key (PEM, PKCS#8); a bad file is a one-line ConfigError."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    hint = "give the .key file written by `mlflow-green keygen`"
    p = Path(path).expanduser()
    data = _pem_bytes(p, what, hint)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(f"{what} {p} is encrypted; {hint} (unencrypted, mode 0600)") from None
    except (ValueError, Exception) as exc:  # cryptography raises ValueError or UnsupportedAlgorithm
        kind = "a public key" if b"PUBLIC KEY" in data else "not a PEM private key"
        raise ConfigError(f"{what} {p} is {kind} ({type(exc).__name__}); {hint}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{what} {p} is a {type(key).__name__.lstrip('_')}, not Ed25519; {hint}")
    return SigningKey(key, source=str(p))


def load_public_key(source: str | os.PathLike[str], *, name: str = "", what: str = "public key") -> TrustedKey:
    """An Ed25519 public key from a PEM file or inline PEM text; a bad one is a ConfigError."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    text = str(source)
    hint = "give the .pub file written by `mlflow-green keygen` (or its PEM text)"
    if "-----BEGIN" in text:
        data, label = text.strip().encode() + b"\n", f"{what} {name or '(inline PEM)'}"
    else:
        p = Path(text).expanduser()
        data, label = _pem_bytes(p, what, hint), f"{what} {p}"
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, Exception) as exc:
        kind = "a private key" if b"PRIVATE KEY" in data else "not a PEM public key"
        raise ConfigError(f"{label} is {kind} ({type(exc).__name__}); {hint}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{label} is a {type(key).__name__.lstrip('_')}, not Ed25519; {hint}")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return TrustedKey(key_id=key_id_of(raw), public_raw=raw, name=name)


def generate_key_pair(out_dir: str | os.PathLike[str], name: str = "green") -> tuple[Path, Path, str]:
    """Write ``DIR/NAME.key`` (mode 0600) and ``DIR/NAME.pub``; never overwrite. Returns
    ``(private_path, public_path, key_id)``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if not name or "/" in name or name in (".", "..") or name.startswith("."):
        raise ConfigError(f"--name {name!r} is not a plain file name; give e.g. --name ci-runner")
    out = Path(out_dir).expanduser()
    priv_path, pub_path = out / f"{name}.key", out / f"{name}.pub"
    for p in (priv_path, pub_path):
        if p.exists():
            raise ConfigError(f"{p} already exists; refusing to overwrite a key (give another --name or --out)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out} cannot be created ({exc.strerror or exc})") from None
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_pem)
        os.chmod(priv_path, 0o600)  # the umask may have narrowed it, never widened: be exact
        with open(pub_path, "xb") as fh:
            fh.write(public_pem)
    except OSError as exc:
        raise ConfigError(f"cannot write the key pair into {out} ({exc.strerror or exc})") from None
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return priv_path, pub_path, key_id_of(raw)


# -- the chain ------------------------------------------------------------------------------


@dataclass
class Chain:
    """The running hash chain of one run's epoch records."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def head(self) -> str:
        """The last entry's hash (64 zeros before the first)."""
        return str(self.entries[-1]["hash"]) if self.entries else _GENESIS

    def append(
        self,
        step: int,
        metrics: Mapping[str, float],
        *,
        tags: Mapping[str, str],
        host: str,
        start_unix_s: float,
        end_unix_s: float,
        sampler: Mapping[str, str],
        unattested: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Hash one epoch record into the chain; returns ``{"entry": ..., "hash": ...}``."""
        skip = set(unattested)
        entry = {
            "v": ENTRY_VERSION,
            "step": int(step),
            "prev": self.head,
            "metrics": {str(k): _num(v) for k, v in metrics.items() if str(k) not in skip},
            "unattested": sorted(skip),
            "tags": signed_tags(tags),
            "host": str(host),
            "window": {"start_unix_s": _num(start_unix_s), "end_unix_s": _num(end_unix_s)},
            "sampler": {str(k): str(v) for k, v in sampler.items()},
        }
        item = {"entry": entry, "hash": _sha256(entry)}
        self.entries.append(item)
        return item

    def extend(self, items: Iterable[Mapping[str, Any]]) -> None:
        """Continue from journaled items (a resumed or recovered run): kept as they are."""
        for item in items:
            self.entries.append({"entry": dict(item["entry"]), "hash": str(item["hash"])})

    def problem(self, head: str) -> str | None:
        """Why the entries do not hash, each into the next, up to ``head``; None when they do."""
        return _check_chain(self.entries, head)

    def sign(self, key: SigningKey, *, run_id: str | None, tags: Mapping[str, str]) -> dict[str, Any]:
        """The attestation document: the statement (run, head, final tags) signed by ``key``."""
        statement = {
            "run_id": run_id,
            "head": self.head,
            "steps": len(self.entries),
            "tags": signed_tags(tags),
        }
        signature = key.sign(canonical(statement))
        return {
            "format": FORMAT,
            "version": DOCUMENT_VERSION,
            "algorithm": "ed25519",
            "key_id": key.key_id,
            "public_key": key.public.pem,
            "statement": statement,
            "signature": base64.b64encode(signature).decode(),
            "entries": list(self.entries),
        }


# -- verification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """The answer of a verification: ``reason`` is a key of :data:`REASONS`."""

    verified: bool
    reason: str
    detail: str
    key_id: str | None = None
    key_name: str | None = None
    steps: int = 0
    unattested: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``mlflow-green verify --json``."""
        return {
            "verified": self.verified,
            "reason": self.reason,
            "detail": self.detail,
            "key_id": self.key_id,
            "key_name": self.key_name,
            "steps": self.steps,
            "unattested": list(self.unattested),
        }


def _fail(reason: str, detail: str, **kw: Any) -> Verification:
    return Verification(False, reason, detail, **kw)


def _parse(document: Any) -> tuple[dict[str, Any], bytes, list[dict[str, Any]]] | str:
    """The statement, signature and entries of a document, or why it is malformed."""
    if not isinstance(document, dict):
        return "not a JSON object"
    if document.get("format") != FORMAT:
        return f"format is {document.get('format')!r}, expected {FORMAT!r}"
    if document.get("version") != DOCUMENT_VERSION:
        return f"version {document.get('version')!r} is not supported (this mlflow_green reads {DOCUMENT_VERSION})"
    if document.get("algorithm") != "ed25519":
        return f"algorithm {document.get('algorithm')!r} is not ed25519"
    statement, entries = document.get("statement"), document.get("entries")
    if not isinstance(statement, dict) or not isinstance(entries, list):
        return "statement or entries missing"
    if not isinstance(statement.get("tags"), dict) or not isinstance(statement.get("head"), str):
        return "statement lacks head or tags"
    try:
        signature = base64.b64decode(str(document.get("signature", "")), validate=True)
    except ValueError:
        return "signature is not base64"
    for item in entries:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("entry"), dict)
            or not isinstance(item["entry"].get("metrics"), dict)
            or not isinstance(item["entry"].get("tags"), dict)
            or not isinstance(item["entry"].get("step"), int)
        ):
            return "an entry is not a chain record"
    return statement, signature, entries


def _check_chain(entries: Sequence[dict[str, Any]], head: str) -> str | None:
    prev = _GENESIS
    for i, item in enumerate(entries):
        entry = item["entry"]
        try:
            digest = _sha256(entry)
        except (TypeError, ValueError):
            return f"entry {i} cannot be encoded"
        if entry.get("prev") != prev or digest != item.get("hash"):
            return f"entry {i} (step {entry.get('step')}) does not hash into the chain"
        prev = digest
    if prev != head:
        return "the chain's last hash is not the signed head"
    return None


def _same_value(signed: str, logged: float) -> bool:
    try:
        want = float(signed)
    except ValueError:
        return False
    if math.isnan(want) or math.isnan(logged):
        return math.isnan(want) and math.isnan(logged)
    if math.isinf(want) and not math.isinf(logged):
        # MLflow's SQL stores keep +-inf as +-sys.float_info.max.
        return logged == math.copysign(sys.float_info.max, want)
    return want == logged


def _compare_metrics(
    entries: Sequence[dict[str, Any]], history: Mapping[str, Mapping[int, Sequence[float]]]
) -> Verification | None:
    signed: dict[str, dict[int, str]] = {}
    loose: dict[str, set[int]] = {}
    for item in entries:
        entry = item["entry"]
        step = entry["step"]
        for key in entry.get("unattested", []):
            loose.setdefault(str(key), set()).add(step)
        for key, value in entry["metrics"].items():
            if not str(key).startswith("green/"):
                continue
            if step in signed.setdefault(key, {}):
                return _fail("malformed", f"the chain signs step {step} of {key} twice")
            signed[key][step] = str(value)
    for key, steps in signed.items():
        logged = history.get(key, {})
        for step, value in sorted(steps.items()):
            values = logged.get(step)
            if not values:
                return _fail("missing-step", f"{key} has no value at signed step {step}")
            for got in values:
                if not _same_value(value, got):
                    return _fail("altered-value", f"{key} at step {step} is {got!r}, signed {value}")
    for key, logged in history.items():
        for step in sorted(logged):
            if step not in signed.get(key, {}) and step not in loose.get(key, set()):
                return _fail("extra-step", f"{key} has a value at step {step} that no signed record holds")
    return None


def verify_document(
    document: Any,
    *,
    run_id: str,
    history: Mapping[str, Mapping[int, Sequence[float]]],
    tags: Mapping[str, str],
    trusted: Sequence[TrustedKey],
    run_aliases: Iterable[str] = (),
) -> Verification:
    """Does a run (its ``green/`` metric ``history``: key -> step -> values, and its ``tags``)
    equal the signed ``document``, signed by one of the ``trusted`` keys?

    ``run_aliases`` are other ids the statement may name for this run (the journal id of a
    run created after the fact from its journal). ``document`` None means unsigned.
    """
    if document is None:
        return _fail("unsigned", f"run {run_id} has no {ARTIFACT_PATH}")
    parsed = _parse(document)
    if isinstance(parsed, str):
        return _fail("malformed", f"{ARTIFACT_PATH}: {parsed}")
    statement, signature, entries = parsed
    key_id = str(document.get("key_id", ""))
    by_id = {k.key_id: k for k in trusted}
    key = by_id.get(key_id)
    if key is None:
        known = ", ".join(sorted(by_id)) or "none configured"
        return _fail("unknown-key", f"signed by key {key_id}, not a trusted key (trusted: {known})", key_id=key_id)
    who: dict[str, Any] = {"key_id": key_id, "key_name": key.name or None}
    try:
        message = canonical(statement)
    except (TypeError, ValueError):
        return _fail("malformed", f"{ARTIFACT_PATH}: the statement cannot be encoded", **who)
    if not key.verify(signature, message):
        return _fail("bad-signature", f"the signature does not hold for key {key_id}: the statement was changed", **who)
    if statement.get("steps") != len(entries):
        return _fail("missing-step", f"the statement signs {statement.get('steps')} records, the artifact holds {len(entries)}", **who)
    broken = _check_chain(entries, statement["head"])
    if broken:
        return _fail("broken-chain", broken, **who)
    if statement.get("run_id") not in {run_id, *run_aliases}:
        return _fail("other-run", f"the attestation was signed for run {statement.get('run_id')}, not {run_id}", **who)
    mismatch = _compare_metrics(entries, history)
    if mismatch is not None:
        return Verification(False, mismatch.reason, mismatch.detail, **who, steps=len(entries))
    want, have = signed_tags(statement["tags"]), signed_tags(tags)
    for name in sorted(set(want) | set(have)):
        if want.get(name) != have.get(name):
            return _fail(
                "changed-tag",
                f"tag {name} is {have.get(name)!r}, signed {want.get(name)!r}",
                **who,
                steps=len(entries),
            )
    unattested = sorted({str(k) for item in entries for k in item["entry"].get("unattested", [])})
    return Verification(
        True,
        "verified",
        f"{len(entries)} epoch record(s) signed by key {key_id}{f' ({key.name})' if key.name else ''}",
        **who,
        steps=len(entries),
        unattested=tuple(unattested),
    )
