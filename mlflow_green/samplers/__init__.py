"""Hardware samplers: one module per back end behind the :class:`Sampler` Protocol.

``select(spec)`` picks one sampler per component (``gpu``, ``cpu``, ``ram``); ``diagnose()``
explains the choice (``mlflow-green doctor``). Vendor libraries are imported lazily, and
every back end takes its vendor module or file root as an argument so fakes can be passed in.
"""

from __future__ import annotations

from mlflow_green.samplers._base import (
    COMPONENTS,
    METHOD_COUNTER,
    METHOD_ESTIMATE,
    METHOD_NONE,
    METHOD_POWER,
    METHOD_RAPL,
    METHOD_SIMULATED,
    Component,
    ComponentEnergy,
    DeviceInfo,
    Measurement,
    Sampler,
    SamplerBase,
)
from mlflow_green.samplers._select import Diagnosis, SamplerSpec, diagnose, parse_spec, select
from mlflow_green.samplers.amd import AmdGpuSampler, amd_is_available
from mlflow_green.samplers.estimate import (
    CpuEstimateSampler,
    RamEstimateSampler,
    estimate_is_available,
)
from mlflow_green.samplers.null import NullSampler
from mlflow_green.samplers.nvml import NvmlGpuSampler, nvml_is_available
from mlflow_green.samplers.rapl import RaplSampler, rapl_is_available
from mlflow_green.samplers.replay import ReplaySampler, Trace, load_trace, write_trace
from mlflow_green.samplers.simulated import SimulatedGpuSampler

__all__ = [
    "COMPONENTS",
    "METHOD_COUNTER",
    "METHOD_ESTIMATE",
    "METHOD_NONE",
    "METHOD_POWER",
    "METHOD_RAPL",
    "METHOD_SIMULATED",
    "AmdGpuSampler",
    "Component",
    "ComponentEnergy",
    "CpuEstimateSampler",
    "DeviceInfo",
    "Diagnosis",
    "Measurement",
    "NullSampler",
    "NvmlGpuSampler",
    "RamEstimateSampler",
    "RaplSampler",
    "ReplaySampler",
    "Sampler",
    "SamplerBase",
    "SamplerSpec",
    "SimulatedGpuSampler",
    "Trace",
    "amd_is_available",
    "diagnose",
    "estimate_is_available",
    "load_trace",
    "nvml_is_available",
    "parse_spec",
    "rapl_is_available",
    "select",
    "write_trace",
]
