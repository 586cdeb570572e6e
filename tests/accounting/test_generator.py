"""The committed intensity tables are exactly what scripts/gen_accounting_data.py derives."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_accounting_data.py"
GENERATED = ("intensity_countries.csv", "intensity_subnational.csv", "intensity_world.csv", "cloud_regions.csv")


@pytest.mark.skipif(not SCRIPT.exists(), reason="source checkout only")
def test_generated_tables_are_up_to_date(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pycountry")
    namespace = runpy.run_path(str(SCRIPT))
    namespace["main"](tmp_path)
    for name in GENERATED:
        committed = (ROOT / "mlflow_green" / "accounting" / "data" / name).read_text("utf-8")
        assert (tmp_path / name).read_text("utf-8") == committed, f"{name}: rerun scripts/gen_accounting_data.py"
