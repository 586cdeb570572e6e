"""Wrapping the selected samplers in their share samplers (``select(share=...)``)."""

from __future__ import annotations

import logging

from mlflow_green import _settings
from mlflow_green.errors import SamplerError
from mlflow_green.samplers._base import METHOD_ESTIMATE, METHOD_RAPL, Sampler

__all__ = ["apply_share"]

_logger = logging.getLogger("mlflow_green.samplers")


def apply_share(sampler: Sampler, why: str, mode: str) -> tuple[Sampler, str]:
    """``sampler`` wrapped for ``mode`` (``on`` or ``auto``), or unchanged where it does not apply.

    Only real measurements are shared: NVML GPUs, and RAPL or the estimate for CPU and RAM
    (simulated and replayed figures are not this machine's). A share that cannot be set up
    leaves the whole-device figure, with the reason logged (raised in strict mode).
    """
    try:
        if sampler.component in ("cpu", "ram") and sampler.method in (METHOD_RAPL, METHOD_ESTIMATE):
            from mlflow_green.samplers.share import HostShareSampler

            shared: Sampler = HostShareSampler(sampler)
            return shared, f"{why}; {mode} share: this process tree's part of the machine"
        if sampler.component == "gpu":
            from mlflow_green.samplers.nvml import NvmlGpuSampler

            if not isinstance(sampler, NvmlGpuSampler):
                return sampler, why
            from mlflow_green.samplers.gpu_share import GpuShareSampler, foreign_gpu_processes
            from mlflow_green.samplers.share import ProcessTree

            if mode == "auto" and not any(sampler.mig_instances):
                tree = ProcessTree()
                try:
                    others = foreign_gpu_processes(sampler, tree.read().pids)
                finally:
                    tree.close()
                if not others:
                    return sampler, f"{why}; auto share: no other process on the GPU"
                why = f"{why}; auto share: other processes on the GPU (pid {others[0]}...)"
            return GpuShareSampler(sampler), why
    except SamplerError as exc:
        if _settings.strict():
            raise
        _logger.warning("mlflow_green: the %s share is not available (%s); the whole device is charged", sampler.component, exc)
    return sampler, why
