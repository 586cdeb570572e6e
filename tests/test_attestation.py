"""The pure attestation core: keys, the chain, the document and its verification."""

from __future__ import annotations

import base64
import copy
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from mlflow_green.attestation import (
    Chain,
    canonical,
    generate_key_pair,
    key_id_of,
    load_public_key,
    load_signing_key,
    verify_document,
)
from mlflow_green.errors import ConfigError

TAGS = {"green.method.gpu": "counter", "green.status": "ok", "green.location": "FRA"}


@pytest.fixture
def keys(tmp_path: Path) -> Any:
    priv, pub, kid = generate_key_pair(tmp_path / "keys", "ci")
    return load_signing_key(priv), load_public_key(pub, name="ci"), kid


def _signed(key: Any, steps: int = 3, run_id: str = "run-a") -> tuple[dict[str, Any], dict[str, dict[int, list[float]]]]:
    chain = Chain()
    history: dict[str, dict[int, list[float]]] = {}
    for step in range(steps):
        metrics = {"green/energy_kwh": 0.1 * (step + 1), "green/cum_energy_kwh": 0.1 * (step + 1) * (step + 2) / 2}
        chain.append(step, metrics, tags=TAGS, host="node", start_unix_s=step, end_unix_s=step + 1, sampler={"gpu": "counter"})
        for k, v in metrics.items():
            history.setdefault(k, {})[step] = [v]
    return chain.sign(key, run_id=run_id, tags=TAGS), history


def test_key_pair_files_modes_id_and_no_overwrite(tmp_path: Path) -> None:
    priv, pub, kid = generate_key_pair(tmp_path / "k", "runner")
    assert stat.S_IMODE(os.stat(priv).st_mode) == 0o600
    assert priv.name == "runner.key" and pub.name == "runner.pub"
    assert load_signing_key(priv).key_id == kid == load_public_key(pub).key_id
    assert len(kid) == 16 and kid == key_id_of(load_public_key(pub).public_raw)
    with pytest.raises(ConfigError, match="already exists"):
        generate_key_pair(tmp_path / "k", "runner")
    assert generate_key_pair(tmp_path / "k", "other")[2] != kid


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", ".."])
def test_key_pair_name_must_be_plain(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="--name"):
        generate_key_pair(tmp_path, name)


def test_bad_signing_key_files_are_one_line_config_errors(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    priv, pub, _ = generate_key_pair(tmp_path, "k")
    ec_key = tmp_path / "ec.key"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key")
    unreadable = tmp_path / "unreadable.key"
    unreadable.write_bytes(priv.read_bytes())
    unreadable.chmod(0)
    cases = {
        tmp_path / "missing.key": "does not exist",
        tmp_path: "is a directory",
        pub: "is a public key",
        ec_key: "not Ed25519",
        garbage: "not a PEM private key",
    }
    if os.geteuid() != 0:
        cases[unreadable] = "cannot be read"
    for path, message in cases.items():
        with pytest.raises(ConfigError, match=message) as info:
            load_signing_key(path)
        assert "\n" not in str(info.value)


def test_public_key_inline_pem_and_wrong_kinds(tmp_path: Path) -> None:
    priv, pub, kid = generate_key_pair(tmp_path, "k")
    assert load_public_key(pub.read_text()).key_id == kid
    with pytest.raises(ConfigError, match="is a private key"):
        load_public_key(priv)
    with pytest.raises(ConfigError, match="not a PEM public key"):
        load_public_key("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")


def test_canonical_encoding_is_sorted_compact_and_refuses_nan() -> None:
    assert canonical({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()
    with pytest.raises(ValueError):
        canonical({"x": float("nan")})


def test_chain_links_each_entry_to_the_previous() -> None:
    chain = Chain()
    a = chain.append(0, {"green/x": 1.0}, tags={}, host="h", start_unix_s=0, end_unix_s=1, sampler={})
    b = chain.append(1, {"green/x": float("nan")}, tags={}, host="h", start_unix_s=1, end_unix_s=2, sampler={})
    assert a["entry"]["prev"] == "0" * 64 and b["entry"]["prev"] == a["hash"] == chain.entries[0]["hash"]
    assert chain.head == b["hash"] and b["entry"]["metrics"]["green/x"] == "nan"
    assert a["entry"]["v"] == 1 and a["entry"]["window"] == {"start_unix_s": "0.0", "end_unix_s": "1.0"}


def test_signed_document_verifies(keys: Any) -> None:
    key, trusted, kid = keys
    doc, history = _signed(key)
    result = verify_document(doc, run_id="run-a", history=history, tags=TAGS, trusted=[trusted])
    assert result.verified and result.reason == "verified" and result.key_id == kid and result.steps == 3
    assert result.key_name == "ci"
    assert json.loads(json.dumps(doc)) == doc  # the artifact is plain JSON


def _edit_value(doc: Any, history: Any) -> None:
    history["green/energy_kwh"][1] = [0.05]


def _second_value(doc: Any, history: Any) -> None:
    history["green/energy_kwh"][1].append(0.05)


def _delete_step(doc: Any, history: Any) -> None:
    del history["green/cum_energy_kwh"][2]


def _insert_step(doc: Any, history: Any) -> None:
    history["green/energy_kwh"][3] = [0.1]


def _extra_key(doc: Any, history: Any) -> None:
    history["green/gpu_energy_kwh"] = {0: [0.0]}


def _entry_edited(doc: Any, history: Any) -> None:
    doc["entries"][1]["entry"]["metrics"]["green/energy_kwh"] = "0.05"
    history["green/energy_kwh"][1] = [0.05]


def _entry_rehashed(doc: Any, history: Any) -> None:
    # A forger who recomputes the hashes still cannot re-sign the head.
    from mlflow_green.attestation import _sha256

    prev = "0" * 64
    doc["entries"][0]["entry"]["metrics"]["green/energy_kwh"] = "0.01"
    history["green/energy_kwh"][0] = [0.01]
    for item in doc["entries"]:
        item["entry"]["prev"] = prev
        item["hash"] = prev = _sha256(item["entry"])
    doc["statement"]["head"] = prev


def _entry_dropped(doc: Any, history: Any) -> None:
    doc["entries"].pop()


def _statement_tags(doc: Any, history: Any) -> None:
    doc["statement"]["tags"]["green.method.gpu"] = "simulated"


def _signature_swapped(doc: Any, history: Any) -> None:
    doc["signature"] = base64.b64encode(b"\0" * 64).decode()


TAMPERINGS = [
    (_edit_value, "altered-value"),
    (_second_value, "altered-value"),
    (_delete_step, "missing-step"),
    (_insert_step, "extra-step"),
    (_extra_key, "extra-step"),
    (_entry_edited, "broken-chain"),
    (_entry_rehashed, "bad-signature"),
    (_entry_dropped, "missing-step"),
    (_statement_tags, "bad-signature"),
    (_signature_swapped, "bad-signature"),
]


@pytest.mark.parametrize(("tamper", "reason"), TAMPERINGS, ids=[t[0].__name__ for t in TAMPERINGS])
def test_every_tampering_is_named(keys: Any, tamper: Any, reason: str) -> None:
    key, trusted, _ = keys
    doc, history = _signed(key)
    doc, history = copy.deepcopy(doc), copy.deepcopy(history)
    tamper(doc, history)
    result = verify_document(doc, run_id="run-a", history=history, tags=TAGS, trusted=[trusted])
    assert not result.verified and result.reason == reason, result


@pytest.mark.parametrize(
    ("tags", "needle"),
    [
        ({**TAGS, "green.method.gpu": "simulated"}, "green.method.gpu"),
        ({k: v for k, v in TAGS.items() if k != "green.location"}, "green.location"),
        ({**TAGS, "green.method.cpu": "rapl"}, "green.method.cpu"),
    ],
)
def test_changed_added_or_removed_tag(keys: Any, tags: dict[str, str], needle: str) -> None:
    key, trusted, _ = keys
    doc, history = _signed(key)
    result = verify_document(doc, run_id="run-a", history=history, tags=tags, trusted=[trusted])
    assert result.reason == "changed-tag" and needle in result.detail


def test_tags_outside_the_evidence_do_not_count(keys: Any) -> None:
    key, trusted, _ = keys
    doc, history = _signed(key)
    extra = {**TAGS, "green.gate.verdict": "pass", "green.attestation": "signed:x", "mlflow.user": "u", "green.journal_id": "j"}
    assert verify_document(doc, run_id="run-a", history=history, tags=extra, trusted=[trusted]).verified


def test_other_run_unknown_key_unsigned_malformed(keys: Any, tmp_path: Path) -> None:
    key, trusted, _kid = keys
    doc, history = _signed(key)
    other = load_public_key(generate_key_pair(tmp_path / "o", "o")[1])

    def check(document: Any, **kw: Any) -> str:
        args: dict[str, Any] = {"run_id": "run-a", "history": history, "tags": TAGS, "trusted": [trusted], **kw}
        return verify_document(document, **args).reason

    assert check(doc, run_id="run-b") == "other-run"
    assert check(doc, run_id="run-b", run_aliases=["run-a"]) == "verified"
    assert check(doc, trusted=[other]) == "unknown-key"
    assert check(doc, trusted=[]) == "unknown-key"
    assert check(None) == "unsigned"
    for bad in ([], {"format": "x"}, {**doc, "version": 2}, {**doc, "signature": "%%"}, {**doc, "entries": [1]},
                {**doc, "statement": None}, {**doc, "algorithm": "rsa"}):
        assert check(bad) == "malformed", bad


@pytest.mark.parametrize(
    ("signed", "logged", "same"),
    [(0.1, 0.1, True), (float("nan"), float("nan"), True), (float("inf"), 1.7976931348623157e308, True),
     (float("-inf"), -1.7976931348623157e308, True), (float("inf"), -1.7976931348623157e308, False),
     (0.1, 0.1000000001, False), (float("nan"), 0.0, False), (0.0, float("nan"), False)],
)
def test_logged_values_compare_exactly(keys: Any, signed: float, logged: float, same: bool) -> None:
    key, trusted, _ = keys
    chain = Chain()
    chain.append(0, {"green/x": signed}, tags={}, host="h", start_unix_s=0, end_unix_s=1, sampler={})
    doc = chain.sign(key, run_id="r", tags={})
    result = verify_document(doc, run_id="r", history={"green/x": {0: [logged]}}, tags={}, trusted=[trusted])
    assert result.verified is same, result
