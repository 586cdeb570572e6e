"""One epoch's numbers: from measured energy to the metric schema, cumulative totals included.

The arithmetic is the accounting layer's (operational, embodied, projection, accuracy per
kg); this module only keeps the running totals of a run and names the results with the
schema's keys.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from mlflow_green.tracking import schema
from mlflow_green.tracking.resume import ResumePoint

__all__ = ["EpochEnergy", "EpochRecord", "EpochTable", "Ledger"]


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


# The floats of a record kept per epoch by EpochTable. energy_kwh, total_co2eq_kg,
# cum_total_co2eq_kg and embodied_share are recomputed from them exactly as Ledger.add does;
# the cumulative sums are kept every _CHECKPOINT epochs and re-added from there (the same
# additions in the same order, so the same floats).
_STORED = (
    "start_unix_s",
    "epoch_seconds",
    "gpu_energy_kwh",
    "cpu_energy_kwh",
    "ram_energy_kwh",
    "gpu_power_w",
    "intensity_g_per_kwh",
    "co2eq_kg",
    "embodied_kg",
    "accuracy",
    "accuracy_per_kg",
    "projected_total_co2eq_kg",
    "projected_energy_kwh",
)
_CUMULATIVE = ("cum_energy_kwh", "cum_co2eq_kg", "cum_embodied_kg")
_CHECKPOINT = 64
_OPTIONAL = ("accuracy", "accuracy_per_kg", "projected_total_co2eq_kg", "projected_energy_kwh")
_FLAG = {name: 1 << i for i, name in enumerate(_OPTIONAL)}


def _same(a: float, b: float) -> bool:
    """Bitwise-equal floats (NaN equals NaN, -0.0 differs from 0.0)."""
    if a != a:
        return b != b
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


_CHUNK = 4096


class _Chunked:
    """A growing sequence of doubles in fixed 32 kB blocks: appending never moves what is
    there (a contiguous array's reallocations leave holes in the heap that RSS keeps)."""

    __slots__ = ("_chunks", "_n")

    def __init__(self, values: Iterable[float] = ()) -> None:
        self._chunks: list[array[float]] = []
        self._n = 0
        for value in values:
            self.append(value)

    def __len__(self) -> int:
        return self._n

    def append(self, value: float) -> None:
        at = self._n % _CHUNK
        if at == 0:
            self._chunks.append(array("d", bytes(8 * _CHUNK)))
        self._chunks[-1][at] = value
        self._n += 1

    def extend(self, values: Iterable[float]) -> None:
        for value in values:
            self.append(value)

    def __getitem__(self, index: int) -> float:
        return self._chunks[index // _CHUNK][index % _CHUNK]

    def __setitem__(self, index: int, value: float) -> None:
        self._chunks[index // _CHUNK][index % _CHUNK] = value

    def span(self, start: int, stop: int) -> list[float]:
        return [self[i] for i in range(start, stop)]

    def __iter__(self) -> Iterator[float]:
        left = self._n
        for chunk in self._chunks:
            take = min(left, _CHUNK)
            yield from chunk[:take]
            left -= take


class _Column:
    """A column of doubles that costs nothing while every value is the same (a fixed
    intensity, no GPU, no projection) and 8 bytes per row once they differ."""

    __slots__ = ("_const", "_n", "_values")

    def __init__(self) -> None:
        self._const = 0.0
        self._n = 0
        self._values: _Chunked | None = None

    def __len__(self) -> int:
        return self._n if self._values is None else len(self._values)

    def append(self, value: float) -> None:
        if self._values is not None:
            self._values.append(value)
        elif self._n == 0 or _same(value, self._const):
            self._const = value if self._n == 0 else self._const
            self._n += 1
        else:
            self._values = _Chunked(self._const for _ in range(self._n))
            self._values.append(value)

    def __getitem__(self, index: int) -> float:
        return self._const if self._values is None else self._values[index]

    def __setitem__(self, index: int, value: float) -> None:
        if self._values is None:
            if _same(value, self._const):
                return
            self._values = _Chunked(self._const for _ in range(self._n))
        self._values[index] = value

    def total(self) -> float:
        """The sum in row order, as ``sum()`` over the records adds."""
        if self._values is not None:
            return sum(self._values)
        out: float = 0  # an int 0 first, as sum() starts
        for _ in range(self._n):
            out += self._const
        return float(out)


class EpochTable(Sequence[EpochRecord]):
    """The records of a run, kept compactly: one column of doubles per field, ~100 bytes per
    epoch at most (instead of ~3 kB of objects); indexing rebuilds the :class:`EpochRecord`.

    The user's metrics of each epoch are kept as their values plus a shared tuple of keys.
    """

    def __init__(self, first_epoch: int = 0) -> None:
        # The epoch (MLflow step) of the first row: > 0 on a resumed run.
        self.first_epoch = first_epoch
        self._cols: dict[str, _Column] = {name: _Column() for name in _STORED}
        self._flags = bytearray()
        self._cum_checkpoints: dict[str, array[float]] = {name: array("d") for name in _CUMULATIVE}
        self._device_kwh = _Chunked()
        self._device_count = _Column()
        self._device_end: array[int] | None = None  # only once the device count varies
        self._extra_values = _Chunked()
        self._extra_layout = _Column()
        self._extra_end: array[int] | None = None  # only once the user's metric keys vary
        self._layouts: list[tuple[str, ...]] = []
        self._layout_ids: dict[tuple[str, ...], int] = {}
        # append (training thread) and set_accuracy (logger thread) may both turn a constant
        # column into stored values.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._flags)

    def append(self, record: EpochRecord) -> None:
        with self._lock:
            self._append(record)

    def _append(self, record: EpochRecord) -> None:
        n = len(self)
        flags = 0
        for name in _STORED:
            value = getattr(record, name)
            if name in _FLAG:
                if value is None:
                    value = math.nan
                else:
                    flags |= _FLAG[name]
            self._cols[name].append(float(value))
        if n % _CHECKPOINT == 0:
            for name in _CUMULATIVE:
                self._cum_checkpoints[name].append(float(getattr(record, name)))
        devices = tuple(record.per_device_kwh)
        self._device_kwh.extend(devices)
        self._device_count.append(float(len(devices)))
        if self._device_end is None and self._device_count._values is not None:
            # The device count just changed: from now on each row's end is kept.
            w0 = int(self._device_count[0])
            self._device_end = array("q", (w0 * (i + 1) for i in range(n)))
            self._device_end.append(len(self._device_kwh))
        elif self._device_end is not None:
            self._device_end.append(len(self._device_kwh))
        keys = tuple(record.extra_metrics)
        layout = self._layout_ids.get(keys)
        if layout is None:
            layout = self._layout_ids[keys] = len(self._layouts)
            self._layouts.append(keys)
        self._extra_values.extend(float(v) for v in record.extra_metrics.values())
        first_width = len(self._layouts[int(self._extra_layout[0])]) if n else len(keys)
        self._extra_layout.append(float(layout))
        if self._extra_end is None and self._extra_layout._values is not None:
            self._extra_end = array("q", (first_width * (i + 1) for i in range(n)))
            self._extra_end.append(len(self._extra_values))
        elif self._extra_end is not None:
            self._extra_end.append(len(self._extra_values))
        self._flags.append(flags)  # last: len() counts complete rows only

    def set_accuracy(self, index: int, accuracy: float | None, accuracy_per_kg: float | None) -> None:
        """Set an epoch's accuracy after the fact (read back from the run by the logger thread)."""
        with self._lock:
            self._set_accuracy(index, accuracy, accuracy_per_kg)

    def _set_accuracy(self, index: int, accuracy: float | None, accuracy_per_kg: float | None) -> None:
        flags = self._flags[index]
        for name, value in (("accuracy", accuracy), ("accuracy_per_kg", accuracy_per_kg)):
            if value is None:
                self._cols[name][index] = math.nan
                flags &= ~_FLAG[name]
            else:
                self._cols[name][index] = float(value)
                flags |= _FLAG[name]
        self._flags[index] = flags

    def column_sum(self, name: str) -> float:
        """The sum over epochs of a stored field, in epoch order (as a loop over records adds)."""
        return self._cols[name].total()

    def _span(self, index: int, width: _Column, ends: array[int] | None) -> tuple[int, int]:
        if ends is None:
            w = int(width[0]) if len(width) else 0
            return index * w, (index + 1) * w
        return (ends[index - 1] if index > 0 else 0), ends[index]

    def _cum_at(self, i: int) -> tuple[float, float, float]:
        c = self._cols
        k = i - i % _CHECKPOINT
        cp = self._cum_checkpoints
        at = k // _CHECKPOINT
        energy = cp["cum_energy_kwh"][at]
        co2eq = cp["cum_co2eq_kg"][at]
        embodied = cp["cum_embodied_kg"][at]
        for j in range(k + 1, i + 1):
            energy += c["gpu_energy_kwh"][j] + c["cpu_energy_kwh"][j] + c["ram_energy_kwh"][j]
            co2eq += c["co2eq_kg"][j]
            embodied += c["embodied_kg"][j]
        return energy, co2eq, embodied

    def _row(self, i: int, cum: tuple[float, float, float]) -> EpochRecord:
        c = self._cols
        flags = self._flags[i]
        opt = {n: (c[n][i] if flags & _FLAG[n] else None) for n in _OPTIONAL}
        gpu, cpu, ram = c["gpu_energy_kwh"][i], c["cpu_energy_kwh"][i], c["ram_energy_kwh"][i]
        co2eq, embodied = c["co2eq_kg"][i], c["embodied_kg"][i]
        cum_energy, cum_co2eq, cum_embodied = cum
        cum_total = cum_co2eq + cum_embodied
        d0, d1 = self._span(i, self._device_count, self._device_end)
        if self._extra_end is None:
            width = len(self._layouts[int(self._extra_layout[0])]) if self._layouts else 0
            e0, e1 = i * width, (i + 1) * width
        else:
            e0, e1 = (self._extra_end[i - 1] if i > 0 else 0), self._extra_end[i]
        keys = self._layouts[int(self._extra_layout[i])]
        return EpochRecord(
            epoch=self.first_epoch + i,
            start_unix_s=c["start_unix_s"][i],
            epoch_seconds=c["epoch_seconds"][i],
            energy_kwh=gpu + cpu + ram,
            gpu_energy_kwh=gpu,
            cpu_energy_kwh=cpu,
            ram_energy_kwh=ram,
            gpu_power_w=c["gpu_power_w"][i],
            per_device_kwh=tuple(self._device_kwh.span(d0, d1)),
            intensity_g_per_kwh=c["intensity_g_per_kwh"][i],
            co2eq_kg=co2eq,
            embodied_kg=embodied,
            total_co2eq_kg=co2eq + embodied,
            cum_energy_kwh=cum_energy,
            cum_co2eq_kg=cum_co2eq,
            cum_embodied_kg=cum_embodied,
            cum_total_co2eq_kg=cum_total,
            embodied_share=cum_embodied / cum_total if cum_total > 0 else 0.0,
            extra_metrics=dict(zip(keys, self._extra_values.span(e0, e1), strict=True)),
            **opt,
        )

    @overload
    def __getitem__(self, index: int) -> EpochRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[EpochRecord]: ...

    def __getitem__(self, index: int | slice) -> EpochRecord | list[EpochRecord]:
        n = len(self)
        if isinstance(index, slice):
            return [self._row(i, self._cum_at(i)) for i in range(*index.indices(n))]
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError("epoch record index out of range")
        return self._row(i, self._cum_at(i))

    def __iter__(self) -> Iterator[EpochRecord]:
        for i in range(len(self)):
            # Checkpoints every _CHECKPOINT rows: the walk from one costs a few additions.
            yield self._row(i, self._cum_at(i))

    def __repr__(self) -> str:
        return f"EpochTable({len(self)} epochs)"


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
        resume: ResumePoint | None = None,
    ) -> None:
        self.pue = pue
        self.embodied = embodied
        self.total_epochs = total_epochs
        # A resumed run continues the run's history: its steps, cumulative figures and sums,
        # and the projection over every epoch so far.
        self.resume = resume if resume is not None else ResumePoint()
        self.records = EpochTable(first_epoch=self.resume.next_epoch)
        self._projected_total: Any = None
        self._projected_energy: Any = None
        if total_epochs is not None:
            # Updated per epoch in O(log n): re-projecting from every epoch so far made a
            # 10,000-epoch run quadratic (tens of ms per epoch near its end).
            from mlflow_green.accounting.projection import RunningProjection

            self._projected_total = RunningProjection(total_epochs)
            self._projected_energy = RunningProjection(total_epochs)
            for total, energy in zip(self.resume.totals_kg, self.resume.energies_kwh, strict=True):
                self._projected_total.add(max(total, 0.0))
                self._projected_energy.add(max(energy, 0.0))
        self._cum_energy_kwh = self.resume.cum_energy_kwh
        self._cum_co2eq_kg = self.resume.cum_co2eq_kg
        self._cum_embodied_kg = self.resume.cum_embodied_kg

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
        epoch = self.records.first_epoch + len(self.records)
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

        acc_per_kg = _accuracy_per_kg(accuracy, cum_total)

        projected_total = projected_energy = None
        if self._projected_total is not None:
            self._projected_total.add(total_kg)
            self._projected_energy.add(energy_kwh)
            projected_total = float(self._projected_total.value)
            projected_energy = float(self._projected_energy.value)

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

    def set_accuracy(self, index: int, accuracy: float | None) -> float | None:
        """Give the ``index``-th epoch of this job its accuracy after the fact; its accuracy
        per kg (None when unknown)."""
        record_cum_total = self.records[index].cum_total_co2eq_kg
        acc_per_kg = _accuracy_per_kg(accuracy, record_cum_total)
        self.records.set_accuracy(index, accuracy, acc_per_kg)
        return acc_per_kg

    def totals(self) -> dict[str, float]:
        """Run totals with the schema's unit-suffixed names (no ``green/`` prefix); on a
        resumed run, of the whole run (earlier jobs included)."""
        cum_total = self.cum_total_co2eq_kg
        prior = self.resume.sums

        def summed(name: str) -> float:
            return prior.get(name, 0.0) + self.records.column_sum(name)

        return {
            "epochs": float(self.resume.prior_epochs + len(self.records)),
            "energy_kwh": self._cum_energy_kwh,
            "gpu_energy_kwh": summed("gpu_energy_kwh"),
            "cpu_energy_kwh": summed("cpu_energy_kwh"),
            "ram_energy_kwh": summed("ram_energy_kwh"),
            "co2eq_kg": self._cum_co2eq_kg,
            "embodied_kg": self._cum_embodied_kg,
            "total_co2eq_kg": cum_total,
            "embodied_share": self._cum_embodied_kg / cum_total if cum_total > 0 else 0.0,
            "seconds": summed("epoch_seconds"),
        }


def _accuracy_per_kg(accuracy: float | None, cum_total_kg: float) -> float | None:
    if accuracy is None or not math.isfinite(accuracy) or cum_total_kg <= 0:
        return None
    value = float(_acct().accuracy_per_kg(accuracy, cum_total_kg))
    return value if math.isfinite(value) else None
