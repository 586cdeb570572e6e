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


@pytest.mark.skipif(not SCRIPT.exists(), reason="source checkout only")
def test_generator_refuses_a_world_figure_off_its_countries() -> None:
    # The world fallback must be Ember's own figure for the countries' latest year: a different
    # year, or a figure the shipped countries do not add up to, stops the generator.
    pytest.importorskip("pycountry")
    namespace = runpy.run_path(str(SCRIPT))
    src = namespace["_load"]()
    _, worlds = namespace["countries_and_world"](src)
    assert worlds[0][1:5] == [480, "gCO2eq/kWh", 2023, "lifecycle"]
    for tamper in ({"year": 2022, "g_per_kwh": 480}, {"year": 2023, "g_per_kwh": 475}):
        bad = dict(src, world={"_source": src["world"]["_source"], "World": tamper})
        with pytest.raises(SystemExit):
            namespace["countries_and_world"](bad)


@pytest.mark.skipif(not SCRIPT.exists(), reason="source checkout only")
def test_every_source_extract_names_its_origin() -> None:
    sources = ROOT / "scripts" / "sources"
    readme = (sources / "README.md").read_text("utf-8")
    for path in sources.iterdir():
        if path.name != "README.md":
            assert f"`{path.name}`" in readme, path.name
