"""A run's measurement and accounting inputs: the meter, location, intensity, PUE, embodied model.

Resolved once when a tracker starts; :func:`provenance_tags` says how each number of the run
is obtained (the ``green.*`` tags of the contract).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlflow_green import _settings
from mlflow_green.errors import GreenError
from mlflow_green.tracking import schema
from mlflow_green.tracking.config import GreenConfig
from mlflow_green.tracking.distributed import DistInfo, local_gpu_index, reduce_hardware

if TYPE_CHECKING:
    from mlflow_green.accounting import EmbodiedConfig, IntensitySource, Location
    from mlflow_green.meter import EnergyMeter, HardwareInfo
    from mlflow_green.tracking.impact import ImpactFigures

__all__ = ["RunInputs", "open_meter", "provenance_tags", "resolve_inputs"]


def open_meter(
    config: GreenConfig,
    dist: DistInfo,
    meter: EnergyMeter | None,
    on_problem: Callable[[str], None],
) -> EnergyMeter:
    """The started meter: ``meter`` when given, else one built from ``config.sampler``.

    On a distributed job each process measures its own GPU; CPU and RAM: its own process
    tree's share of its node (the default), or with ``share=off`` the whole node once, by
    local rank 0 (see ``scaleout.ScaleOut.components``). A sampler spec that cannot be
    opened degrades the run to no measurement (raises when strict).
    """
    from mlflow_green.meter import EnergyMeter

    if meter is not None:  # given by the caller (a custom sampler set)
        meter.start()
        return meter
    from mlflow_green.tracking.scaleout import ScaleOut

    components = ScaleOut(dist, config.share).components()
    gpu_indices: list[int] | None = None
    if dist.world_size > 1:
        # One process per GPU: measure ours only; CPU and RAM by share (or once per node).
        gpu_indices = [local_gpu_index(dist)]
        from mlflow_green.samplers import parse_spec

        spec = parse_spec(config.sampler)
        if spec.kind == "simulated" and gpu_indices[0] >= spec.devices:
            # 'simulated:300' under torchrun: each process simulates the GPU it drives.
            gpu_indices = None
        if not dist.has_group:
            on_problem(
                "torch.distributed is not initialised: energy of the other ranks is not included"
            )
    try:
        built = EnergyMeter.from_spec(
            config.sampler,
            components=components,
            gpu_indices=gpu_indices,
            poll_interval_s=config.poll_interval_s,
            share=config.share,
        )
    except GreenError as exc:
        if _settings.strict():
            raise
        on_problem(f"no energy measurement ({exc})")
        built = EnergyMeter.from_spec("none", components=components)
    built.start()
    return built


@dataclass(frozen=True)
class RunInputs:
    """The accounting inputs of a run (the same for all its epochs)."""

    location: Location
    intensity_source: IntensitySource
    pue: float
    embodied: EmbodiedConfig
    gpu_count: int
    # Market-based CO2, water and SCI-for-AI units (issue 19; tracking/impact.py).
    impact: ImpactFigures | None = None


def resolve_inputs(config: GreenConfig, hardware: HardwareInfo, dist: DistInfo) -> RunInputs:
    """Location, intensity source, PUE and embodied model from the options and the hardware.

    On a distributed job the GPU count is the sum over ranks (a collective).
    """
    import mlflow_green.accounting as acct

    location = acct.resolve_location(
        country=config.country,
        region=config.region,
        cloud_provider=config.cloud_provider,
        cloud_region=config.cloud_region,
    )
    source = acct.intensity_source(
        location, fixed=config.intensity, token=_settings.env_str(_settings.ENV_EM_TOKEN)
    )
    gpu_count = reduce_hardware(int(hardware.gpu_count or 0), dist)
    embodied = acct.embodied_config(
        hardware.gpu_model,
        gpu_count=max(gpu_count, 0),
        profile=config.embodied_profile,
        device_embodied_kg=config.device_embodied_kg,
        node_embodied_kg=config.node_embodied_kg,
        devices_per_node=config.devices_per_node,
        lifetime_years=config.lifetime_years,
        cpu_threads=_usable_cpus(),
    )
    from mlflow_green.tracking.impact import impact_for

    pue = float(acct.resolve_pue(config.pue))
    return RunInputs(location, source, pue, embodied, gpu_count, impact_for(config, location, pue))


def provenance_tags(
    inputs: RunInputs, hardware: HardwareInfo, config: GreenConfig, status: str
) -> dict[str, str]:
    """The ``green.*`` tags saying how every number of the run is obtained."""
    from mlflow_green._version import __version__

    methods = dict(hardware.methods or {})
    source = inputs.intensity_source
    source_name = getattr(source, "name", None) or getattr(source, "label", None)
    if source_name is None:
        try:
            source_name = source.intensity().source
        except Exception:
            source_name = type(source).__name__
    embodied = inputs.embodied
    profile = (
        getattr(embodied, "tag", None)
        or getattr(embodied, "profile", None)
        or config.embodied_profile
        or "default"
    )
    return {
        schema.TAG_VERSION: __version__,
        schema.TAG_LOCATION: str(getattr(inputs.location, "label", inputs.location)),
        schema.TAG_INTENSITY_SOURCE: str(source_name),
        schema.TAG_INTENSITY_BASIS: str(getattr(source, "basis", None) or "unspecified"),
        schema.TAG_PUE: f"{inputs.pue:g}",
        schema.TAG_GPU_MODEL: str(hardware.gpu_model or "none"),
        schema.TAG_GPU_COUNT: str(inputs.gpu_count),
        schema.TAG_METHOD_GPU: methods.get("gpu", "none"),
        schema.TAG_METHOD_CPU: methods.get("cpu", "none"),
        schema.TAG_METHOD_RAM: methods.get("ram", "none"),
        schema.TAG_EMBODIED_PROFILE: str(profile),
        schema.TAG_STATUS: status,
        **(inputs.impact.tags if inputs.impact is not None else {}),
    }


def _usable_cpus() -> int | None:
    """Logical CPUs this process may run on: the CPU-only embodied share is that many."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()
