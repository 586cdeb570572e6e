"""torch.distributed awareness: who measures what, and summing an epoch over the ranks.

Each process measures only the GPU it drives; CPU and RAM are measured once per node, by
local rank 0. At the end of each epoch every rank contributes its energies to one small
``all_reduce`` (it works on gloo and NCCL), so every rank holds the job's totals; global rank
0 alone writes them to MLflow. torch is imported only when the user already imported
``torch.distributed``: a process that never did cannot be part of a process group.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from mlflow_green.tracking.record import EpochEnergy

__all__ = [
    "DistInfo",
    "ReducedEpoch",
    "all_reduce_sum",
    "broadcast_flag",
    "dist_info",
    "local_gpu_index",
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
    def is_distributed(self) -> bool:
        return self.world_size > 1

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
# head: one GPU energy per rank, then one "measurement degraded" flag per rank.
_GPU, _CPU, _RAM, _POWER, _COUNT, _DURATION, _START, _INTENSITY, _ACC, _ACC_KNOWN, _HEAD = range(11)


@dataclass(frozen=True)
class ReducedEpoch:
    energy: EpochEnergy
    intensity_g_per_kwh: float | None
    accuracy: float | None
    # The ranks whose measurement is degraded (their own reasons stay in their own logs).
    degraded_ranks: tuple[int, ...] = ()


def reduce_epoch(
    local: EpochEnergy,
    info: DistInfo,
    *,
    intensity_g_per_kwh: float | None = None,
    accuracy: float | None = None,
    degraded: bool = False,
) -> ReducedEpoch:
    """The job's epoch: energies summed over ranks, timing/intensity/accuracy of rank 0.

    ``per_device_kwh`` of the result has one entry per rank (the GPU energy of that rank);
    ``degraded`` (this rank's measurement has a problem) comes back as ``degraded_ranks``.
    Every rank must call this at the same point of its epoch: it is a collective.
    """
    zero = info.is_global_zero
    world = info.world_size
    vec = [0.0] * (_HEAD + 2 * world)
    vec[_GPU] = local.gpu_energy_kwh
    vec[_CPU] = local.cpu_energy_kwh
    vec[_RAM] = local.ram_energy_kwh
    vec[_POWER] = local.gpu_power_w
    vec[_COUNT] = float(local.gpu_count)
    if zero:
        vec[_DURATION] = local.duration_s
        vec[_START] = local.start_unix_s
        vec[_INTENSITY] = intensity_g_per_kwh if intensity_g_per_kwh is not None else 0.0
        if accuracy is not None:
            vec[_ACC] = accuracy
            vec[_ACC_KNOWN] = 1.0
    vec[_HEAD + info.rank] = local.gpu_energy_kwh
    vec[_HEAD + world + info.rank] = 1.0 if degraded else 0.0
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
    return ReducedEpoch(
        energy=energy,
        intensity_g_per_kwh=out[_INTENSITY],
        accuracy=out[_ACC] if out[_ACC_KNOWN] > 0 else None,
        degraded_ranks=tuple(r for r in range(world) if out[_HEAD + world + r] > 0),
    )


def reduce_hardware(gpu_count: int, info: DistInfo) -> int:
    """The number of GPUs measured by the whole job (a collective)."""
    return round(all_reduce_sum([float(gpu_count)])[0]) if info.has_group else gpu_count


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """True on every rank when any rank says True (a collective)."""
    if not info.has_group:
        return flag
    return all_reduce_sum([1.0 if flag else 0.0])[0] > 0
