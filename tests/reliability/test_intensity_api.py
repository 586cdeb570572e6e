"""Bad answers from the carbon-intensity API: a local ``http.server`` plays Electricity Maps.

The base URL is overridden the documented way (``base_url=`` or
``MLFLOW_GREEN_ELECTRICITYMAPS_URL``). Every bad answer — malformed JSON, 401, 429, 5xx, a
timeout (the server sleeps past the 2 s limit), empty data, impossible values, nothing
listening — must give the documented fallback: the offline annual value, its ``source``
suffixed ``(fallback from electricitymaps)``, the ``problem`` said, one warning, within the
timeout; from the CLI exit 0 and no traceback; in a training run, ``green.status`` degraded.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from mlflow_green.accounting import (
    GreenWarning,
    intensity_source,
    resolve_location,
    static_intensity,
)
from tests._servers import free_port
from tests.reliability._tally import Tally
from tests.reliability._util import run_cli_many

SLEEP_S = 3.0  # past the 2 s timeout of the Electricity Maps client

# mode -> (HTTP status, body); "sleep" answers well after the client gave up
ANSWERS: dict[str, tuple[int, str]] = {
    "malformed-json": (200, '{"zone": "FR", "carbonIntensity": 5'),
    "html": (200, "<html><body>Service temporarily unavailable</body></html>"),
    "401": (401, '{"message": "Invalid auth-token"}'),
    "403": (403, '{"message": "forbidden zone"}'),
    "429": (429, '{"message": "Too Many Requests"}'),
    "500": (500, "Internal Server Error"),
    "503": (503, ""),
    "empty-body": (200, ""),
    "empty-object": (200, "{}"),
    "empty-history": (200, '{"zone": "FR", "history": []}'),
    "json-list": (200, "[]"),
    "negative": (200, '{"zone": "FR", "carbonIntensity": -5, "history": [{"carbonIntensity": -5}]}'),
    "string-value": (200, '{"zone": "FR", "carbonIntensity": "high", "history": [{"carbonIntensity": "high"}]}'),
    "nan": (200, '{"zone": "FR", "carbonIntensity": NaN, "history": [{"carbonIntensity": NaN}]}'),
    "null": (200, '{"zone": "FR", "carbonIntensity": null, "history": null}'),
    "sleep": (200, '{"zone": "FR", "carbonIntensity": 50}'),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        mode = self.path.strip("/").split("/", 1)[0]
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        status, body = ANSWERS.get(mode, (404, "unknown mode"))
        if mode == "sleep":
            time.sleep(SLEEP_S)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())
        except OSError:
            pass  # the client timed out and went away: expected for "sleep"

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def fake_em() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _base(server: ThreadingHTTPServer, mode: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{mode}"


CASES = [*ANSWERS, "refused"]


@pytest.mark.parametrize("mode", CASES)
def test_bad_answer_falls_back_to_the_offline_value(fake_em: ThreadingHTTPServer, mode: str, tally: Tally) -> None:
    location = resolve_location(country="FRA")
    base = f"http://127.0.0.1:{free_port()}" if mode == "refused" else _base(fake_em, mode)
    source = intensity_source(location, token="test-token", base_url=base)
    tally.bad_input(f"Electricity Maps answer: {mode}")
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = source.intensity(datetime.now(timezone.utc))
        second = source.intensity(None)
    elapsed = time.monotonic() - started
    offline = static_intensity(location)
    for value in (first, second):
        assert value.g_per_kwh == offline.g_per_kwh
        assert value.source.endswith("(fallback from electricitymaps)"), value.source
        assert value.problem, value
    # One timeout at most (a failure is remembered for the cache period), not one per call.
    assert elapsed < 2.0 + 1.5, elapsed
    green = [w for w in caught if issubclass(w.category, GreenWarning)]
    assert len(green) == 1, [str(w.message) for w in green]
    assert "\n" not in str(green[0].message)


CLI_MODES = ["401", "429", "malformed-json", "sleep", "empty-history"]


@pytest.fixture(scope="module")
def cli_runs(fake_em: ThreadingHTTPServer) -> dict[str, Any]:
    cases = [
        (
            ["intensity", "--country", "FRA", "--json"],
            {"ELECTRICITYMAPS_API_TOKEN": "test-token", "MLFLOW_GREEN_ELECTRICITYMAPS_URL": _base(fake_em, mode)},
        )
        for mode in CLI_MODES
    ]
    return dict(zip(CLI_MODES, run_cli_many(cases, workers=5), strict=True))


@pytest.mark.parametrize("mode", CLI_MODES)
def test_cli_intensity_with_a_bad_api(cli_runs: dict[str, Any], mode: str, tally: Tally) -> None:
    result = cli_runs[mode]
    tally.bad_input(f"mlflow-green intensity against an Electricity Maps answering {mode}")
    assert result.returncode == 0, str(result)
    assert "Traceback" not in result.stderr
    data = json.loads(result.stdout)
    assert data["source"].endswith("(fallback from electricitymaps)"), data
    assert data["intensity_g_per_kwh"] == static_intensity(resolve_location(country="FRA")).g_per_kwh
    assert len(result.stderr_lines) <= 1, str(result)  # at most the one fallback warning


def test_training_run_with_a_rate_limited_api(
    fake_em: ThreadingHTTPServer, live_fault_server: Any, monkeypatch: pytest.MonkeyPatch, tally: Tally
) -> None:
    import mlflow

    import mlflow_green
    from mlflow_green.tracking import schema
    from tests.reliability._util import EPOCH_KEYS, lost_and_duplicated, metric_steps, run_tags

    url = live_fault_server.url
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "test-token")
    monkeypatch.setenv("MLFLOW_GREEN_ELECTRICITYMAPS_URL", _base(fake_em, "429"))
    mlflow.set_tracking_uri(url)
    tally.bad_input("Electricity Maps answering 429 during a training run")
    run_id = mlflow.MlflowClient(url).create_run("0").info.run_id
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GreenWarning)
        with mlflow_green.GreenTracker(total_epochs=3, run_id=run_id, sampler="simulated:200", country="FRA", silent=True) as t:
            for _ in range(3):
                t.epoch_end()
    steps = {key: metric_steps(url, run_id, key) for key in EPOCH_KEYS}
    lost, duplicated, problems = lost_and_duplicated(steps, range(3))
    tally.records("Electricity Maps 429 during training", lost=lost, duplicated=duplicated)
    assert not problems, problems
    tags = run_tags(url, run_id)
    assert tags[schema.TAG_STATUS].startswith("degraded") and "429" in tags[schema.TAG_STATUS], tags[schema.TAG_STATUS]
    assert "fallback" in tags[schema.TAG_INTENSITY_SOURCE] or "static" in tags[schema.TAG_INTENSITY_SOURCE]
    offline = static_intensity(resolve_location(country="FRA")).g_per_kwh
    intensities = [m.value for m in mlflow.MlflowClient(url).get_metric_history(run_id, schema.INTENSITY_G_PER_KWH)]
    assert intensities == [offline] * 3
