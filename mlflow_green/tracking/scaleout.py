"""A tracker's scale-out state: what this rank measures, its node, and the epoch's extra figures.

Kept apart from the tracker so that the tracker needs a few calls:

- :meth:`ScaleOut.components` — the components this rank's meter measures: every rank measures
  its own process tree's share of the host (the default), or, with ``share=off`` on a
  distributed job, local rank 0 alone measures the whole node's CPU and RAM;
- :meth:`ScaleOut.gather_inputs` — once at the start, a collective: every node's location, intensity
  source, intensity and PUE (``green.location`` = ``mixed`` and ``green.location.nodes``);
- :meth:`ScaleOut.reduce` — the epoch of the whole job (:func:`reduce_epoch`, a collective),
  its CO2eq the sum over nodes, carrying the shares;
- :meth:`ScaleOut.metrics` — ``green/gpu_share``, ``green/cpu_share`` and
  ``green/node{i}_energy_kwh`` of the epoch.
"""

from __future__ import annotations

from typing import Any

from mlflow_green.tracking import schema
from mlflow_green.tracking.distributed import (
    DistInfo,
    NodeSite,
    ReducedEpoch,
    gather_nodes,
    location_tags,
    reduce_epoch,
)
from mlflow_green.tracking.record import EpochEnergy

__all__ = ["ScaleOut"]


class ScaleOut:
    """Scale-out wiring of one tracker (see module docstring)."""

    def __init__(self, info: DistInfo, share: bool | str | None = None) -> None:
        from mlflow_green.samplers.share import share_mode

        self.info = info
        self.share_mode = share_mode(share)
        self.sites: list[NodeSite] = []
        self.node_index = 0

    def components(self) -> tuple[str, ...]:
        """The components this rank measures."""
        if self.info.world_size > 1 and not self.info.is_local_zero and self.share_mode == "off":
            return ("gpu",)  # the whole node's CPU and RAM are local rank 0's
        return ("gpu", "cpu", "ram")

    def gather(self, *, location: str, intensity_source: str, intensity_g_per_kwh: float, pue: float) -> None:
        """Every node's site (a collective on a distributed job; every rank must call it)."""
        if not self.info.has_group:
            return
        self.sites, self.node_index = gather_nodes(
            self.info,
            location=location,
            intensity_source=intensity_source,
            intensity_g_per_kwh=intensity_g_per_kwh,
            pue=pue,
        )

    def gather_inputs(self, inputs: Any) -> None:
        """:meth:`gather` from a run's resolved inputs (``tracking.inputs.RunInputs``)."""
        if not self.info.has_group:
            return
        source = inputs.intensity_source
        answer = source.intensity(None)
        self.gather(
            location=str(getattr(inputs.location, "label", inputs.location)),
            intensity_source=str(getattr(source, "name", None) or answer.source),
            intensity_g_per_kwh=float(answer.g_per_kwh),
            pue=float(inputs.pue),
        )

    @property
    def multi_node(self) -> bool:
        return len(self.sites) > 1

    def tags(self) -> dict[str, str]:
        """The location tags of a multi-node job (they replace the single-node ones)."""
        return location_tags(self.sites) if self.multi_node else {}

    def reduce(
        self,
        measurement: Any,
        local: EpochEnergy,
        *,
        intensity_g_per_kwh: float | None,
        accuracy: float | None,
        degraded: bool,
        pue: float,
    ) -> ReducedEpoch | None:
        """The job's epoch from every rank's (a collective); None without a process group."""
        if not self.info.has_group:
            return None
        return reduce_epoch(
            local,
            self.info,
            intensity_g_per_kwh=intensity_g_per_kwh,
            accuracy=accuracy,
            degraded=degraded,
            **self.reduce_options(measurement, pue),
        )

    def reduce_options(self, measurement: Any, pue: float) -> dict[str, Any]:
        """Keyword arguments of ``reduce_epoch`` for this rank's epoch ``measurement``."""
        options: dict[str, Any] = {
            "gpu_share": getattr(measurement.gpu, "share", None),
            "cpu_share": getattr(measurement.cpu, "share", None),
        }
        if self.multi_node:
            options["pue"] = pue
            options["node"] = (self.node_index, len(self.sites))
        return options

    def metrics(self, measurement: Any, reduced: ReducedEpoch | None) -> dict[str, float]:
        """The epoch's scale-out metrics: the job's shares and each node's energy."""
        if reduced is not None:
            gpu, cpu = reduced.gpu_share, reduced.cpu_share
        else:
            gpu = getattr(measurement.gpu, "share", None)
            cpu = getattr(measurement.cpu, "share", None)
        out: dict[str, float] = {}
        if gpu is not None:
            out[schema.GPU_SHARE] = float(gpu)
        if cpu is not None:
            out[schema.CPU_SHARE] = float(cpu)
        if reduced is not None and self.multi_node:
            for i, kwh in enumerate(reduced.per_node_kwh):
                out[schema.node_energy_key(i)] = float(kwh)
        return out
