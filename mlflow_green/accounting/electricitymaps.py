"""Live grid intensity from the Electricity Maps API (v3), with the offline table behind it.

``carbon-intensity/latest`` answers "now"; ``carbon-intensity/history`` (the last 24 hours,
hourly) answers "the hour of ``at``", so an epoch is charged the intensity of its own hour.
The token goes in the ``auth-token`` header. The base URL is
``https://api.electricitymap.org/v3`` unless ``base_url`` or
``MLFLOW_GREEN_ELECTRICITYMAPS_URL`` says otherwise (a proxy, or a local test server).

Requests time out after at most 2 s; each zone's answers are cached for 15 minutes. Any
failure (timeout, refused connection, HTTP 401/429/5xx, malformed JSON) falls back to the
offline annual value, warns once, and the value's ``source`` names the fallback, e.g.
``static:ember@2023 (fallback from electricitymaps)``. After a failure the API is not asked
again for the cache period, so a bad token costs one timeout, not one per epoch.
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from mlflow_green import _settings
from mlflow_green.accounting.intensity import (
    SOURCE_ELECTRICITYMAPS,
    GreenWarning,
    IntensityValue,
    StaticIntensity,
    em_zone,
    parse_basis,
)
from mlflow_green.accounting.location import Location
from mlflow_green.errors import IntensityError

__all__ = [
    "CACHE_TTL_S",
    "DEFAULT_BASE_URL",
    "ENV_ELECTRICITYMAPS_URL",
    "MAX_TIMEOUT_S",
    "ElectricityMapsIntensity",
]

ENV_ELECTRICITYMAPS_URL = "MLFLOW_GREEN_ELECTRICITYMAPS_URL"
DEFAULT_BASE_URL = "https://api.electricitymap.org/v3"
MAX_TIMEOUT_S = 2.0
CACHE_TTL_S = 15 * 60.0
FALLBACK_SUFFIX = " (fallback from electricitymaps)"


def _base_url(explicit: str | None) -> str:
    url = (explicit or _settings.env_str(ENV_ELECTRICITYMAPS_URL) or DEFAULT_BASE_URL).rstrip("/")
    return url if url.endswith("/v3") else url + "/v3"


def _parse_time(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _hour(at: datetime) -> datetime:
    # A naive datetime is local time, as datetime.now() gives it.
    aware = at.astimezone(timezone.utc)
    return aware.replace(minute=0, second=0, microsecond=0)


def _g_per_kwh(entry: Any) -> float:
    value = entry.get("carbonIntensity") if isinstance(entry, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise IntensityError(f"malformed answer: carbonIntensity={value!r}")
    return float(value)


class ElectricityMapsIntensity:
    """An :class:`~mlflow_green.accounting.IntensitySource` backed by Electricity Maps.

    Thread-safe; one instance per run is the intended use. ``clock`` is injectable so the
    cache can be tested without sleeping.
    """

    def __init__(
        self,
        location: Location,
        token: str,
        *,
        base_url: str | None = None,
        timeout_s: float | None = None,
        cache_ttl_s: float = CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        basis: str = "lifecycle",
    ) -> None:
        self.location = location
        self.basis = parse_basis(basis)
        self.zone = em_zone(location)
        self.base_url = _base_url(base_url)
        self.timeout_s = min(MAX_TIMEOUT_S, timeout_s) if timeout_s else MAX_TIMEOUT_S
        self.cache_ttl_s = cache_ttl_s
        self._token = token
        self._clock = clock
        self._offline_source: StaticIntensity | None = None
        self._cache: dict[str, tuple[float, Any]] = {}
        self._failure: tuple[float, str] | None = None
        self._warned = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ElectricityMapsIntensity(zone={self.zone!r}, base_url={self.base_url!r})"

    def intensity(self, at: datetime | None = None) -> IntensityValue:
        if self.zone is None:
            return self._fallback(f"no Electricity Maps zone is known for {self.location.label}; give a sub-national region or cloud region", at)
        try:
            if at is not None:
                value = self._from_history(at)
                if value is not None:
                    return value
            payload = self._get("latest")
            return self._value(payload, "latest", at)
        except IntensityError as exc:
            return self._fallback(str(exc), at)

    # -- internals -------------------------------------------------------------------------

    def _from_history(self, at: datetime) -> IntensityValue | None:
        payload = self._get("history")
        history = payload.get("history") if isinstance(payload, dict) else None
        if not isinstance(history, list):
            raise IntensityError("malformed answer: no 'history' list")
        wanted = _hour(at)
        for entry in history:
            when = _parse_time(entry.get("datetime") if isinstance(entry, dict) else None)
            if when is not None and _hour(when) == wanted:
                return self._value(entry, "history", at)
        return None  # outside the last 24 hours or not yet published: use the latest value

    def _value(self, entry: Any, endpoint: str, at: datetime | None) -> IntensityValue:
        g = _g_per_kwh(entry)
        when = _parse_time(entry.get("datetime"))
        return IntensityValue(
            g_per_kwh=g,
            source=SOURCE_ELECTRICITYMAPS,
            year=when.year if when else None,
            location=self.location.label,
            citation=f"Electricity Maps v3 carbon-intensity/{endpoint}, zone {self.zone}"
            + (f", {when.isoformat()}" if when else ""),
            at=at if at is not None else when,
            zone=self.zone,
            basis=self.basis,
        )

    def _get(self, endpoint: str) -> Any:
        with self._lock:
            now = self._clock()
            cached = self._cache.get(endpoint)
            if cached is not None and now - cached[0] < self.cache_ttl_s:
                return cached[1]
            if self._failure is not None and now - self._failure[0] < self.cache_ttl_s:
                raise IntensityError(self._failure[1])
            try:
                payload = self._fetch(endpoint)
            except IntensityError as exc:
                self._failure = (now, str(exc))
                raise
            self._failure = None
            self._cache[endpoint] = (now, payload)
            return payload

    def _fetch(self, endpoint: str) -> Any:
        params = {"zone": self.zone}
        if self.basis != "lifecycle":  # the API's default is lifecycle
            params["emissionFactorType"] = self.basis
        query = urllib.parse.urlencode(params)
        url = f"{self.base_url}/carbon-intensity/{endpoint}?{query}"
        request = urllib.request.Request(url, headers={"auth-token": self._token, "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise IntensityError(f"HTTP {exc.code}: token rejected, check ELECTRICITYMAPS_API_TOKEN") from None
            if exc.code == 429:
                raise IntensityError("HTTP 429: rate limited") from None
            raise IntensityError(f"HTTP {exc.code} from {endpoint}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise IntensityError(f"unreachable ({reason})") from None
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise IntensityError("malformed answer: not JSON") from None
        if not isinstance(payload, dict):
            raise IntensityError("malformed answer: not a JSON object")
        return payload

    @property
    def _offline(self) -> StaticIntensity:
        # Built on first use: a direct-basis source may have no offline figure for its location,
        # which only matters (a ConfigError naming the basis) once the live API has failed.
        if self._offline_source is None:
            self._offline_source = StaticIntensity(self.location, self.basis)
        return self._offline_source

    def _fallback(self, problem: str, at: datetime | None) -> IntensityValue:
        offline = self._offline.intensity(at)
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"Electricity Maps unavailable for {self.location.label} ({problem}); using the "
                f"offline value {offline.g_per_kwh:g} gCO2eq/kWh ({offline.source})",
                GreenWarning,
                stacklevel=3,
            )
        return replace(offline, source=offline.source + FALLBACK_SUFFIX, problem=problem)
