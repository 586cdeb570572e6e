"""GPU accuracy (needs an NVIDIA GPU; not part of ``make bench``).

1. Counter agreement: mlflow_green's energy (``EnergyMeter`` over ``NvmlGpuSampler``, the
   ``counter`` method) for a set of windows of different lengths and loads, against direct
   reads of NVML's energy counter (``nvmlDeviceGetTotalEnergyConsumption``) of the same GPU
   taken just outside each window. Target: within 0.5 %.
2. Power-polling fallback: the same meter forced to poll power (``use_counter=False``, method
   ``power``) on a bursty workload (random busy bursts and idle gaps of 20-300 ms), against
   the energy counter over the same windows. Target: within 3 %.

3. Share of a shared GPU (``share:<basis>``, issue 18): a second process on the same GPU
   (started by this script) that either idles holding memory or runs the same matrix loop.
   Two share samplers watch the same windows, one charging this process, one the neighbour.
   Targets: alone, this process's share is 1; neighbour idle and this process busy, share
   >= 0.9 (the share follows the work, not the memory); both busy, 0.35..0.65; the two
   shares add up to 1 within 0.05 (nothing charged twice or lost).

The workload is a CUDA matrix multiply loop in PyTorch. Without an NVIDIA GPU (or its
driver) the script stops at once with "no NVIDIA GPU: <why>" and exit code 1.

    python benchmarks/gpu_accuracy.py [--quick] [--device N] [--windows W]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, print_report

BENCH = "gpu accuracy"
_J_PER_KWH = 3.6e6


class NoGpu(RuntimeError):
    """No NVIDIA GPU usable here; the message says why."""


def _require_gpu(device: int) -> Any:
    """The ``torch`` module with CUDA device ``device`` ready, or NoGpu."""
    from mlflow_green.samplers import nvml_is_available

    ok, why = nvml_is_available()
    if not ok:
        raise NoGpu(f"no NVIDIA GPU: {why}")
    try:
        import torch
    except ImportError as exc:
        raise NoGpu(f"no NVIDIA GPU usable: PyTorch is not installed ({exc})") from None
    if not torch.cuda.is_available():
        raise NoGpu("no NVIDIA GPU usable by PyTorch: torch.cuda.is_available() is False (a CPU-only build?)")
    if device >= torch.cuda.device_count():
        raise NoGpu(f"no NVIDIA GPU with CUDA ordinal {device}: this process sees {torch.cuda.device_count()}")
    return torch


def _workload(torch: Any, device: int) -> tuple[Callable[[float], None], Callable[[float], None]]:
    dev = torch.device("cuda", device)
    a = torch.randn(4096, 4096, device=dev)

    def busy(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            a.matmul(a)
            torch.cuda.synchronize(dev)

    def idle(seconds: float) -> None:
        torch.cuda.synchronize(dev)
        time.sleep(seconds)

    return busy, idle


def _direct_reader(sampler: Any) -> Callable[[], float]:
    """Joules from NVML's counter of the sampler's GPU, read straight from pynvml."""
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByUUID(sampler.devices[0].uuid)
    return lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0


def _windows(meter: Any, direct: Callable[[], float], plan: list[Callable[[], None]]) -> list[tuple[float, float]]:
    """(meter J, counter J) per window."""
    out = []
    for i, body in enumerate(plan):
        j0 = direct()
        meter.begin(f"w{i}")
        body()
        m = meter.end(f"w{i}")
        j1 = direct()
        out.append((m.gpu.energy_kwh * _J_PER_KWH, j1 - j0))
    return out


def _error_rows(label: str, pairs: list[tuple[float, float]], target_pct: float) -> list[Row]:
    per_window = [abs(m - c) / c * 100 for m, c in pairs if c > 0]
    total_m, total_c = sum(m for m, _ in pairs), sum(c for _, c in pairs)
    return [
        Row(BENCH, f"{label}: total energy error", abs(total_m - total_c) / total_c * 100, "%", ("<=", target_pct)),
        Row(BENCH, f"{label}: worst window error", max(per_window), "%", ("<=", target_pct)),
        Row(BENCH, f"{label}: energy measured by the counter", total_c, "J"),
    ]


def run(*, device: int, windows: int, seed: int = 0) -> tuple[list[Row], list[str]]:
    torch = _require_gpu(device)
    from mlflow_green.meter import EnergyMeter
    from mlflow_green.samplers import NvmlGpuSampler

    busy, idle = _workload(torch, device)
    busy(1.0)  # clocks up, kernels compiled
    rng = random.Random(seed)
    rows: list[Row] = []
    extra: list[str] = []

    counter_sampler = NvmlGpuSampler([device])
    if counter_sampler.method != "counter":
        notes = "; ".join(counter_sampler.notes)
        counter_sampler.close()
        raise NoGpu(f"no NVIDIA GPU with an NVML energy counter ({notes}): both checks need it as the reference")
    direct = _direct_reader(counter_sampler)
    plan: list[Callable[[], None]] = []
    for i in range(windows):
        seconds = 0.5 + 2.5 * i / max(windows - 1, 1)
        load = (i % 3) / 2  # 0, 0.5, 1: idle, half, full
        plan.append(lambda s=seconds, f=load: (busy(s * f), idle(s * (1 - f))))
    with EnergyMeter([counter_sampler]) as meter:
        pairs = _windows(meter, direct, plan)
    rows += _error_rows("counter method vs direct NVML counter", pairs, 0.5)

    def bursty(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            busy(rng.uniform(0.02, 0.3))
            idle(rng.uniform(0.02, 0.3))

    power_sampler = NvmlGpuSampler([device], use_counter=False)
    direct_p = _direct_reader(power_sampler)
    with EnergyMeter([power_sampler]) as meter:
        pairs = _windows(meter, direct_p, [lambda: bursty(5.0) for _ in range(max(2, windows // 2))])
        poll = meter._poll_interval_s
    rows += _error_rows("power polling (bursty) vs NVML counter", pairs, 3.0)
    extra.append(
        f"GPU {device}: {counter_sampler.devices[0].name}; {windows} counter windows 0.5-3 s; "
        f"{len(pairs)} bursty windows of 5 s polled every {poll:g} s"
    )
    return rows, extra


_NEIGHBOUR = """
import sys, time, torch
dev = torch.device("cuda", int(sys.argv[1]))
a = torch.randn(4096, 4096, device=dev)
torch.cuda.synchronize(dev)
print("ready", flush=True)
while True:
    if sys.argv[2] == "busy":
        a.matmul(a)
        torch.cuda.synchronize(dev)
    else:
        time.sleep(0.1)
"""


def _start_neighbour(device: int, mode: str) -> Any:
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-c", _NEIGHBOUR, str(device), mode], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise NoGpu("the neighbour process could not start on the GPU")
    return proc


def run_share(*, device: int, seconds: float = 5.0) -> tuple[list[Row], list[str]]:
    """Check 3: this process's and a neighbour's shares of one GPU over the same windows."""
    import os

    torch = _require_gpu(device)
    from mlflow_green.meter import EnergyMeter
    from mlflow_green.samplers import GpuShareSampler, NvmlGpuSampler

    busy, _idle = _workload(torch, device)
    busy(1.0)
    rows: list[Row] = []
    extra: list[str] = []
    me = os.getpid()

    def shares(neighbour_pid: int | None, body: Callable[[], None]) -> tuple[float, float, str]:
        mine = GpuShareSampler(NvmlGpuSampler([device]), pids=lambda: {me}, read_interval_s=0.5)
        theirs = GpuShareSampler(
            NvmlGpuSampler([device]), pids=lambda: {neighbour_pid or -1}, read_interval_s=0.5
        )
        with EnergyMeter([mine]) as m1, EnergyMeter([theirs]) as m2:
            m1.begin("w")
            m2.begin("w")
            body()
            a, b = m1.end("w"), m2.end("w")
        return a.gpu.share or 0.0, b.gpu.share or 0.0, mine.basis

    alone, _, basis = shares(None, lambda: busy(seconds))
    rows.append(Row(BENCH, "share: alone on the GPU: 1 - share", 1 - alone, "", ("<=", 0.01)))
    for mode, label in (("idle", "neighbour idle (holding memory), this process busy"), ("busy", "both busy")):
        proc = _start_neighbour(device, mode)
        try:
            time.sleep(1.0)
            mine, theirs, basis = shares(proc.pid, lambda: busy(seconds))
        finally:
            proc.kill()
            proc.wait()
        if mode == "idle":  # the share follows the work, not the memory held
            rows.append(Row(BENCH, f"share: {label}: 1 - share", 1 - mine, "", ("<=", 0.1)))
        else:
            rows.append(Row(BENCH, f"share: {label}: |share - 0.5|", abs(mine - 0.5), "", ("<=", 0.15)))
        rows.append(Row(BENCH, f"share: {label}: |this + neighbour - 1|", abs(mine + theirs - 1), "", ("<=", 0.05)))
    extra.append(f"share basis on this GPU: {basis}; windows of {seconds:g} s")
    return rows, extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--device", type=int, default=0, help="CUDA ordinal")
    parser.add_argument("--windows", type=int, default=None)
    args = parser.parse_args(argv)
    windows = args.windows or (3 if args.quick else 12)
    try:
        rows, extra = run(device=args.device, windows=windows)
        share_rows, share_extra = run_share(device=args.device, seconds=2.0 if args.quick else 5.0)
        rows, extra = rows + share_rows, extra + share_extra
    except NoGpu as exc:
        print(f"gpu_accuracy: {exc}", file=sys.stderr)
        return 1
    print_report("GPU energy accuracy", rows, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
