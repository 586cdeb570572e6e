"""examples/demo.py — what `make demo` runs — end to end, and its safety around demo-out/."""

from __future__ import annotations

import importlib.util
import re
import socket
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.examples._helpers import EXAMPLES, run_example


def _demo_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mlflow_green_demo", EXAMPLES / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_never_deletes_a_directory_it_did_not_make(tmp_path: Path) -> None:
    demo = _demo_module()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(demo.DemoFailure, match="was not made by this demo"):
        demo.prepare_out(foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    # Its own directory is recreated fresh.
    own = tmp_path / "demo-out"
    demo.prepare_out(own)
    (own / "mlflow.db").write_text("old")
    demo.prepare_out(own)
    assert not (own / "mlflow.db").exists() and (own / ".mlflow-green-demo").exists()


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    out_dir = tmp_path / "demo-out"
    result = run_example(
        [sys.executable, str(EXAMPLES / "demo.py"), "--quick", "--out", str(out_dir)],
        # The demo makes its own store; the variable must not redirect it.
        "sqlite:///unused.db",
        tmp_path,
        timeout=400,
    )
    out = result.stdout
    headings = re.findall(r"^=== (\d+)\. ", out, re.M)
    assert headings == [str(i) for i in range(1, 11)], headings
    # Signed training runs verify; a hand-logged version is refused as unattested.
    assert re.search(r"^verified: run [0-9a-f]{32}: 2 epoch record\(s\) signed by key", out, re.M), out
    assert re.search(r"^HTTP 403 .*not attested \(unsigned\)", out, re.M)
    assert "green.gate.attestation = signed:" in out
    # Promoted through the gated server.
    assert "alias 'champion' now points to demo-classifier version 1" in out
    # Refused by the server itself: a 403 naming the budget, and `check` exit 1.
    refusal = re.search(r"^HTTP 403 (.*)$", out, re.M)
    assert refusal is not None
    assert "PERMISSION_DENIED" in refusal.group(1)
    assert "green.budget.champion.total_co2eq_kg" in refusal.group(1)
    assert "alias 'champion' still points to version 1" in out
    # The evidence on the promoted version.
    assert "green.gate.verdict = pass" in out
    # The server is gone afterwards.
    port = int(re.search(r"server up at http://127\.0\.0\.1:(\d+)", out).group(1))  # type: ignore[union-attr]
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    assert (out_dir / "mlflow.db").is_file()
    assert not (tmp_path / "unused.db").exists()
