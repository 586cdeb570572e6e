"""Carbon-aware scheduling: the cleanest window of a forecast, and the cleanest region.

Pure functions, plus one fetch of Electricity Maps' forecast.

The window choice follows the Carbon Aware SDK's forecast with a window size
(``EmissionsDataExtensions.RollingAverage`` / ``AverageOverPeriod``):

- candidate windows start at each forecast point (the tick is the forecast's granularity,
  e.g. one hour) and must lie entirely inside the forecast, whose last point covers one
  step;
- a window's mean is weighted by time: a 90-minute window over hourly points counts the
  first hour fully and half of the second (partial hours are prorated, not rounded);
- the lowest mean wins; among equal means the earliest start.

"Now" is the forecast's first point: ``now_mean_intensity_g_per_kwh`` is the mean of the
window starting there, and ``saving_pct`` is the relative saving of the best window against it.
Times without a UTC offset are read as UTC.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from mlflow_green import _settings
from mlflow_green.errors import ConfigError, IntensityError

__all__ = [
    "ForecastPoint",
    "RegionIntensity",
    "WindowChoice",
    "best_window",
    "choose_region",
    "fetch_forecast",
    "load_forecast",
    "parse_duration",
    "parse_forecast",
    "parse_regions",
    "window_means",
]

_DEFAULT_STEP = timedelta(hours=1)
_FETCH_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ForecastPoint:
    """Forecast intensity from ``time`` for one step of the forecast."""

    time: datetime
    intensity_g_per_kwh: float


@dataclass(frozen=True)
class WindowChoice:
    """The best window: when to start, its mean intensity and the saving against now."""

    start: datetime
    end: datetime
    mean_intensity_g_per_kwh: float
    now_mean_intensity_g_per_kwh: float
    saving_pct: float
    region: str | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "mean_intensity_g_per_kwh": self.mean_intensity_g_per_kwh,
            "now_mean_intensity_g_per_kwh": self.now_mean_intensity_g_per_kwh,
            "saving_pct": self.saving_pct,
        }
        if self.region is not None:
            data["region"] = self.region
        if self.source is not None:
            data["source"] = self.source
        return data


@dataclass(frozen=True)
class RegionIntensity:
    """One candidate region of a spatial choice: its best window and where the figure came from."""

    region: str
    location: str
    choice: WindowChoice
    source: str


_DURATION = re.compile(r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m(?:in)?)?$")


def parse_duration(text: str) -> timedelta:
    """``90m``, ``6h``, ``1h30m``, ``1.5h`` -> timedelta; ConfigError otherwise."""
    raw = str(text).strip().lower().replace(" ", "")
    match = _DURATION.match(raw)
    if not raw or match is None or not (match["h"] or match["m"]):
        raise ConfigError(f"--duration {text!r} is not a duration: use e.g. 90m, 6h or 1h30m")
    minutes = float(match["h"] or 0) * 60 + float(match["m"] or 0)
    if minutes <= 0:
        raise ConfigError(f"--duration {text!r} must be longer than zero")
    return timedelta(minutes=minutes)


def _parse_time(raw: Any, where: str) -> datetime:
    text = str(raw).strip()
    try:
        # Python 3.10's fromisoformat does not take a trailing Z
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ConfigError(
            f"{where}: {text!r} is not an ISO 8601 time (e.g. 2026-01-31T14:00:00Z)"
        ) from None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _parse_value(raw: Any, where: str) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: carbon intensity {raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: carbon intensity {raw!r} must be a finite number >= 0")
    return value


def _from_json(payload: Any, name: str) -> list[ForecastPoint]:
    if isinstance(payload, dict):
        if "forecast" not in payload:
            raise ConfigError(
                f"{name}: JSON object without a 'forecast' list (Electricity Maps shape)"
            )
        payload = payload["forecast"]
    if not isinstance(payload, list):
        raise ConfigError(
            f"{name}: expected a JSON list of {{'datetime', 'carbonIntensity'}} objects"
        )
    points = []
    for i, entry in enumerate(payload):
        where = f"{name} entry {i}"
        if not isinstance(entry, dict) or "datetime" not in entry or "carbonIntensity" not in entry:
            raise ConfigError(f"{where}: needs the keys 'datetime' and 'carbonIntensity'")
        points.append(
            ForecastPoint(
                _parse_time(entry["datetime"], where), _parse_value(entry["carbonIntensity"], where)
            )
        )
    return points


def _from_csv(text: str, name: str) -> list[ForecastPoint]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ConfigError(f"{name} is empty") from None
    missing = [c for c in ("datetime", "carbon_intensity") if c not in header]
    if missing:
        raise ConfigError(
            f"{name}: missing column {', '.join(missing)}; the header must be datetime,carbon_intensity"
        )
    ti, vi = header.index("datetime"), header.index("carbon_intensity")
    points = []
    for line_no, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        where = f"{name} line {line_no}"
        if len(cells) <= max(ti, vi):
            raise ConfigError(f"{where}: expected {len(header)} columns, found {len(cells)}")
        points.append(ForecastPoint(_parse_time(cells[ti], where), _parse_value(cells[vi], where)))
    return points


def parse_forecast(text: str, *, name: str = "forecast") -> list[ForecastPoint]:
    """Parse the contract's CSV (``datetime,carbon_intensity``) or Electricity Maps' JSON.

    JSON may be the list ``[{"datetime": ..., "carbonIntensity": ...}]`` or the API's answer
    ``{"zone": ..., "forecast": [...]}``. Times must increase in even steps (a continuous
    series, as the Carbon Aware SDK requires).
    """
    stripped = text.lstrip("\ufeff").strip()
    if not stripped:
        raise ConfigError(f"{name} is empty")
    if stripped[0] in "[{":
        try:
            payload = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        points = _from_json(payload, name)
    else:
        points = _from_csv(stripped, name)
    if not points:
        raise ConfigError(f"{name} has no forecast points")
    _check_series(points, name)
    return points


def _check_series(points: Sequence[ForecastPoint], name: str) -> None:
    step = _step(points)
    for prev, cur in itertools.pairwise(points):
        gap = cur.time - prev.time
        if gap <= timedelta(0):
            raise ConfigError(
                f"{name}: times must increase, but {cur.time.isoformat()} follows {prev.time.isoformat()}"
            )
        if gap != step:
            raise ConfigError(
                f"{name}: times must be evenly spaced ({_human(step)} steps), but "
                f"{prev.time.isoformat()} -> {cur.time.isoformat()} is {_human(gap)}"
            )


def _step(points: Sequence[ForecastPoint]) -> timedelta:
    # A one-point forecast is taken to be hourly, the granularity of Electricity Maps' forecast.
    return points[1].time - points[0].time if len(points) > 1 else _DEFAULT_STEP


def _human(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    if minutes >= 60 and minutes % 60 == 0:
        return f"{minutes / 60:g}h"
    return f"{minutes:g}m"


def load_forecast(path: str | Path) -> list[ForecastPoint]:
    """Read and parse a forecast file (CSV or JSON, by content)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--forecast {p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--forecast {p}: cannot read it ({exc})") from None
    return parse_forecast(text, name=str(p))


def window_means(
    points: Sequence[ForecastPoint], duration: timedelta
) -> list[tuple[datetime, float]]:
    """Time-weighted mean intensity of every window of ``duration`` that fits in the forecast."""
    if duration <= timedelta(0):
        raise ConfigError("the duration must be longer than zero")
    step = _step(points)
    step_s = step.total_seconds()
    dur_s = duration.total_seconds()
    n = len(points)
    full, rest_s = divmod(dur_s, step_s)
    full_steps = int(full)
    values = [p.intensity_g_per_kwh for p in points]
    prefix = [0.0]
    for v in values:
        prefix.append(prefix[-1] + v)
    out = []
    for i in range(n):
        last_needed = i + full_steps + (1 if rest_s > 0 else 0)
        if last_needed > n:
            break
        weighted = (prefix[i + full_steps] - prefix[i]) * step_s
        if rest_s > 0:
            weighted += values[i + full_steps] * rest_s
        out.append((points[i].time, weighted / dur_s))
    return out


def best_window(points: Sequence[ForecastPoint], duration: timedelta) -> WindowChoice:
    """The start with the lowest mean intensity over ``duration`` (earliest among equals)."""
    means = window_means(points, duration)
    if not means:
        covered = _step(points) * len(points)
        raise ConfigError(
            f"the forecast covers {_human(covered)}, shorter than the duration {_human(duration)}; "
            "use a longer forecast or a shorter --duration"
        )
    best_start, best_mean = means[0]
    for start, mean in means[1:]:
        # tolerance so that float noise in equal windows cannot pick a later start
        if mean < best_mean - 1e-9 * max(1.0, abs(best_mean)):
            best_start, best_mean = start, mean
    now_mean = means[0][1]
    saving = (now_mean - best_mean) / now_mean * 100.0 if now_mean > 0 else 0.0
    return WindowChoice(
        start=best_start,
        end=best_start + duration,
        mean_intensity_g_per_kwh=best_mean,
        now_mean_intensity_g_per_kwh=now_mean,
        saving_pct=saving,
    )


def _em_base_url(base_url: str | None) -> str:
    from mlflow_green.accounting.electricitymaps import DEFAULT_BASE_URL, ENV_ELECTRICITYMAPS_URL

    url = (base_url or _settings.env_str(ENV_ELECTRICITYMAPS_URL) or DEFAULT_BASE_URL).rstrip("/")
    return url if url.endswith("/v3") else url + "/v3"


def fetch_forecast(
    zone: str,
    *,
    token: str | None = None,
    base_url: str | None = None,
    timeout_s: float = _FETCH_TIMEOUT_S,
) -> list[ForecastPoint]:
    """Electricity Maps' carbon-intensity forecast of ``zone`` (``/v3/carbon-intensity/forecast``).

    ``token`` defaults to ``ELECTRICITYMAPS_API_TOKEN``; the base URL to
    ``MLFLOW_GREEN_ELECTRICITYMAPS_URL`` or the public API. Failures raise IntensityError.
    """
    token = token or _settings.env_str(_settings.ENV_EM_TOKEN)
    if not token:
        raise ConfigError(
            f"a live forecast needs a token: set {_settings.ENV_EM_TOKEN} or use --forecast FILE"
        )
    query = urllib.parse.urlencode({"zone": zone})
    url = f"{_em_base_url(base_url)}/carbon-intensity/forecast?{query}"
    request = urllib.request.Request(
        url, headers={"auth-token": token, "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise IntensityError(
                f"Electricity Maps refused the token (HTTP {exc.code}); check {_settings.ENV_EM_TOKEN}"
            ) from None
        if exc.code == 404:
            raise ConfigError(
                f"Electricity Maps has no forecast for zone {zone!r} (HTTP 404)"
            ) from None
        raise IntensityError(f"Electricity Maps forecast failed: HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise IntensityError(
            f"Electricity Maps is unreachable ({getattr(exc, 'reason', exc)})"
        ) from None
    try:
        return parse_forecast(body.decode("utf-8"), name=f"Electricity Maps forecast for {zone}")
    except (ConfigError, UnicodeDecodeError) as exc:
        raise IntensityError(f"malformed Electricity Maps answer: {exc}") from None


def parse_regions(text: str) -> list[tuple[str, str]]:
    """``aws:eu-north-1,gcp:europe-west1`` -> [(provider, region), ...]."""
    out = []
    for item in (part.strip() for part in str(text).split(",")):
        if not item:
            continue
        provider, sep, region = item.partition(":")
        if not sep or not provider.strip() or not region.strip():
            raise ConfigError(
                f"--regions item {item!r} must look like provider:region, e.g. aws:eu-north-1"
            )
        out.append((provider.strip().lower(), region.strip()))
    if not out:
        raise ConfigError(
            "--regions is empty: give provider:region,... e.g. aws:eu-north-1,aws:us-east-1"
        )
    return out


def choose_region(
    regions: Sequence[tuple[str, str]],
    duration: timedelta,
    *,
    token: str | None = None,
    forecasts: Mapping[str, Sequence[ForecastPoint]] | None = None,
    now: datetime | None = None,
    base_url: str | None = None,
) -> tuple[WindowChoice, list[RegionIntensity]]:
    """The cleanest of ``regions`` for a job of ``duration``; the first region is the baseline.

    With a forecast per region (``forecasts`` keyed by ``provider:region``, or fetched live
    when a token is present) each region's best window is compared; otherwise the embedded
    annual intensity of each region, for a start now. ``saving_pct`` is against starting now
    in the first region listed.
    """
    from mlflow_green.accounting import em_zone, resolve_location, static_intensity

    token = token or _settings.env_str(_settings.ENV_EM_TOKEN)
    start = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    candidates: list[RegionIntensity] = []
    for provider, region in regions:
        key = f"{provider}:{region}"
        location = resolve_location(cloud_provider=provider, cloud_region=region, use_env=False)
        series = (forecasts or {}).get(key)
        if series is None and token:
            zone = em_zone(location)
            if zone is None:
                raise ConfigError(
                    f"--regions {key}: no Electricity Maps zone is known for this region"
                )
            series = fetch_forecast(zone, token=token, base_url=base_url)
            source = f"electricitymaps forecast ({zone})"
        elif series is not None:
            source = "forecast"
        else:
            value = static_intensity(location)
            choice = WindowChoice(start, start + duration, value.g_per_kwh, value.g_per_kwh, 0.0)
            candidates.append(RegionIntensity(key, location.label, choice, value.source))
            continue
        candidates.append(
            RegionIntensity(key, location.label, best_window(series, duration), source)
        )
    best = candidates[0]
    for cand in candidates[1:]:
        if cand.choice.mean_intensity_g_per_kwh < best.choice.mean_intensity_g_per_kwh:
            best = cand
    baseline = candidates[0].choice.now_mean_intensity_g_per_kwh
    mean = best.choice.mean_intensity_g_per_kwh
    saving = (baseline - mean) / baseline * 100.0 if baseline > 0 else 0.0
    result = WindowChoice(
        start=best.choice.start,
        end=best.choice.end,
        mean_intensity_g_per_kwh=mean,
        now_mean_intensity_g_per_kwh=baseline,
        saving_pct=saving,
        region=best.region,
        source=best.source,
    )
    return result, candidates
