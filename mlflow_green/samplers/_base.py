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

    @property
    def wrap_period_s(self) -> float:
        """Seconds after which the hardware counter wraps (0: it does not); the meter then
        reads it at least four times per period."""
        ...

    @property
    def notes(self) -> tuple[str, ...]:
        """Standing remarks on the method (e.g. which counter), shown with each measurement."""
        ...

    @property
    def problem(self) -> str | None:
        """Why the component could not be opened (the run is then degraded), else None."""
        ...

    def drain_notes(self) -> tuple[str, ...]:
        """Remarks that arose since the last call (a counter reset...), each returned once."""
        ...


class SamplerBase:
    """Defaults for the optional members of :class:`Sampler`: derive a back end from it and
    define the component, method, ``_devices`` and reads.

    A sampler given to the meter must have every member of the Protocol; this class gives
    ``devices`` from ``self._devices``, no polling, ``wrap_period_s = 0`` (no wrap), no
    ``notes``, no ``problem``, nothing to drain, an ``update_period_s`` of 0 (unknown) and a
    ``close`` that does nothing.
    """

    # Set when the hardware is there but could not be opened (see Sampler.problem).
    problem: str | None = None
    # What a back end measures, set by its constructor (see Sampler.devices).
    _devices: tuple[DeviceInfo, ...] = ()

    _needs_polling: bool = False

    @property
    def devices(self) -> tuple[DeviceInfo, ...]:
        """The devices measured, in the order of the readings."""
        return self._devices

    @devices.setter
    def devices(self, value: tuple[DeviceInfo, ...]) -> None:
        self._devices = tuple(value)

    @property
    def needs_polling(self) -> bool:
        """By default a counter or a model read at the window's edges: no polling thread."""
        return self._needs_polling

    @needs_polling.setter
    def needs_polling(self, value: bool) -> None:
        self._needs_polling = bool(value)

    @property
    def wrap_period_s(self) -> float:
        """No wrap."""
        return 0.0

    @property
    def notes(self) -> tuple[str, ...]:
        """No standing remarks."""
        return ()

    @property
    def update_period_s(self) -> float:
        """Unknown."""
        return 0.0

    def drain_notes(self) -> tuple[str, ...]:
        """Nothing to report."""
        return ()

    def close(self) -> None:
        """Nothing to release."""


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
