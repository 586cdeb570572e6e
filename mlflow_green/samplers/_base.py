"""The sampler Protocol and the value types every back end returns.

A sampler reads one component (``gpu``, ``cpu`` or ``ram``) of this machine. It is either a
*counter* sampler (``needs_polling`` is False: ``read_energy_j`` returns monotonically
increasing cumulative joules per device, wrap-around already handled) or a *power* sampler
(``needs_polling`` is True: the meter's single background thread calls ``read_power_w`` at
its interval and integrates).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Component = Literal["gpu", "cpu", "ram"]
COMPONENTS: tuple[Component, ...] = ("gpu", "cpu", "ram")

# Method names as they appear in the ``green.method.*`` tags.
METHOD_COUNTER = "counter"
METHOD_POWER = "power"
METHOD_RAPL = "rapl"
METHOD_ESTIMATE = "estimate"
METHOD_SIMULATED = "simulated"
METHOD_NONE = "none"


@dataclass(frozen=True)
class DeviceInfo:
    """One device a sampler reads: its index as the sampler numbers it, its name, its id."""

    index: int
    name: str
    uuid: str | None = None


@runtime_checkable
class Sampler(Protocol):
    """What the meter needs from a hardware back end."""

    @property
    def component(self) -> Component: ...

    @property
    def method(self) -> str: ...

    @property
    def devices(self) -> tuple[DeviceInfo, ...]: ...

    @property
    def needs_polling(self) -> bool: ...

    @property
    def update_period_s(self) -> float:
        """How often the underlying counter or power value changes (0 when unknown)."""
        ...

    def read_energy_j(self) -> tuple[float, ...]:
        """Cumulative energy per device in joules since an arbitrary origin (counter samplers)."""
        ...

    def read_power_w(self) -> tuple[float, ...]:
        """Instantaneous power per device in watts (power samplers)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ComponentEnergy:
    """The energy of one component over one window."""

    component: Component
    method: str
    energy_kwh: float = 0.0
    per_device_kwh: tuple[float, ...] = ()
    mean_power_w: float = 0.0
    device_names: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # This process's share of the shared devices over the window (``share:<basis>`` methods):
    # energy_kwh / the whole devices' energy. None when the component is not shared.
    share: float | None = None

    @property
    def energy_j(self) -> float:
        return self.energy_kwh * 3.6e6


@dataclass(frozen=True)
class Measurement:
    """What a closed measurement window reports."""

    name: str
    start_unix_s: float
    duration_s: float
    gpu: ComponentEnergy = field(default_factory=lambda: ComponentEnergy("gpu", METHOD_NONE))
    cpu: ComponentEnergy = field(default_factory=lambda: ComponentEnergy("cpu", METHOD_NONE))
    ram: ComponentEnergy = field(default_factory=lambda: ComponentEnergy("ram", METHOD_NONE))
    problems: tuple[str, ...] = ()

    @property
    def energy_kwh(self) -> float:
        return self.gpu.energy_kwh + self.cpu.energy_kwh + self.ram.energy_kwh

    def component(self, name: Component) -> ComponentEnergy:
        return {"gpu": self.gpu, "cpu": self.cpu, "ram": self.ram}[name]
