"""The packaged tables: every figure carries its unit, year and source."""

from __future__ import annotations

import csv
import io
import math
from importlib import resources

import pytest

from mlflow_green.accounting import _data

VALUE_COLUMNS = {
    "intensity_countries.csv": "g_per_kwh",
    "intensity_subnational.csv": "g_per_kwh",
    "intensity_world.csv": "g_per_kwh",
    "cloud_regions.csv": "g_per_kwh",
    "hardware.csv": "tdp_w",
    "embodied.csv": "value",
    "pue.csv": "pue",
    "residual_mixes.csv": "g_per_kwh",
    "water_countries.csv": "l_per_kwh",
    "wue.csv": "wue",
}


def test_every_data_file_is_checked() -> None:
    shipped = {p.name for p in resources.files("mlflow_green.accounting").joinpath("data").iterdir()
               if p.name.endswith(".csv")}
    assert shipped == set(VALUE_COLUMNS) == set(_data.DATA_FILES)


@pytest.mark.parametrize("name", sorted(VALUE_COLUMNS))
def test_every_row_has_value_unit_year_and_source(name: str) -> None:
    text = resources.files("mlflow_green.accounting").joinpath("data", name).read_text("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows, name
    for row in rows:
        value = float(row[VALUE_COLUMNS[name]])
        assert math.isfinite(value) and value >= 0, row
        assert row["unit"].strip(), row
        assert 2000 <= int(row["year"]) <= 2030, row
        assert len(row["source"].strip()) > 10, row


def test_cloud_rows_name_where_their_mapping_comes_from() -> None:
    rows = _data.rows("cloud_regions.csv")
    providers = {r["provider"] for r in rows}
    assert providers == {"aws", "azure", "gcp"}
    for row in rows:
        assert row["mapping_source"].startswith(("AWS", "Azure", "Google")), row


@pytest.mark.parametrize(
    ("provider", "minimum"), [("aws", 25), ("azure", 30), ("gcp", 35)]
)
def test_cloud_coverage(provider: str, minimum: int) -> None:
    assert sum(r["provider"] == provider for r in _data.rows("cloud_regions.csv")) >= minimum


def test_subnational_coverage() -> None:
    rows = _data.rows("intensity_subnational.csv")
    codes = {(r["country"], r["code"]) for r in rows}
    assert sum(r["country"] == "USA" for r in rows) == 51  # 50 states + DC
    assert {("CAN", "QC"), ("CAN", "ON"), ("CAN", "BC"), ("CAN", "AB")} <= codes
    nordic = {f"SE{i}" for i in range(1, 5)} | {f"NO{i}" for i in range(1, 6)} | {"DK1", "DK2", "FI"}
    assert nordic <= {c for _, c in codes}


def test_embodied_table_has_a_default_for_gpu_and_node() -> None:
    keys = {(r["device"], r["profile"], r["quantity"]) for r in _data.rows("embodied.csv")}
    for key in [("gpu", "default", "embodied_kg"), ("cpu-node", "default", "embodied_kg"),
                ("gpu", "default", "lifetime_years"), ("gpu", "default", "devices_per_node")]:
        assert key in keys


def test_close_matches_are_case_insensitive() -> None:
    assert _data.close_matches("fRx", ["FRA", "DEU", "FRO"])[0] in {"FRA", "FRO"}
    assert _data.hint("zzzzzz", ["FRA"]) == ""
