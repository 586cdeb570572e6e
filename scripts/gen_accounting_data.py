"""Regenerate the offline carbon-intensity tables under mlflow_green/accounting/data/.

The committed CSV files are what ships; this script documents how they were derived and lets
a maintainer refresh them after a CodeCarbon upgrade:

    .venv/bin/python scripts/gen_accounting_data.py

Inputs are the data files bundled with the installed ``codecarbon`` package (Our World in
Data / Ember country intensities, EPA eGRID US states, Canadian provincial generation mixes,
ENTSO-E Nordic bidding zones, Google Cloud region locations) plus the AWS and Azure region
locations written out below with the page each location comes from. Every output row carries
its value, unit, year and source.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import codecarbon
import pycountry

CC_DATA = Path(codecarbon.__file__).parent / "data"
CC_VERSION = codecarbon.__version__
OUT = Path(__file__).resolve().parents[1] / "mlflow_green" / "accounting" / "data"
UNIT = "gCO2eq/kWh"
LB_PER_MWH_TO_G_PER_KWH = 453.59237 / 1000.0  # 1 lb = 453.59237 g; per MWh -> per kWh

# Electricity Maps splits these countries into several zones, so the country as a whole has no
# single zone code: a location there needs a region (or a cloud region) to use the live API.
SPLIT_EM_COUNTRIES = {"USA", "CAN", "AUS", "JPN", "IND", "BRA", "ITA", "SWE", "NOR", "DNK", "RUS"}

# US state -> Electricity Maps zone of the balancing authority that serves most of its load.
# Source: Electricity Maps zone list (https://app.electricitymaps.com/map); states split between
# several authorities without a clear majority are left without a zone (offline value only).
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
}
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
GCP_DOC = f"Google Cloud region locations (codecarbon {CC_VERSION} data/cloud/impact.csv, from https://cloud.google.com/sustainability/region-carbon)"

# (provider, region, city, ISO3 country, sub-national region or "", EM zone override or "")
CLOUD = [
    ("aws", "us-east-1", "N. Virginia", "USA", "virginia", ""),
    ("aws", "us-east-2", "Ohio", "USA", "ohio", ""),
    ("aws", "us-west-1", "N. California", "USA", "california", ""),
    ("aws", "us-west-2", "Oregon", "USA", "oregon", ""),
    ("aws", "us-gov-west-1", "Oregon (GovCloud US-West)", "USA", "oregon", ""),
    ("aws", "us-gov-east-1", "Ohio (GovCloud US-East)", "USA", "ohio", ""),
    ("aws", "ca-central-1", "Montreal", "CAN", "quebec", ""),
    ("aws", "ca-west-1", "Calgary", "CAN", "alberta", ""),
    ("aws", "sa-east-1", "Sao Paulo", "BRA", "", "BR-CS"),
    ("aws", "eu-west-1", "Ireland", "IRL", "", ""),
    ("aws", "eu-west-2", "London", "GBR", "", ""),
    ("aws", "eu-west-3", "Paris", "FRA", "", ""),
    ("aws", "eu-central-1", "Frankfurt", "DEU", "", ""),
    ("aws", "eu-central-2", "Zurich", "CHE", "", ""),
    ("aws", "eu-north-1", "Stockholm", "SWE", "SE3", ""),
    ("aws", "eu-south-1", "Milan", "ITA", "", "IT-NO"),
    ("aws", "eu-south-2", "Aragon", "ESP", "", ""),
    ("aws", "af-south-1", "Cape Town", "ZAF", "", ""),
    ("aws", "ap-east-1", "Hong Kong", "HKG", "", ""),
    ("aws", "ap-south-1", "Mumbai", "IND", "", "IN-WE"),
    ("aws", "ap-south-2", "Hyderabad", "IND", "", "IN-SO"),
    ("aws", "ap-northeast-1", "Tokyo", "JPN", "", "JP-TK"),
    ("aws", "ap-northeast-2", "Seoul", "KOR", "", ""),
    ("aws", "ap-northeast-3", "Osaka", "JPN", "", "JP-KN"),
    ("aws", "ap-southeast-1", "Singapore", "SGP", "", ""),
    ("aws", "ap-southeast-2", "Sydney", "AUS", "", "AU-NSW"),
    ("aws", "ap-southeast-3", "Jakarta", "IDN", "", ""),
    ("aws", "ap-southeast-4", "Melbourne", "AUS", "", "AU-VIC"),
    ("aws", "me-south-1", "Bahrain", "BHR", "", ""),
    ("aws", "me-central-1", "UAE", "ARE", "", ""),
    ("aws", "il-central-1", "Tel Aviv", "ISR", "", ""),
    ("azure", "eastus", "Virginia", "USA", "virginia", ""),
    ("azure", "eastus2", "Virginia", "USA", "virginia", ""),
    ("azure", "centralus", "Iowa", "USA", "iowa", ""),
    ("azure", "northcentralus", "Illinois", "USA", "illinois", ""),
    ("azure", "southcentralus", "Texas", "USA", "texas", ""),
    ("azure", "westcentralus", "Wyoming", "USA", "wyoming", ""),
    ("azure", "westus", "California", "USA", "california", ""),
    ("azure", "westus2", "Washington", "USA", "washington", ""),
    ("azure", "westus3", "Arizona", "USA", "arizona", ""),
    ("azure", "canadacentral", "Toronto", "CAN", "ontario", ""),
    ("azure", "canadaeast", "Quebec City", "CAN", "quebec", ""),
    ("azure", "brazilsouth", "Sao Paulo State", "BRA", "", "BR-CS"),
    ("azure", "northeurope", "Ireland", "IRL", "", ""),
    ("azure", "westeurope", "Netherlands", "NLD", "", ""),
    ("azure", "uksouth", "London", "GBR", "", ""),
    ("azure", "ukwest", "Cardiff", "GBR", "", ""),
    ("azure", "francecentral", "Paris", "FRA", "", ""),
    ("azure", "germanywestcentral", "Frankfurt", "DEU", "", ""),
    ("azure", "swedencentral", "Gavle", "SWE", "SE3", ""),
    ("azure", "norwayeast", "Oslo", "NOR", "NO1", ""),
    ("azure", "switzerlandnorth", "Zurich", "CHE", "", ""),
    ("azure", "italynorth", "Milan", "ITA", "", "IT-NO"),
    ("azure", "polandcentral", "Warsaw", "POL", "", ""),
    ("azure", "spaincentral", "Madrid", "ESP", "", ""),
    ("azure", "eastasia", "Hong Kong", "HKG", "", ""),
    ("azure", "southeastasia", "Singapore", "SGP", "", ""),
    ("azure", "japaneast", "Tokyo", "JPN", "", "JP-TK"),
    ("azure", "japanwest", "Osaka", "JPN", "", "JP-KN"),
    ("azure", "koreacentral", "Seoul", "KOR", "", ""),
    ("azure", "centralindia", "Pune", "IND", "", "IN-WE"),
    ("azure", "southindia", "Chennai", "IND", "", "IN-SO"),
    ("azure", "australiaeast", "New South Wales", "AUS", "", "AU-NSW"),
    ("azure", "australiasoutheast", "Victoria", "AUS", "", "AU-VIC"),
    ("azure", "southafricanorth", "Johannesburg", "ZAF", "", ""),
    ("azure", "uaenorth", "Dubai", "ARE", "", ""),
    ("azure", "qatarcentral", "Doha", "QAT", "", ""),
    ("azure", "israelcentral", "Israel", "ISR", "", ""),
    ("azure", "mexicocentral", "Queretaro", "MEX", "", ""),
]
# GCP regions: CodeCarbon's table gives country/state/city; the grid region is derived here
# from the city where the state column is empty. CodeCarbon spells me-central1 "me-cenrtal1".
GCP_GRID = {
    "us-central1": ("iowa", ""), "us-east1": ("south carolina", ""), "us-east4": ("virginia", ""),
    "us-east5": ("ohio", ""), "us-south1": ("texas", ""), "us-west1": ("oregon", ""),
    "us-west2": ("california", ""), "us-west3": ("utah", ""), "us-west4": ("nevada", ""),
    "northamerica-northeast1": ("quebec", ""), "northamerica-northeast2": ("ontario", ""),
    "asia-east2": ("", ""), "asia-northeast1": ("", "JP-TK"), "asia-northeast2": ("", "JP-KN"),
    "asia-south1": ("", "IN-WE"), "asia-south2": ("", "IN-NO"), "australia-southeast1": ("", "AU-NSW"),
    "australia-southeast2": ("", "AU-VIC"), "southamerica-east1": ("", "BR-CS"),
    "europe-west8": ("", "IT-NO"), "europe-west12": ("", "IT-NO"), "europe-north1": ("FI", ""),
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


def main(out: Path = OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    mix = json.loads((CC_DATA / "private_infra" / "global_energy_mix.json").read_text())
    factors = json.loads((CC_DATA / "private_infra" / "carbon_intensity_per_source.json").read_text())

    # Countries: Our World in Data energy dataset, whose electricity carbon intensity series is
    # Ember's (lifecycle gCO2eq/kWh).
    countries: dict[str, list[object]] = {}
    for iso3, row in sorted(mix.items()):
        country = pycountry.countries.get(alpha_3=iso3)
        iso2 = country.alpha_2 if country else ""
        em = "" if iso3 in SPLIT_EM_COUNTRIES else iso2
        countries[iso3] = [iso3, iso2, row["country_name"], em, _r(row["carbon_intensity"]), UNIT,
                           row["year"], "ember",
                           f"Ember electricity carbon intensity via Our World in Data energy dataset (codecarbon {CC_VERSION} global_energy_mix.json)"]
    _write(out, "intensity_countries.csv",
           ["iso3", "iso2", "name", "em_zone", "g_per_kwh", "unit", "year", "dataset", "source"],
           list(countries.values()))

    world = factors["world_average"]
    _write(out, "intensity_world.csv", ["label", "g_per_kwh", "unit", "year", "dataset", "source"],
           [["world", world, UNIT, 2018, "iea",
             f"IEA Global Energy & CO2 Status Report 2019, world average of 2018 ({factors['world_average_source']})"]])

    sub: list[list[object]] = []
    usa = json.loads((CC_DATA / "private_infra" / "2023" / "usa_emissions.json").read_text())
    egrid = usa["_source"]
    for state, row in sorted(usa.items()):
        if state.startswith("_") or state == "usa":
            continue  # eGRID's national total: the country row covers the USA
        sub.append(["USA", state, row["regionCode"], state.title(), US_EM_ZONES.get(state, ""),
                    _r(row["emissions"] * LB_PER_MWH_TO_G_PER_KWH), UNIT, egrid["year"], "egrid",
                    f"{egrid['name']} ({egrid['field']}, lb/MWh converted to g/kWh), {egrid['url']}"])
    canada = json.loads((CC_DATA / "private_infra" / "2023" / "canada_energy_mix.json").read_text())
    for province, shares in sorted(canada.items()):
        total = sum(v for k, v in shares.items() if k != "total")
        g = sum(v * factors[CA_FACTOR[k]] for k, v in shares.items() if k != "total" and CA_FACTOR[k]) / total
        code, em = CA_PROVINCES[province]
        sub.append(["CAN", province, code, province.title(), em, _r(g), UNIT, 2023, "cer",
                    f"Canada Energy Regulator provincial generation mix (codecarbon {CC_VERSION} 2023/canada_energy_mix.json) x lifecycle factor per source (carbon_intensity_per_source.json)"])
    nordic = json.loads((CC_DATA / "private_infra" / "nordic_emissions.json").read_text())
    for zone, row in sorted(nordic["data"].items()):
        if zone == "FI":
            continue  # Finland is one bidding zone: the country row below is better sourced
        country = "SWE" if zone.startswith("SE") else "NOR"
        sub.append([country, zone, zone, row["description"], f"{zone[:2]}-{zone}",
                    row["emission_factor"], UNIT, row["year"], "entsoe",
                    f"ENTSO-E Transparency A75 generation per production type, production-based lifecycle factors (codecarbon {CC_VERSION} nordic_emissions.json)"])
    for zone, iso3, em in (("DK1", "DNK", "DK-DK1"), ("DK2", "DNK", "DK-DK2"), ("FI", "FIN", "FI")):
        c = countries[iso3]
        sub.append([iso3, zone, zone, f"{c[2]} bidding zone {zone}", em, c[4], UNIT, c[6], "ember",
                    f"country value of {iso3} applied to the bidding zone (no zone-level annual figure bundled): {c[8]}"])
    _write(out, "intensity_subnational.csv",
           ["country", "region", "code", "name", "em_zone", "g_per_kwh", "unit", "year", "dataset", "source"], sub)
    by_region = {(r[0], r[1]): r for r in sub}

    cloud_rows: list[list[object]] = []

    def add_cloud(provider: str, region: str, city: str, iso3: str, grid_region: str, em: str, mapping: str) -> None:
        key_region = grid_region if grid_region.isupper() else grid_region.lower()
        if grid_region:
            key = (iso3, grid_region if grid_region.isupper() else grid_region.lower())
            if key not in by_region:
                # Illinois, Washington and a few others have eGRID rows but may be missing here.
                raise SystemExit(f"no sub-national row for {key}")
            g = by_region[key]
            value, year, dataset, source, zone = g[5], g[7], g[8], g[9], em or g[4]
        else:
            c = countries[iso3]
            value, year, dataset, source, zone = c[4], c[6], c[7], c[8], em or c[3]
        cloud_rows.append([provider, region, city, iso3, key_region, zone, value, UNIT, year,
                           dataset, source, mapping])

    for row in CLOUD:
        add_cloud(*row, mapping=AWS_DOC if row[0] == "aws" else AZURE_DOC)
    with (CC_DATA / "cloud" / "impact.csv").open(encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            if row["provider"] != "gcp":
                continue
            region = row["region"].replace("cenrtal", "central")
            grid_region, em = GCP_GRID.get(region, ("", ""))
            iso3 = GCP_COUNTRY_FIX.get(region, row["countryIsoCode"])
            add_cloud("gcp", region, row["city"], iso3, grid_region, em, GCP_DOC)
    _write(out, "cloud_regions.csv",
           ["provider", "region", "location", "country", "grid_region", "em_zone", "g_per_kwh", "unit",
            "year", "dataset", "source", "mapping_source"], cloud_rows)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
