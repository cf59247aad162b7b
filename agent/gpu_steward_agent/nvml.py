"""Reads GPUs through pynvml. One GPU failing never stops the others: it comes back unknown (ok=False)."""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable
from typing import Any

import pynvml
import structlog

from . import errors
from .fields import GPM_METRICS
from .model import GpuReading, MigReading, NodeReading, NvmlError, ProcessReading

log = structlog.get_logger("gpu_steward_agent")

# Calls whose failure makes the GPU's reading worthless this round. Everything else is optional:
# NOT_SUPPORTED leaves the field empty, other errors are counted but the GPU stays ok.
# A failure of one of these ends the GPU's round at once, so a lost GPU costs one error per round.
_REQUIRED = ("handle", "uuid", "utilization", "memory")
_NOT_AVAILABLE_U32 = 0xFFFFFFFF
# A device (or a driver) without the call: the field is left out, never filled with a made-up value.
_UNSUPPORTED = ("NOT_SUPPORTED", "FUNCTION_NOT_FOUND")
_MAX_EVENTS_PER_ROUND = 256

# nvmlDeviceGetFieldValues ids (nvml.h)
_FI_MEMORY_TEMP, _FI_TOTAL_ENERGY, _FI_NVLINK_LINK_COUNT, _FI_PCIE_REPLAY = 82, 83, 91, 94
_FI_NVLINK_TX, _FI_NVLINK_RX = 138, 139
_FIELD_VALUES = ((_FI_MEMORY_TEMP, "DCGM_FI_DEV_MEMORY_TEMP"),
                 (_FI_TOTAL_ENERGY, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"),
                 (_FI_PCIE_REPLAY, "DCGM_FI_DEV_PCIE_REPLAY_COUNTER"))


class _Device:
    """What the reader keeps per GPU (by UUID) between rounds: static facts, what is unsupported, GPM samples."""

    __slots__ = ("field_ids", "gpm", "gpm_samples", "links", "model", "pci_bus_id", "unsupported", "xid")

    def __init__(self) -> None:
        self.model: str | None = None
        self.pci_bus_id: str | None = None
        self.unsupported: set[str] = set()
        self.links: int | None = None  # NVLink links (0: none); None until asked
        self.field_ids: list[tuple[int, int]] | None = None
        self.gpm: bool | None = None  # nvmlGpmQueryDeviceSupport; None until asked
        self.gpm_samples: dict[int | None, list[Any]] = {}  # None: the device, int: a GPU instance -> [prev, cur]
        self.xid: bool | None = None  # registered for XID events; None until tried


def _value(fv: Any) -> float:
    """A nvmlFieldValue_t's value by its type (nvmlValueType_t)."""
    t, v = int(fv.valueType), fv.value
    return float(
        {0: v.dVal, 1: v.uiVal, 2: v.ulVal, 3: v.ullVal, 4: v.sllVal, 5: v.siVal, 6: v.usVal}.get(t, v.ullVal)
    )


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
        self._devices: dict[str, _Device] = {}
        self._events: Any = None  # the XID event set
        self._last_xid: dict[str, int] = {}
        self._metrics_get: Any = None  # one reused nvmlGpmMetricsGet_t (large: sized for every metric id)
        self._memory_v2 = True  # nvmlDeviceGetMemoryInfo_v2 answers (drivers before 510 lack it)
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
        # A re-initialised NVML has new handles: GPM samples, event registrations and support probes restart.
        self._devices.clear()
        self._last_xid.clear()
        try:
            self._events = pynvml.nvmlEventSetCreate()
        except pynvml.NVMLError as exc:
            self._events = None
            log.info("nvml_events_unavailable", kind=errors.kind(exc), fields=["DCGM_FI_DEV_XID_ERRORS"])

    def shutdown(self) -> None:
        if self._initialized:
            self._free_native()
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
        self._drain_events(errs)
        for index in range(count):
            gpus.append(self._read_gpu(index, now_us, errs))
        return NodeReading(gpus=gpus, errors=errs)

    def _free_native(self) -> None:
        for dev in self._devices.values():
            for pair in dev.gpm_samples.values():
                for sample in pair[:2]:
                    with contextlib.suppress(pynvml.NVMLError):
                        pynvml.nvmlGpmSampleFree(sample)
        self._devices.clear()
        if self._events is not None:
            with contextlib.suppress(pynvml.NVMLError):
                pynvml.nvmlEventSetFree(self._events)
            self._events = None

    def _device(self, uuid: str) -> _Device:
        dev = self._devices.get(uuid)
        if dev is None:
            dev = self._devices[uuid] = _Device()
        return dev

    def _drain_events(self, errs: list[NvmlError]) -> None:
        """Take the XID events NVML queued since the last round (without waiting): the last XID per GPU."""
        if self._events is None:
            return
        for _ in range(_MAX_EVENTS_PER_ROUND):
            try:
                data = pynvml.nvmlEventSetWait(self._events, 0)
            except pynvml.NVMLError as exc:
                kind = errors.kind(exc)
                if kind != "TIMEOUT":  # TIMEOUT: nothing (more) queued
                    errs.append(NvmlError(index=None, uuid="", call="event_wait", kind=kind))
                return
            if int(data.eventType) & pynvml.nvmlEventTypeXidCriticalError:
                try:
                    uuid = str(pynvml.nvmlDeviceGetUUID(data.device))
                except pynvml.NVMLError:
                    continue
                self._last_xid[uuid] = int(data.eventData)
                log.warning("gpu_xid", uuid=uuid, xid=int(data.eventData))

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
        mem = self._memory(handle, call) if reading.ok else None
        if not reading.ok or not reading.uuid or util is None or mem is None:
            reading.ok = False
            reading.error_kind = reading.error_kind or "NO_UUID"
            return reading
        dev = self._device(reading.uuid)
        if dev.model is None:
            dev.model = str(call("name", pynvml.nvmlDeviceGetName, handle) or "")
        reading.model = dev.model
        if dev.pci_bus_id is None:
            pci = self._optional(dev, reading, "pci_info", call, pynvml.nvmlDeviceGetPciInfo, handle)
            dev.pci_bus_id = _text(pci.busId) if pci is not None else ""
        reading.pci_bus_id = dev.pci_bus_id
        reading.util, reading.mem_util = float(util.gpu), float(util.memory)
        reading.mem_used, reading.mem_total = int(mem.used), int(mem.total)
        reading.mem_free = int(mem.free)
        reading.mem_reserved = int(mem.reserved) if hasattr(mem, "reserved") else None
        self._read_hardware(handle, dev, reading, call)
        power = call("power", pynvml.nvmlDeviceGetPowerUsage, handle)
        reading.power_w = power / 1000.0 if power is not None else None
        temp = call("temperature", pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU)
        reading.temp_c = float(temp) if temp is not None else None
        reading.migs = self._read_migs(handle, call)
        if dev.gpm is None:
            support = self._optional(dev, reading, "gpm_support", call, pynvml.nvmlGpmQueryDeviceSupport, handle)
            dev.gpm = bool(support is not None and support.isSupportedDevice)
            if not dev.gpm:
                log.info("nvml_gpm_not_supported", gpu=index, uuid=reading.uuid,
                         fields="DCGM_FI_PROF_* (profiling metrics) are not exported for this GPU")
        if dev.gpm:
            reading.prof = self._gpm(handle, dev, None, call)
            for mig in reading.migs:
                mig.prof = self._gpm(handle, dev, mig.gpu_instance_id, call)
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

    def _memory(self, handle: Any, call: Callable[..., Any]) -> Any:
        """Memory with `reserved` (v2) where the driver has it, else v1 (whose `used` includes reserved)."""
        if self._memory_v2:
            try:
                return pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
            except pynvml.NVMLError as exc:
                if errors.kind(exc) not in _UNSUPPORTED:
                    return call("memory", _raise, exc)
                self._memory_v2 = False
                log.info("nvml_memory_v2_not_supported", fields=["DCGM_FI_DEV_FB_RESERVED"])
        return call("memory", pynvml.nvmlDeviceGetMemoryInfo, handle)

    def _optional(self, dev: _Device, reading: GpuReading, name: str, call: Callable[..., Any],
                  fn: Callable[..., Any], *args: Any) -> Any:
        """An optional call: NOT_SUPPORTED is remembered (logged once, never asked again), other errors counted."""
        if name in dev.unsupported:
            return None
        try:
            return fn(*args)
        except pynvml.NVMLError as exc:
            kind = errors.kind(exc)
            if kind in _UNSUPPORTED:
                dev.unsupported.add(name)
                log.info("nvml_field_not_supported", gpu=reading.index, uuid=reading.uuid, call=name, kind=kind)
                return None
            return call(name, _raise, exc)

    def _read_hardware(self, handle: Any, dev: _Device, reading: GpuReading, call: Callable[..., Any]) -> None:
        hw = reading.hw

        def opt(name: str, fn: Callable[..., Any], *args: Any) -> Any:
            return self._optional(dev, reading, name, call, fn, *args)

        if (v := opt("sm_clock", pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_SM)) is not None:
            hw["DCGM_FI_DEV_SM_CLOCK"] = float(v)
        if (v := opt("mem_clock", pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_MEM)) is not None:
            hw["DCGM_FI_DEV_MEM_CLOCK"] = float(v)
        if (v := opt("encoder_utilization", pynvml.nvmlDeviceGetEncoderUtilization, handle)) is not None:
            hw["DCGM_FI_DEV_ENC_UTIL"] = float(v[0])
        if (v := opt("decoder_utilization", pynvml.nvmlDeviceGetDecoderUtilization, handle)) is not None:
            hw["DCGM_FI_DEV_DEC_UTIL"] = float(v[0])
        if (v := opt("remapped_rows", pynvml.nvmlDeviceGetRemappedRows, handle)) is not None:
            corr, unc, _pending, failure = v
            hw["DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"] = float(corr)
            hw["DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"] = float(unc)
            hw["DCGM_FI_DEV_ROW_REMAP_FAILURE"] = float(failure)
        if reading.mem_reserved is not None:
            hw["DCGM_FI_DEV_FB_RESERVED"] = reading.mem_reserved / (1024 * 1024)
        self._field_values(handle, dev, reading, call)
        if dev.xid is None and self._events is not None:
            try:
                pynvml.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, self._events)
                dev.xid = True
            except pynvml.NVMLError as exc:
                kind = errors.kind(exc)
                if kind in _UNSUPPORTED:
                    dev.xid = False
                    log.info("nvml_field_not_supported", gpu=reading.index, uuid=reading.uuid, call="xid_events",
                             kind=kind, fields=["DCGM_FI_DEV_XID_ERRORS"])
                else:  # tried again next round
                    call("xid_events", _raise, exc)
        if dev.xid:
            hw["DCGM_FI_DEV_XID_ERRORS"] = float(self._last_xid.get(reading.uuid, 0))

    def _field_values(self, handle: Any, dev: _Device, reading: GpuReading, call: Callable[..., Any]) -> None:
        """Memory temperature, energy, PCIe replays and NVLink traffic in one nvmlDeviceGetFieldValues call."""
        if dev.links is None:
            dev.links = 0
            got = self._optional(dev, reading, "field_values", call, pynvml.nvmlDeviceGetFieldValues, handle,
                                 [_FI_NVLINK_LINK_COUNT])
            if got is not None and int(got[0].nvmlReturn) == pynvml.NVML_SUCCESS:
                dev.links = int(_value(got[0]))
            if not dev.links:
                log.info("nvml_field_not_supported", gpu=reading.index, uuid=reading.uuid, call="nvlink",
                         kind="NO_LINKS", fields=["DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL"])
            dev.field_ids = [(fid, 0) for fid, _ in _FIELD_VALUES]
            dev.field_ids += [(fid, link) for link in range(dev.links) for fid in (_FI_NVLINK_TX, _FI_NVLINK_RX)]
        ids = dev.field_ids or []
        if not ids or "field_values" in dev.unsupported:
            return
        got = self._optional(dev, reading, "field_values", call, pynvml.nvmlDeviceGetFieldValues, handle, ids)
        if got is None:
            return
        names = dict(_FIELD_VALUES)
        nvlink, nvlink_ok, dropped = 0.0, False, []
        for (fid, scope), fv in zip(ids, got, strict=True):
            if int(fv.nvmlReturn) != pynvml.NVML_SUCCESS:
                kind = errors.kind(pynvml.NVMLError(int(fv.nvmlReturn)))
                if kind in _UNSUPPORTED:
                    dropped.append((fid, scope))
                else:
                    call(f"field_{fid}", _raise, pynvml.NVMLError(int(fv.nvmlReturn)))
                continue
            if fid in names:
                reading.hw[names[fid]] = _value(fv)
            else:
                nvlink += _value(fv)
                nvlink_ok = True
        if nvlink_ok:
            reading.hw["DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL"] = nvlink
        if dropped:
            dev.field_ids = [i for i in ids if i not in dropped]
            log.info("nvml_field_not_supported", gpu=reading.index, uuid=reading.uuid, call="field_values",
                     kind="NOT_SUPPORTED", field_ids=sorted({fid for fid, _ in dropped}))

    def _gpm(
        self, handle: Any, dev: _Device, gpu_instance: int | None, call: Callable[..., Any]
    ) -> dict[str, float] | None:
        """GPM figures between the previous round's sample and this one (None on the first round, or on error)."""
        pair = dev.gpm_samples.get(gpu_instance)
        try:
            if pair is None:
                pair = dev.gpm_samples[gpu_instance] = [pynvml.nvmlGpmSampleAlloc(), pynvml.nvmlGpmSampleAlloc(), False]
            prev, cur, have_prev = pair
            if gpu_instance is None:
                pynvml.nvmlGpmSampleGet(handle, cur)
            else:
                pynvml.nvmlGpmMigSampleGet(handle, gpu_instance, cur)
            pair[0], pair[1], pair[2] = cur, prev, True
            if not have_prev:
                return None
            mg = self._metrics_get
            if mg is None:
                mg = self._metrics_get = pynvml.c_nvmlGpmMetricsGet_t()
                mg.version = pynvml.NVML_GPM_METRICS_GET_VERSION
                mg.numMetrics = len(GPM_METRICS)
                for i, (metric_id, _, _) in enumerate(GPM_METRICS):
                    mg.metrics[i].metricId = metric_id
            mg.sample1, mg.sample2 = prev, cur
            pynvml.nvmlGpmMetricsGet(mg)
        except pynvml.NVMLError as exc:
            pair = dev.gpm_samples.get(gpu_instance)
            if pair is not None:
                pair[2] = False  # start again from a fresh pair of samples
            call("gpm" if gpu_instance is None else "gpm_mig", _raise, exc)
            return None
        out: dict[str, float] = {}
        for i, (_, name, factor) in enumerate(GPM_METRICS):
            m = mg.metrics[i]
            if int(m.nvmlReturn) == pynvml.NVML_SUCCESS:
                out[name] = float(m.value) * factor
        return out

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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _raise(exc: BaseException) -> None:
    raise exc


def _opt_id(value: Any) -> int | None:
    if value is None or int(value) == _NOT_AVAILABLE_U32:
        return None
    return int(value)
