"""Reads GPUs through pynvml. One GPU failing never stops the others: it comes back unknown (ok=False)."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import pynvml

from . import errors
from .model import GpuReading, MigReading, NodeReading, NvmlError, ProcessReading

# Calls whose failure makes the GPU's reading worthless this round. Everything else is optional:
# NOT_SUPPORTED leaves the field empty, other errors are counted but the GPU stays ok.
# A failure of one of these ends the GPU's round at once, so a lost GPU costs one error per round.
_REQUIRED = ("handle", "uuid", "utilization", "memory")
_NOT_AVAILABLE_U32 = 0xFFFFFFFF


class NvmlUnavailable(RuntimeError):
    """NVML cannot be initialised (no driver, driver/library mismatch, library missing)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"NVML unavailable: {kind}: {detail}")
        self.kind = kind


def load_library(path: str) -> None:
    """Make pynvml use the NVML library at `path` instead of searching for libnvidia-ml.so.1.

    pynvml keeps the loaded library in its module global `nvmlLib` and loads only when that is None, so
    setting it (under pynvml's own load lock) before nvmlInit is the supported seam for a custom path.
    """
    with pynvml.libLoadLock:
        if pynvml.nvmlLib is None:
            pynvml.nvmlLib = ctypes.CDLL(path)


class NvmlReader:
    def __init__(self, library_path: str | None = None) -> None:
        self._library_path = library_path
        self._initialized = False
        self._uuids: dict[int, str] = {}  # index -> UUID learned earlier, to name a GPU that later fails
        self._last_seen_us: dict[str, int] = {}  # UUID -> newest process-utilization sample seen
        self.driver_version = ""

    @property
    def initialized(self) -> bool:
        return self._initialized

    def init(self) -> None:
        if self._initialized:
            return
        try:
            if self._library_path:
                load_library(self._library_path)
            pynvml.nvmlInit()
            self.driver_version = str(pynvml.nvmlSystemGetDriverVersion())
        except (pynvml.NVMLError, OSError) as exc:
            raise NvmlUnavailable(errors.kind(exc), str(exc)) from exc
        self._initialized = True

    def shutdown(self) -> None:
        if self._initialized:
            try:
                pynvml.nvmlShutdown()
            finally:
                self._initialized = False

    def read(self, now_us: int) -> NodeReading:
        """One round over every GPU. Raises NvmlUnavailable only when NVML as a whole is unusable."""
        self.init()
        try:
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as exc:
            self._initialized = False  # re-initialise next round (driver reloaded, library mismatch)
            raise NvmlUnavailable(errors.kind(exc), str(exc)) from exc
        gpus: list[GpuReading] = []
        errs: list[NvmlError] = []
        for index in range(count):
            gpus.append(self._read_gpu(index, now_us, errs))
        return NodeReading(gpus=gpus, errors=errs)

    def _read_gpu(self, index: int, now_us: int, errs: list[NvmlError]) -> GpuReading:
        reading = GpuReading(index=index, uuid=self._uuids.get(index, ""))

        def call(name: str, fn: Callable[..., Any], *args: Any) -> Any:
            try:
                return fn(*args)
            except pynvml.NVMLError as exc:
                kind = errors.kind(exc)
                if kind == "NOT_SUPPORTED" and name not in _REQUIRED:
                    return None
                errs.append(NvmlError(index=index, uuid=reading.uuid, call=name, kind=kind))
                if name in _REQUIRED:
                    reading.ok = False
                    reading.error_kind = reading.error_kind or kind
                return None

        handle = call("handle", pynvml.nvmlDeviceGetHandleByIndex, index)
        uuid = call("uuid", pynvml.nvmlDeviceGetUUID, handle) if reading.ok else None
        if uuid:
            reading.uuid = self._uuids[index] = str(uuid)
        util = call("utilization", pynvml.nvmlDeviceGetUtilizationRates, handle) if reading.ok else None
        mem = call("memory", pynvml.nvmlDeviceGetMemoryInfo, handle) if reading.ok else None
        if not reading.ok or not reading.uuid or util is None or mem is None:
            reading.ok = False
            reading.error_kind = reading.error_kind or "NO_UUID"
            return reading
        reading.model = str(call("name", pynvml.nvmlDeviceGetName, handle) or "")
        reading.util, reading.mem_util = float(util.gpu), float(util.memory)
        reading.mem_used, reading.mem_total = int(mem.used), int(mem.total)
        power = call("power", pynvml.nvmlDeviceGetPowerUsage, handle)
        reading.power_w = power / 1000.0 if power is not None else None
        temp = call("temperature", pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU)
        reading.temp_c = float(temp) if temp is not None else None
        reading.migs = self._read_migs(handle, call)
        procs = call("processes", pynvml.nvmlDeviceGetComputeRunningProcesses, handle)
        reading.processes_known = procs is not None
        procs = procs or []
        sm_by_pid = None if reading.migs else self._process_util(handle, reading.uuid, now_us, call)
        reading.process_util = sm_by_pid is not None
        reading.processes = [
            ProcessReading(
                pid=int(p.pid),
                used_memory=None if p.usedGpuMemory is None else int(p.usedGpuMemory),
                sm_util=None if sm_by_pid is None else sm_by_pid.get(int(p.pid), 0.0),
                gpu_instance_id=_opt_id(p.gpuInstanceId),
                compute_instance_id=_opt_id(p.computeInstanceId),
            )
            for p in procs
        ]
        return reading

    def _process_util(self, handle: Any, uuid: str, now_us: int, call: Callable[..., Any]) -> dict[int, float] | None:
        """Per-process SM utilization since the last round; None when NVML cannot give it."""
        since = self._last_seen_us.get(uuid, max(0, now_us - 10_000_000))
        try:
            samples = pynvml.nvmlDeviceGetProcessUtilization(handle, since)
        except pynvml.NVMLError as exc:
            kind = errors.kind(exc)
            if kind == "NOT_FOUND":  # no samples newer than `since`: the processes ran no kernels
                return {}
            if kind != "NOT_SUPPORTED":
                call("process_utilization", _raise, exc)
            return None
        latest: dict[int, tuple[int, float]] = {}
        for s in samples:
            ts = int(s.timeStamp)
            if s.pid not in latest or ts >= latest[s.pid][0]:
                latest[int(s.pid)] = (ts, float(s.smUtil))
            self._last_seen_us[uuid] = max(self._last_seen_us.get(uuid, 0), ts)
        return {pid: util for pid, (_, util) in latest.items()}

    def _read_migs(self, handle: Any, call: Callable[..., Any]) -> list[MigReading]:
        mode = call("mig_mode", pynvml.nvmlDeviceGetMigMode, handle)
        if not mode or mode[0] != pynvml.NVML_DEVICE_MIG_ENABLE:
            return []
        migs = []
        for i in range(call("mig_count", pynvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0):
            try:
                mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, i)
            except pynvml.NVMLError:  # NOT_FOUND: a slot without an instance
                continue
            uuid = call("mig_uuid", pynvml.nvmlDeviceGetUUID, mig)
            if not uuid:
                continue
            mem = call("mig_memory", pynvml.nvmlDeviceGetMemoryInfo, mig)
            migs.append(
                MigReading(
                    uuid=str(uuid),
                    name=str(call("mig_name", pynvml.nvmlDeviceGetName, mig) or ""),
                    gpu_instance_id=int(call("mig_gi", pynvml.nvmlDeviceGetGpuInstanceId, mig) or 0),
                    compute_instance_id=int(call("mig_ci", pynvml.nvmlDeviceGetComputeInstanceId, mig) or 0),
                    mem_used=int(mem.used) if mem is not None else None,
                    mem_total=int(mem.total) if mem is not None else None,
                )
            )
        return migs


def _raise(exc: BaseException) -> None:
    raise exc


def _opt_id(value: Any) -> int | None:
    if value is None or int(value) == _NOT_AVAILABLE_U32:
        return None
    return int(value)
