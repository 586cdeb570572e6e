"""torch.distributed awareness: who measures what, and summing an epoch over the ranks.

Each process measures only the GPU it drives. CPU and RAM: with the host shared (the default,
``share:<basis>`` methods) every process measures its own process tree's share of its node;
with ``share=False`` the whole node is measured once, by local rank 0. At the end of each
epoch every rank contributes its energies to one small ``all_reduce`` (it works on gloo and
NCCL), so every rank holds the job's totals; global rank 0 alone writes them to MLflow.

Several nodes: each rank brings its own node's carbon intensity and PUE (read from its own
environment), the reduce sums ``energy x PUE x intensity`` over the ranks, and the epoch's
intensity is the one that turns the job's energy into that sum. Nodes are told apart by
torchrun's ``GROUP_RANK`` (Ray's ``NODE_RANK``), else by host name; :func:`gather_nodes`
collects each node's location once, at the start. torch is imported only when the user already imported
``torch.distributed``: a process that never did cannot be part of a process group.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from mlflow_green.tracking.record import EpochEnergy

__all__ = [
    "DistInfo",
    "NodeSite",
    "ReducedEpoch",
    "all_reduce_sum",
    "broadcast_flag",
    "dist_info",
    "gather_nodes",
    "local_gpu_index",
    "location_tags",
    "node_key",
    "reduce_epoch",
    "reduce_hardware",
]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    # True when a torch.distributed process group is initialised (collectives are possible).
    has_group: bool = False

    @property
    def is_global_zero(self) -> bool:
        return self.rank == 0

    @property
    def is_local_zero(self) -> bool:
        return self.local_rank == 0


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def dist_info() -> DistInfo:
    """From the initialised process group, else from torchrun's environment variables."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        world = int(dist.get_world_size())
        rank = int(dist.get_rank())
        local = _env_int("LOCAL_RANK", -1)
        if local < 0:
            local_world = _env_int("LOCAL_WORLD_SIZE", 0)
            local = rank % local_world if local_world > 0 else rank
        return DistInfo(world_size=world, rank=rank, local_rank=local, has_group=world > 1)
    return DistInfo(
        world_size=max(1, _env_int("WORLD_SIZE", 1)),
        rank=max(0, _env_int("RANK", 0)),
        local_rank=max(0, _env_int("LOCAL_RANK", 0)),
        has_group=False,
    )


def local_gpu_index(info: DistInfo) -> int:
    """The GPU this process drives: torch's current CUDA device when set up, else LOCAL_RANK."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                return int(torch.cuda.current_device())
        except Exception:
            pass
    return info.local_rank


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Sum a short vector over all ranks of the default process group."""
    import torch
    import torch.distributed as dist

    device = torch.device("cpu")
    if str(dist.get_backend()).lower() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return [float(v) for v in tensor.cpu().tolist()]


# Layout of the reduced vector; "rank 0 only" values are zero on the other ranks. After the
# head: one GPU energy per rank, then one "measurement degraded" flag per rank, then (on a
# multi-node job) one IT energy per node.
(
    _GPU, _CPU, _RAM, _POWER, _COUNT, _DURATION, _START, _INTENSITY, _ACC, _ACC_KNOWN,
    _CARBON, _PUE0, _GPU_WHOLE, _CPU_WHOLE, _GPU_SHARED, _CPU_SHARED, _HEAD,
) = range(17)


@dataclass(frozen=True)
class ReducedEpoch:
    energy: EpochEnergy
    intensity_g_per_kwh: float | None
    accuracy: float | None
    # The ranks whose measurement is degraded (their own reasons stay in their own logs).
    degraded_ranks: tuple[int, ...] = ()
    # IT energy of each node (multi-node jobs; empty otherwise), in node order.
    per_node_kwh: tuple[float, ...] = ()
    # The job's share of the shared GPUs / host CPUs (None when no rank shares them).
    gpu_share: float | None = None
    cpu_share: float | None = None


def reduce_epoch(
    local: EpochEnergy,
    info: DistInfo,
    *,
    intensity_g_per_kwh: float | None = None,
    accuracy: float | None = None,
    degraded: bool = False,
    pue: float | None = None,
    node: tuple[int, int] | None = None,
    gpu_share: float | None = None,
    cpu_share: float | None = None,
) -> ReducedEpoch:
    """The job's epoch: energies summed over ranks, timing/accuracy of rank 0.

    ``per_device_kwh`` of the result has one entry per rank (the GPU energy of that rank);
    ``degraded`` (this rank's measurement has a problem) comes back as ``degraded_ranks``.

    Intensity: when every rank passes its own ``intensity_g_per_kwh`` and ``pue`` (its
    node's), the result's intensity is ``sum(E_r x PUE_r x I_r) / (E x PUE_0)`` — the value
    that makes the job's energy ``E`` times rank 0's PUE equal the sum over the nodes. Without
    ``pue`` it is rank 0's intensity. ``node`` = (this rank's node index, number of nodes)
    adds the per-node energies. ``gpu_share``/``cpu_share``: this rank's share of its
    shared devices over the epoch (None: not shared); the result's shares are the job's
    (shared energy over whole-device energy, summed over the ranks). Every rank must call
    this at the same point of its epoch: it is a collective.
    """
    zero = info.is_global_zero
    world = info.world_size
    nodes = node[1] if node is not None else 0
    vec = [0.0] * (_HEAD + 2 * world + nodes)
    vec[_GPU] = local.gpu_energy_kwh
    vec[_CPU] = local.cpu_energy_kwh
    vec[_RAM] = local.ram_energy_kwh
    vec[_POWER] = local.gpu_power_w
    vec[_COUNT] = float(local.gpu_count)
    mine = local.gpu_energy_kwh + local.cpu_energy_kwh + local.ram_energy_kwh
    if pue is not None and intensity_g_per_kwh is not None:
        vec[_CARBON] = mine * pue * intensity_g_per_kwh
    if zero:
        vec[_DURATION] = local.duration_s
        vec[_START] = local.start_unix_s
        vec[_INTENSITY] = intensity_g_per_kwh if intensity_g_per_kwh is not None else 0.0
        vec[_PUE0] = pue if pue is not None else 0.0
        if accuracy is not None:
            vec[_ACC] = accuracy
            vec[_ACC_KNOWN] = 1.0
    vec[_HEAD + info.rank] = local.gpu_energy_kwh
    vec[_HEAD + world + info.rank] = 1.0 if degraded else 0.0
    if node is not None:
        vec[_HEAD + 2 * world + node[0]] = mine
    vec[_GPU_WHOLE] = _whole(local.gpu_energy_kwh, gpu_share)
    vec[_CPU_WHOLE] = _whole(local.cpu_energy_kwh, cpu_share)
    vec[_GPU_SHARED] = 1.0 if gpu_share is not None else 0.0
    vec[_CPU_SHARED] = 1.0 if cpu_share is not None else 0.0
    out = all_reduce_sum(vec)
    energy = EpochEnergy(
        start_unix_s=out[_START],
        duration_s=out[_DURATION],
        gpu_energy_kwh=out[_GPU],
        cpu_energy_kwh=out[_CPU],
        ram_energy_kwh=out[_RAM],
        gpu_power_w=out[_POWER],
        per_device_kwh=tuple(out[_HEAD : _HEAD + world]) if out[_COUNT] > 0 else (),
        gpu_count=round(out[_COUNT]),
    )
    intensity = out[_INTENSITY]
    total = out[_GPU] + out[_CPU] + out[_RAM]
    if pue is not None and out[_PUE0] > 0 and total > 0:
        intensity = out[_CARBON] / (total * out[_PUE0])
    return ReducedEpoch(
        energy=energy,
        intensity_g_per_kwh=intensity,
        accuracy=out[_ACC] if out[_ACC_KNOWN] > 0 else None,
        degraded_ranks=tuple(r for r in range(world) if out[_HEAD + world + r] > 0),
        per_node_kwh=tuple(out[_HEAD + 2 * world :]),
        gpu_share=_ratio(out[_GPU], out[_GPU_WHOLE]) if out[_GPU_SHARED] > 0 else None,
        cpu_share=_ratio(out[_CPU], out[_CPU_WHOLE]) if out[_CPU_SHARED] > 0 else None,
    )


def _whole(shared_kwh: float, share: float | None) -> float:
    """The whole-device energy behind a shared figure (the figure itself when unshared)."""
    if share is None:
        return shared_kwh
    return shared_kwh / share if share > 0 else 0.0


def _ratio(part: float, whole: float) -> float:
    return min(part / whole, 1.0) if whole > 0 else 0.0


@dataclass(frozen=True)
class NodeSite:
    """Where one node of the job runs: its location, grid intensity source, PUE, ranks."""

    key: str
    location: str
    intensity_source: str
    intensity_g_per_kwh: float
    pue: float
    ranks: tuple[int, ...] = field(default_factory=tuple)


def node_key() -> str:
    """This process's node: torchrun's GROUP_RANK, Ray's NODE_RANK, else the host name."""
    for name in ("GROUP_RANK", "NODE_RANK"):
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return f"node-rank-{int(value)}"
    return f"host-{socket.gethostname()}"


_SITE_BYTES = 192  # node key, location and source of one rank, UTF-8, truncated


def _encode_site(texts: Sequence[str]) -> list[float]:
    raw = "\x1f".join(texts).encode("utf-8")[:_SITE_BYTES]
    return [float(b) for b in raw] + [0.0] * (_SITE_BYTES - len(raw))


def _decode_site(values: Sequence[float]) -> list[str]:
    raw = bytes(round(v) & 0xFF for v in values).rstrip(b"\x00")
    return raw.decode("utf-8", errors="replace").split("\x1f")


def gather_nodes(
    info: DistInfo, *, location: str, intensity_source: str, intensity_g_per_kwh: float, pue: float
) -> tuple[list[NodeSite], int]:
    """Every node's site (a collective, once at the start) and this rank's node index.

    One ``all_reduce`` (as the epochs use, on gloo and NCCL alike): each rank fills its own
    slot with its node key, location and source (UTF-8 bytes) and its intensity and PUE.
    Nodes are ordered by their node rank (or host name); a node's site is its lowest rank's.
    """
    key = node_key()
    width = _SITE_BYTES + 3
    vec = [0.0] * (width * info.world_size)
    slot = info.rank * width
    vec[slot : slot + _SITE_BYTES] = _encode_site((key, location, intensity_source))
    vec[slot + _SITE_BYTES : slot + width] = [float(intensity_g_per_kwh), float(pue), 1.0]
    out = all_reduce_sum(vec) if info.has_group else vec
    rows: list[tuple[str, int, str, str, float, float]] = []
    for rank in range(info.world_size):
        base = rank * width
        if out[base + width - 1] <= 0:
            continue  # a rank that sent nothing (it measures nothing: no site)
        texts = [*_decode_site(out[base : base + _SITE_BYTES]), "", "", ""]
        rows.append((texts[0], rank, texts[1], texts[2], out[base + _SITE_BYTES], out[base + _SITE_BYTES + 1]))
    by_key: dict[str, list[tuple[str, int, str, str, float, float]]] = {}
    for row in sorted(rows, key=lambda r: (_node_order(r[0]), r[1])):
        by_key.setdefault(row[0], []).append(row)
    sites = [
        NodeSite(
            key=k,
            location=group[0][2],
            intensity_source=group[0][3],
            intensity_g_per_kwh=group[0][4],
            pue=group[0][5],
            ranks=tuple(r[1] for r in group),
        )
        for k, group in by_key.items()
    ]
    index = next((i for i, site in enumerate(sites) if info.rank in site.ranks), 0)
    return sites, index


def _node_order(key: str) -> tuple[int, str]:
    tail = key.rsplit("-", 1)[-1]
    return (int(tail), key) if key.startswith("node-rank-") and tail.isdigit() else (1 << 30, key)


def location_tags(sites: Sequence[NodeSite]) -> dict[str, str]:
    """``green.location`` (``mixed`` when the nodes differ) and the per-node breakdown tag."""
    from mlflow_green.tracking import schema

    if not sites:
        return {}
    distinct = list(dict.fromkeys(s.location for s in sites))
    tags: dict[str, str] = {}
    if len(sites) > 1:
        tags[schema.TAG_LOCATION_NODES] = ";".join(
            f"node{i}={s.location}@{s.intensity_g_per_kwh:.6g} g/kWh ({s.intensity_source}),"
            f"pue={s.pue:g},ranks={'+'.join(map(str, s.ranks))}"
            for i, s in enumerate(sites)
        )[:5000]
    if len(distinct) > 1:
        tags[schema.TAG_LOCATION] = schema.LOCATION_MIXED
    if len({s.pue for s in sites}) > 1:
        tags[schema.TAG_PUE] = schema.LOCATION_MIXED
    if len({s.intensity_source for s in sites}) > 1:
        tags[schema.TAG_INTENSITY_SOURCE] = schema.LOCATION_MIXED
    return tags


def reduce_hardware(gpu_count: int, info: DistInfo) -> int:
    """The number of GPUs measured by the whole job (a collective)."""
    return round(all_reduce_sum([float(gpu_count)])[0]) if info.has_group else gpu_count


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """True on every rank when any rank says True (a collective)."""
    if not info.has_group:
        return flag
    return all_reduce_sum([1.0 if flag else 0.0])[0] > 0
