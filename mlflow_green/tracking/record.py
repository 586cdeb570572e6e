"""One epoch's numbers: from measured energy to the metric schema, cumulative totals included.

The arithmetic is the accounting layer's (operational, embodied, projection, accuracy per
kg); this module only keeps the running totals of a run and names the results with the
schema's keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlflow_green.tracking import schema

__all__ = ["EpochEnergy", "EpochRecord", "Ledger"]


@dataclass(frozen=True)
class EpochEnergy:
    """The measured energy of one epoch, summed over every process of the job."""

    start_unix_s: float
    duration_s: float
    gpu_energy_kwh: float = 0.0
    cpu_energy_kwh: float = 0.0
    ram_energy_kwh: float = 0.0
    gpu_power_w: float = 0.0
    per_device_kwh: tuple[float, ...] = ()
    gpu_count: int = 0

    @property
    def energy_kwh(self) -> float:
        return self.gpu_energy_kwh + self.cpu_energy_kwh + self.ram_energy_kwh


@dataclass(frozen=True)
class EpochRecord:
    """Everything logged for one epoch, at ``step = epoch``."""

    epoch: int
    start_unix_s: float
    epoch_seconds: float
    energy_kwh: float
    gpu_energy_kwh: float
    cpu_energy_kwh: float
    ram_energy_kwh: float
    gpu_power_w: float
    per_device_kwh: tuple[float, ...]
    intensity_g_per_kwh: float
    co2eq_kg: float
    embodied_kg: float
    total_co2eq_kg: float
    cum_energy_kwh: float
    cum_co2eq_kg: float
    cum_embodied_kg: float
    cum_total_co2eq_kg: float
    embodied_share: float
    accuracy: float | None = None
    accuracy_per_kg: float | None = None
    projected_total_co2eq_kg: float | None = None
    projected_energy_kwh: float | None = None
    extra_metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def step(self) -> int:
        return self.epoch

    def green_metrics(self) -> dict[str, float]:
        """The ``green/`` keys of this epoch (optional ones only when known)."""
        out = {
            schema.ENERGY_KWH: self.energy_kwh,
            schema.GPU_ENERGY_KWH: self.gpu_energy_kwh,
            schema.CPU_ENERGY_KWH: self.cpu_energy_kwh,
            schema.RAM_ENERGY_KWH: self.ram_energy_kwh,
            schema.GPU_POWER_W: self.gpu_power_w,
            schema.INTENSITY_G_PER_KWH: self.intensity_g_per_kwh,
            schema.CO2EQ_KG: self.co2eq_kg,
            schema.EMBODIED_KG: self.embodied_kg,
            schema.TOTAL_CO2EQ_KG: self.total_co2eq_kg,
            schema.EPOCH_SECONDS: self.epoch_seconds,
            schema.CUM_ENERGY_KWH: self.cum_energy_kwh,
            schema.CUM_CO2EQ_KG: self.cum_co2eq_kg,
            schema.CUM_EMBODIED_KG: self.cum_embodied_kg,
            schema.CUM_TOTAL_CO2EQ_KG: self.cum_total_co2eq_kg,
            schema.EMBODIED_SHARE: self.embodied_share,
        }
        if self.accuracy_per_kg is not None:
            out[schema.ACCURACY_PER_KG] = self.accuracy_per_kg
        if self.projected_total_co2eq_kg is not None:
            out[schema.PROJECTED_TOTAL_CO2EQ_KG] = self.projected_total_co2eq_kg
        if self.projected_energy_kwh is not None:
            out[schema.PROJECTED_ENERGY_KWH] = self.projected_energy_kwh
        if len(self.per_device_kwh) > 1:
            for i, kwh in enumerate(self.per_device_kwh):
                out[schema.gpu_device_energy_key(i)] = kwh
        return out

    def metrics(self) -> dict[str, float]:
        """The whole batch of this epoch: the user's metrics given to the tracker, then ours."""
        return {**{k: float(v) for k, v in self.extra_metrics.items()}, **self.green_metrics()}

    def to_row(self) -> dict[str, Any]:
        """A JSON-able row for the report."""
        row: dict[str, Any] = {"epoch": self.epoch, "start_unix_s": self.start_unix_s}
        for key, value in self.green_metrics().items():
            row[key.removeprefix(schema.PREFIX)] = value
        if self.accuracy is not None:
            row["accuracy"] = self.accuracy
        return row


def _acct() -> Any:
    import mlflow_green.accounting as accounting

    return accounting


class Ledger:
    """Running totals of one run; turns each epoch's energy into its :class:`EpochRecord`."""

    def __init__(
        self,
        *,
        pue: float,
        embodied: Any | None = None,
        total_epochs: int | None = None,
    ) -> None:
        self.pue = pue
        self.embodied = embodied
        self.total_epochs = total_epochs
        self.records: list[EpochRecord] = []
        self._cum_energy_kwh = 0.0
        self._cum_co2eq_kg = 0.0
        self._cum_embodied_kg = 0.0

    @property
    def cum_total_co2eq_kg(self) -> float:
        return self._cum_co2eq_kg + self._cum_embodied_kg

    def add(
        self,
        energy: EpochEnergy,
        *,
        intensity_g_per_kwh: float,
        accuracy: float | None = None,
        extra_metrics: Mapping[str, float] | None = None,
    ) -> EpochRecord:
        acct = _acct()
        epoch = len(self.records)
        energy_kwh = energy.energy_kwh
        co2eq_kg = float(acct.operational_kg(energy_kwh, self.pue, intensity_g_per_kwh))
        embodied_kg = 0.0
        if self.embodied is not None:
            # None on a CPU-only machine: the whole node is charged.
            devices_used = energy.gpu_count if energy.gpu_count > 0 else None
            embodied_kg = float(acct.embodied_kg(self.embodied, energy.duration_s, devices_used))
        total_kg = co2eq_kg + embodied_kg
        self._cum_energy_kwh += energy_kwh
        self._cum_co2eq_kg += co2eq_kg
        self._cum_embodied_kg += embodied_kg
        cum_total = self.cum_total_co2eq_kg
        share = self._cum_embodied_kg / cum_total if cum_total > 0 else 0.0

        acc_per_kg = None
        if accuracy is not None and math.isfinite(accuracy) and cum_total > 0:
            value = float(acct.accuracy_per_kg(accuracy, cum_total))
            acc_per_kg = value if math.isfinite(value) else None

        projected_total = projected_energy = None
        if self.total_epochs is not None:
            totals = [r.total_co2eq_kg for r in self.records] + [total_kg]
            energies = [r.energy_kwh for r in self.records] + [energy_kwh]
            projected_total = _projection_value(acct.project_total(totals, self.total_epochs))
            projected_energy = _projection_value(acct.project_total(energies, self.total_epochs))

        record = EpochRecord(
            epoch=epoch,
            start_unix_s=energy.start_unix_s,
            epoch_seconds=energy.duration_s,
            energy_kwh=energy_kwh,
            gpu_energy_kwh=energy.gpu_energy_kwh,
            cpu_energy_kwh=energy.cpu_energy_kwh,
            ram_energy_kwh=energy.ram_energy_kwh,
            gpu_power_w=energy.gpu_power_w,
            per_device_kwh=tuple(energy.per_device_kwh),
            intensity_g_per_kwh=float(intensity_g_per_kwh),
            co2eq_kg=co2eq_kg,
            embodied_kg=embodied_kg,
            total_co2eq_kg=total_kg,
            cum_energy_kwh=self._cum_energy_kwh,
            cum_co2eq_kg=self._cum_co2eq_kg,
            cum_embodied_kg=self._cum_embodied_kg,
            cum_total_co2eq_kg=cum_total,
            embodied_share=share,
            accuracy=accuracy,
            accuracy_per_kg=acc_per_kg,
            projected_total_co2eq_kg=projected_total,
            projected_energy_kwh=projected_energy,
            extra_metrics=dict(extra_metrics or {}),
        )
        self.records.append(record)
        return record

    def totals(self) -> dict[str, float]:
        """Run totals with the schema's unit-suffixed names (no ``green/`` prefix)."""
        cum_total = self.cum_total_co2eq_kg
        return {
            "epochs": float(len(self.records)),
            "energy_kwh": self._cum_energy_kwh,
            "gpu_energy_kwh": sum(r.gpu_energy_kwh for r in self.records),
            "cpu_energy_kwh": sum(r.cpu_energy_kwh for r in self.records),
            "ram_energy_kwh": sum(r.ram_energy_kwh for r in self.records),
            "co2eq_kg": self._cum_co2eq_kg,
            "embodied_kg": self._cum_embodied_kg,
            "total_co2eq_kg": cum_total,
            "embodied_share": self._cum_embodied_kg / cum_total if cum_total > 0 else 0.0,
            "seconds": sum(r.epoch_seconds for r in self.records),
        }


def _projection_value(projection: Any) -> float:
    value = getattr(projection, "value", projection)
    return float(value)
