from __future__ import annotations

import json
import random
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from mlflow_green.accounting import forecast as fc
from mlflow_green.errors import ConfigError, IntensityError

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=timezone.utc)


def _points(values, step=timedelta(hours=1)):
    return [fc.ForecastPoint(T0 + i * step, v) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("90m", 90), ("6h", 360), ("1h30m", 90), ("1.5h", 90), (" 2H ", 120), ("45min", 45)],
)
def test_parse_duration(text, minutes):
    assert fc.parse_duration(text) == timedelta(minutes=minutes)


@pytest.mark.parametrize("text", ["", "90", "0m", "h", "1d", "-1h", "1h-30m"])
def test_parse_duration_rejects(text):
    with pytest.raises(ConfigError, match="--duration"):
        fc.parse_duration(text)


def test_sdk_worked_examples():
    # Carbon Aware SDK RollingAverage examples (5-minute data, 10-minute window) ...
    five = timedelta(minutes=5)
    means = fc.window_means(_points([10, 20, 30, 40, 5], five), timedelta(minutes=10))
    assert [m for _, m in means] == [15, 25, 35, 22.5]
    means = fc.window_means(_points([5, 55, 10, 10, 10], five), timedelta(minutes=10))
    assert [m for _, m in means] == [30, 32.5, 10, 10]
    # ... and AverageOverPeriod: hourly 30, 100, 50 over 01:30-03:30 weighs 1/4, 1/2, 1/4
    # (our windows start on data points, so the equivalent is 90 min from the first point)
    means = fc.window_means(_points([30, 100, 50]), timedelta(minutes=90))
    assert means[0][1] == pytest.approx((30 * 60 + 100 * 30) / 90)
    assert means[1][1] == pytest.approx((100 * 60 + 50 * 30) / 90)
    assert len(means) == 2  # a 90-minute window starting at the last hour does not fit


def _brute_force(values, minutes):
    """Minute-by-minute expansion: the mean over every start hour that fits."""
    per_minute = [v for v in values for _ in range(60)]
    best = None
    for start in range(len(values)):
        window = per_minute[start * 60 : start * 60 + minutes]
        if len(window) < minutes:
            break
        mean = sum(window) / minutes
        if best is None or mean < best[1] - 1e-9:
            best = (start, mean)
    return best


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("duration", ["1h", "90m", "3h", "4h20m", "12h"])
def test_48_hour_forecast_matches_brute_force(tmp_path, seed, duration):
    rng = random.Random(seed)
    values = [round(rng.uniform(20, 600), 1) for _ in range(48)]
    path = tmp_path / "forecast.csv"
    path.write_text(
        "datetime,carbon_intensity\n"
        + "".join(f"{(T0 + timedelta(hours=i)).isoformat()},{v}\n" for i, v in enumerate(values))
    )
    d = fc.parse_duration(duration)
    choice = fc.best_window(fc.load_forecast(path), d)
    start, mean = _brute_force(values, int(d.total_seconds() // 60))
    assert choice.start == T0 + timedelta(hours=start)
    assert choice.end == choice.start + d
    assert choice.mean_intensity_g_per_kwh == pytest.approx(mean)
    now = _brute_force(values[:], int(d.total_seconds() // 60))  # recomputed below for start 0
    now_mean = sum([v for v in values for _ in range(60)][: int(d.total_seconds() // 60)]) / (
        d.total_seconds() / 60
    )
    assert now is not None
    assert choice.now_mean_intensity_g_per_kwh == pytest.approx(now_mean)
    assert choice.saving_pct == pytest.approx((now_mean - mean) / now_mean * 100)


def test_ties_pick_earliest_and_json_shapes():
    rows = [
        {
            "datetime": (T0 + timedelta(hours=i)).isoformat().replace("+00:00", "Z"),
            "carbonIntensity": v,
        }
        for i, v in enumerate([300, 100, 200, 100, 400])
    ]
    for payload in (rows, {"zone": "FR", "forecast": rows}):
        points = fc.parse_forecast(json.dumps(payload))
        choice = fc.best_window(points, timedelta(hours=1))
        assert choice.start == T0 + timedelta(hours=1)
        assert choice.saving_pct == pytest.approx(200 / 300 * 100)


def test_naive_times_are_utc():
    points = fc.parse_forecast(
        "datetime,carbon_intensity\n2026-03-01T00:00:00,1\n2026-03-01T01:00:00,2\n"
    )
    assert points[0].time == T0


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("time,carbon_intensity\n2026-03-01T00:00:00Z,1\n", "missing column datetime"),
        ("datetime,intensity\n2026-03-01T00:00:00Z,1\n", "missing column carbon_intensity"),
        (
            "datetime,carbon_intensity\n2026-03-01T01:00:00Z,1\n2026-03-01T00:00:00Z,1\n",
            "must increase",
        ),
        (
            "datetime,carbon_intensity\n2026-03-01T00:00:00Z,1\n2026-03-01T00:00:00Z,1\n",
            "must increase",
        ),
        (
            "datetime,carbon_intensity\n2026-03-01T00:00:00Z,1\n2026-03-01T01:00:00Z,1\n2026-03-01T03:00:00Z,1\n",
            "evenly spaced",
        ),
        ("datetime,carbon_intensity\n2026-03-01T00:00:00Z,high\n", "not a number"),
        ("datetime,carbon_intensity\n2026-03-01T00:00:00Z,-5\n", ">= 0"),
        ("datetime,carbon_intensity\nyesterday,5\n", "not an ISO 8601 time"),
        ("datetime,carbon_intensity\n", "no forecast points"),
        ("", "is empty"),
        ('[{"datetime": "2026-03-01T00:00:00Z"}]', "carbonIntensity"),
        ('{"zone": "FR"}', "'forecast' list"),
        ("[1, 2", "not valid JSON"),
    ],
)
def test_bad_forecasts(text, match):
    with pytest.raises(ConfigError, match=match):
        fc.parse_forecast(text, name="f.csv")


def test_forecast_shorter_than_duration():
    with pytest.raises(ConfigError, match="covers 3h, shorter than the duration 4h"):
        fc.best_window(_points([1, 2, 3]), timedelta(hours=4))


class _EM(BaseHTTPRequestHandler):
    payload: bytes = b""
    seen: ClassVar[list] = []

    def do_GET(self):
        type(self).seen.append((self.path, self.headers.get("auth-token")))
        status = 401 if self.headers.get("auth-token") != "tok" else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(type(self).payload if status == 200 else b'{"error":"unauthorized"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def em_server(monkeypatch):
    rows = [
        {"datetime": (T0 + timedelta(hours=i)).isoformat(), "carbonIntensity": v}
        for i, v in enumerate([500, 400, 90, 80, 300, 600])
    ]
    _EM.payload = json.dumps({"zone": "FR", "forecast": rows, "updatedAt": T0.isoformat()}).encode()
    _EM.seen = []
    server = HTTPServer(("127.0.0.1", 0), _EM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("MLFLOW_GREEN_ELECTRICITYMAPS_URL", f"http://127.0.0.1:{server.server_port}")
    yield _EM
    server.shutdown()
    server.server_close()


def test_fetch_forecast_from_electricity_maps(em_server):
    points = fc.fetch_forecast("FR", token="tok")
    assert em_server.seen == [("/v3/carbon-intensity/forecast?zone=FR", "tok")]
    choice = fc.best_window(points, timedelta(hours=2))
    assert (choice.start, choice.mean_intensity_g_per_kwh) == (T0 + timedelta(hours=2), 85)
    with pytest.raises(IntensityError, match="refused the token"):
        fc.fetch_forecast("FR", token="bad")
    with pytest.raises(ConfigError, match="ELECTRICITYMAPS_API_TOKEN"):
        fc.fetch_forecast("FR")


def test_choose_region_static_and_forecasts():
    regions = fc.parse_regions("aws:us-east-1, aws:eu-north-1")
    choice, candidates = fc.choose_region(regions, timedelta(hours=2), now=T0)
    assert choice.region == "aws:eu-north-1"
    assert [c.region for c in candidates] == ["aws:us-east-1", "aws:eu-north-1"]
    assert choice.mean_intensity_g_per_kwh < candidates[0].choice.mean_intensity_g_per_kwh
    assert choice.saving_pct > 0 and choice.source.startswith("static:")
    forecasts = {"aws:us-east-1": _points([50, 50, 50]), "aws:eu-north-1": _points([90, 90, 90])}
    choice, _ = fc.choose_region(regions, timedelta(hours=2), forecasts=forecasts)
    assert (choice.region, choice.mean_intensity_g_per_kwh, choice.saving_pct) == (
        "aws:us-east-1",
        50,
        0,
    )


@pytest.mark.parametrize("text", ["", "aws", "aws:", ":eu-north-1"])
def test_parse_regions_rejects(text):
    with pytest.raises(ConfigError, match="--regions"):
        fc.parse_regions(text)
