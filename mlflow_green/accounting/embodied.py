"""Embodied (manufacturing) emissions of the hardware a job reserves — SCI's ``M``.

    M = TE × (TiR / EL) × (RR / ToR)

TE is the total embodied kgCO2eq of a piece of hardware, TiR the time reserved (the window's
duration), EL its expected lifetime, RR/ToR the share reserved. Each GPU is its own resource
(RR/ToR = 1 for each device used); the host node (CPUs, DRAM, board, chassis, storage) is one
resource shared by ``devices_per_node`` GPUs, so a job using ``d`` devices reserves
``d / devices_per_node`` of it. On a CPU-only machine the job reserves the whole node
(RR/ToR = 1): a training process occupies the machine it runs on.

Published per-GPU figures disagree by more than 3× (``data/embodied.csv``): 60 kg (EcoInfo's
Ecodiag, consumer-class card), 150 kg (Luccioni et al. 2022, BLOOM), 181 kg (the Hubblo
calculator's parametric figure for an A100 PCIe card, 2025 — modelled, not a teardown), 318 kg (Chien et al. 2023, host share included).
The ``default`` profile uses the 181 kg card-level figure plus Luccioni et al.'s 2,500 kg
node spread over 8 GPUs and a 6-year life: it is the most recent card-level model, it
counts the card only (so the node is not counted twice), and card + node share (~494 kg per
GPU slot) sits above the 318 kg all-in figure, erring on the side of not under-reporting.
Other profiles: ``luccioni2022``, ``chien2023``, ``ecodiag``; quantities a profile does not
publish come from ``default``. Any figure can be overridden.

No public LCA exists per model for H100, H200, B200, L4, L40S, MI300X…; those devices use the
profile's per-GPU figure, and an unknown device name uses it too with ``generic=True`` (the
``green.embodied_profile`` tag then ends in ``:generic``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

from mlflow_green import _settings
from mlflow_green.accounting import _data
from mlflow_green.errors import ConfigError

__all__ = [
    "DEFAULT_PROFILE",
    "SECONDS_PER_YEAR",
    "EmbodiedConfig",
    "Hardware",
    "embodied_config",
    "embodied_kg",
    "embodied_profiles",
    "lookup_hardware",
]

DEFAULT_PROFILE = "default"
CUSTOM_PROFILE = "custom"
SECONDS_PER_YEAR = 365.25 * 24 * 3600  # Julian year
GENERIC_GPU = "generic-gpu"
CPU_NODE = "cpu-node"


@dataclass(frozen=True)
class Hardware:
    """A row of ``data/hardware.csv``: a device model and its TDP."""

    key: str
    name: str
    tdp_w: float
    year: int
    source: str


@dataclass(frozen=True)
class EmbodiedConfig:
    """Everything needed to charge a window its embodied share.

    ``device_embodied_kg`` per GPU (0 on a CPU-only machine), ``node_embodied_kg`` per host
    node, ``devices_per_node`` GPUs sharing one node, ``lifetime_years`` the expected life.
    ``profile`` is the ``green.embodied_profile`` tag value: the data profile's name
    (``data_profile``), ``custom`` when a figure was overridden, with ``:generic`` appended
    when the device was not recognised (``generic`` True). ``device_low_kg``/``device_high_kg`` are the
    range of published per-device figures across profiles.
    """

    device: str
    device_key: str
    profile: str
    data_profile: str
    device_embodied_kg: float
    node_embodied_kg: float
    devices_per_node: int
    lifetime_years: float
    gpu_count: int
    generic: bool
    device_low_kg: float
    device_high_kg: float
    sources: tuple[str, ...] = ()
    # CPU-only: the fraction of the reference node the job's logical CPUs stand for (1 = whole).
    node_share: float = 1.0

    @property
    def tag(self) -> str:
        """The ``green.embodied_profile`` tag value, e.g. ``default`` or ``default:generic``."""
        return self.profile

    @property
    def cpu_only(self) -> bool:
        return self.device_key == CPU_NODE

    @property
    def per_device_slot_kg(self) -> float:
        """Embodied kg of one device plus its share of the node."""
        return self.device_embodied_kg + self.node_embodied_kg / self.devices_per_node


def _normalise(name: str) -> str:
    text = name.lower()
    text = re.sub(r"\b(nvidia|tesla|geforce|amd|instinct|radeon|tensor core gpu|gpu)\b", " ", text)
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return " ".join(text.split())


@cache
def _hardware() -> tuple[tuple[re.Pattern[str], Hardware], ...]:
    out = []
    for row in _data.rows("hardware.csv"):
        hw = Hardware(row["key"], row["name"], float(row["tdp_w"]), int(row["year"]), row["source"])
        out.append((re.compile(row["match"]), hw))
    return tuple(out)


def lookup_hardware(name: str) -> Hardware | None:
    """The hardware row for a device name as NVML/amdsmi or a user writes it, or None.

    ``"NVIDIA H100 80GB HBM3"``, ``"NVIDIA A100-SXM4-40GB"``, ``"Tesla T4"``,
    ``"NVIDIA GeForce RTX 4090"``, ``"AMD Instinct MI300X"``, ``"h100"``, ``"a100-80gb"``.
    Rows are tried in file order, most specific first.
    """
    norm = _normalise(name)
    if not norm:
        return None
    for hw in (h for _, h in _hardware()):
        if norm == _normalise(hw.key) or norm == _normalise(hw.name):
            return hw
    for pattern, hw in _hardware():
        if pattern.search(norm):
            return hw
    return None


@cache
def _figures() -> dict[tuple[str, str, str], tuple[float, str]]:
    """(device, profile, quantity) -> (value, "source (year)")."""
    return {
        (r["device"], r["profile"], r["quantity"]): (float(r["value"]), f"{r['source']} ({r['year']})")
        for r in _data.rows("embodied.csv")
    }


def embodied_profiles() -> tuple[str, ...]:
    """The profile names the data defines (``default`` first)."""
    names = sorted({p for (_, p, _) in _figures()} - {DEFAULT_PROFILE})
    return (DEFAULT_PROFILE, *names)


def _figure(device_keys: tuple[str, ...], profile: str, quantity: str) -> tuple[float, str]:
    for prof in (profile, DEFAULT_PROFILE):
        for key in device_keys:
            hit = _figures().get((key, prof, quantity))
            if hit is not None:
                return hit
    raise LookupError(f"no {quantity} for {device_keys} in profile {profile}")  # data bug


def _device_range(device_keys: tuple[str, ...]) -> tuple[float, float]:
    values = [_figure(device_keys, p, "embodied_kg")[0] for p in embodied_profiles()]
    return min(values), max(values)


def _override(raw: object, what: str, *, minimum: float, integer: bool = False) -> float:
    value = _settings.parse_float(raw, what, minimum=minimum)
    if integer and value != int(value):
        raise ConfigError(f"{what}={raw!r} must be a whole number")
    return value


class _DeviceFigures(NamedTuple):
    """A device's embodied figures from the profile's data (before overrides)."""

    device: str
    key: str
    generic: bool
    embodied_kg: float
    source: str
    low_kg: float
    high_kg: float
    lifetime_years: float
    lifetime_source: str
    devices_per_node: float


def _profile(profile: str | None) -> str:
    prof = (profile or DEFAULT_PROFILE).strip().lower()
    if prof not in embodied_profiles():
        raise ConfigError(
            f"unknown embodied profile {profile!r}{_data.hint(prof, embodied_profiles())}: use one of {', '.join(embodied_profiles())}"
        )
    return prof


def _device_figures(gpu_name: str | None, prof: str) -> _DeviceFigures:
    """The figures of the GPU named ``gpu_name``; None: a CPU-only machine (no device share)."""
    if gpu_name is None:
        life, life_src = _figure((CPU_NODE,), prof, "lifetime_years")
        return _DeviceFigures(
            "cpu", CPU_NODE, False, 0.0, "no GPU: the CPU server node carries all embodied emissions",
            0.0, 0.0, life, life_src, 1.0,
        )
    hw = lookup_hardware(gpu_name)
    key = hw.key if hw else GENERIC_GPU
    keys = (key, "gpu")
    dev_kg, dev_src = _figure(keys, prof, "embodied_kg")
    low, high = _device_range(keys)
    life, life_src = _figure(keys, prof, "lifetime_years")
    dpn = _figure(keys, prof, "devices_per_node")[0]
    return _DeviceFigures(gpu_name, key, hw is None, dev_kg, dev_src, low, high, life, life_src, dpn)


def embodied_config(
    gpu_name: str | None,
    *,
    gpu_count: int = 1,
    profile: str | None = None,
    device_embodied_kg: float | str | None = None,
    node_embodied_kg: float | str | None = None,
    devices_per_node: int | str | None = None,
    lifetime_years: float | str | None = None,
    cpu_threads: int | None = None,
) -> EmbodiedConfig:
    """The embodied-emission inputs for ``gpu_count`` devices named ``gpu_name``.

    ``gpu_name`` None or ``gpu_count`` 0 means a CPU-only machine. Its resource share
    (SCI ``RR/ToR``) is ``cpu_threads`` (the logical CPUs the job may use) over the reference
    node's logical CPUs, at most 1; None reserves the whole node. Overrides win over the
    profile; any override makes the profile ``custom``.
    Invalid overrides raise :class:`~mlflow_green.errors.ConfigError`.
    """
    prof = _profile(profile)
    count = int(_override(gpu_count, "gpu_count", minimum=0, integer=True))
    cpu_only = gpu_name is None or not str(gpu_name).strip() or count == 0
    fig = _device_figures(None if cpu_only else str(gpu_name), prof)
    device, key, generic = fig.device, fig.key, fig.generic
    dev_kg, dev_src, low, high = fig.embodied_kg, fig.source, fig.low_kg, fig.high_kg
    life, life_src, dpn_default = fig.lifetime_years, fig.lifetime_source, fig.devices_per_node
    node_kg, node_src = _figure((CPU_NODE,), prof, "embodied_kg")
    sources = [dev_src, node_src, life_src]
    node_share = 1.0
    if cpu_only and cpu_threads is not None:
        threads = _override(cpu_threads, "cpu_threads", minimum=1, integer=True)
        node_threads, threads_src = _figure((CPU_NODE,), prof, "logical_cpus")
        node_share = min(1.0, threads / node_threads)
        sources.append(threads_src)

    overridden = False
    if device_embodied_kg is not None:
        dev_kg = _override(device_embodied_kg, "device_embodied_kg", minimum=0.0)
        overridden = True
    if node_embodied_kg is not None:
        node_kg = _override(node_embodied_kg, "node_embodied_kg", minimum=0.0)
        overridden = True
    dpn = dpn_default
    if devices_per_node is not None:
        dpn = _override(devices_per_node, "devices_per_node", minimum=1, integer=True)
        overridden = True
    if lifetime_years is not None:
        life = _override(lifetime_years, "lifetime_years", minimum=0.0)
        if life <= 0:
            raise ConfigError(f"lifetime_years={lifetime_years!r} must be greater than 0")
        overridden = True
    return EmbodiedConfig(
        device=device,
        device_key=key,
        profile=(CUSTOM_PROFILE if overridden else prof) + (":generic" if generic else ""),
        data_profile=prof,
        device_embodied_kg=dev_kg,
        node_embodied_kg=node_kg,
        devices_per_node=int(dpn),
        lifetime_years=life,
        gpu_count=count,
        generic=generic,
        device_low_kg=low,
        device_high_kg=high,
        sources=tuple(dict.fromkeys(sources)),
        node_share=node_share,
    )


def embodied_kg(config: EmbodiedConfig, duration_s: float, devices_used: float | None = None) -> float:
    """SCI ``M`` in kgCO2eq for ``devices_used`` devices reserved for ``duration_s`` seconds.

    ``devices_used`` None means all of the config's ``gpu_count``. Each device contributes its
    own embodied plus ``1/devices_per_node`` of the node's. On a CPU-only config, 0 or None GPUs
    used means the job holds its ``node_share`` of the node.
    """
    duration = _settings.parse_float(duration_s, "duration_s", minimum=0.0)
    if config.cpu_only:
        used = _settings.parse_float(devices_used or 1, "devices_used", minimum=0.0)
    else:
        used = float(config.gpu_count) if devices_used is None else _settings.parse_float(devices_used, "devices_used", minimum=0.0)
    time_share = duration / (config.lifetime_years * SECONDS_PER_YEAR)
    device_part = config.device_embodied_kg * used
    node_part = config.node_embodied_kg * (used / config.devices_per_node)
    if config.cpu_only:
        node_part *= config.node_share
    return (device_part + node_part) * time_share
