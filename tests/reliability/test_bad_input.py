"""Bad input: autolog arguments, environment variables, CLI flags, policy files, forecast files.

Each gets one clear line (a ``ConfigError`` whose message is one line and names what to
change; from the CLI: exit 2, exactly one non-empty stderr line, no traceback). Budget tags
are tried against the gated server in ``test_gate_bypass.py``, intensity API answers in
``test_intensity_api.py``.

The CLI cases run as real ``mlflow-green`` subprocesses, several at a time (one module-scoped
fixture), and each case is then checked by its own parametrized test.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mlflow_green
from mlflow_green.errors import ConfigError, GreenError
from tests.reliability._tally import Tally
from tests.reliability._util import CliResult, assert_one_line_usage_error, run_cli_many

UNREACHABLE = "http://127.0.0.1:9"  # discard port: nothing listens


def _one_line(exc: BaseException, *needles: str) -> None:
    text = str(exc)
    assert text.strip() and "\n" not in text.strip(), repr(text)
    for needle in needles:
        assert needle.lower() in text.lower(), f"{needle!r} not in {text!r}"


# -- autolog / epochs / GreenTracker arguments --------------------------------------------------

AUTOLOG_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("budget-negative", {"budget_kg": -1}, "budget_kg"),
    ("budget-with-unit", {"budget_kg": "50kg"}, "budget_kg"),
    ("budget-nan", {"budget_kg": math.nan}, "budget_kg"),
    ("budget-inf", {"budget_kg": math.inf}, "budget_kg"),
    ("on-budget-unknown", {"on_budget": "explode"}, "on_budget"),
    ("log-every-zero", {"log_every_n_epochs": 0}, "log_every_n_epochs"),
    ("log-every-fraction", {"log_every_n_epochs": 1.5}, "log_every_n_epochs"),
    ("sampler-garbage", {"sampler": "gpu!!"}, "sampler"),
    ("sampler-unknown-word", {"sampler": "garbage"}, "sampler"),
    ("sampler-simulated-no-watts", {"sampler": "simulated:abc"}, "simulated"),
    ("sampler-replay-missing-file", {"sampler": "replay:/nonexistent/trace.csv"}, "trace.csv"),
    ("intensity-text", {"intensity": "abc"}, "intensity"),
    ("intensity-negative", {"intensity": -5}, "intensity"),
    ("pue-below-one", {"pue": 0.5}, "pue"),
    ("pue-unknown-name", {"pue": "martian-dc"}, "pue"),
    ("country-unknown", {"country": "XXX"}, "XXX"),
    ("cloud-region-unknown", {"cloud_provider": "aws", "cloud_region": "mars-1"}, "mars-1"),
    ("accuracy-metric-empty", {"accuracy_metric": []}, "accuracy_metric"),
    ("device-embodied-negative", {"device_embodied_kg": -3}, "device_embodied_kg"),
    ("lifetime-zero", {"lifetime_years": 0}, "lifetime_years"),
    ("devices-per-node-fraction", {"devices_per_node": 2.5}, "devices_per_node"),
    ("embodied-profile-unknown", {"embodied_profile": "no-such-profile"}, "no-such-profile"),
]


@pytest.fixture
def server_uri(live_fault_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Only reached when a bad value is wrongly accepted and a run starts."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", live_fault_server.url)
    mlflow.set_tracking_uri(live_fault_server.url)
    yield live_fault_server.url
    mlflow_green.autolog(disable=True)
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.mark.parametrize(("options", "needle"), [c[1:] for c in AUTOLOG_CASES], ids=[c[0] for c in AUTOLOG_CASES])
def test_autolog_argument(options: dict[str, Any], needle: str, server_uri: str, tally: Tally) -> None:
    """Refused by ``autolog()`` itself, or at the latest when training starts — before epoch 0."""
    tally.bad_input(f"autolog({options!r})")
    with pytest.raises(ConfigError) as info:
        mlflow_green.autolog(silent=True, **options)
        with mlflow_green.GreenTracker(total_epochs=1):
            pass
    _one_line(info.value, needle)


@pytest.mark.parametrize("n", [0, -1, "3", 2.5, True], ids=["zero", "negative", "string", "float", "bool"])
def test_epochs_count(n: Any, tally: Tally) -> None:
    tally.bad_input(f"epochs({n!r})")
    with pytest.raises(ConfigError) as info:
        mlflow_green.epochs(n)
    _one_line(info.value, "epochs")


def test_epoch_metric_not_a_number(server_uri: str, tally: Tally) -> None:
    tally.bad_input("GreenTracker.epoch_end({'val_acc': 'high'})")
    with mlflow_green.GreenTracker(total_epochs=1, sampler="simulated:100", intensity=100, silent=True) as t:
        with pytest.raises(ConfigError) as info:
            t.epoch_end({"val_acc": "high"})
        t.epoch_end({"val_acc": 0.5})  # the tracker is still usable after the refusal
    _one_line(info.value, "val_acc")


# -- environment variables, in-process ----------------------------------------------------------

ENV_CASES: list[tuple[str, str, str]] = [
    ("MLFLOW_GREEN_SAMPLER", "garbage", "MLFLOW_GREEN_SAMPLER"),
    ("MLFLOW_GREEN_SAMPLER", "simulated:300x0", "MLFLOW_GREEN_SAMPLER"),
    ("MLFLOW_GREEN_SAMPLER", "replay:", "MLFLOW_GREEN_SAMPLER"),
    ("MLFLOW_GREEN_PUE", "0.5", "MLFLOW_GREEN_PUE"),
    ("MLFLOW_GREEN_PUE", "abc", "MLFLOW_GREEN_PUE"),
    ("MLFLOW_GREEN_INTENSITY", "abc", "MLFLOW_GREEN_INTENSITY"),
    ("MLFLOW_GREEN_INTENSITY", "-1", "MLFLOW_GREEN_INTENSITY"),
    ("MLFLOW_GREEN_INTENSITY", "inf", "MLFLOW_GREEN_INTENSITY"),
    ("MLFLOW_GREEN_INTENSITY_BASIS", "market", "MLFLOW_GREEN_INTENSITY_BASIS"),
    ("MLFLOW_GREEN_COUNTRY", "XXX", "XXX"),
    ("MLFLOW_GREEN_CLOUD_PROVIDER", "mars", "mars"),
    ("MLFLOW_GREEN_SIGNING_KEY", "/nonexistent/green.key", "MLFLOW_GREEN_SIGNING_KEY"),
    ("MLFLOW_GREEN_SIGNING_KEY", "/", "MLFLOW_GREEN_SIGNING_KEY"),
    ("MLFLOW_GREEN_RENEWABLE_FRACTION", "1.5", "MLFLOW_GREEN_RENEWABLE_FRACTION"),
    ("MLFLOW_GREEN_MARKET_INTENSITY", "-1", "MLFLOW_GREEN_MARKET_INTENSITY"),
    ("MLFLOW_GREEN_WUE", "lots", "MLFLOW_GREEN_WUE"),
]


@pytest.mark.parametrize(("name", "value", "needle"), ENV_CASES, ids=[f"{c[0]}={c[1]}" for c in ENV_CASES])
def test_environment_variable_in_training(
    name: str, value: str, needle: str, server_uri: str, monkeypatch: pytest.MonkeyPatch, tally: Tally
) -> None:
    monkeypatch.setenv(name, value)
    if name == "MLFLOW_GREEN_CLOUD_PROVIDER":
        monkeypatch.setenv("MLFLOW_GREEN_CLOUD_REGION", "eu-west-1")
    tally.bad_input(f"{name}={value!r} (training)")
    with pytest.raises(ConfigError) as info:
        with mlflow_green.GreenTracker(total_epochs=1, silent=True):
            pass
    _one_line(info.value, needle)


# -- CLI flags and environment, as subprocesses -------------------------------------------------

_OPTIONAL_MODULES = {
    "leaderboard": "mlflow_green.cli.leaderboard",
    "schedule": "mlflow_green.cli.schedule",
    "model-card": "mlflow_green.cli.model_card",
}

POLICIES: dict[str, tuple[str, str]] = {
    # name: (file content, word the one line must contain)
    "invalid-yaml": ("defaults: [unclosed\n  budgets: {", "policy"),
    "top-level-list": ("- defaults\n- models\n", "mapping"),
    "unknown-section": ("defaults: {}\nrules: {}\n", "rules"),
    "unknown-field": ("defaults:\n  gated_alias: [champion]\n", "gated_alias"),
    "unknown-budget-key": ("defaults:\n  budgets: {co2_kg: 5}\n", "co2_kg"),
    "negative-budget": ("defaults:\n  budgets: {total_co2eq_kg: -5}\n", "negative"),
    "budget-with-unit": ("defaults:\n  budgets: {total_co2eq_kg: 50kg}\n", "50kg"),
    "budget-nan": ("defaults:\n  budgets: {energy_kwh: .nan}\n", "energy_kwh"),
    "on-missing-maybe": ("defaults:\n  on_missing: maybe\n", "on_missing"),
    "include-lineage-string": ("defaults:\n  include_lineage: sometimes\n", "include_lineage"),
    "gated-aliases-number": ("defaults:\n  gated_aliases: 5\n", "gated_aliases"),
    "version-2": ("version: 2\ndefaults: {}\n", "version"),
    "binary": ("\x00\x01\x02\xff", "policy"),
    "trusted-key-missing-file": ("trusted_keys:\n  - {id: ci, public_key: /nonexistent/ci.pub}\n", "trusted_keys"),
    "trusted-key-not-pem": ("trusted_keys:\n  - {id: ci, public_key: '-----BEGIN PUBLIC KEY-----'}\n", "trusted_keys"),
    "on-unattested-maybe": ("defaults:\n  on_unattested: maybe\n", "on_unattested"),
}

FORECASTS: dict[str, tuple[str, str, str]] = {
    # name: (file suffix, content, word the one line must contain)
    "csv-no-header": (".csv", "2026-01-01T00:00Z,100\n2026-01-01T01:00Z,90\n", "carbon_intensity"),
    "csv-bad-time": (".csv", "datetime,carbon_intensity\nyesterday,100\ntoday,90\n", "yesterday"),
    "csv-bad-number": (".csv", "datetime,carbon_intensity\n2026-01-01T00:00Z,lots\n2026-01-01T01:00Z,90\n", "lots"),
    "csv-negative": (".csv", "datetime,carbon_intensity\n2026-01-01T00:00Z,-100\n2026-01-01T01:00Z,90\n", "forecast-csv-negative"),
    "csv-empty": (".csv", "", "forecast"),
    "json-malformed": (".json", '[{"datetime": "2026-01-01T00:00Z", "carbonIntensity": 1', "forecast"),
    "json-empty-list": (".json", "[]", "forecast"),
    "json-wrong-keys": (".json", '[{"time": "2026-01-01T00:00Z", "value": 100}]', "carbonIntensity"),
}


def _cli_cases(tmp: Path) -> list[tuple[str, list[str], dict[str, str | None], tuple[str, ...]]]:
    """(id, argv, env, words the one stderr line must contain)."""
    cases: list[tuple[str, list[str], dict[str, str | None], tuple[str, ...]]] = [
        ("no-such-command", ["nosuchcmd"], {}, ("nosuchcmd",)),
        ("estimate-no-args", ["estimate"], {}, ("--energy-kwh",)),
        ("estimate-energy-text", ["estimate", "--energy-kwh", "abc"], {}, ("--energy-kwh",)),
        ("estimate-energy-negative", ["estimate", "--energy-kwh", "-1"], {}, ("--energy-kwh",)),
        ("estimate-energy-overflow", ["estimate", "--energy-kwh", "1e999"], {}, ("--energy-kwh",)),
        ("estimate-unknown-gpu", ["estimate", "--gpu", "NOPE9000", "--count", "1", "--hours", "1"], {}, ("NOPE9000",)),
        ("estimate-count-negative", ["estimate", "--gpu", "H100", "--count", "-2", "--hours", "1"], {}, ("--count",)),
        ("estimate-utilization", ["estimate", "--gpu", "H100", "--count", "1", "--hours", "1", "--utilization", "2"], {}, ("--utilization",)),
        ("estimate-lifetime-zero", ["estimate", "--gpu", "H100", "--count", "1", "--hours", "1", "--lifetime-years", "0"], {}, ("lifetime",)),
        ("estimate-pue", ["estimate", "--energy-kwh", "1", "--pue", "0.5"], {}, ("pue",)),
        ("estimate-country", ["estimate", "--energy-kwh", "1", "--country", "XXX"], {}, ("XXX",)),
        ("estimate-cloud-region", ["estimate", "--energy-kwh", "1", "--cloud", "aws", "--cloud-region", "mars-1"], {}, ("mars-1",)),
        ("estimate-intensity-text", ["estimate", "--energy-kwh", "1", "--intensity", "abc"], {}, ("intensity",)),
        ("estimate-json-too", ["estimate", "--energy-kwh", "-1", "--json"], {}, ("--energy-kwh",)),
        ("estimate-env-pue", ["estimate", "--energy-kwh", "1"], {"MLFLOW_GREEN_PUE": "0.5"}, ("MLFLOW_GREEN_PUE",)),
        ("estimate-env-intensity", ["estimate", "--energy-kwh", "1"], {"MLFLOW_GREEN_INTENSITY": "abc"}, ("MLFLOW_GREEN_INTENSITY",)),
        ("estimate-env-country", ["estimate", "--energy-kwh", "1"], {"MLFLOW_GREEN_COUNTRY": "XXX"}, ("XXX",)),
        ("sci-missing", ["sci", "--power-w", "300"], {}, ("--latency-ms",)),
        ("sci-power-negative", ["sci", "--power-w", "-5", "--latency-ms", "50", "--requests", "10"], {}, ("power",)),
        ("sci-latency-text", ["sci", "--power-w", "300", "--latency-ms", "abc", "--requests", "10"], {}, ("latency",)),
        ("sci-requests-nan", ["sci", "--power-w", "300", "--latency-ms", "50", "--requests", "nan"], {}, ("requests",)),
        ("sci-unit-zero", ["sci", "--power-w", "300", "--latency-ms", "50", "--requests", "10", "--unit-requests", "0"], {}, ("--unit-requests",)),
        ("intensity-country", ["intensity", "--country", "XXX"], {}, ("XXX",)),
        ("intensity-cloud", ["intensity", "--cloud", "mars", "--cloud-region", "x"], {}, ("mars",)),
        ("intensity-region", ["intensity", "--country", "USA", "--region", "atlantis"], {}, ("atlantis",)),
        ("intensity-at", ["intensity", "--country", "FRA", "--at", "yesterday"], {}, ("--at",)),
        ("intensity-env-country", ["intensity"], {"MLFLOW_GREEN_COUNTRY": "XXX"}, ("XXX",)),
        ("doctor-env-sampler", ["doctor"], {"MLFLOW_GREEN_SAMPLER": "garbage"}, ("MLFLOW_GREEN_SAMPLER",)),
        ("doctor-unknown-flag", ["doctor", "--bogus"], {}, ("--bogus",)),
        ("check-missing-version", ["check", "--model", "m"], {}, ("--version",)),
        ("check-unreachable", ["check", "--model", "m", "--version", "1", "--tracking-uri", UNREACHABLE], {}, ("reach",)),
        ("check-policy-missing-file", ["check", "--model", "m", "--version", "1", "--policy", str(tmp / "nope.yaml"), "--tracking-uri", UNREACHABLE], {}, ("nope.yaml",)),
        ("check-policy-env-missing-file", ["check", "--model", "m", "--version", "1", "--tracking-uri", UNREACHABLE], {"MLFLOW_GREEN_POLICY": str(tmp / "nope.yaml")}, ("nope.yaml",)),
        ("check-summary-unwritable", ["check", "--model", "m", "--version", "1", "--tracking-uri", UNREACHABLE, "--summary-md", str(tmp / "no" / "dir" / "s.md")], {}, ("reach",)),
        ("promote-missing-alias", ["promote", "--model", "m", "--version", "1"], {}, ("--alias",)),
        ("promote-unreachable", ["promote", "--model", "m", "--version", "1", "--alias", "champion", "--tracking-uri", UNREACHABLE], {}, ("reach",)),
        ("recover-path-traversal", ["recover", "--run-id", "../../etc/passwd"], {}, ("run id",)),
        ("recover-unknown-run", ["recover", "--run-id", "0123456789abcdef", "--journal-dir", str(tmp / "journal")], {}, ("journal",)),
        ("leaderboard-no-experiment", ["leaderboard"], {}, ("--experiment",)),
        ("leaderboard-unreachable", ["leaderboard", "--experiment", "x"], {"MLFLOW_TRACKING_URI": UNREACHABLE}, ("reach",)),
        ("model-card-no-run", ["model-card"], {}, ("--run-id",)),
        ("schedule-duration-text", ["schedule", "--duration", "soon", "--forecast", str(tmp / "ok.csv")], {}, ("--duration",)),
        ("schedule-forecast-missing", ["schedule", "--duration", "2h", "--forecast", str(tmp / "nope.csv")], {}, ("nope.csv",)),
        ("schedule-duration-too-long", ["schedule", "--duration", "48h", "--forecast", str(tmp / "ok.csv")], {}, ("duration",)),
        ("keygen-no-out", ["keygen"], {}, ("--out",)),
        ("keygen-bad-name", ["keygen", "--out", str(tmp / "keys"), "--name", "../x"], {}, ("--name",)),
        ("verify-no-run", ["verify"], {}, ("--run-id",)),
        ("verify-key-missing", ["verify", "--run-id", "abc", "--public-key", str(tmp / "nope.pub")], {}, ("nope.pub",)),
        ("verify-unreachable", ["verify", "--run-id", "abc", "--tracking-uri", UNREACHABLE], {}, ("reach",)),
        ("ledger-no-by", ["ledger"], {}, ("--by",)),
        ("ledger-bad-by", ["ledger", "--by", "week"], {}, ("--by",)),
        ("ledger-bad-since", ["ledger", "--by", "month", "--since", "last tuesday"], {}, ("--since",)),
        ("ledger-until-before-since", ["ledger", "--by", "month", "--since", "2026-06", "--until", "2026-01"], {"MLFLOW_TRACKING_URI": UNREACHABLE}, ("--until",)),
        ("ledger-unreachable", ["ledger", "--by", "month"], {"MLFLOW_TRACKING_URI": UNREACHABLE}, ("reach",)),
        ("estimate-renewable-fraction", ["estimate", "--energy-kwh", "1", "--renewable-fraction", "1.5"], {}, ("renewable_fraction",)),
        ("estimate-env-wue", ["estimate", "--energy-kwh", "1"], {"MLFLOW_GREEN_WUE": "lots"}, ("MLFLOW_GREEN_WUE",)),
        ("model-card-bad-format", ["model-card", "--run-id", "x", "--format", "iso"], {}, ("--format",)),
    ]
    for name in POLICIES:
        path = tmp / f"policy-{name}.yaml"
        cases.append(
            (
                f"check-policy-{name}",
                ["check", "--model", "m", "--version", "1", "--policy", str(path), "--tracking-uri", UNREACHABLE],
                {},
                (POLICIES[name][1],),
            )
        )
    for name, (suffix, _, needle) in FORECASTS.items():
        cases.append(
            (f"schedule-forecast-{name}", ["schedule", "--duration", "2h", "--forecast", str(tmp / f"forecast-{name}{suffix}")], {}, (needle,))
        )
    return cases


def _write_inputs(tmp: Path) -> None:
    for name, (content, _) in POLICIES.items():
        (tmp / f"policy-{name}.yaml").write_bytes(content.encode("utf-8", "surrogateescape"))
    for name, (suffix, content, _) in FORECASTS.items():
        (tmp / f"forecast-{name}{suffix}").write_text(content)
    rows = ["datetime,carbon_intensity"] + [f"2026-01-01T{h:02d}:00Z,{100 + h}" for h in range(24)]
    (tmp / "ok.csv").write_text("\n".join(rows) + "\n")


_CLI_TMP: list[Path] = []


def _cli_tmp(factory: pytest.TempPathFactory) -> Path:
    if not _CLI_TMP:
        _CLI_TMP.append(factory.mktemp("bad-cli-input"))
    return _CLI_TMP[0]


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CliResult]:
    tmp = _cli_tmp(tmp_path_factory)
    _write_inputs(tmp)
    runnable = [c for c in _cli_cases(tmp) if _available(c[1][0])]
    # 45 s per call: far above a healthy call even on a loaded machine; a hang is its case's failure.
    results = run_cli_many([(argv, env) for _, argv, env, _ in runnable], workers=4, timeout=45.0)
    return {case[0]: result for case, result in zip(runnable, results, strict=True)}


def _available(command: str) -> bool:
    module = _OPTIONAL_MODULES.get(command)
    return module is None or importlib.util.find_spec(module) is not None


_KNOWN_DEFECTS: dict[str, str] = {}

# The ids are needed at collection time; the paths inside do not matter for them.
_CASE_IDS = [(c[0], c[1][0], c[3]) for c in _cli_cases(Path("/unused"))]


@pytest.mark.parametrize(("case_id", "command", "needles"), _CASE_IDS, ids=[c[0] for c in _CASE_IDS])
def test_cli_bad_input(
    case_id: str,
    command: str,
    needles: tuple[str, ...],
    cli_results: dict[str, CliResult],
    tally: Tally,
    request: pytest.FixtureRequest,
) -> None:
    if not _available(command):
        pytest.skip(f"`mlflow-green {command}` has not landed yet ({_OPTIONAL_MODULES[command]} is missing)")
    if case_id in _KNOWN_DEFECTS:
        request.applymarker(pytest.mark.xfail(strict=True, reason=_KNOWN_DEFECTS[case_id]))
    tally.bad_input(f"CLI {case_id}")
    assert_one_line_usage_error(cli_results[case_id], *needles)


# -- policy files, in-process -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_file(name: str, tmp_path: Path, tally: Tally) -> None:
    from mlflow_green.registry.policy import load_policy

    content, needle = POLICIES[name]
    path = tmp_path / "policy.yaml"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    tally.bad_input(f"policy file {name}")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    _one_line(info.value, needle)


# Values of a plausible type (text, numbers) must be accepted or refused with a GreenError;
# values of a type no annotation allows may also get Python's TypeError.
_ODD_VALUES: list[Any] = ["", " ", "0", "-0", "1e308", "\u0661\u0662", "NaN", 10**400, -(10**400)]
_WRONG_TYPES: list[Any] = [[], {}, object(), b"300"]


def test_no_bad_input_escapes_as_a_non_green_error(tally: Tally, server_uri: str) -> None:
    """A sweep of odd values through autolog's options: never AttributeError, OverflowError..."""
    options = (
        "budget_kg", "intensity", "pue", "lifetime_years", "device_embodied_kg", "sampler", "country",
        "signing_key", "renewable_fraction", "market_intensity", "wue", "parameters",
    )
    escaped: list[str] = []
    for option in options:
        for value in _ODD_VALUES + _WRONG_TYPES:
            tally.bad_input(f"autolog({option}={value!r:.40})")
            try:
                mlflow_green.autolog(silent=True, **{option: value})
            except GreenError:
                pass
            except TypeError:
                if not any(value is w for w in _WRONG_TYPES):
                    escaped.append(f"autolog({option}={value!r:.40}) -> TypeError")
            except Exception as exc:
                escaped.append(f"autolog({option}={value!r:.40}) -> {type(exc).__name__}: {str(exc)[:80]}")
            finally:
                mlflow_green.autolog(disable=True)
    assert not escaped, "\n".join(escaped)
