"""Constant-power simulated GPUs (method ``simulated``): ``MLFLOW_GREEN_SAMPLER=simulated:300x2``.

Energy is ``watts x elapsed time`` on a monotonic clock, read like a counter, so no thread
runs. Every number it produces is tagged ``simulated``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mlflow_green.errors import ConfigError
from mlflow_green.samplers._base import METHOD_SIMULATED, Component, DeviceInfo, SamplerBase

__all__ = ["SimulatedGpuSampler"]


class SimulatedGpuSampler(SamplerBase):
    """``devices`` GPUs drawing ``watts`` each, from construction on.

    Args:
        watts: constant power of each simulated GPU (>= 0).
        devices: how many GPUs (>= 1).
        clock: a monotonic clock in seconds (tests may inject one).
        component: the component simulated; ``gpu`` unless a test wants another.
    """

    def __init__(
        self,
        watts: float,
        devices: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        component: Component = "gpu",
    ) -> None:
        if not watts >= 0:
            raise ConfigError(f"simulated power must be at least 0 W, not {watts!r}")
        if devices < 1:
            raise ConfigError(f"simulated device count must be at least 1, not {devices!r}")
        self.watts = float(watts)
        self.component: Component = component
        self._clock = clock
        self._t0 = clock()
        self._devices = tuple(
            DeviceInfo(
                index=i,
                name=f"simulated {self.watts:g} W {component.upper()}",
                uuid=f"simulated-{i}",
            )
            for i in range(devices)
        )
        self.description = f"simulated: {devices} x constant {self.watts:g} W"

    @property
    def method(self) -> str:
        return METHOD_SIMULATED

    def read_energy_j(self) -> tuple[float, ...]:
        energy_j = self.watts * max(self._clock() - self._t0, 0.0)
        return tuple(energy_j for _ in self._devices)

    def read_power_w(self) -> tuple[float, ...]:
        return tuple(self.watts for _ in self._devices)

    def close(self) -> None:
        return None
