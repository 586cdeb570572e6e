from __future__ import annotations

import pytest

from mlflow_green.accounting import Location, resolve_location
from mlflow_green.errors import ConfigError


@pytest.mark.parametrize(
    ("kwargs", "label"),
    [
        ({"country": "FRA"}, "FRA"),
        ({"country": "fra"}, "FRA"),
        ({"country": "FR"}, "FRA"),
        ({"country": "France"}, "FRA"),
        ({"country": "USA", "region": "california"}, "USA/california"),
        ({"country": "usa", "region": "CA"}, "USA/california"),
        ({"country": "USA", "region": "New York"}, "USA/new york"),
        ({"region": "TX"}, "USA/texas"),
        ({"region": "quebec"}, "CAN/quebec"),
        ({"country": "CAN", "region": "BC"}, "CAN/british columbia"),
        ({"region": "se3"}, "SWE/SE3"),
        ({"country": "NOR", "region": "NO4"}, "NOR/NO4"),
        ({"region": "DK2"}, "DNK/DK2"),
        ({"cloud_provider": "aws", "cloud_region": "us-east-1"}, "aws/us-east-1"),
        ({"cloud_provider": "AWS", "cloud_region": "US-EAST-1"}, "aws/us-east-1"),
        ({"cloud_provider": "amazon", "cloud_region": "eu-north-1"}, "aws/eu-north-1"),
        ({"cloud_provider": "gcp", "cloud_region": "europe-west1"}, "gcp/europe-west1"),
        ({"cloud_provider": "google", "cloud_region": "me-central1"}, "gcp/me-central1"),
        ({"cloud_provider": "azure", "cloud_region": "East US 2"}, "azure/eastus2"),
        ({"cloud_provider": "Azure", "cloud_region": "westeurope"}, "azure/westeurope"),
        ({"cloud_region": "aws:eu-north-1"}, "aws/eu-north-1"),
        ({"cloud_region": "gcp/europe-west4"}, "gcp/europe-west4"),
        ({"country": "world"}, "world"),
        ({}, "world"),
    ],
)
def test_resolve_location_labels(kwargs: dict[str, str], label: str) -> None:
    assert resolve_location(**kwargs).label == label


@pytest.mark.parametrize(
    ("cloud", "country", "region"),
    [
        (("aws", "us-east-1"), "USA", "PJM"),  # its balancing authority, not Virginia
        (("aws", "eu-north-1"), "SWE", "SE3"),
        (("aws", "ca-central-1"), "CAN", "quebec"),
        (("azure", "norwayeast"), "NOR", "NO1"),
        (("gcp", "us-central1"), "USA", "MISO"),
        (("gcp", "asia-east2"), "HKG", None),
        (("gcp", "europe-north1"), "FIN", "FI"),
    ],
)
def test_cloud_regions_map_to_their_grid(cloud: tuple[str, str], country: str, region: str | None) -> None:
    loc = resolve_location(cloud_provider=cloud[0], cloud_region=cloud[1])
    assert (loc.country, loc.region) == (country, region)


@pytest.mark.parametrize(
    ("kwargs", "needles"),
    [
        ({"country": "FRX"}, ["FRA"]),
        ({"country": "USA", "region": "californa"}, ["california"]),
        ({"cloud_provider": "aws", "cloud_region": "us-east-7"}, ["us-east-1"]),
        ({"cloud_provider": "gcp", "cloud_region": "europe-wst1"}, ["europe-west1"]),
        ({"cloud_provider": "azure", "cloud_region": "westeurop"}, ["westeurope"]),
        ({"cloud_provider": "ibm", "cloud_region": "x"}, ["aws", "gcp", "azure"]),
        ({"cloud_provider": "aws"}, ["region"]),
        ({"cloud_region": "us-east-1"}, ["provider"]),
        ({"country": "DEU", "region": "bavaria"}, ["no sub-national data for DEU"]),
    ],
)
def test_unknown_codes_name_close_valid_ones(kwargs: dict[str, str], needles: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_location(**kwargs)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message


def test_environment_is_used_when_no_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_GREEN_CLOUD_PROVIDER", "gcp")
    monkeypatch.setenv("MLFLOW_GREEN_CLOUD_REGION", "europe-west9")
    assert resolve_location().label == "gcp/europe-west9"
    # An argument beats the environment as a whole: no mixing of country and env cloud.
    assert resolve_location(country="DEU").label == "DEU"
    assert resolve_location(use_env=False).label == "world"


def test_environment_country_and_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_GREEN_COUNTRY", "USA")
    monkeypatch.setenv("MLFLOW_GREEN_REGION", "oregon")
    assert resolve_location().label == "USA/oregon"


def test_bad_environment_value_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_GREEN_COUNTRY", "Atlantis")
    with pytest.raises(ConfigError, match="unknown country"):
        resolve_location()


def test_world_is_unconfigured_unless_asked_for() -> None:
    assert resolve_location().configured is False
    assert resolve_location(country="world").configured is True
    assert Location.world().is_world


@pytest.mark.parametrize("field", ["country", "region", "cloud_provider", "cloud_region"])
@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_an_explicitly_empty_location_is_an_error_not_the_world(field: str, blank: str) -> None:
    # An unset shell variable expanded into --country "" must not silently mean the world average.
    with pytest.raises(ConfigError, match=f"{field} is empty"):
        resolve_location(**{field: blank})
    with pytest.raises(ConfigError, match=f"{field} is empty"):
        resolve_location(**{"country": "FRA", field: blank} if field != "country" else {field: blank, "region": "SE3"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("PJM", ("USA", "PJM")), ("US-MIDA-PJM", ("USA", "PJM")), ("se-se3", ("SWE", "SE3")),
     ("US-CAR-SC", ("USA", "US-CAR-SC")), ("SC", ("USA", "south carolina")), ("it-no", ("ITA", "IT-NO"))],
)
def test_grid_zones_resolve_by_their_codes(raw: str, expected: tuple[str, str]) -> None:
    loc = resolve_location(region=raw)
    assert (loc.country, loc.region) == expected
