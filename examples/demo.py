"""End-to-end demo of mlflow_green, fully offline on CPU (what `make demo` runs).

    python examples/demo.py [--out demo-out] [--quick]

1. what this machine can measure (`mlflow-green doctor`);
2. a signing key made (`mlflow-green keygen`), and two small PyTorch models trained with
   `mlflow_green.autolog(signing_key=...)` + `epochs(n)` into a local SQLite store under
   demo-out/, each run's energy/CO2eq summary printed and its attestation verified
   (`mlflow-green verify`);
3. both registered as versions of one model, and a carbon budget set as registered-model tags;
4. a real `mlflow server --app-name green-gate` started on 127.0.0.1 against the same store,
   its policy trusting the training key and denying unattested evidence (`on_unattested: deny`);
5. the signed version within budget promoted to `champion` through the gated server
   (`mlflow-green promote`);
6. the version over budget refused by the server itself: a plain MLflow alias call answered
   HTTP 403 PERMISSION_DENIED, with a message naming the budget; `mlflow-green check` exit 1;
7. a hand-logged version (tiny green/ figures typed in, `green.method.gpu=counter`) refused:
   its evidence is not attested;
8. the evidence tags the gate wrote on the versions, and the leaderboard;
9. the server stopped.

Exits non-zero, naming the step, if any step fails.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

MODEL_NAME = "demo-classifier"
EXPERIMENT = "mlflow-green-demo"
ALIAS = "champion"
BUDGET_KEY = f"green.budget.{ALIAS}.total_co2eq_kg"
_MARKER = ".mlflow-green-demo"


class DemoFailure(Exception):
    """A step did not produce what the demo promises."""


def heading(number: int, title: str) -> None:
    print(f"\n=== {number}. {title} " + "=" * max(3, 72 - len(title)), flush=True)


def mlflow_green_cmd(*args: str) -> list[str]:
    """The installed `mlflow-green` console script, or the module when it is not on disk."""
    script = Path(sys.executable).parent / "mlflow-green"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "mlflow_green.cli.main", *args]


def run_cli(args: Sequence[str], env: dict[str, str], *, expect: int = 0) -> subprocess.CompletedProcess[str]:
    shown = " ".join(["mlflow-green", *args])
    print(f"$ {shown}", flush=True)
    result = subprocess.run(
        mlflow_green_cmd(*args), env=env, capture_output=True, text=True, timeout=300
    )
    if result.stdout.strip():
        print(result.stdout.rstrip())
    if result.stderr.strip():
        print(result.stderr.rstrip())
    if result.returncode != expect:
        raise DemoFailure(f"`{shown}` exited {result.returncode}, expected {expect}")
    print(f"(exit {result.returncode})")
    return result


# -- training -----------------------------------------------------------------------------


def _data(n: int, seed: int) -> tuple[Any, Any]:
    import torch

    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * 3 * torch.pi
    label = torch.randint(0, 2, (n,), generator=g)
    sign = label.float() * 2 - 1
    x = torch.stack([t.cos() * t * sign, t.sin() * t * sign], dim=1) / 10
    return x + 0.05 * torch.randn(n, 2, generator=g), label


def train(run_name: str, *, hidden: int, epochs: int, samples: int, experiment_id: str) -> tuple[str, str]:
    """Train an MLP with every epoch measured; returns (run_id, logged model URI)."""
    import mlflow
    import torch
    from torch import nn

    import mlflow_green

    torch.manual_seed(0)
    x, y = _data(samples, seed=0)
    x_val, y_val = _data(2_000, seed=1)
    model = nn.Sequential(
        nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    with mlflow.start_run(run_name=run_name, experiment_id=experiment_id) as run:
        mlflow.log_params({"hidden": hidden, "epochs": epochs, "samples": samples})
        for epoch in mlflow_green.epochs(epochs):
            model.train()
            for xb, yb in zip(x.split(256), y.split(256), strict=True):
                optimizer.zero_grad()
                loss_fn(model(xb), yb).backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
            mlflow.log_metric("val_accuracy", accuracy, step=epoch)
            mlflow_green.report_accuracy(accuracy)
        # A real model artifact, so that the registered version points at something loadable.
        # Pickle: MLflow's default torch.export format takes tens of seconds to trace on a CPU.
        info = mlflow.pytorch.log_model(
            model,
            name="model",
            serialization_format="pickle",
            input_example=x_val[:4].numpy(),
            pip_requirements=["torch", "mlflow"],
        )
    return run.info.run_id, info.model_uri


def run_total_kg(client: Any, run_id: str) -> float:
    value = client.get_run(run_id).data.metrics.get("green/cum_total_co2eq_kg")
    if value is None or not math.isfinite(value) or value <= 0:
        raise DemoFailure(f"run {run_id} has no green/cum_total_co2eq_kg metric")
    return float(value)


# -- server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatedServer:
    """`mlflow server --app-name green-gate` on 127.0.0.1, in its own process group."""

    def __init__(self, backend_uri: str, artifacts: Path, log_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        mlflow_bin = Path(sys.executable).parent / "mlflow"
        self.argv = [
            str(mlflow_bin) if mlflow_bin.exists() else "mlflow",
            "server", "--app-name", "green-gate",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--backend-store-uri", backend_uri,
            "--artifacts-destination", str(artifacts),
            "--workers", "1",
        ]
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120.0) -> None:
        import requests

        print("$ mlflow server " + " ".join(self.argv[2:]), flush=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DemoFailure(f"the server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                status = requests.get(f"{self.url}/health", timeout=2).status_code
            except requests.RequestException:
                status = None
            if status == 200:
                print(f"server up at {self.url} (log: {self.log_path})")
                return
            if status is not None and status >= 500:
                raise DemoFailure(f"/health answered {status}:\n{self.tail()}")
            time.sleep(0.5)
        raise DemoFailure(f"the server did not answer /health within {timeout_s:.0f} s:\n{self.tail()}")

    def tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


# -- the demo -----------------------------------------------------------------------------


def prepare_out(out: Path) -> None:
    """A fresh demo-out/: removed only when an earlier demo made it (it has the marker)."""
    if out.exists():
        if not (out / _MARKER).exists() and any(out.iterdir()):
            raise DemoFailure(f"{out} exists and was not made by this demo; pass --out with another directory")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / _MARKER).write_text("made by examples/demo.py; safe to delete\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="mlflow_green end-to-end demo (offline, CPU)")
    parser.add_argument("--out", default="demo-out", help="working directory for the store (default demo-out)")
    parser.add_argument("--quick", action="store_true", help="smaller models (the test suite's mode)")
    args = parser.parse_args(argv)
    quick = args.quick or os.environ.get("MLFLOW_GREEN_EXAMPLES_QUICK") == "1"
    out = Path(args.out).resolve()
    state: dict[str, Any] = {}
    server: GatedServer | None = None

    # Everything stays on this machine: no model hub, no intensity API, no system metrics.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.pop("ELECTRICITYMAPS_API_TOKEN", None)
    # Warnings as one readable line each (e.g. which grid intensity applies, and why).
    warnings.formatwarning = lambda message, category, *_a, **_k: f"{category.__name__}: {message}\n"

    def step_doctor() -> None:
        prepare_out(out)
        state["uri"] = f"sqlite:///{out / 'mlflow.db'}"
        # The demo's crash-safe journal lives (and is wiped) with its store, so that a later
        # `mlflow-green recover` never looks for runs of an earlier, deleted demo store.
        os.environ["MLFLOW_GREEN_JOURNAL_DIR"] = str(out / "journal")
        env = {**os.environ, "MLFLOW_TRACKING_URI": state["uri"]}
        state["env"] = env
        run_cli(["doctor"], env)

    def step_train() -> None:
        import mlflow

        import mlflow_green

        mlflow.set_tracking_uri(state["uri"])
        mlflow.set_registry_uri(state["uri"])
        experiment_id = mlflow.create_experiment(
            EXPERIMENT, artifact_location=(out / "artifacts").as_uri()
        )
        # The training side holds the private key; the server's policy gets the public one.
        run_cli(["keygen", "--out", str(out / "keys"), "--name", "trainer"], state["env"])
        state["public_key"] = out / "keys" / "trainer.pub"
        # One call configures every run below (location, sampler... from the environment);
        # every epoch record is hashed into a chain, signed at the end of each run.
        mlflow_green.autolog(signing_key=str(out / "keys" / "trainer.key"))
        scale = 1 if not quick else 0.25
        # The large model does far more work (wider, more data, more epochs), so its measured
        # footprint stays well above the small one's even on a busy machine. Without RAPL the CPU
        # energy is estimated from the machine's utilisation over each epoch's wall time, so the
        # large one is trained first: the process's first-epoch warm-up (lazy initialisation,
        # first store writes) falls on it, never on the small one. Quick mode keeps the large
        # one at half size: at a quarter, a loaded machine (the test suite's parallel workers)
        # once made the small run's warm-up outweigh it.
        small = dict(hidden=16, epochs=2, samples=int(4_000 * scale))
        large = dict(hidden=512, epochs=4, samples=int(16_000 * max(scale, 0.5)))
        print(f"training 'large' {large}")
        state["large_run"], state["large_model"] = train("large", experiment_id=experiment_id, **large)
        print(f"training 'small' {small}")
        state["small_run"], state["small_model"] = train("small", experiment_id=experiment_id, **small)
        run_cli(["verify", "--run-id", state["small_run"], "--public-key", str(state["public_key"])], state["env"])

    def step_register() -> None:
        import mlflow
        from mlflow import MlflowClient

        client = MlflowClient(state["uri"], state["uri"])
        # The versions' footprints come from the logged models' source runs.
        v1 = mlflow.register_model(state["small_model"], MODEL_NAME).version
        v2 = mlflow.register_model(state["large_model"], MODEL_NAME).version
        small_kg = run_total_kg(client, state["small_run"])
        large_kg = run_total_kg(client, state["large_run"])
        print(f"{MODEL_NAME} version {v1} <- run 'small': {small_kg:.4g} kg CO2eq")
        print(f"{MODEL_NAME} version {v2} <- run 'large': {large_kg:.4g} kg CO2eq")
        if not large_kg > small_kg:
            raise DemoFailure("the large model's footprint is not above the small one's; nothing to gate")
        # A budget between the two measured footprints (their geometric mean): the small
        # model fits, the large one does not. In practice the team sets it from its targets.
        budget = math.sqrt(small_kg * large_kg)
        client.set_registered_model_tag(MODEL_NAME, BUDGET_KEY, f"{budget:.6g}")
        print(f"budget tag {BUDGET_KEY} = {budget:.6g}  (kg CO2eq, operational + embodied)")
        state.update(v1=str(v1), v2=str(v2), budget=budget)

    def step_server() -> None:
        nonlocal server
        env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_GREEN_POLICY")}
        policy = out / "policy.yaml"
        policy.write_text(
            "# Versions promoted to a gated alias or stage need evidence signed by a trusted key.\n"
            f"trusted_keys:\n  - {{id: demo-trainer, public_key: {state['public_key']}}}\n"
            "defaults:\n  on_unattested: deny\n"
        )
        print(f"policy {policy}:\n{policy.read_text()}")
        env["MLFLOW_GREEN_POLICY"] = str(policy)
        server = GatedServer(state["uri"], out / "mlartifacts", out / "server.log", env)
        server.start()
        state["server_env"] = {**state["env"], "MLFLOW_TRACKING_URI": server.url}

    def step_promote() -> None:
        run_cli(
            ["promote", "--model", MODEL_NAME, "--version", state["v1"], "--alias", ALIAS],
            state["server_env"],
        )

    def step_refuse() -> None:
        import requests

        assert server is not None
        # What any MLflow client sends to set an alias; the gate answers inside the server.
        body = {"name": MODEL_NAME, "alias": ALIAS, "version": state["v2"]}
        print(f"$ POST {server.url}/api/2.0/mlflow/registered-models/alias {body}")
        response = requests.post(f"{server.url}/api/2.0/mlflow/registered-models/alias", json=body, timeout=60)
        print(f"HTTP {response.status_code} {response.text}")
        if response.status_code != 403:
            raise DemoFailure(f"expected HTTP 403 from the gate, got {response.status_code}")
        payload = response.json()
        message = str(payload.get("message", ""))
        if payload.get("error_code") != "PERMISSION_DENIED" or "total_co2eq_kg" not in message:
            raise DemoFailure("the refusal does not name the budget (total_co2eq_kg)")
        run_cli(
            ["check", "--model", MODEL_NAME, "--version", state["v2"], "--alias", ALIAS],
            state["server_env"],
            expect=1,
        )
        from mlflow import MlflowClient

        champion = MlflowClient(server.url, server.url).get_model_version_by_alias(MODEL_NAME, ALIAS)
        print(f"alias '{ALIAS}' still points to version {champion.version}")
        if champion.version != state["v1"]:
            raise DemoFailure(f"alias '{ALIAS}' moved to version {champion.version}")

    def step_hand_logged() -> None:
        import requests
        from mlflow import MlflowClient
        from mlflow.entities import Metric, RunTag

        assert server is not None
        client = MlflowClient(server.url, server.url)
        # Anyone can log figures by hand: tiny totals, a "counter" method tag, no signature.
        experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
        run_id = client.create_run(experiment_id, run_name="typed-by-hand").info.run_id
        figures = {"green/cum_total_co2eq_kg": 1e-9, "green/cum_co2eq_kg": 1e-9, "green/cum_energy_kwh": 1e-9}
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, int(time.time() * 1000), 0) for k, v in figures.items()],
            tags=[RunTag("green.method.gpu", "counter"), RunTag("green.method.cpu", "rapl"),
                  RunTag("green.status", "ok")],
        )
        client.set_terminated(run_id)
        version = client.create_model_version(MODEL_NAME, f"runs:/{run_id}/model", run_id).version
        print(f"{MODEL_NAME} version {version} <- run 'typed-by-hand': {figures}")
        body = {"name": MODEL_NAME, "alias": ALIAS, "version": str(version)}
        print(f"$ POST {server.url}/api/2.0/mlflow/registered-models/alias {body}")
        response = requests.post(f"{server.url}/api/2.0/mlflow/registered-models/alias", json=body, timeout=60)
        print(f"HTTP {response.status_code} {response.text}")
        if response.status_code != 403 or "not attested" not in response.text:
            raise DemoFailure(f"expected HTTP 403 naming unattested evidence, got {response.status_code}")

    def step_evidence() -> None:
        from mlflow import MlflowClient

        assert server is not None
        client = MlflowClient(server.url, server.url)
        for version in (state["v1"], state["v2"]):
            tags = client.get_model_version(MODEL_NAME, version).tags
            evidence = {k: v for k, v in sorted(tags.items()) if k.startswith("green.gate.")}
            print(f"{MODEL_NAME} version {version}:")
            for key, value in evidence.items():
                print(f"  {key} = {value}")
            if not evidence:
                print("  (no green.gate.* tags)")
            if version == state["v1"] and evidence.get("green.gate.verdict") != "pass":
                raise DemoFailure(f"version {version} has no passing evidence tags")
            if version == state["v1"] and not evidence.get("green.gate.attestation", "").startswith("signed:"):
                raise DemoFailure(f"version {version} is not recorded as attested")

    def step_leaderboard() -> None:
        run_cli(["leaderboard", "--experiment", EXPERIMENT], state["server_env"])

    steps: list[tuple[str, Callable[[], None]]] = [
        ("What this machine measures", step_doctor),
        ("Train two signed models with mlflow_green.autolog() (SQLite store in demo-out/)", step_train),
        ("Register both versions and set a carbon budget", step_register),
        ("Start the gated server: mlflow server --app-name green-gate", step_server),
        (f"Promote the version within budget to '{ALIAS}'", step_promote),
        ("The version over budget is refused by the server", step_refuse),
        ("A hand-logged version is refused: its evidence is not attested", step_hand_logged),
        ("Evidence tags on the model versions", step_evidence),
        ("Leaderboard: accuracy per kg CO2eq", step_leaderboard),
    ]
    started = time.monotonic()
    try:
        for number, (title, step) in enumerate(steps, start=1):
            heading(number, title)
            step_started = time.monotonic()
            step()
            print(f"({time.monotonic() - step_started:.1f} s)", flush=True)
    except DemoFailure as exc:
        print(f"\nDEMO FAILED at step {number} ({title}): {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"\nDEMO FAILED at step {number} ({title}): {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            heading(len(steps) + 1, "Stop the server")
            server.stop()
            print("server stopped")
    print(
        f"\nDemo finished in {time.monotonic() - started:.0f} s. Browse the runs with:\n"
        f"  mlflow server --app-name green-gate --backend-store-uri {state['uri']} --port 5000\n"
        "then open http://127.0.0.1:5000 (and /green for the carbon page)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
