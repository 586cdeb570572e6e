"""Which physical GPUs a CUDA process sees: CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER.

NVML numbers GPUs in PCI bus order and ignores both variables; CUDA numbers the GPUs a
process sees after applying them. To meter the GPUs a training process really uses, the NVML
sampler maps CUDA's view onto NVML's here (pure functions, no vendor calls).

CUDA's rules, as implemented:

* unset: every GPU; ``""`` (empty): no GPU.
* entries separated by commas: an integer (an index into the order below), ``GPU-<uuid>`` in
  full or as a unique prefix, or a MIG instance (``MIG-<uuid>``, or the older
  ``MIG-GPU-<uuid>/<gi>/<ci>``). The first invalid, unknown, ambiguous or repeated entry
  ends the list: the devices before it stay visible, the rest are ignored (CUDA does the same).
* ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` orders GPUs as NVML does. The default ``FASTEST_FIRST``
  only promises that CUDA's guess of the fastest GPU comes first; we approximate it by the
  highest compute capability first, PCI order within a tie. On a machine whose GPUs are all
  the same model both orders coincide; on a mixed machine set ``PCI_BUS_ID`` to be sure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_INT = re.compile(r"^\+?\d+$")


@dataclass(frozen=True)
class GpuRecord:
    """One physical GPU as NVML enumerates it (``nvml_index`` is NVML's, i.e. PCI order)."""

    nvml_index: int
    uuid: str
    name: str
    compute_capability: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class VisibleGpu:
    """A GPU visible to the CUDA process; ``mig_uuid`` is set when the entry named a MIG slice."""

    record: GpuRecord
    mig_uuid: str | None = None


def cuda_order(
    records: Sequence[GpuRecord], device_order: str | None
) -> tuple[list[GpuRecord], list[str]]:
    """GPUs in CUDA's enumeration order, and notes about the ordering."""
    notes: list[str] = []
    order = (device_order or "FASTEST_FIRST").strip().upper()
    by_pci = sorted(records, key=lambda r: r.nvml_index)
    if order == "PCI_BUS_ID":
        return by_pci, notes
    if order != "FASTEST_FIRST":
        notes.append(
            f"CUDA_DEVICE_ORDER={device_order!r} is not FASTEST_FIRST or PCI_BUS_ID; "
            "CUDA treats it as FASTEST_FIRST, so do we"
        )
    ordered = sorted(by_pci, key=lambda r: (-r.compute_capability[0], -r.compute_capability[1]))
    if len({r.name for r in records}) > 1:
        notes.append(
            "GPUs of different models with CUDA_DEVICE_ORDER=FASTEST_FIRST: CUDA's order is a "
            "heuristic; set CUDA_DEVICE_ORDER=PCI_BUS_ID so that device numbers are certain"
        )
    return ordered, notes


def visible_gpus(
    value: str | None,
    ordered: Sequence[GpuRecord],
    *,
    mig_parent_uuid: Callable[[str], str | None] = lambda _uuid: None,
) -> tuple[list[VisibleGpu], list[str]]:
    """Apply a CUDA_VISIBLE_DEVICES value to GPUs in CUDA order.

    ``mig_parent_uuid`` maps a MIG UUID (as written in the variable) to the UUID of its parent
    GPU, or None when no MIG instance has it.
    """
    if value is None:
        return [VisibleGpu(r) for r in ordered], []
    notes: list[str] = []
    out: list[VisibleGpu] = []
    seen: set[tuple[int, str | None]] = set()
    by_uuid = {r.uuid.lower(): r for r in ordered}
    entries = value.split(",")
    if value.strip() == "":
        return [], []
    for position, raw in enumerate(entries):
        entry = raw.strip()
        found, why = _resolve(entry, ordered, by_uuid, mig_parent_uuid)
        if found is not None:
            key = (found.record.nvml_index, found.mig_uuid)
            if key in seen:
                found, why = None, "is repeated"
            else:
                seen.add(key)
        if found is None:
            rest = entries[position:]
            notes.append(
                f"CUDA_VISIBLE_DEVICES entry {entry!r} {why}; as in CUDA, it and the entries "
                f"after it ({','.join(e.strip() for e in rest)}) are ignored"
            )
            break
        out.append(found)
    return out, notes


def _resolve(
    entry: str,
    ordered: Sequence[GpuRecord],
    by_uuid: dict[str, GpuRecord],
    mig_parent_uuid: Callable[[str], str | None],
) -> tuple[VisibleGpu | None, str]:
    low = entry.lower()
    if _INT.match(entry):
        index = int(entry)
        if index < len(ordered):
            return VisibleGpu(ordered[index]), ""
        return None, f"is out of range (this machine has {len(ordered)} GPUs)"
    if low.startswith("mig-gpu-"):
        # Older MIG form: MIG-GPU-<parent uuid>/<gpu instance>/<compute instance>.
        parent = by_uuid.get(low[len("mig-") :].split("/", 1)[0])
        if parent is None:
            return None, "names no GPU of this machine"
        return VisibleGpu(parent, mig_uuid=entry), ""
    if low.startswith("mig-"):
        parent_uuid = mig_parent_uuid(entry)
        parent = by_uuid.get(parent_uuid.lower()) if parent_uuid else None
        if parent is None:
            return None, "names no MIG instance of this machine"
        return VisibleGpu(parent, mig_uuid=entry), ""
    if low.startswith("gpu-") and len(low) > len("gpu-"):
        matches = [r for r in ordered if r.uuid.lower().startswith(low)]
        if len(matches) == 1:
            return VisibleGpu(matches[0]), ""
        if matches:
            return None, f"is an ambiguous UUID prefix ({len(matches)} GPUs match)"
        return None, "names no GPU of this machine"
    return None, "is not an index, a GPU-<uuid> or a MIG-<uuid>"
