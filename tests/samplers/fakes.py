"""Fake vendor modules (pynvml, amdsmi) for the sampler tests: the only fakes, at the vendor edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_NOT_FOUND = 6
_NAMES = {
    3: "Not Supported",
    12: "NVML Shared Library Not Found",
    15: "GPU is lost",
    6: "Not Found",
}


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _NAMES.get(self.value, f"NVML Error with code {self.value}")


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA A100-SXM4-40GB"
    cc: tuple[int, int] = (8, 0)
    energy_mj: int = 0
    power_mw: int = 0
    counter: bool = True
    migs: list[str] = field(default_factory=list)
    lost: bool = False
    # Sharing: compute processes (pid -> used bytes), per-process utilisation samples
    # (pid, timestamp us, SM %), accounting stats (pid -> (gpuUtilization %, time ms)).
    processes: dict[int, int | None] = field(default_factory=dict)
    util_samples: list[tuple[int, int, int]] = field(default_factory=list)
    util_supported: bool = True
    accounting: dict[int, tuple[int, int]] | None = None
    mig_slots: int | None = None  # the parent's slices (nvmlDeviceGetMaxMigDeviceCount)
    mig_slices: list[int] = field(default_factory=list)  # slices per MIG instance
    process_calls: int = 0


class FakeNvml:
    """Enough of pynvml for the sampler: handles are ("gpu", i) or ("mig", i, j)."""

    NVMLError = NVMLError
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_NOT_FOUND = NVML_ERROR_NOT_FOUND

    def __init__(self, gpus: list[FakeGpu], *, init_error: int | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.inits = 0
        self.shutdowns = 0

    def _gpu(self, handle: Any) -> FakeGpu:
        gpu = self.gpus[handle[1]]
        if gpu.lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        return gpu

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> Any:
        if not 0 <= i < len(self.gpus):
            raise NVMLError(2)
        return ("gpu", i)

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        if handle[0] == "mig":
            return self.gpus[handle[1]].migs[handle[2]]
        return self._gpu(handle).uuid

    def nvmlDeviceGetName(self, handle: Any) -> bytes:
        return self._gpu(handle).name.encode()  # old pynvml returns bytes

    def nvmlDeviceGetCudaComputeCapability(self, handle: Any) -> tuple[int, int]:
        return self._gpu(handle).cc

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        gpu = self._gpu(handle)
        if not gpu.counter:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return self._gpu(handle).power_mw

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> Any:
        for i, gpu in enumerate(self.gpus):
            if gpu.uuid == uuid:
                return ("gpu", i)
            for j, mig in enumerate(gpu.migs):
                if mig == uuid:
                    return ("mig", i, j)
        raise NVMLError(6)

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: Any) -> Any:
        if handle[0] != "mig":
            raise NVMLError(2)
        return ("gpu", handle[1])

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int:
        gpu = self._gpu(handle)
        return gpu.mig_slots if gpu.mig_slots is not None else len(gpu.migs)

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, j: int) -> Any:
        if j >= len(self._gpu(handle).migs):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return ("mig", handle[1], j)

    # -- processes sharing a device -----------------------------------------------------

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]:
        gpu = self._gpu(handle)
        gpu.process_calls += 1
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in gpu.processes.items()]

    def nvmlDeviceGetProcessUtilization(self, handle: Any, last_seen: int) -> list[Any]:
        gpu = self._gpu(handle)
        if not gpu.util_supported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        fresh = [s for s in gpu.util_samples if s[1] > last_seen]
        if not fresh:
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return [
            SimpleNamespace(pid=pid, timeStamp=ts, smUtil=sm, memUtil=0, encUtil=0, decUtil=0)
            for pid, ts, sm in fresh
        ]

    def nvmlDeviceGetAccountingMode(self, handle: Any) -> int:
        return 0 if self._gpu(handle).accounting is None else 1

    def nvmlDeviceGetAccountingPids(self, handle: Any) -> list[int]:
        return list(self._gpu(handle).accounting or {})

    def nvmlDeviceGetAccountingStats(self, handle: Any, pid: int) -> Any:
        stats = (self._gpu(handle).accounting or {}).get(pid)
        if stats is None:
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return SimpleNamespace(gpuUtilization=stats[0], time=stats[1], isRunning=1)

    def nvmlDeviceGetAttributes(self, handle: Any) -> Any:
        if handle[0] != "mig":
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        gpu = self.gpus[handle[1]]
        slices = gpu.mig_slices[handle[2]] if handle[2] < len(gpu.mig_slices) else 1
        return SimpleNamespace(gpuInstanceSliceCount=slices)


class AmdSmiException(Exception):
    pass


@dataclass
class FakeAmdGpu:
    name: str = "AMD Instinct MI250X"
    accumulator: int = 0
    resolution_uj: float = 15.3
    key: str = "energy_accumulator"  # older amdsmi: "power"
    counter: bool = True
    socket_power_w: float = 0.0


class FakeAmdSmi:
    AmdSmiException = AmdSmiException

    def __init__(self, gpus: list[FakeAmdGpu], *, init_error: bool = False) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.shutdowns = 0

    def amdsmi_init(self) -> None:
        if self.init_error:
            raise AmdSmiException("AMDSMI_STATUS_DRIVER_NOT_LOADED")

    def amdsmi_shut_down(self) -> None:
        self.shutdowns += 1

    def amdsmi_get_processor_handles(self) -> list[int]:
        return list(range(len(self.gpus)))

    def amdsmi_get_gpu_asic_info(self, h: int) -> dict[str, Any]:
        return {"market_name": self.gpus[h].name}

    def amdsmi_get_gpu_device_uuid(self, h: int) -> str:
        return f"amd-uuid-{h}"

    def amdsmi_get_energy_count(self, h: int) -> dict[str, Any]:
        gpu = self.gpus[h]
        if not gpu.counter:
            raise AmdSmiException("AMDSMI_STATUS_NOT_SUPPORTED")
        return {gpu.key: gpu.accumulator, "counter_resolution": gpu.resolution_uj, "timestamp": 0}

    def amdsmi_get_power_info(self, h: int) -> dict[str, Any]:
        return {"average_socket_power": self.gpus[h].socket_power_w, "gfx_voltage": 0}


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
