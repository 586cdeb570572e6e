"""Shared helpers of the benchmark scripts: results with targets, tables, machine description.

Every script builds a list of :class:`Row` (a measured figure, optionally with a target) and
prints it with :func:`print_report`; ``run_all.py`` collects the rows of every script into one
table. A missed target is printed as a ``MISSED`` line; the exit code stays 0 (figures measured
on a shared machine are evidence to read, not a pass/fail gate).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
CACHE_DIR = BENCH_DIR / ".cache"

if str(ROOT) not in sys.path:
    # The scripts run as `python benchmarks/x.py`; `tests._servers` lives at the repo root.
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Row:
    """One measured figure. ``target`` is ``(op, limit)`` with op ``<=`` or ``<``, or None."""

    bench: str
    name: str
    value: float
    unit: str
    target: tuple[str, float] | None = None
    note: str = ""
    # (low, high): the interval the figure is known to within (e.g. a bootstrap interval over
    # rounds). When it straddles the target the row says UNRESOLVED instead of ok or MISSED.
    interval: tuple[float, float] | None = None

    def _meets(self, value: float) -> bool:
        assert self.target is not None
        op, limit = self.target
        if not math.isfinite(value):
            return False
        return value <= limit if op == "<=" else value < limit

    @property
    def met(self) -> bool | None:
        """True/False against the target; None without a target or when unresolved."""
        if self.target is None:
            return None
        if self.interval is not None:
            low, high = self.interval
            if self._meets(high):
                return True
            if not self._meets(low):
                return False
            return None
        return self._meets(self.value)

    @property
    def status(self) -> str:
        if self.target is None:
            return ""
        met = self.met
        return "UNRESOLVED" if met is None else ("ok" if met else "MISSED")

    def target_text(self) -> str:
        if self.target is None:
            return ""
        op, limit = self.target
        return f"{op} {format_value(limit, self.unit)}"


def format_value(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if unit == "x":
        return f"{value:.4f}x"
    if unit == "dx":  # a difference of two ratios
        return f"{value:+.4f}x"
    if unit == "ms":
        return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "MB":
        return f"{value:.2f} MB"
    if unit == "":
        return f"{value:g}"
    return f"{value:.4g} {unit}"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: Iterable[float]) -> float:
    vals = [v for v in values if math.isfinite(v)]
    return statistics.median(vals) if vals else float("nan")


def format_table(rows: Sequence[Row]) -> str:
    headers = ("bench", "figure", "value", "target", "status")
    body = []
    for r in rows:
        body.append((r.bench, r.name, format_value(r.value, r.unit), r.target_text(), r.status))
    widths = [max(len(h), *(len(line[i]) for line in body)) if body else len(h) for i, h in enumerate(headers)]
    right = {2}

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines = [fmt(headers), fmt(["-" * w for w in widths])]
    lines.extend(fmt(line) for line in body)
    return "\n".join(lines)


def missed_lines(rows: Sequence[Row]) -> list[str]:
    """One line per target missed, or not resolvable on this machine (said as plainly)."""
    out = []
    for r in rows:
        if r.status not in ("MISSED", "UNRESOLVED"):
            continue
        why = f" ({r.note})" if r.note else ""
        within = ""
        if r.interval is not None:
            within = f", known to within {format_value(r.interval[0], r.unit)} .. {format_value(r.interval[1], r.unit)}"
        out.append(
            f"{r.status}: {r.bench}: {r.name} = {format_value(r.value, r.unit)}{within}, "
            f"target {r.target_text()}{why}"
        )
    return out


def notes_lines(rows: Sequence[Row]) -> list[str]:
    return [f"note: {r.bench}: {r.name}: {r.note}" for r in rows if r.note and r.status in ("", "ok")]


def bootstrap_median_interval(values: Sequence[float], *, level: float = 0.9, draws: int = 4000) -> tuple[float, float]:
    """A percentile-bootstrap interval for the median of ``values`` (seeded: reproducible)."""
    import random

    vals = [v for v in values if math.isfinite(v)]
    if len(vals) < 2:
        v = vals[0] if vals else float("nan")
        return (v, v)
    rng = random.Random(0)
    meds = sorted(statistics.median(rng.choices(vals, k=len(vals))) for _ in range(draws))
    tail = (1.0 - level) / 2.0
    return (meds[int(tail * (draws - 1))], meds[int((1.0 - tail) * (draws - 1))])


def print_report(title: str, rows: Sequence[Row], extra: Sequence[str] = ()) -> None:
    print(f"\n== {title} ==", flush=True)
    print(format_table(rows))
    for line in extra:
        print(line)
    for line in notes_lines(rows):
        print(line)
    for line in missed_lines(rows):
        print(line)
    sys.stdout.flush()


def machine_description() -> str:
    """CPU model, cores, memory, OS, Python and key package versions, and the load now."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = float("nan")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = int(line.split()[1]) / 1024**2
                break
    except OSError:
        pass
    try:
        load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = "load average unknown"
    versions = []
    for pkg in ("mlflow", "torch", "codecarbon"):
        try:
            from importlib.metadata import version

            versions.append(f"{pkg} {version(pkg)}")
        except Exception:
            versions.append(f"{pkg} absent")
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, {mem_gb:.1f} GB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, {', '.join(versions)}; {load}"
    )


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


_PRECOMPILED = False


def precompile_package() -> None:
    """Byte-compile ``mlflow_green`` once, as ``pip install`` does for a wheel (MLflow's own
    modules are compiled at install). Workers run with ``PYTHONDONTWRITEBYTECODE=1`` so they
    leave nothing behind; without this they would compile the package from source in every
    process (~0.15 s here), a cost no installed copy pays, counted against mlflow_green."""
    global _PRECOMPILED
    if not _PRECOMPILED:
        import compileall

        compileall.compile_dir(str(ROOT / "mlflow_green"), quiet=1)
        _PRECOMPILED = True


def bench_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for worker processes: quiet, offline, no leaked tracking settings; the
    package byte-compiled (:func:`precompile_package`)."""
    precompile_package()
    env = dict(os.environ)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_GREEN_STRICT", "MLFLOW_GREEN_DISABLE"):
        env.pop(name, None)
    env.update(
        {
            "GIT_PYTHON_REFRESH": "quiet",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
        }
    )
    env.pop("ELECTRICITYMAPS_API_TOKEN", None)
    env.update(extra or {})
    return env


def rss_mb() -> float:
    """Resident set size of this process in MB (1 MB = 2**20 bytes), from /proc."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def wait_until_quiet(pids: Sequence[int], *, threshold: float = 0.05, timeout: float = 120.0) -> float:
    """Wait until the process trees of ``pids`` use less than ``threshold`` of one CPU over a
    second (a freshly started ``mlflow server`` spends tens of CPU-seconds importing in its
    job-runner processes); returns the seconds waited. Timing before that measures start-up."""
    import psutil

    def cpu_seconds() -> float:
        total = 0.0
        for pid in pids:
            try:
                root = psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    times = proc.cpu_times()
                    total += times.user + times.system
            except psutil.Error:
                continue
        return total

    start = time.monotonic()
    before = cpu_seconds()
    while time.monotonic() - start < timeout:
        time.sleep(1.0)
        after = cpu_seconds()
        if after - before < threshold:
            break
        before = after
    return time.monotonic() - start
