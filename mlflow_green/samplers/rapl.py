"""CPU packages and DRAM through the Linux powercap sysfs tree (Intel RAPL, also AMD Zen).

Layout read (root default ``/sys/class/powercap``)::

    intel-rapl:0/            name = package-0   -> component cpu
    intel-rapl:0/intel-rapl:0:0   name = core   (inside the package: not added again)
    intel-rapl:0/intel-rapl:0:1   name = dram   -> component ram
    intel-rapl:1/            name = psys        (whole platform: skipped, it would double-count)
    intel-rapl-mmio:0/       name = package-0   (same package via MMIO: used only when the
                                                 MSR tree ``intel-rapl:*`` is absent)

Each zone has ``energy_uj`` (a counter in microjoules) that wraps at ``max_energy_range_uj``.
A wrap is handled when reads are less than one wrap period apart, so the sampler declares
``wrap_period_s`` (range / the zone's maximum power) and the meter reads it at least four
times per period from its thread. Since Linux 5.10 ``energy_uj`` is readable by root only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mlflow_green.errors import SamplerError, SamplerUnavailable
from mlflow_green.samplers._base import METHOD_RAPL, Component, DeviceInfo, SamplerBase
from mlflow_green.samplers._counter import CounterTracker

__all__ = [
    "DEFAULT_POWERCAP_ROOT",
    "RaplSampler",
    "RaplZone",
    "find_rapl_zones",
    "rapl_is_available",
]

DEFAULT_POWERCAP_ROOT = Path("/sys/class/powercap")
# The RAPL counters update about every millisecond.
RAPL_UPDATE_PERIOD_S = 0.001
# Used for the wrap period when a zone does not state its maximum power.
_FALLBACK_MAX_POWER_W = {"cpu": 500.0, "ram": 150.0}
_TOP = re.compile(r"^intel-rapl(-mmio)?:(\d+)$")
_SUB = re.compile(r"^intel-rapl(-mmio)?:(\d+):(\d+)$")
PERMISSION_HINT = (
    "run `sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "/sys/class/powercap/intel-rapl:*/intel-rapl:*/energy_uj` or run as root"
)


@dataclass(frozen=True)
class RaplZone:
    """One powercap zone with an energy counter."""

    path: Path
    name: str
    component: Component
    max_range_uj: float
    max_power_w: float


def _read(path: Path) -> str:
    return path.read_text().strip()


def _zone(path: Path, component: Component) -> RaplZone:
    name = _read(path / "name")
    max_range = float(_read(path / "max_energy_range_uj"))
    max_power_w = _FALLBACK_MAX_POWER_W[component]
    try:
        stated = float(_read(path / "constraint_0_max_power_uw")) / 1e6
        if stated > 0:
            max_power_w = max(stated, 1.0)
    except (OSError, ValueError):
        pass
    return RaplZone(
        path=path, name=name, component=component, max_range_uj=max_range, max_power_w=max_power_w
    )


def find_rapl_zones(root: str | Path | None = None) -> tuple[list[RaplZone], list[RaplZone], str]:
    """Package zones (cpu), DRAM zones (ram), and a note on what was found or missing.

    Unreadable ``energy_uj`` files raise SamplerUnavailable naming the fix.
    """
    base = Path(root) if root is not None else DEFAULT_POWERCAP_ROOT
    if not base.is_dir():
        return [], [], f"no RAPL files under {base}"
    tops: dict[str, list[Path]] = {"msr": [], "mmio": []}
    for entry in sorted(base.iterdir()):
        m = _TOP.match(entry.name)
        if m:
            tops["mmio" if m.group(1) else "msr"].append(entry)
    chosen = tops["msr"] or tops["mmio"]
    if not chosen:
        return [], [], f"no RAPL files under {base}"
    packages: list[RaplZone] = []
    dram: list[RaplZone] = []
    try:
        for top in chosen:
            name = _read(top / "name")
            if name.startswith("package"):
                packages.append(_zone(top, "cpu"))
            elif name == "dram":
                dram.append(_zone(top, "ram"))
            for sub in sorted(top.iterdir()):
                if _SUB.match(sub.name) and _read(sub / "name") == "dram":
                    dram.append(_zone(sub, "ram"))
        for zone in packages + dram:
            _read(zone.path / "energy_uj")
    except PermissionError as exc:
        raise SamplerUnavailable(
            f"RAPL files under {base} are not readable ({exc.filename}): {PERMISSION_HINT}"
        ) from exc
    except (OSError, ValueError) as exc:
        raise SamplerUnavailable(f"RAPL files under {base} are malformed: {exc}") from exc
    found = ", ".join(z.path.name for z in packages + dram)
    return packages, dram, f"RAPL zones under {base}: {found or 'none with energy'}"


def rapl_is_available(
    component: Component = "cpu", root: str | Path | None = None
) -> tuple[bool, str]:
    """Whether RAPL can meter ``component`` (cpu: package zones, ram: dram zones)."""
    try:
        packages, dram, note = find_rapl_zones(root)
    except SamplerUnavailable as exc:
        return False, str(exc)
    zones = packages if component == "cpu" else dram
    if zones:
        return True, note
    if note.startswith("no RAPL files"):
        return False, note
    kind = "package" if component == "cpu" else "dram"
    return False, f"RAPL has no {kind} domain here ({note})"


class RaplSampler(SamplerBase):
    """Energy counter of RAPL package zones (``component="cpu"``) or DRAM zones (``"ram"``)."""

    def __init__(self, component: Component = "cpu", *, root: str | Path | None = None) -> None:
        if component not in ("cpu", "ram"):
            raise SamplerUnavailable(f"RAPL meters cpu or ram, not {component!r}")
        packages, dram, note = find_rapl_zones(root)
        zones = packages if component == "cpu" else dram
        if not zones:
            raise SamplerUnavailable(
                f"RAPL cannot meter {component}: {note}; use the estimate (MLFLOW_GREEN_SAMPLER=auto)"
            )
        self.component: Component = component
        self._zones = zones
        self._devices = tuple(
            DeviceInfo(index=i, name=f"{z.path.name} ({z.name})") for i, z in enumerate(zones)
        )
        self._tracker = CounterTracker(
            [f"RAPL {z.path.name}" for z in zones], wrap_at=[z.max_range_uj for z in zones]
        )
        self._wrap_period_s = min(z.max_range_uj / 1e6 / z.max_power_w for z in zones)
        self.description = f"RAPL powercap counters: {', '.join(d.name for d in self._devices)}"

    @property
    def method(self) -> str:
        return METHOD_RAPL

    @property
    def update_period_s(self) -> float:
        return RAPL_UPDATE_PERIOD_S

    @property
    def wrap_period_s(self) -> float:
        """Shortest time in which a counter can wrap; reads must come more often."""
        return self._wrap_period_s

    def read_energy_j(self) -> tuple[float, ...]:
        raws = []
        for zone in self._zones:
            try:
                raws.append(float(_read(zone.path / "energy_uj")))
            except PermissionError as exc:
                raise SamplerError(
                    f"{zone.path / 'energy_uj'} is not readable: {PERMISSION_HINT}"
                ) from exc
            except (OSError, ValueError) as exc:
                raise SamplerError(f"RAPL read failed on {zone.path.name}: {exc}") from exc
        return tuple(uj / 1e6 for uj in self._tracker.update(raws))

    def read_power_w(self) -> tuple[float, ...]:
        raise SamplerError("RAPL is an energy counter; it has no power reading")

    def drain_notes(self) -> tuple[str, ...]:
        return self._tracker.drain_notes()

    def close(self) -> None:
        return None
