"""Gate latency: an alias set on a plain ``mlflow server`` vs the same with ``--app-name green-gate``.

For each backend (SQLite; PostgreSQL at 127.0.0.1:5432 when reachable) one store is seeded —
an experiment, a run whose cumulative ``green/`` metrics are within budget, a registered model
with a ``green.budget.total_co2eq_kg`` tag and a version of that run — and two servers are
started on it, side by side: plain and gated (same app server, uvicorn, one worker). Before
timing, the gated server is checked to refuse an over-budget version (HTTP 403) and to pass
the within-budget one, so the timed requests do go through an evaluation.

Timed, on the client with ``perf_counter``:

- ungated requests (``runs/log-batch``, ``runs/get``, ``runs/search``), one client, alternating
  plain/gated request by request: target median gated/plain <= 1.03x for each;
- raw ``POST /api/2.0/mlflow/registered-models/alias`` (a gated, budgeted promotion), one client,
  alternating: target gated p99 <= 100 ms;
- the same promotion from 20 concurrent clients (threads, one alias each) in blocks that
  alternate plain/gated by round: the ratio is reported, not a target.

Either way load from elsewhere on a shared machine hits both servers alike.

    python benchmarks/gate_latency.py [--quick] [--requests N] [--rounds R] [--no-postgres]
    python benchmarks/gate_latency.py --profile   # where the gate's time goes, in-process
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, percentile, print_report, wait_until_quiet

BENCH = "gate latency"
MODEL = "bench-gated"
BUDGET_KG = 1.0
WITHIN_KG = 0.5
OVER_KG = 3.0
CONCURRENT = 20
# Seconds each backend's servers took to go quiet after start-up (reported with the figures).
QUIET_WAITED: dict[str, float] = {}
ALIAS_PATH = "/api/2.0/mlflow/registered-models/alias"


def _seed(backend_uri: str) -> dict[str, str]:
    """Seed the store directly (not through a server); return the model's version numbers."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, RunTag

    from mlflow_green.tracking import schema

    client = MlflowClient(tracking_uri=backend_uri, registry_uri=backend_uri)
    exp = client.create_experiment("gate-bench")
    now = int(time.time() * 1000)

    def green_run(total_kg: float) -> str:
        run = client.create_run(exp)
        rid = run.info.run_id
        metrics = []
        for step in range(3):
            frac = (step + 1) / 3
            for key, value in (
                (schema.CUM_TOTAL_CO2EQ_KG, total_kg * frac),
                (schema.CUM_CO2EQ_KG, 0.8 * total_kg * frac),
                (schema.CUM_EMBODIED_KG, 0.2 * total_kg * frac),
                (schema.CUM_ENERGY_KWH, 2.5 * total_kg * frac),
            ):
                metrics.append(Metric(key, value, now, step))
        tags = [
            RunTag(schema.TAG_STATUS, "ok"),
            RunTag(schema.TAG_METHOD_GPU, "counter"),
            RunTag(schema.TAG_METHOD_CPU, "rapl"),
            RunTag(schema.TAG_METHOD_RAM, "estimate"),
        ]
        client.log_batch(rid, metrics=metrics, tags=tags)
        client.set_terminated(rid)
        return rid

    client.create_registered_model(MODEL, tags={"green.budget.total_co2eq_kg": str(BUDGET_KG)})
    versions = {}
    for label, total_kg in (("within", WITHIN_KG), ("over", OVER_KG)):
        rid = green_run(total_kg)
        versions[label] = str(client.create_model_version(MODEL, f"runs:/{rid}/model", rid).version)
        versions[f"{label}-run"] = rid
    versions["experiment"] = str(exp)
    return versions


UNGATED = ("log-batch", "get-run", "search-runs")


def _ungated_request(session: Any, url: str, kind: str, seeded: dict[str, str], i: int) -> tuple[float, int]:
    run_id = seeded["within-run"]
    t0 = time.perf_counter()
    if kind == "log-batch":
        metric = {"key": "bench/value", "value": float(i), "timestamp": int(time.time() * 1000), "step": i}
        resp = session.post(url + "/api/2.0/mlflow/runs/log-batch", json={"run_id": run_id, "metrics": [metric]}, timeout=60)
    elif kind == "get-run":
        resp = session.get(url + "/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=60)
    else:
        body = {"experiment_ids": [seeded["experiment"]], "max_results": 10}
        resp = session.post(url + "/api/2.0/mlflow/runs/search", json=body, timeout=60)
    return (time.perf_counter() - t0) * 1000.0, resp.status_code


def _ungated(urls: dict[str, str], seeded: dict[str, str], n: int) -> dict[tuple[str, str], list[float]]:
    """Each ungated request kind, one client, A/B/A/B across the servers; latencies in ms."""
    import requests

    sessions = {kind: requests.Session() for kind in urls}
    out: dict[tuple[str, str], list[float]] = {}
    servers = list(urls)
    for request_kind in UNGATED:
        for server in servers:
            _ungated_request(sessions[server], urls[server], request_kind, seeded, 0)  # untimed
        for i in range(n):
            for server in servers if i % 2 == 0 else servers[::-1]:
                ms, status = _ungated_request(sessions[server], urls[server], request_kind, seeded, i + 1)
                if status != 200:
                    raise RuntimeError(f"{request_kind} on the {server} server answered {status}")
                out.setdefault((server, request_kind), []).append(ms)
    for session in sessions.values():
        session.close()
    return out


def _post_alias(session: Any, url: str, alias: str, version: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    resp = session.post(url + ALIAS_PATH, json={"name": MODEL, "alias": alias, "version": version}, timeout=60)
    elapsed = (time.perf_counter() - t0) * 1000.0
    return elapsed, resp.status_code


def _block(url: str, version: str, clients: int, per_client: int) -> tuple[list[float], int]:
    """``clients`` threads each setting its own alias ``per_client`` times; latencies in ms."""
    import requests

    start = threading.Barrier(clients)

    def worker(i: int) -> tuple[list[float], int]:
        session = requests.Session()
        _post_alias(session, url, f"bench-{i}", version)  # open the connection, untimed
        start.wait()
        out, errors = [], 0
        for _ in range(per_client):
            ms, status = _post_alias(session, url, f"bench-{i}", version)
            if status != 200:
                errors += 1
            out.append(ms)
        session.close()
        return out, errors

    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(worker, range(clients)))
    return [ms for r in results for ms in r[0]], sum(r[1] for r in results)


def _alternating(urls: dict[str, str], version: str, n: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    """One client, request by request A/B/A/B across the servers (drift hits both alike)."""
    import requests

    sessions = {kind: requests.Session() for kind in urls}
    for kind, url in urls.items():
        _post_alias(sessions[kind], url, "bench-0", version)  # open the connection, untimed
    out: dict[str, list[float]] = {kind: [] for kind in urls}
    errors = dict.fromkeys(urls, 0)
    kinds = list(urls)
    for i in range(n):
        for kind in kinds if i % 2 == 0 else kinds[::-1]:
            ms, status = _post_alias(sessions[kind], urls[kind], "bench-0", version)
            out[kind].append(ms)
            errors[kind] += status != 200
    for session in sessions.values():
        session.close()
    return out, errors


def _sanity(gated_url: str, plain_url: str, versions: dict[str, str]) -> None:
    import requests

    with requests.Session() as s:
        _, over_status = _post_alias(s, gated_url, "sanity", versions["over"])
        _, ok_status = _post_alias(s, gated_url, "sanity", versions["within"])
        _, plain_status = _post_alias(s, plain_url, "sanity", versions["over"])
    if over_status != 403 or ok_status != 200 or plain_status != 200:
        raise RuntimeError(
            f"the gate does not evaluate as expected: over-budget -> {over_status} (want 403), "
            f"within budget -> {ok_status} (want 200), plain server over-budget -> {plain_status} (want 200)"
        )


def _backend_rows(label: str, backend_uri: str, workdir: Path, *, rounds: int, requests_1: int, per_client_20: int) -> list[Row]:
    from tests._servers import start_mlflow_server

    versions = _seed(backend_uri)
    env = {"MLFLOW_GREEN_STRICT": "0"}
    servers: dict[str, Any] = {}
    errors: list[BaseException] = []

    def start(kind: str) -> None:
        try:
            servers[kind] = start_mlflow_server(
                workdir / f"{label}-{kind}",
                backend_uri=backend_uri,
                app_name="green-gate" if kind == "gated" else None,
                env=env,
                jobs=False,  # no MLflow job runner: its start-up is seconds of CPU, idle afterwards
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(k,)) for k in ("plain", "gated")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        if errors:
            raise errors[0]
        _sanity(servers["gated"].url, servers["plain"].url, versions)
        # A server's start-up (and, when on, its job runner's seven consumer processes) takes
        # seconds of CPU after /health answers; requests timed meanwhile measure that.
        QUIET_WAITED[label] = wait_until_quiet([s.process.pid for s in servers.values()])
        lat: dict[tuple[str, int], list[float]] = {}
        errs: dict[tuple[str, int], int] = {}
        urls = {kind: servers[kind].url for kind in ("plain", "gated")}
        ungated: dict[tuple[str, str], list[float]] = {}
        for r in range(rounds):
            for key, ms in _ungated(urls, versions, requests_1).items():
                ungated.setdefault(key, []).extend(ms)
            single, bad = _alternating(urls, versions["within"], requests_1)
            for kind, ms in single.items():
                lat.setdefault((kind, 1), []).extend(ms)
                errs[(kind, 1)] = errs.get((kind, 1), 0) + bad[kind]
            for kind in ("plain", "gated") if r % 2 == 0 else ("gated", "plain"):
                ms, bad = _block(urls[kind], versions["within"], CONCURRENT, per_client_20)
                lat.setdefault((kind, CONCURRENT), []).extend(ms)
                errs[(kind, CONCURRENT)] = errs.get((kind, CONCURRENT), 0) + bad
    finally:
        for server in servers.values():
            server.stop()
    rows: list[Row] = []
    for request_kind in UNGATED:
        plain, gated = ungated[("plain", request_kind)], ungated[("gated", request_kind)]
        rows.append(
            Row(BENCH, f"{label}, ungated {request_kind}: median gated / plain", percentile(gated, 50) / percentile(plain, 50), "x", ("<=", 1.03), note=f"{len(gated)} requests per server")
        )
    for clients in (1, CONCURRENT):
        plain, gated = lat[("plain", clients)], lat[("gated", clients)]
        who = "1 client" if clients == 1 else f"{clients} clients"
        bad = errs[("plain", clients)] + errs[("gated", clients)]
        note = f"{len(gated)} requests per server" + (f"; {bad} non-200 answers" if bad else "")
        rows += [
            Row(BENCH, f"{label}, {who}: median gated / plain", percentile(gated, 50) / percentile(plain, 50), "x", note=note),
            Row(BENCH, f"{label}, {who}: gated p50", percentile(gated, 50), "ms"),
            Row(BENCH, f"{label}, {who}: gated p99", percentile(gated, 99), "ms", ("<=", 100.0) if clients == 1 else None),
            Row(BENCH, f"{label}, {who}: plain p50", percentile(plain, 50), "ms"),
            Row(BENCH, f"{label}, {who}: plain p99", percentile(plain, 99), "ms"),
        ]
    return rows


def profile_in_process(requests_n: int = 50) -> list[str]:
    """Where the gate's time goes: MLflow's Flask app in this process (Flask test client), the
    same requests before and after the gate's hooks are installed, and a cProfile of the gated
    ones. No HTTP server, so the figures isolate the handler and the gate."""
    import cProfile
    import io
    import pstats

    from mlflow.server import (
        ARTIFACT_ROOT_ENV_VAR,
        BACKEND_STORE_URI_ENV_VAR,
        REGISTRY_STORE_URI_ENV_VAR,
    )

    workdir = Path(tempfile.mkdtemp(prefix="mlflow-green-bench-gate-prof-"))
    try:
        uri = f"sqlite:///{workdir / 'prof.db'}"
        versions = _seed(uri)
        os.environ[BACKEND_STORE_URI_ENV_VAR] = uri
        os.environ[REGISTRY_STORE_URI_ENV_VAR] = uri
        os.environ[ARTIFACT_ROOT_ENV_VAR] = str(workdir / "artifacts")
        from mlflow.server import app

        from mlflow_green.registry._gate import Gate

        client = app.test_client()
        body = {"name": MODEL, "alias": "prof", "version": versions["within"]}

        def timed(n: int, profiler: cProfile.Profile | None = None) -> list[float]:
            out = []
            for _ in range(n):
                if profiler is not None:
                    profiler.enable()
                t0 = time.perf_counter()
                resp = client.post(ALIAS_PATH, json=body)
                out.append((time.perf_counter() - t0) * 1000)
                if profiler is not None:
                    profiler.disable()
                if resp.status_code != 200:
                    raise RuntimeError(f"alias set answered {resp.status_code}: {resp.get_data(as_text=True)[:300]}")
            return out

        # Flask takes hooks only before the first request: install, then switch the gate's
        # two hooks off for the plain phase and back on for the gated one.
        before = list(app.before_request_funcs.get(None, []))
        after = list(app.after_request_funcs.get(None, []))
        Gate.from_env().install(app)
        gate_before = [f for f in app.before_request_funcs[None] if f not in before]
        gate_after = [f for f in app.after_request_funcs[None] if f not in after]
        app.before_request_funcs[None] = before
        app.after_request_funcs[None] = after
        timed(5)
        plain = timed(requests_n)
        app.before_request_funcs[None] = before + gate_before
        app.after_request_funcs[None] = after + gate_after
        timed(5)
        gated = timed(requests_n)  # unprofiled: the p50 compared with the plain one
        profiler = cProfile.Profile()
        timed(requests_n, profiler)
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("cumulative").print_stats(30)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return [
        f"in-process (Flask test client, SQLite), {requests_n} alias sets: plain p50 "
        f"{percentile(plain, 50):.2f} ms, gated p50 {percentile(gated, 50):.2f} ms (both unprofiled; "
        f"then the same {requests_n} gated requests under cProfile:)",
        buf.getvalue(),
    ]


def run(*, rounds: int, requests_1: int, per_client_20: int, postgres: bool) -> tuple[list[Row], list[str]]:
    from tests._servers import create_postgres_database, drop_postgres_database, postgres_available

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    workdir = Path(tempfile.mkdtemp(prefix="mlflow-green-bench-gate-"))
    rows: list[Row] = []
    extra: list[str] = [
        "servers: uvicorn, 1 worker each (tests/_servers.start_mlflow_server), MLFLOW_GREEN_STRICT=0, "
        "MLflow's job runner off; timing starts once both servers' process trees are idle"
    ]
    try:
        rows += _backend_rows(
            "SQLite", f"sqlite:///{workdir / 'gate.db'}", workdir, rounds=rounds, requests_1=requests_1, per_client_20=per_client_20
        )
        if postgres and postgres_available():
            uri = create_postgres_database("mlflow_green_bench")
            try:
                rows += _backend_rows(
                    "PostgreSQL", uri, workdir, rounds=rounds, requests_1=requests_1, per_client_20=per_client_20
                )
            finally:
                drop_postgres_database(uri)
        elif postgres:
            extra.append("PostgreSQL skipped: nothing listens on 127.0.0.1:5432")
        else:
            extra.append("PostgreSQL skipped (--no-postgres / --quick)")
        extra += [f"{label}: servers idle {waited:.0f} s after start-up" for label, waited in QUIET_WAITED.items()]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows, extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run for the smoke test (SQLite only)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating plain/gated rounds")
    parser.add_argument("--requests", type=int, default=None, help="single-client requests per block")
    parser.add_argument("--per-client", type=int, default=None, help="requests per client in the 20-client blocks")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--profile", action="store_true", help="only: profile the gate in-process")
    args = parser.parse_args(argv)
    if args.profile:
        print("\n".join(profile_in_process()))
        return 0
    rounds = args.rounds or (1 if args.quick else 2)
    requests_1 = args.requests or (10 if args.quick else 100)
    per_client = args.per_client or (2 if args.quick else 5)
    rows, extra = run(
        rounds=rounds, requests_1=requests_1, per_client_20=per_client, postgres=not (args.quick or args.no_postgres)
    )
    print_report("gate latency (alias set, plain vs green-gate)", rows, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
