"""Electricity Maps against a real HTTP server on 127.0.0.1 (no patching of internals)."""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from mlflow_green.accounting import (
    ElectricityMapsIntensity,
    GreenWarning,
    intensity_source,
    resolve_location,
    static_intensity,
)
from mlflow_green.errors import ConfigError

NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)


@dataclass
class FakeEM:
    """What the fake API answers: endpoint -> (status, body). Requests are recorded."""

    url: str = ""
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
    delay_s: float = 0.0
    requests: list[tuple[str, dict[str, list[str]], str | None]] = field(default_factory=list)

    def reset(self) -> None:
        self.answers = {
            "latest": (200, {"zone": "FR", "carbonIntensity": 61, "datetime": NOW.isoformat().replace("+00:00", "Z")}),
            "history": (200, {"zone": "FR", "history": [
                {"zone": "FR", "carbonIntensity": 100 + h,
                 "datetime": (NOW - timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
                for h in range(1, 25)
            ]}),
        }
        self.delay_s = 0.0
        self.requests.clear()


@pytest.fixture(scope="module")
def _server() -> Iterator[FakeEM]:
    fake = FakeEM()
    fake.reset()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parsed = urlparse(self.path)
            fake.requests.append((parsed.path, parse_qs(parsed.query), self.headers.get("auth-token")))
            if fake.delay_s:
                time.sleep(fake.delay_s)
            endpoint = parsed.path.rsplit("/", 1)[-1]
            status, body = fake.answers.get(endpoint, (404, {"error": "no such endpoint"}))
            raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out first, as intended

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield fake
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def em(_server: FakeEM, monkeypatch: pytest.MonkeyPatch) -> FakeEM:
    _server.reset()
    monkeypatch.setenv("MLFLOW_GREEN_ELECTRICITYMAPS_URL", _server.url)
    return _server


FRA = resolve_location(country="FRA")


def test_latest_with_token_header_and_zone(em: FakeEM) -> None:
    source = intensity_source(FRA, token="secret-token")
    assert isinstance(source, ElectricityMapsIntensity)
    value = source.intensity()
    assert (value.g_per_kwh, value.source, value.zone, value.location) == (61, "electricitymaps", "FR", "FRA")
    path, query, token = em.requests[0]
    assert path == "/v3/carbon-intensity/latest"
    assert query == {"zone": ["FR"]}
    assert token == "secret-token"


def test_token_from_environment(em: FakeEM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "env-token")
    assert intensity_source(FRA).intensity().source == "electricitymaps"
    assert em.requests[0][2] == "env-token"


def test_time_resolved_value_uses_the_hour_from_history(em: FakeEM) -> None:
    source = intensity_source(FRA, token="t")
    at = NOW - timedelta(hours=3) + timedelta(minutes=25)
    value = source.intensity(at)
    assert value.g_per_kwh == 103
    assert value.at == at
    assert em.requests[0][0] == "/v3/carbon-intensity/history"
    # An hour outside the 24 h history falls back to the latest value, not to the table.
    old = source.intensity(NOW - timedelta(days=3))
    assert (old.g_per_kwh, old.source) == (61, "electricitymaps")


def test_answers_are_cached_per_zone_for_15_minutes(em: FakeEM) -> None:
    clock = [1000.0]
    source = ElectricityMapsIntensity(FRA, "t", base_url=em.url, clock=lambda: clock[0])
    for _ in range(3):
        source.intensity()
    assert len(em.requests) == 1
    clock[0] += 14 * 60
    source.intensity()
    assert len(em.requests) == 1
    clock[0] += 2 * 60
    source.intensity()
    assert len(em.requests) == 2


@pytest.mark.parametrize(
    ("endpoint_answer", "problem"),
    [
        ((401, {"error": "unauthorized"}), "401"),
        ((429, {"error": "slow down"}), "429"),
        ((500, "oops"), "500"),
        ((200, "this is not json"), "not JSON"),
        ((200, {"zone": "FR"}), "carbonIntensity"),
        ((200, {"zone": "FR", "carbonIntensity": -5}), "carbonIntensity"),
        ((200, ["a", "list"]), "not a JSON object"),
    ],
)
def test_failures_fall_back_to_offline_and_warn_once(
    em: FakeEM, endpoint_answer: tuple[int, Any], problem: str
) -> None:
    em.answers["latest"] = endpoint_answer
    offline = static_intensity(FRA)
    clock = [0.0]
    source = ElectricityMapsIntensity(FRA, "t", clock=lambda: clock[0])
    with pytest.warns(GreenWarning, match="Electricity Maps unavailable") as record:
        value = source.intensity()
    assert len(record) == 1
    assert value.g_per_kwh == offline.g_per_kwh
    assert value.source == f"{offline.source} (fallback from electricitymaps)"
    assert problem in (value.problem or "")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise here
        clock[0] += 20 * 60  # past the back-off: the API is asked again, fails again, silently
        assert source.intensity().source.endswith("(fallback from electricitymaps)")
    assert len(em.requests) == 2


def test_after_a_failure_the_api_is_not_hammered(em: FakeEM) -> None:
    em.answers["latest"] = (503, "down")
    source = ElectricityMapsIntensity(FRA, "t", clock=lambda: 0.0)
    with pytest.warns(GreenWarning):
        for _ in range(5):
            source.intensity()
    assert len(em.requests) == 1


def test_timeout_is_at_most_two_seconds(em: FakeEM) -> None:
    em.delay_s = 3.0
    source = intensity_source(FRA, token="t", timeout_s=30)
    assert isinstance(source, ElectricityMapsIntensity) and source.timeout_s == 2.0
    source.timeout_s = 0.3  # keep the test fast; the cap itself is asserted above
    started = time.monotonic()
    with pytest.warns(GreenWarning, match="unreachable"):
        value = source.intensity()
    assert time.monotonic() - started < 2.5
    assert value.source.endswith("(fallback from electricitymaps)")


def test_unreachable_server_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests._servers import free_port

    monkeypatch.setenv("MLFLOW_GREEN_ELECTRICITYMAPS_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.warns(GreenWarning, match="unreachable"):
        value = intensity_source(FRA, token="t").intensity()
    assert value.g_per_kwh == static_intensity(FRA).g_per_kwh


def test_location_without_zone_uses_offline_value_without_calling(em: FakeEM) -> None:
    usa = resolve_location(country="USA")
    with pytest.warns(GreenWarning, match="no Electricity Maps zone"):
        value = intensity_source(usa, token="t").intensity()
    assert value.source.startswith("static:ember@")
    assert em.requests == []


def test_cloud_region_uses_its_grid_zone(em: FakeEM) -> None:
    loc = resolve_location(cloud_provider="aws", cloud_region="eu-north-1")
    assert intensity_source(loc, token="t").intensity().location == "aws/eu-north-1"
    assert em.requests[0][1] == {"zone": ["SE-SE3"]}


def test_base_url_with_or_without_v3(em: FakeEM) -> None:
    a = ElectricityMapsIntensity(FRA, "t", base_url=em.url + "/v3/")
    b = ElectricityMapsIntensity(FRA, "t", base_url=em.url)
    assert a.base_url == b.base_url == em.url + "/v3"


def test_live_values_say_their_basis_and_direct_is_asked_by_name(em: FakeEM) -> None:
    # The API's default emission factors are lifecycle; a direct source asks for them explicitly.
    assert intensity_source(FRA, token="t").intensity().basis == "lifecycle"
    assert em.requests[0][1] == {"zone": ["FR"]}
    direct = intensity_source(FRA, token="t2", basis="direct")
    assert isinstance(direct, ElectricityMapsIntensity)
    assert direct.intensity().basis == "direct"
    assert em.requests[-1][1] == {"zone": ["FR"], "emissionFactorType": ["direct"]}


def test_direct_without_an_offline_figure_fails_only_when_the_api_does(monkeypatch: pytest.MonkeyPatch) -> None:
    # Building the source succeeds (France has no shipped direct figure); a failed call cannot
    # quietly substitute the lifecycle table: it names the missing basis.
    source = intensity_source(FRA, token="t", basis="direct", base_url="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="no direct-basis figure"):
        source.intensity()
