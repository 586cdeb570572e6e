"""Regenerate the offline carbon-intensity tables under mlflow_green/accounting/data/.

The committed CSV files are what ships; this script derives all of them, and
tests/accounting/test_generator.py checks that the committed files equal its output:

    .venv/bin/python scripts/gen_accounting_data.py

One basis for every default: **lifecycle** (gCO2eq/kWh including the upstream emissions of
building and fuelling plants), the basis of Ember, of Electricity Maps' default and of most model
cards. Where a **direct** (combustion-only) figure exists it ships too, in a row of its own with
``basis=direct``, and is only used when asked for by name.

Inputs, each cited in every row it feeds:

- the data bundled with the installed ``codecarbon`` package: Ember country intensities via Our
  World in Data (lifecycle), EPA eGRID2023 state output rates STC2ERTA (direct), Canada Energy
  Regulator provincial generation mixes (x lifecycle factor per source);
- ``scripts/sources/electricitymaps_yearly_2023.json``: Electricity Maps' 2023 yearly lifecycle
  intensity per zone (US balancing authorities, bidding zones, grid areas);
- ``scripts/sources/google_region_carbon_2023.csv``: Google's 2023 grid intensity per Google Cloud
  region (direct: "average operational gross emissions");
- ``scripts/sources/ember_world.json``: Ember's 2023 world figure;
- the cloud-region -> grid mapping below, with the reason and source of each mapping.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import codecarbon
import pycountry

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "scripts" / "sources"
CC_DATA = Path(codecarbon.__file__).parent / "data"
CC_VERSION = codecarbon.__version__
OUT = ROOT / "mlflow_green" / "accounting" / "data"
UNIT = "gCO2eq/kWh"
LIFECYCLE, DIRECT = "lifecycle", "direct"
LB_PER_MWH_TO_G_PER_KWH = 453.59237 / 1000.0  # 1 lb = 453.59237 g; per MWh -> per kWh

EM_SOURCE = ("Electricity Maps yearly carbon intensity of consumption 2023, lifecycle, zone {zone} "
             "(https://app.electricitymaps.com/zone/{zone}; API v3 carbon-intensity/past, yearly; "
             "extract in scripts/sources/electricitymaps_yearly_2023.json)")

# Electricity Maps splits these countries into several zones, so the country as a whole has no
# single zone code: a location there needs a region (or a cloud region) to use the live API.
SPLIT_EM_COUNTRIES = {"USA", "CAN", "AUS", "JPN", "IND", "BRA", "ITA", "SWE", "NOR", "DNK", "RUS"}

# US state -> Electricity Maps zone of the balancing authority that serves most of its load.
# Source: Electricity Maps zone map (https://app.electricitymaps.com/map); states split between
# several authorities without a clear majority have no zone and get a converted eGRID figure.
US_EM_ZONES = {
    "california": "US-CAL-CISO", "texas": "US-TEX-ERCO", "new york": "US-NY-NYIS",
    "virginia": "US-MIDA-PJM", "ohio": "US-MIDA-PJM", "pennsylvania": "US-MIDA-PJM",
    "new jersey": "US-MIDA-PJM", "maryland": "US-MIDA-PJM", "delaware": "US-MIDA-PJM",
    "district of columbia": "US-MIDA-PJM", "iowa": "US-MIDW-MISO", "minnesota": "US-MIDW-MISO",
    "michigan": "US-MIDW-MISO", "indiana": "US-MIDW-MISO", "louisiana": "US-MIDW-MISO",
    "arkansas": "US-MIDW-MISO", "mississippi": "US-MIDW-MISO", "massachusetts": "US-NE-ISNE",
    "connecticut": "US-NE-ISNE", "maine": "US-NE-ISNE", "new hampshire": "US-NE-ISNE",
    "vermont": "US-NE-ISNE", "rhode island": "US-NE-ISNE", "oregon": "US-NW-BPAT",
    "arizona": "US-SW-AZPS", "nevada": "US-NW-NEVP", "utah": "US-NW-PACE", "wyoming": "US-NW-PACE",
    "georgia": "US-SE-SOCO", "alabama": "US-SE-SOCO", "north carolina": "US-CAR-DUK",
    "south carolina": "US-CAR-SC", "florida": "US-FLA-FPL", "tennessee": "US-TEN-TVA",
    "colorado": "US-NW-PSCO", "oklahoma": "US-CENT-SWPP", "kansas": "US-CENT-SWPP",
    "alaska": "US-AK", "hawaii": "US-HI",
}
# Electricity Maps US zone -> (EIA balancing-authority code, name). The code is the region key;
# Santee Cooper's "SC" would collide with South Carolina's postal code, so it keeps its zone name.
US_BAS = {
    "US-AK": ("AK", "Alaska"), "US-CAL-CISO": ("CISO", "California ISO"),
    "US-CAL-LDWP": ("LDWP", "Los Angeles Department of Water and Power"),
    "US-CAR-CPLE": ("CPLE", "Duke Energy Progress East"), "US-CAR-DUK": ("DUK", "Duke Energy Carolinas"),
    "US-CAR-SC": ("US-CAR-SC", "South Carolina Public Service Authority (Santee Cooper)"),
    "US-CAR-SCEG": ("SCEG", "Dominion Energy South Carolina"),
    "US-CENT-SWPP": ("SWPP", "Southwest Power Pool"), "US-FLA-FPL": ("FPL", "Florida Power & Light"),
    "US-HI": ("HI", "Hawaii"), "US-MIDA-PJM": ("PJM", "PJM Interconnection"),
    "US-MIDW-AECI": ("AECI", "Associated Electric Cooperative"),
    "US-MIDW-LGEE": ("LGEE", "Louisville Gas and Electric and Kentucky Utilities"),
    "US-MIDW-MISO": ("MISO", "Midcontinent ISO"), "US-NE-ISNE": ("ISNE", "ISO New England"),
    "US-NW-BPAT": ("BPAT", "Bonneville Power Administration"),
    "US-NW-GCPD": ("GCPD", "Grant County Public Utility District"),
    "US-NW-IPCO": ("IPCO", "Idaho Power"), "US-NW-NEVP": ("NEVP", "Nevada Power (NV Energy)"),
    "US-NW-NWMT": ("NWMT", "NorthWestern Energy Montana"), "US-NW-PACE": ("PACE", "PacifiCorp East"),
    "US-NW-PACW": ("PACW", "PacifiCorp West"), "US-NW-PGE": ("PGE", "Portland General Electric"),
    "US-NW-PSCO": ("PSCO", "Public Service Company of Colorado"),
    "US-NW-PSEI": ("PSEI", "Puget Sound Energy"), "US-NW-SCL": ("SCL", "Seattle City Light"),
    "US-NW-WACM": ("WACM", "Western Area Power Administration, Rocky Mountain"),
    "US-NY-NYIS": ("NYIS", "New York ISO"), "US-SE-SOCO": ("SOCO", "Southern Company"),
    "US-SW-AZPS": ("AZPS", "Arizona Public Service"), "US-SW-PNM": ("PNM", "Public Service Company of New Mexico"),
    "US-SW-SRP": ("SRP", "Salt River Project"), "US-SW-TEPC": ("TEPC", "Tucson Electric Power"),
    "US-TEN-TVA": ("TVA", "Tennessee Valley Authority"), "US-TEX-ERCO": ("ERCO", "ERCOT"),
}
# Bidding zones and grid areas outside the US: (ISO3, region key, Electricity Maps zone, name).
ZONES = [
    ("SWE", "SE1", "SE-SE1", "Sweden bidding zone SE1 (Luleå)"),
    ("SWE", "SE2", "SE-SE2", "Sweden bidding zone SE2 (Sundsvall)"),
    ("SWE", "SE3", "SE-SE3", "Sweden bidding zone SE3 (Stockholm)"),
    ("SWE", "SE4", "SE-SE4", "Sweden bidding zone SE4 (Malmö)"),
    ("NOR", "NO1", "NO-NO1", "Norway bidding zone NO1 (Oslo)"),
    ("NOR", "NO2", "NO-NO2", "Norway bidding zone NO2 (Kristiansand)"),
    ("NOR", "NO3", "NO-NO3", "Norway bidding zone NO3 (Trondheim)"),
    ("NOR", "NO4", "NO-NO4", "Norway bidding zone NO4 (Tromsø)"),
    ("NOR", "NO5", "NO-NO5", "Norway bidding zone NO5 (Bergen)"),
    ("DNK", "DK1", "DK-DK1", "Denmark bidding zone DK1 (West)"),
    ("DNK", "DK2", "DK-DK2", "Denmark bidding zone DK2 (East)"),
    ("ITA", "IT-NO", "IT-NO", "Italy bidding zone Nord"),
    ("JPN", "JP-TK", "JP-TK", "Japan, Tokyo area (TEPCO)"),
    ("JPN", "JP-KN", "JP-KN", "Japan, Kansai area"),
    ("IND", "IN-WE", "IN-WE", "India, Western region"),
    ("IND", "IN-SO", "IN-SO", "India, Southern region"),
    ("IND", "IN-NO", "IN-NO", "India, Northern region"),
    ("AUS", "AU-NSW", "AU-NSW", "Australia, New South Wales"),
    ("AUS", "AU-VIC", "AU-VIC", "Australia, Victoria"),
    ("BRA", "BR-CS", "BR-CS", "Brazil, Central-South subsystem"),
]
CA_PROVINCES = {  # name -> (postal code, Electricity Maps zone)
    "alberta": ("AB", "CA-AB"), "british columbia": ("BC", "CA-BC"), "manitoba": ("MB", "CA-MB"),
    "new brunswick": ("NB", "CA-NB"), "newfoundland and labrador": ("NL", "CA-NL"),
    "nova scotia": ("NS", "CA-NS"), "ontario": ("ON", "CA-ON"), "prince edward island": ("PE", "CA-PE"),
    "quebec": ("QC", "CA-QC"), "saskatchewan": ("SK", "CA-SK"), "northwest territories": ("NT", "CA-NT"),
    "nunavut": ("NU", "CA-NU"), "yukon": ("YT", "CA-YT"),
}
# CodeCarbon's Canadian mix keys -> its lifecycle factor names (carbon_intensity_per_source.json).
CA_FACTOR = {"naturalGas": "natural_gas", "petroleum": "petroleum", "biomass": "biomass",
             "coal": "coal", "nuclear": "nuclear", "solar": "solar", "wind": "wind",
             "hydro": "hydroelectricity", "tidal": "hydroelectricity", "other": None}

AWS_DOC = "AWS Regions and Availability Zones, region location: https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-regions.html"
AZURE_DOC = "Azure geographies, region location: https://azure.microsoft.com/en-us/explore/global-infrastructure/geographies/"
GCP_DOC = "Google Cloud region locations: https://cloud.google.com/about/locations (city from codecarbon {v} data/cloud/impact.csv)"
GRID_DOC = ("grid: the Electricity Maps zone whose area holds the region's city (https://app.electricitymaps.com/map); "
            "US regions also name their EPA eGRID2023 subregion (https://www.epa.gov/egrid/power-profiler)")

# (provider, region, city, ISO3, grid region key or "" for the country, eGRID subregion, why).
# A US region draws from its balancing authority (BA), not from its state's in-state generation;
# elsewhere from the bidding zone or grid area holding the city, else from the country.
_PJM_VA = "Northern Virginia: Dominion Energy zone of the PJM BA; imports from the rest of PJM"
CLOUD = [
    ("aws", "us-east-1", "N. Virginia", "USA", "PJM", "SRVC", _PJM_VA),
    ("aws", "us-east-2", "Ohio", "USA", "PJM", "RFCW", "central Ohio: AEP Ohio zone of the PJM BA"),
    ("aws", "us-west-1", "N. California", "USA", "CISO", "CAMX", "San Francisco Bay Area: PG&E, California ISO BA"),
    ("aws", "us-west-2", "Oregon", "USA", "BPAT", "NWPP", "north-east Oregon (Umatilla, Morrow counties): utilities in the Bonneville BA"),
    ("aws", "us-gov-west-1", "Oregon (GovCloud US-West)", "USA", "BPAT", "NWPP", "Oregon, as us-west-2: Bonneville BA"),
    ("aws", "us-gov-east-1", "Ohio (GovCloud US-East)", "USA", "PJM", "RFCW", "Ohio, as us-east-2: PJM BA"),
    ("aws", "ca-central-1", "Montreal", "CAN", "quebec", "", "Quebec: Hydro-Québec grid"),
    ("aws", "ca-west-1", "Calgary", "CAN", "alberta", "", "Alberta: AESO grid"),
    ("aws", "sa-east-1", "Sao Paulo", "BRA", "BR-CS", "", "São Paulo: Central-South subsystem of Brazil's SIN"),
    ("aws", "eu-west-1", "Ireland", "IRL", "", "", ""),
    ("aws", "eu-west-2", "London", "GBR", "", "", ""),
    ("aws", "eu-west-3", "Paris", "FRA", "", "", ""),
    ("aws", "eu-central-1", "Frankfurt", "DEU", "", "", ""),
    ("aws", "eu-central-2", "Zurich", "CHE", "", "", ""),
    ("aws", "eu-north-1", "Stockholm", "SWE", "SE3", "", "Stockholm: bidding zone SE3"),
    ("aws", "eu-south-1", "Milan", "ITA", "IT-NO", "", "Milan: bidding zone Nord"),
    ("aws", "eu-south-2", "Aragon", "ESP", "", "", ""),
    ("aws", "af-south-1", "Cape Town", "ZAF", "", "", ""),
    ("aws", "ap-east-1", "Hong Kong", "HKG", "", "", ""),
    ("aws", "ap-south-1", "Mumbai", "IND", "IN-WE", "", "Mumbai: Western regional grid"),
    ("aws", "ap-south-2", "Hyderabad", "IND", "IN-SO", "", "Hyderabad: Southern regional grid"),
    ("aws", "ap-northeast-1", "Tokyo", "JPN", "JP-TK", "", "Tokyo: TEPCO area"),
    ("aws", "ap-northeast-2", "Seoul", "KOR", "", "", ""),
    ("aws", "ap-northeast-3", "Osaka", "JPN", "JP-KN", "", "Osaka: Kansai area"),
    ("aws", "ap-southeast-1", "Singapore", "SGP", "", "", ""),
    ("aws", "ap-southeast-2", "Sydney", "AUS", "AU-NSW", "", "Sydney: New South Wales region of the NEM"),
    ("aws", "ap-southeast-3", "Jakarta", "IDN", "", "", ""),
    ("aws", "ap-southeast-4", "Melbourne", "AUS", "AU-VIC", "", "Melbourne: Victoria region of the NEM"),
    ("aws", "me-south-1", "Bahrain", "BHR", "", "", ""),
    ("aws", "me-central-1", "UAE", "ARE", "", "", ""),
    ("aws", "il-central-1", "Tel Aviv", "ISR", "", "", ""),
    ("azure", "eastus", "Virginia", "USA", "PJM", "SRVC", "southern Virginia (Boydton): Dominion Energy zone of the PJM BA"),
    ("azure", "eastus2", "Virginia", "USA", "PJM", "SRVC", "southern Virginia (Boydton): Dominion Energy zone of the PJM BA"),
    ("azure", "centralus", "Iowa", "USA", "MISO", "MROW", "Des Moines area: MidAmerican Energy, Midcontinent ISO BA"),
    ("azure", "northcentralus", "Illinois", "USA", "PJM", "RFCW", "Chicago area: ComEd zone of the PJM BA"),
    ("azure", "southcentralus", "Texas", "USA", "ERCO", "ERCT", "San Antonio: CPS Energy, ERCOT BA"),
    ("azure", "westcentralus", "Wyoming", "USA", "WACM", "RMPA", "Cheyenne: Black Hills Energy, WAPA Rocky Mountain BA"),
    ("azure", "westus", "California", "USA", "CISO", "CAMX", "San Francisco Bay Area: California ISO BA"),
    ("azure", "westus2", "Washington", "USA", "GCPD", "NWPP", "Quincy: Grant County PUD BA"),
    ("azure", "westus3", "Arizona", "USA", "AZPS", "AZNM", "Phoenix west valley (Goodyear, El Mirage): Arizona Public Service BA"),
    ("azure", "canadacentral", "Toronto", "CAN", "ontario", "", "Toronto: IESO grid"),
    ("azure", "canadaeast", "Quebec City", "CAN", "quebec", "", "Quebec: Hydro-Québec grid"),
    ("azure", "brazilsouth", "Sao Paulo State", "BRA", "BR-CS", "", "São Paulo: Central-South subsystem"),
    ("azure", "northeurope", "Ireland", "IRL", "", "", ""),
    ("azure", "westeurope", "Netherlands", "NLD", "", "", ""),
    ("azure", "uksouth", "London", "GBR", "", "", ""),
    ("azure", "ukwest", "Cardiff", "GBR", "", "", ""),
    ("azure", "francecentral", "Paris", "FRA", "", "", ""),
    ("azure", "germanywestcentral", "Frankfurt", "DEU", "", "", ""),
    ("azure", "swedencentral", "Gavle", "SWE", "SE3", "", "Gävle/Sandviken: bidding zone SE3"),
    ("azure", "norwayeast", "Oslo", "NOR", "NO1", "", "Oslo: bidding zone NO1"),
    ("azure", "switzerlandnorth", "Zurich", "CHE", "", "", ""),
    ("azure", "italynorth", "Milan", "ITA", "IT-NO", "", "Milan: bidding zone Nord"),
    ("azure", "polandcentral", "Warsaw", "POL", "", "", ""),
    ("azure", "spaincentral", "Madrid", "ESP", "", "", ""),
    ("azure", "eastasia", "Hong Kong", "HKG", "", "", ""),
    ("azure", "southeastasia", "Singapore", "SGP", "", "", ""),
    ("azure", "japaneast", "Tokyo", "JPN", "JP-TK", "", "Tokyo/Saitama: TEPCO area"),
    ("azure", "japanwest", "Osaka", "JPN", "JP-KN", "", "Osaka: Kansai area"),
    ("azure", "koreacentral", "Seoul", "KOR", "", "", ""),
    ("azure", "centralindia", "Pune", "IND", "IN-WE", "", "Pune: Western regional grid"),
    ("azure", "southindia", "Chennai", "IND", "IN-SO", "", "Chennai: Southern regional grid"),
    ("azure", "australiaeast", "New South Wales", "AUS", "AU-NSW", "", "New South Wales region of the NEM"),
    ("azure", "australiasoutheast", "Victoria", "AUS", "AU-VIC", "", "Victoria region of the NEM"),
    ("azure", "southafricanorth", "Johannesburg", "ZAF", "", "", ""),
    ("azure", "uaenorth", "Dubai", "ARE", "", "", ""),
    ("azure", "qatarcentral", "Doha", "QAT", "", "", ""),
    ("azure", "israelcentral", "Israel", "ISR", "", "", ""),
    ("azure", "mexicocentral", "Queretaro", "MEX", "", "", ""),
]
# GCP regions: codecarbon's table gives the city; the grid is mapped here. CodeCarbon spells
# me-central1 "me-cenrtal1". us-west2 (Los Angeles) maps to CAISO rather than LADWP: Google's
# own 2023 figure for the region (198 g/kWh, direct) is CAISO's level, not LADWP's.
GCP_GRID = {
    "us-central1": ("MISO", "MROW", "Council Bluffs: MidAmerican Energy, Midcontinent ISO BA"),
    "us-east1": ("US-CAR-SC", "SRVC", "Moncks Corner: Berkeley Electric Cooperative, Santee Cooper BA"),
    "us-east4": ("PJM", "SRVC", "Ashburn: " + _PJM_VA),
    "us-east5": ("PJM", "RFCW", "Columbus: AEP Ohio zone of the PJM BA"),
    "us-south1": ("ERCO", "ERCT", "Dallas: ERCOT BA"),
    "us-west1": ("BPAT", "NWPP", "The Dalles: Northern Wasco County PUD, Bonneville BA"),
    "us-west2": ("CISO", "CAMX", "Los Angeles: California ISO BA (Google's own figure for the region is CAISO's level)"),
    "us-west3": ("PACE", "NWPP", "Salt Lake City: Rocky Mountain Power, PacifiCorp East BA"),
    "us-west4": ("NEVP", "NWPP", "Las Vegas: NV Energy, Nevada Power BA"),
    "northamerica-northeast1": ("quebec", "", "Montreal: Hydro-Québec grid"),
    "northamerica-northeast2": ("ontario", "", "Toronto: IESO grid"),
    "asia-northeast1": ("JP-TK", "", "Tokyo: TEPCO area"), "asia-northeast2": ("JP-KN", "", "Osaka: Kansai area"),
    "asia-south1": ("IN-WE", "", "Mumbai: Western regional grid"),
    "asia-south2": ("IN-NO", "", "Delhi: Northern regional grid"),
    "australia-southeast1": ("AU-NSW", "", "Sydney: New South Wales region of the NEM"),
    "australia-southeast2": ("AU-VIC", "", "Melbourne: Victoria region of the NEM"),
    "southamerica-east1": ("BR-CS", "", "São Paulo: Central-South subsystem"),
    "europe-west8": ("IT-NO", "", "Milan: bidding zone Nord"), "europe-west12": ("IT-NO", "", "Turin: bidding zone Nord"),
    "europe-north1": ("FI", "", "Hamina: Finland is one bidding zone"),
}
GCP_COUNTRY_FIX = {"asia-east2": "HKG"}  # CodeCarbon files Hong Kong under CHN; its grid is separate


def _write(out: Path, name: str, header: list[str], rows: list[list[object]]) -> None:
    with (out / name).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    print(f"wrote {out / name}: {len(rows)} rows")


def _r(x: float) -> float:
    return round(x, 1)


def _load() -> dict[str, dict]:
    pi = CC_DATA / "private_infra"
    return {
        "mix": json.loads((pi / "global_energy_mix.json").read_text()),
        "factors": json.loads((pi / "carbon_intensity_per_source.json").read_text()),
        "usa": json.loads((pi / "2023" / "usa_emissions.json").read_text()),
        "canada": json.loads((pi / "2023" / "canada_energy_mix.json").read_text()),
        "em": json.loads((SOURCES / "electricitymaps_yearly_2023.json").read_text()),
        "world": json.loads((SOURCES / "ember_world.json").read_text()),
    }


def countries_and_world(src: dict[str, dict]) -> tuple[list[list[object]], list[list[object]]]:
    """Ember country figures (lifecycle) and Ember's world figure of the latest country year."""
    countries = []
    for iso3, row in sorted(src["mix"].items()):
        country = pycountry.countries.get(alpha_3=iso3)
        iso2 = country.alpha_2 if country else ""
        em = "" if iso3 in SPLIT_EM_COUNTRIES else iso2
        countries.append([iso3, iso2, row["country_name"], em, _r(row["carbon_intensity"]), UNIT,
                          row["year"], LIFECYCLE, "ember",
                          f"Ember electricity carbon intensity (lifecycle) via Our World in Data energy dataset (codecarbon {CC_VERSION} global_energy_mix.json)"])
    world, meta = src["world"]["World"], src["world"]["_source"]
    latest = max(int(r["year"]) for r in src["mix"].values())
    if world["year"] != latest:
        raise SystemExit(f"Ember world figure is for {world['year']}, the country table's latest year is {latest}")
    weighted = (sum(r["carbon_intensity"] * r["total_TWh"] for r in src["mix"].values())
                / sum(r["total_TWh"] for r in src["mix"].values()))
    if abs(weighted / world["g_per_kwh"] - 1) > 0.01:
        raise SystemExit(f"generation-weighted country mean {weighted:.1f} is not within 1 % of Ember's world {world['g_per_kwh']}")
    worlds = [["world", world["g_per_kwh"], UNIT, world["year"], LIFECYCLE, "ember",
               f"{meta['dataset']}: {meta['statement']}, {meta['url']}; the generation-weighted mean of the shipped country figures is {weighted:.1f}"]]
    return countries, worlds


def _em(src: dict[str, dict], zone: str) -> float:
    return float(src["em"]["zones"][zone])


def us_rows(src: dict[str, dict]) -> list[list[object]]:
    """US states (lifecycle: their BA's figure, else eGRID converted; direct: eGRID) and BAs."""
    usa, rows = src["usa"], []
    egrid = usa["_source"]
    egrid_cite = f"{egrid['name']} ({egrid['field']}, lb/MWh converted to g/kWh), {egrid['url']}"
    us_direct = usa["usa"]["emissions"] * LB_PER_MWH_TO_G_PER_KWH
    ratio = _em(src, "US") / us_direct
    for state, row in sorted(usa.items()):
        if state.startswith("_") or state == "usa":
            continue  # eGRID's national total: the country row covers the USA
        direct = row["emissions"] * LB_PER_MWH_TO_G_PER_KWH
        zone = US_EM_ZONES.get(state, "")
        if zone:
            value, dataset = _em(src, zone), "electricitymaps"
            cite = (EM_SOURCE.format(zone=zone) + f": {US_BAS[zone][1]}, the balancing authority serving most of "
                    f"{state.title()}'s load (the state's grid, imports included)")
        else:
            value, dataset = direct * ratio, "egrid-lifecycle"
            cite = (f"converted: {egrid_cite} x {ratio:.4f}, the ratio of Electricity Maps' 2023 US lifecycle figure "
                    f"({_em(src, 'US'):g}) to eGRID's US output rate ({us_direct:.1f}); no balancing authority serves most of the state")
        common = ["USA", state, row["regionCode"], state.title(), zone]
        rows.append([*common, _r(value), UNIT, egrid["year"], LIFECYCLE, dataset, cite])
        rows.append([*common, _r(direct), UNIT, egrid["year"], DIRECT, "egrid",
                              f"{egrid_cite}; in-state generation only, direct (combustion) emissions"])
    for zone, (code, name) in sorted(US_BAS.items(), key=lambda kv: kv[1][0]):
        if len(code) == 2:
            continue  # Alaska, Hawaii: the zone is the state, whose row above carries it
        rows.append(["USA", code, zone, name, zone, _em(src, zone), UNIT, src["em"]["_source"]["year"],
                     LIFECYCLE, "electricitymaps", EM_SOURCE.format(zone=zone) + f": balancing authority {name}"])
    return rows


def other_rows(src: dict[str, dict], countries: dict[str, list[object]]) -> list[list[object]]:
    """Canadian provinces (CER mix x lifecycle factors), bidding zones and grid areas (Electricity Maps)."""
    factors, rows = src["factors"], []
    for province, shares in sorted(src["canada"].items()):
        total = sum(v for k, v in shares.items() if k != "total")
        g = sum(v * factors[CA_FACTOR[k]] for k, v in shares.items() if k != "total" and CA_FACTOR[k]) / total
        code, em = CA_PROVINCES[province]
        rows.append(["CAN", province, code, province.title(), em, _r(g), UNIT, 2023, LIFECYCLE, "cer",
                     f"Canada Energy Regulator provincial generation mix (codecarbon {CC_VERSION} 2023/canada_energy_mix.json) x lifecycle factor per source (carbon_intensity_per_source.json)"])
    for iso3, key, zone, name in ZONES:
        rows.append([iso3, key, key, name, zone, _em(src, zone), UNIT, src["em"]["_source"]["year"], LIFECYCLE,
                     "electricitymaps", EM_SOURCE.format(zone=zone)])
    fin = countries["FIN"]
    rows.append(["FIN", "FI", "FI", "Finland bidding zone FI", "FI", fin[4], UNIT, fin[6], LIFECYCLE, "ember",
                 f"Finland is a single bidding zone: the country figure, {fin[9]}"])
    return rows


def cloud_rows(src: dict[str, dict], countries: dict[str, list[object]],
               sub: dict[tuple[str, str], list[object]]) -> list[list[object]]:
    """Every cloud region on its grid (lifecycle), plus Google's own direct figure for GCP regions."""
    out: list[list[object]] = []

    def add(provider: str, region: str, city: str, iso3: str, grid: str, egrid_sr: str, why: str, doc: str) -> None:
        if grid:
            g = sub.get((iso3, grid))
            if g is None:
                raise SystemExit(f"{provider}/{region}: no sub-national row for {(iso3, grid)}")
            value, year, dataset, source, zone = g[5], g[7], g[9], g[10], g[4]
        else:
            c = countries[iso3]
            value, year, dataset, source, zone = c[4], c[6], c[8], c[9], c[3]
            why = why or f"{city}: the {c[2]} grid (country figure; no sub-national figure shipped)"
        out.append([provider, region, city, iso3, grid, zone, egrid_sr, value, UNIT, year, LIFECYCLE, dataset,
                    source, why, f"{doc}; {GRID_DOC}"])

    for row in CLOUD:
        add(*row, doc=AWS_DOC if row[0] == "aws" else AZURE_DOC)
    google = {r["Google Cloud Region"]: float(r["Grid carbon intensity (gCO2eq / kWh)"])
              for r in csv.DictReader((SOURCES / "google_region_carbon_2023.csv").open(encoding="utf-8"))}
    with (CC_DATA / "cloud" / "impact.csv").open(encoding="utf-8-sig") as fh:
        gcp = [r for r in csv.DictReader(fh) if r["provider"] == "gcp"]
    seen: set[str] = set()
    for row in gcp:
        region = row["region"].replace("cenrtal", "central")
        if region in seen:
            continue  # codecarbon repeats a few rows
        seen.add(region)
        grid, egrid_sr, why = GCP_GRID.get(region, ("", "", ""))
        iso3 = GCP_COUNTRY_FIX.get(region, row["countryIsoCode"])
        add("gcp", region, row["city"], iso3, grid, egrid_sr, why, GCP_DOC.format(v=CC_VERSION))
        if region in google:
            life = out[-1]
            if grid and iso3 == "USA" and not 1.0 <= float(life[7]) / google[region] <= 1.5:
                raise SystemExit(f"gcp/{region}: lifecycle {life[7]} vs Google's direct {google[region]}: wrong grid?")
            out.append([*life[:7], google[region], UNIT, 2023, DIRECT, "google",
                                   f"Google Cloud region carbon data 2023, grid carbon intensity ('average operational gross emissions', direct) of {region}: GoogleCloudPlatform/region-carbon-info data/yearly/2023.csv, https://cloud.google.com/sustainability/region-carbon",
                                   "the provider's own figure for the region", "Google Cloud region carbon data 2023"])
    return out


def main(out: Path = OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    src = _load()
    countries, worlds = countries_and_world(src)
    _write(out, "intensity_countries.csv",
           ["iso3", "iso2", "name", "em_zone", "g_per_kwh", "unit", "year", "basis", "dataset", "source"], countries)
    _write(out, "intensity_world.csv", ["label", "g_per_kwh", "unit", "year", "basis", "dataset", "source"], worlds)
    by_iso3 = {str(c[0]): c for c in countries}
    sub = us_rows(src) + other_rows(src, by_iso3)
    _write(out, "intensity_subnational.csv",
           ["country", "region", "code", "name", "em_zone", "g_per_kwh", "unit", "year", "basis", "dataset", "source"], sub)
    lifecycle_sub = {(str(r[0]), str(r[1])): r for r in sub if r[8] == LIFECYCLE}
    _write(out, "cloud_regions.csv",
           ["provider", "region", "location", "country", "grid_region", "em_zone", "egrid_subregion", "g_per_kwh",
            "unit", "year", "basis", "dataset", "source", "grid_mapping", "mapping_source"],
           cloud_rows(src, by_iso3, lifecycle_sub))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
