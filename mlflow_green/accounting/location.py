"""Where the electricity comes from: a country, a sub-national grid region or a cloud region.

Arguments beat environment variables (``MLFLOW_GREEN_COUNTRY``, ``MLFLOW_GREEN_REGION``,
``MLFLOW_GREEN_CLOUD_PROVIDER``, ``MLFLOW_GREEN_CLOUD_REGION``); with neither, the location is
the world (and the intensity source warns). No network call ever guesses the location.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from mlflow_green import _settings
from mlflow_green.accounting import _data
from mlflow_green.errors import ConfigError

__all__ = ["CLOUD_PROVIDERS", "Location", "resolve_location"]

CLOUD_PROVIDERS: tuple[str, ...] = ("aws", "azure", "gcp")
_PROVIDER_ALIASES = {
    "aws": "aws", "amazon": "aws", "ec2": "aws",
    "gcp": "gcp", "google": "gcp", "googlecloud": "gcp", "gce": "gcp",
    "azure": "azure", "microsoft": "azure", "msazure": "azure",
}


@dataclass(frozen=True)
class Location:
    """A resolved location. ``country`` is ISO 3166 alpha-3; ``region`` a key of the
    sub-national table (``california``, ``quebec``, ``se3``); ``cloud_*`` are set for a cloud
    region, whose grid is given by ``country``/``region``. ``configured`` is False for the
    world-average fallback."""

    country: str | None = None
    region: str | None = None
    cloud_provider: str | None = None
    cloud_region: str | None = None
    configured: bool = True

    @property
    def label(self) -> str:
        """``gcp/europe-west1``, ``USA/california``, ``FRA`` or ``world`` (the ``green.location`` tag)."""
        if self.cloud_provider and self.cloud_region:
            return f"{self.cloud_provider}/{self.cloud_region}"
        if self.country and self.region:
            return f"{self.country}/{self.region}"
        return self.country or "world"

    @property
    def is_world(self) -> bool:
        return self.country is None

    @classmethod
    def world(cls, *, configured: bool = False) -> Location:
        return cls(configured=configured)


def _norm(text: str) -> str:
    return " ".join(text.strip().lower().replace("_", " ").split())


def _cloud_key(provider: str, region: str) -> str:
    key = region.strip().lower()
    if provider == "azure":
        # Azure's display names ("East US 2") and programmatic names ("eastus2") are both common.
        key = re.sub(r"[\s_-]+", "", key)
    return key


@cache
def _countries() -> dict[str, str]:
    """alias (ISO3, ISO2, lowercase name) -> ISO3."""
    out: dict[str, str] = {}
    for row in _data.rows("intensity_countries.csv"):
        iso3 = row["iso3"]
        out[iso3.lower()] = iso3
        if row["iso2"]:
            out.setdefault(row["iso2"].lower(), iso3)
        out.setdefault(_norm(row["name"]), iso3)
    out.setdefault("uk", "GBR")
    out.setdefault("usa", "USA")
    out.setdefault("us", "USA")
    return out


@cache
def _regions() -> dict[str, list[tuple[str, str]]]:
    """alias (region key, code, name, Electricity Maps zone) -> [(ISO3, region key)] (a list: a
    code may be ambiguous)."""
    out: dict[str, list[tuple[str, str]]] = {}
    rows = _data.rows("intensity_subnational.csv")
    # A zone code names a row only where one region has it (several states share their BA's zone).
    owners: dict[str, set[tuple[str, str]]] = {}
    for row in rows:
        owners.setdefault(row["em_zone"].lower(), set()).add((row["country"], row["region"]))
    for row in rows:
        target = (row["country"], row["region"])
        aliases = {_norm(row["region"]), row["code"].lower(), _norm(row["name"])}
        if row["em_zone"] and len(owners[row["em_zone"].lower()]) == 1:
            aliases.add(row["em_zone"].lower())
        for alias in aliases:
            out.setdefault(alias, [])
            if target not in out[alias]:
                out[alias].append(target)
    return out


@cache
def _clouds() -> dict[tuple[str, str], dict[str, str]]:
    return {(r["provider"], _cloud_key(r["provider"], r["region"])): r
            for r in _data.rows("cloud_regions.csv") if r["basis"] == "lifecycle"}


def _resolve_country(raw: str) -> str:
    iso3 = _countries().get(_norm(raw))
    if iso3 is None:
        codes = [r["iso3"] for r in _data.rows("intensity_countries.csv")]
        names = [r["name"] for r in _data.rows("intensity_countries.csv")]
        raise ConfigError(
            f"unknown country {raw!r}{_data.hint(raw, codes + names)}: use an ISO 3166 alpha-3 code such as FRA, USA or DEU"
        )
    return iso3


def _resolve_region(raw: str, country: str | None) -> tuple[str, str]:
    candidates = _regions().get(_norm(raw), [])
    if country is not None:
        candidates = [c for c in candidates if c[0] == country]
    if len(candidates) == 1:
        return candidates[0]
    valid = [r["region"] for r in _data.rows("intensity_subnational.csv")
             if country is None or r["country"] == country]
    if not candidates:
        where = f" in {country}" if country else ""
        if country is not None and not valid:
            raise ConfigError(f"no sub-national data for {country}: drop --region/MLFLOW_GREEN_REGION to use the country value")
        raise ConfigError(f"unknown region {raw!r}{where}{_data.hint(raw, valid)}")
    raise ConfigError(f"region {raw!r} is ambiguous ({', '.join('/'.join(c) for c in candidates)}): give the country too")


def _resolve_cloud(provider_raw: str | None, region_raw: str | None) -> Location:
    if not provider_raw or not region_raw:
        missing = "cloud region" if provider_raw else "cloud provider"
        raise ConfigError(f"a cloud location needs both provider and region: set the {missing} too (e.g. --cloud aws --cloud-region us-east-1)")
    provider = _PROVIDER_ALIASES.get(re.sub(r"[\s_-]+", "", provider_raw.strip().lower()))
    if provider is None:
        raise ConfigError(f"unknown cloud provider {provider_raw!r}: use one of {', '.join(CLOUD_PROVIDERS)}")
    row = _clouds().get((provider, _cloud_key(provider, region_raw)))
    if row is None:
        valid = [r for (p, r) in _clouds() if p == provider]
        raise ConfigError(f"unknown {provider} region {region_raw!r}{_data.hint(_cloud_key(provider, region_raw), valid)}")
    return Location(
        country=row["country"],
        region=row["grid_region"] or None,
        cloud_provider=provider,
        cloud_region=row["region"],
    )


def resolve_location(
    country: str | None = None,
    region: str | None = None,
    cloud_provider: str | None = None,
    cloud_region: str | None = None,
    *,
    use_env: bool = True,
) -> Location:
    """Resolve a location from arguments, else the ``MLFLOW_GREEN_*`` variables, else the world.

    Codes are forgiving about case and spelling variants (``us-east-1``/``US-EAST-1``,
    ``eastus``/``East US``, ``california``/``CA``, ``fra``/``FR``/``France``). An unknown code
    given explicitly raises :class:`~mlflow_green.errors.ConfigError` naming close valid codes.
    A cloud region wins over a country; a region without a country is looked up in every
    country's sub-national table. ``cloud_region`` alone may be ``"aws:eu-north-1"`` or
    ``"aws/eu-north-1"``.
    """
    for what, value in (
        ("country", country),
        ("region", region),
        ("cloud_provider", cloud_provider),
        ("cloud_region", cloud_region),
    ):
        if value is not None and not isinstance(value, str):
            raise ConfigError(
                f"{what}={value!r} must be a string such as 'FRA', 'california', 'aws' or 'eu-west-1'"
            )
        if value is not None and not value.strip():
            # An explicitly empty value is a mistake (an unset shell variable), never "the world".
            raise ConfigError(
                f"{what} is empty: give a value such as 'FRA', 'california', 'aws' or 'eu-west-1', "
                "or leave the option out (country 'world' for the world average)"
            )
    if not any((country, region, cloud_provider, cloud_region)) and use_env:
        country = _settings.env_str(_settings.ENV_COUNTRY)
        region = _settings.env_str(_settings.ENV_REGION)
        cloud_provider = _settings.env_str(_settings.ENV_CLOUD_PROVIDER)
        cloud_region = _settings.env_str(_settings.ENV_CLOUD_REGION)
    if cloud_region and not cloud_provider:
        # "aws:eu-north-1" (the scheduler's --regions form) or "aws/eu-north-1" (a label).
        text = cloud_region.strip()
        provider, sep, rest = text.partition(":") if ":" in text else text.partition("/")
        if sep and rest:
            cloud_provider, cloud_region = provider, rest
    if cloud_provider or cloud_region:
        return _resolve_cloud(cloud_provider, cloud_region)
    if country and _norm(country) in {"world", "wld", "global"}:
        return Location.world(configured=True)
    iso3 = _resolve_country(country) if country else None
    if region:
        iso3, key = _resolve_region(region, iso3)
        return Location(country=iso3, region=key)
    if iso3:
        return Location(country=iso3)
    return Location.world(configured=False)
