"""The Software Carbon Intensity (SCI) of a model's inference, per 1,000 requests.

    python examples/inference_sci.py              # 20,000 requests
    python examples/inference_sci.py --quick      # 2,000 requests (the test suite's mode)

1. trains a small classifier (measured with ``mlflow_green.epochs``) and logs it as an MLflow
   pyfunc model;
2. loads it back with ``mlflow.pyfunc.load_model`` — what a serving process does — and
   measures the energy of N ``predict`` calls in one meter window;
3. computes SCI = (E × PUE × I + M) / R with the accounting layer, R = thousands of requests,
   M the embodied share of the hardware held for the window;
4. logs ``green/sci_g_per_1k_requests``, ``green/inference_energy_kwh`` and
   ``green/green_score`` (accuracy / g per request × 1000) on the model's run, where
   ``mlflow-green leaderboard`` shows the Green Score.

The same figure from a datasheet power and a measured latency, without running anything:
``mlflow-green sci --power-w W --latency-ms L --requests N --unit-requests 1000``.
"""

from __future__ import annotations

import argparse
import os
import sys

import mlflow
import numpy as np
import torch
from torch import nn

import mlflow_green
from mlflow_green import accounting
from mlflow_green.meter import EnergyMeter

UNIT_REQUESTS = 1000


class TorchClassifier(mlflow.pyfunc.PythonModel):
    """A pyfunc wrapper: float features in, class ids out."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net

    # No type hints here: MLflow would read them as the model's input schema.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.no_grad():
            return self.net(x).argmax(1).numpy()


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(16, generator=torch.Generator().manual_seed(3))
    x = torch.randn(n, 16, generator=g)
    return x, ((x @ direction) > 0).long()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="predict calls to measure")
    parser.add_argument("--batch", type=int, default=1, help="rows per request")
    parser.add_argument("--experiment", default="mlflow-green-examples")
    parser.add_argument("--quick", action="store_true", help="2,000 requests")
    args = parser.parse_args(argv)
    if args.quick or os.environ.get("MLFLOW_GREEN_EXAMPLES_QUICK") == "1":
        args.requests = min(args.requests, 2_000)
    if args.requests < 1 or args.batch < 1:
        parser.error("--requests and --batch must be at least 1")

    torch.manual_seed(0)
    x, y = make_data(4_000, 0)
    x_val, y_val = make_data(1_000, 1)
    net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 2))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)

    mlflow.set_experiment(args.experiment)
    with mlflow.start_run(run_name="inference-sci") as run:
        for epoch in mlflow_green.epochs(3):
            for xb, yb in zip(x.split(128), y.split(128), strict=True):
                optimizer.zero_grad()
                nn.functional.cross_entropy(net(xb), yb).backward()
                optimizer.step()
            with torch.no_grad():
                accuracy = (net(x_val).argmax(1) == y_val).float().mean().item()
            mlflow.log_metric("val_accuracy", accuracy, step=epoch)
            mlflow_green.report_accuracy(accuracy)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=TorchClassifier(net), pip_requirements=["torch", "numpy"]
        )

    # -- what a serving process does: load the model, answer requests ------------------------
    model = mlflow.pyfunc.load_model(info.model_uri)
    requests = [x_val[i % len(x_val) : i % len(x_val) + args.batch].numpy() for i in range(args.requests)]
    model.predict(requests[0])  # warm-up, outside the measured window

    meter = EnergyMeter.from_spec()  # MLFLOW_GREEN_SAMPLER, default "auto": real hardware
    meter.start()
    try:
        with meter.window("inference") as window:
            for request in requests:
                model.predict(request)
        measurement = window.measurement
        hardware = meter.hardware
    finally:
        meter.close()
    assert measurement is not None

    # -- accounting: SCI = (E × PUE × I + M) / R ----------------------------------------------
    location = accounting.resolve_location()
    intensity = accounting.intensity_source(location).intensity()
    pue = accounting.resolve_pue(None)
    embodied = accounting.embodied_config(hardware.gpu_model or None, gpu_count=hardware.gpu_count)
    embodied_kg = accounting.embodied_kg(embodied, measurement.duration_s)
    result = accounting.sci(
        measurement.energy_kwh,
        intensity.g_per_kwh,
        embodied_kg=embodied_kg,
        functional_units=args.requests / UNIT_REQUESTS,
        pue=pue,
    )
    latency_ms = measurement.duration_s * 1000 / args.requests
    g_per_request = result.g_per_unit / UNIT_REQUESTS
    score = accounting.green_score(accuracy, g_per_request)

    client = mlflow.MlflowClient()
    client.log_batch(
        run.info.run_id,
        metrics=[
            mlflow.entities.Metric(key, float(value), int(measurement.start_unix_s * 1000), 0)
            for key, value in {
                "green/inference_energy_kwh": measurement.energy_kwh,
                "green/inference_latency_ms": latency_ms,
                "green/sci_g_per_1k_requests": result.g_per_unit,
                "green/green_score": score,
            }.items()
        ],
        tags=[
            mlflow.entities.RunTag("green.inference.requests", str(args.requests)),
            mlflow.entities.RunTag("green.inference.intensity_source", intensity.source),
            mlflow.entities.RunTag("green.inference.method.cpu", measurement.cpu.method),
            mlflow.entities.RunTag("green.inference.method.gpu", measurement.gpu.method),
        ],
    )
    print(
        f"{args.requests} requests in {measurement.duration_s:.2f} s ({latency_ms:.2f} ms each): "
        f"{measurement.energy_kwh:.3g} kWh IT energy "
        f"(CPU {measurement.cpu.method}, GPU {measurement.gpu.method})\n"
        f"intensity {intensity.g_per_kwh:.0f} g/kWh ({intensity.source}), PUE {pue:g}, "
        f"embodied {embodied_kg:.3g} kg\n"
        f"SCI = {result.g_per_unit:.4g} gCO2eq per {UNIT_REQUESTS} requests; "
        f"Green Score {score:.4g} (accuracy {accuracy:.3f})\n"
        f"run {run.info.run_id} in experiment {args.experiment!r}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
