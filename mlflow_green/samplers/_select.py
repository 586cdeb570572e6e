"""Choosing samplers from a spec (``auto``, ``none``, ``simulated:...``, ``replay:...``)."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow_green import _settings
from mlflow_green.errors import ConfigError, SamplerUnavailable
from mlflow_green.samplers._base import COMPONENTS, Component, DeviceInfo, Sampler
from mlflow_green.samplers.null import NullSampler

__all__ = ["Diagnosis", "SamplerSpec", "diagnose", "parse_spec", "select"]

SPEC_FORMS = "auto, none, simulated:<watts>[x<devices>] (e.g. simulated:300x2) or replay:<path>"
_SIMULATED = re.compile(
    r"^simulated:(?P<watts>[0-9]*\.?[0-9]+(?:e[+-]?\d+)?)(?:x(?P<n>\d+))?$", re.IGNORECASE
)


@dataclass(frozen=True)
class SamplerSpec:
    """A parsed spec: ``kind`` is auto, none, simulated or replay."""

    kind: str
    watts: float = 0.0
    devices: int = 1
    path: str = ""
    text: str = "auto"


@dataclass(frozen=True)
class Diagnosis:
    """What one component would be measured with, and why not better (for ``doctor``)."""

    component: Component
    method: str
    reason: str
    devices: tuple[DeviceInfo, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    # The machine-wide method under a ``share:<basis>`` method (else the method itself).
    base_method: str = ""


def parse_spec(spec: str | None = None) -> SamplerSpec:
    """Parse a sampler spec; None reads MLFLOW_GREEN_SAMPLER, then defaults to ``auto``."""
    source = "sampler spec"
    if spec is None:
        spec = _settings.env_str(_settings.ENV_SAMPLER)
        source = _settings.ENV_SAMPLER
    if spec is None:
        return SamplerSpec("auto")
    text = spec.strip()
    low = text.lower()
    if low in ("auto", "none"):
        return SamplerSpec(low, text=low)
    m = _SIMULATED.match(text)
    if m:
        n = int(m.group("n") or 1)
        if n < 1 or n > 4096:
            raise ConfigError(
                f"{source}={spec!r}: the device count must be 1 to 4096; use {SPEC_FORMS}"
            )
        return SamplerSpec("simulated", watts=float(m.group("watts")), devices=n, text=text)
    if low.startswith("replay:") and text[len("replay:") :].strip():
        path = str(Path(text[len("replay:") :].strip()).expanduser())
        return SamplerSpec("replay", path=path, text=text)
    raise ConfigError(f"{source}={spec!r} is not a sampler spec: use {SPEC_FORMS}")


def _check_components(components: Sequence[str]) -> tuple[Component, ...]:
    out: list[Component] = []
    for c in components:
        if c not in COMPONENTS:
            raise ConfigError(f"component {c!r} is not one of {', '.join(COMPONENTS)}")
        if c not in out:
            out.append(c)  # type: ignore[arg-type]
    return tuple(out)


def _auto_gpu(gpu_indices: Sequence[int] | None) -> tuple[Sampler, str]:
    from mlflow_green.samplers.amd import AmdGpuSampler, amd_is_available
    from mlflow_green.samplers.nvml import NvmlGpuSampler, nvml_is_available

    failures: list[str] = []
    nv_ok, nv_why = nvml_is_available()
    if nv_ok:
        try:
            return NvmlGpuSampler(gpu_indices), nv_why
        except SamplerUnavailable as exc:
            if gpu_indices is not None or _settings.strict():
                raise  # an explicit ordinal that does not exist is the caller's to fix
            nv_why = str(exc)
            failures.append(f"gpu: NVML sees a GPU but it could not be opened ({nv_why})")
    amd_ok, amd_why = amd_is_available()
    if amd_ok:
        try:
            return AmdGpuSampler(gpu_indices), amd_why
        except SamplerUnavailable as exc:
            if gpu_indices is not None or _settings.strict():
                raise
            amd_why = str(exc)
            failures.append(f"gpu: AMD SMI sees a GPU but it could not be opened ({amd_why})")
    reason = f"NVML: {nv_why}; AMD SMI: {amd_why}"
    return NullSampler("gpu", reason, problem="; ".join(failures) or None), reason


def _auto_host(component: Component) -> tuple[Sampler, str]:
    from mlflow_green.samplers.estimate import (
        CpuEstimateSampler,
        RamEstimateSampler,
        estimate_is_available,
    )
    from mlflow_green.samplers.rapl import RaplSampler, rapl_is_available

    ok, why = rapl_is_available(component)
    if ok:
        try:
            return RaplSampler(component), why
        except SamplerUnavailable as exc:
            why = str(exc)
    est_ok, est_why = estimate_is_available()
    if not est_ok:
        reason = f"RAPL: {why}; estimate: {est_why}"
        return NullSampler(component, reason), reason
    sampler: Sampler = CpuEstimateSampler() if component == "cpu" else RamEstimateSampler()
    return sampler, f"RAPL unavailable: {why}"


def _build(
    spec: str | None,
    components: Sequence[str],
    gpu_indices: Sequence[int] | None,
    share: bool | str | None = None,
) -> list[tuple[Sampler, str]]:
    from mlflow_green.samplers.share import share_mode

    mode = share_mode(share)
    parsed = parse_spec(spec)
    comps = _check_components(components)
    if parsed.kind == "none":
        return [(NullSampler(c, "sampler spec is none"), "sampler spec is none") for c in comps]
    replaced: dict[str, tuple[Sampler, str]] = {}
    if parsed.kind == "simulated" and "gpu" in comps:
        from mlflow_green.samplers.simulated import SimulatedGpuSampler

        sim = (
            SimulatedGpuSampler(parsed.watts, parsed.devices)
            if gpu_indices is None
            else _simulated_subset(parsed, gpu_indices)
        )
        replaced["gpu"] = (sim, f"sampler spec {parsed.text}")
    elif parsed.kind == "replay":
        from mlflow_green.samplers.replay import ReplaySampler, load_trace

        trace = load_trace(parsed.path)
        wanted = [c for c in trace.components if c in comps]
        if not wanted:
            raise ConfigError(
                f"replay trace {parsed.path} has none of the components {', '.join(comps)}"
            )
        origin = time.monotonic()  # every component of one trace plays from the same start
        for c in wanted:
            sampler = ReplaySampler(trace, c, origin_s=origin)
            replaced[c] = (sampler, f"sampler spec {parsed.text}")
    out: list[tuple[Sampler, str]] = []
    try:
        for c in comps:
            if c in replaced:
                out.append(replaced[c])
            elif c == "gpu":
                out.append(_auto_gpu(gpu_indices))
            else:
                out.append(_auto_host(c))
    except BaseException:
        for s, _ in list(replaced.values()) + out:
            s.close()
        raise
    if mode == "off":
        return out
    from mlflow_green.samplers._apply_share import apply_share

    return [apply_share(sampler, why, mode) for sampler, why in out]


def _simulated_subset(parsed: SamplerSpec, gpu_indices: Sequence[int]) -> Any:
    from mlflow_green.samplers.simulated import SimulatedGpuSampler

    bad = [i for i in gpu_indices if not 0 <= int(i) < parsed.devices]
    if bad:
        raise SamplerUnavailable(
            f"GPU ordinal {bad[0]} was requested but {parsed.text} simulates {parsed.devices} GPU(s)"
        )
    return SimulatedGpuSampler(parsed.watts, len(set(gpu_indices)))


def select(
    spec: str | None = None,
    *,
    components: Sequence[str] = COMPONENTS,
    gpu_indices: Sequence[int] | None = None,
    share: bool | str | None = None,
) -> list[Sampler]:
    """One sampler per component, chosen by ``spec``.

    Args:
        spec: ``auto`` (best real method per component), ``none``, ``simulated:<watts>[x<n>]``
            (simulated GPUs; CPU and RAM still measured as by ``auto``) or ``replay:<path>``
            (the trace's components; the others as by ``auto``). None reads
            MLFLOW_GREEN_SAMPLER, then ``auto``.
        components: which of ``gpu``, ``cpu``, ``ram`` to measure.
        gpu_indices: CUDA device ordinals of this process (e.g. ``[local_rank]``); None
            meters every GPU it sees.
        share: charge this process tree's share of shared devices (``share:<basis>``
            methods): True/``on``, False/``off``, or ``auto`` (CPU and RAM shared, a GPU
            shared when another process is on it or it is a MIG instance). None reads
            MLFLOW_GREEN_SHARE, then ``auto``.

    Raises:
        ConfigError: a malformed spec, component or share setting, an unreadable trace.
        SamplerUnavailable: ``gpu_indices`` names a GPU this process does not have.
    """
    return [s for s, _ in _build(spec, components, gpu_indices, share)]


def diagnose(
    spec: str | None = None,
    *,
    components: Sequence[str] = COMPONENTS,
    gpu_indices: Sequence[int] | None = None,
    share: bool | str | None = None,
) -> list[Diagnosis]:
    """What :func:`select` would choose per component, and why nothing better is used."""
    result = []
    for sampler, why in _build(spec, components, gpu_indices, share):
        try:
            description = str(getattr(sampler, "description", sampler.method))
            reason = why if sampler.method == "none" else f"{description}; {why}"
            result.append(
                Diagnosis(
                    component=sampler.component,
                    method=sampler.method,
                    reason=reason,
                    devices=sampler.devices,
                    notes=tuple(getattr(sampler, "notes", ())),
                    base_method=str(getattr(getattr(sampler, "inner", sampler), "method", "")),
                )
            )
        finally:
            sampler.close()
    return result
