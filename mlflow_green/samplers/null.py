"""The null sampler: a component this machine cannot measure (method ``none``, no devices)."""

from __future__ import annotations

from mlflow_green.samplers._base import METHOD_NONE, Component, SamplerBase

__all__ = ["NullSampler"]


class NullSampler(SamplerBase):
    """Measures nothing; ``reason`` says why the component is not measured."""

    def __init__(self, component: Component, reason: str = "", *, problem: str | None = None) -> None:
        self.component: Component = component
        self.reason = reason
        # Set when the hardware is there but could not be opened: the meter then reports the
        # run as degraded instead of letting a missing component pass for a measured zero.
        self.problem = problem
        self.description = f"not measured: {reason}" if reason else "not measured"

    @property
    def method(self) -> str:
        return METHOD_NONE

    def read_energy_j(self) -> tuple[float, ...]:
        return ()

    def read_power_w(self) -> tuple[float, ...]:
        return ()

    def close(self) -> None:
        return None
