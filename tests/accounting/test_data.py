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
    rows = [r for r in _data.rows("intensity_subnational.csv") if r["basis"] == "lifecycle"]
    codes = {(r["country"], r["code"]) for r in rows}
    states = [r for r in rows if r["country"] == "USA" and len(r["code"]) == 2]
    assert len(states) == 51  # 50 states + DC
    assert {("USA", "US-MIDA-PJM"), ("USA", "US-CAL-CISO"), ("USA", "US-NW-BPAT")} <= codes
    assert {("CAN", "QC"), ("CAN", "ON"), ("CAN", "BC"), ("CAN", "AB")} <= codes
    nordic = {f"SE{i}" for i in range(1, 5)} | {f"NO{i}" for i in range(1, 6)} | {"DK1", "DK2", "FI"}
    assert nordic <= {c for _, c in codes}


INTENSITY_TABLES = ("intensity_countries.csv", "intensity_subnational.csv", "intensity_world.csv", "cloud_regions.csv")
KEYS = {"intensity_countries.csv": ("iso3",), "intensity_subnational.csv": ("country", "region"),
        "intensity_world.csv": ("label",), "cloud_regions.csv": ("provider", "region")}


@pytest.mark.parametrize("name", INTENSITY_TABLES)
def test_one_basis_for_every_default(name: str) -> None:
    # Every location has exactly one lifecycle row (the default); direct rows only where a direct
    # source is shipped (eGRID states, Google's own region figures), and never alone.
    rows = _data.rows(name)
    lifecycle = [tuple(r[k] for k in KEYS[name]) for r in rows if r["basis"] == "lifecycle"]
    assert len(lifecycle) == len(set(lifecycle))
    for row in rows:
        assert row["basis"] in ("lifecycle", "direct"), row
        assert row["basis"] in row["source"] or row["dataset"] in ("ember", "cer", "egrid-lifecycle"), row
        if row["basis"] == "direct":
            assert row["dataset"] in ("egrid", "google"), row
            assert tuple(row[k] for k in KEYS[name]) in set(lifecycle), row


@pytest.mark.parametrize("name", INTENSITY_TABLES)
def test_no_lower_bound_figure_is_shipped(name: str) -> None:
    for row in _data.rows(name):
        assert "lower bound" not in row["source"].lower(), row
        assert row["dataset"] != "entsoe", row  # the zero-biomass ENTSO-E file (issue 20)


def test_us_cloud_regions_draw_from_their_grid_not_their_state() -> None:
    states = {r["region"] for r in _data.rows("intensity_subnational.csv") if r["country"] == "USA" and len(r["code"]) == 2}
    us = [r for r in _data.rows("cloud_regions.csv") if r["country"] == "USA" and r["basis"] == "lifecycle"]
    assert len(us) >= 20
    for row in us:
        assert row["grid_region"] and row["grid_region"] not in states, row
        assert row["em_zone"].startswith("US-") and len(row["egrid_subregion"]) == 4, row
        assert row["grid_mapping"] and "eGRID" in row["mapping_source"], row


def test_every_non_country_cloud_mapping_says_why() -> None:
    for row in _data.rows("cloud_regions.csv"):
        assert row["grid_mapping"].strip(), row


def test_embodied_table_has_a_default_for_gpu_and_node() -> None:
    keys = {(r["device"], r["profile"], r["quantity"]) for r in _data.rows("embodied.csv")}
    for key in [("gpu", "default", "embodied_kg"), ("cpu-node", "default", "embodied_kg"),
                ("gpu", "default", "lifetime_years"), ("gpu", "default", "devices_per_node")]:
        assert key in keys


def test_close_matches_are_case_insensitive() -> None:
    assert _data.close_matches("fRx", ["FRA", "DEU", "FRO"])[0] in {"FRA", "FRO"}
    assert _data.hint("zzzzzz", ["FRA"]) == ""
