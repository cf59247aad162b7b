"""The dcgm-exporter fields the agent publishes: names, Prometheus types and help as dcgm-exporter's
default-counters.csv has them, and where each comes from in NVML (or why NVML cannot supply it).

`DEFAULT_COUNTERS` is dcgm-exporter's default list (4.x), in its order. Every field with a `source` is
exported where the device supports it; where NVML answers NOT_SUPPORTED for a device, the agent exports
nothing for that field on that device (never a made-up 0) and logs it once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str  # gauge | counter | label (label: a label on every series, not a series of its own)
    help: str
    source: str = ""  # the NVML call it is read from; "" when NVML has no source for it
    unavailable: str = ""  # why not, when source is ""
    profiling: bool = False  # a DCP field (DCGM_FI_PROF_*): read through NVML GPM, Hopper and later


DEFAULT_COUNTERS: tuple[Field, ...] = (
    Field("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", "nvmlDeviceGetClockInfo(NVML_CLOCK_SM)"),
    Field("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).",
          "nvmlDeviceGetClockInfo(NVML_CLOCK_MEM)"),
    Field("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C).",
          "nvmlDeviceGetFieldValues(NVML_FI_DEV_MEMORY_TEMP)"),
    Field("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", "nvmlDeviceGetTemperature(NVML_TEMPERATURE_GPU)"),
    Field("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", "nvmlDeviceGetPowerUsage (mW / 1000)"),
    Field("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ).",
          "nvmlDeviceGetFieldValues(NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION)"),
    Field("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.",
          "nvmlDeviceGetFieldValues(NVML_FI_DEV_PCIE_REPLAY_COUNTER)"),
    Field("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", "nvmlDeviceGetUtilizationRates.gpu"),
    Field("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", "nvmlDeviceGetUtilizationRates.memory"),
    Field("DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %).", "nvmlDeviceGetEncoderUtilization"),
    Field("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %).", "nvmlDeviceGetDecoderUtilization"),
    Field("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.",
          "nvmlEventSetWait_v2 (nvmlEventTypeXidCriticalError); 0 until the first XID after the agent started"),
    Field("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", "nvmlDeviceGetMemoryInfo_v2.free"),
    Field("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", "nvmlDeviceGetMemoryInfo_v2.used"),
    Field("DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB).",
          "nvmlDeviceGetMemoryInfo_v2.reserved"),
    Field("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "counter",
          "Total number of NVLink bandwidth counters for all lanes.",
          "nvmlDeviceGetFieldValues(NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX + _RX, every link), KiB"),
    Field("DCGM_FI_DEV_VGPU_LICENSE_STATUS", "gauge", "vGPU License status", "",
          "a vGPU guest licensing state (DCGM reads it from the vGPU manager); NVML on a bare-metal or "
          "passthrough GPU node has no per-device license status"),
    Field("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for uncorrectable errors",
          "nvmlDeviceGetRemappedRows.uncorrectable"),
    Field("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for correctable errors",
          "nvmlDeviceGetRemappedRows.correctable"),
    Field("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed",
          "nvmlDeviceGetRemappedRows.failureOccurred"),
    Field("DCGM_FI_DRIVER_VERSION", "label", "Driver Version", "nvmlSystemGetDriverVersion"),
    Field("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active.",
          "nvmlGpmMetricsGet(NVML_GPM_METRIC_GRAPHICS_UTIL) / 100", profiling=True),
    Field("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Ratio of cycles the tensor (HMMA) pipe is active.",
          "nvmlGpmMetricsGet(NVML_GPM_METRIC_ANY_TENSOR_UTIL) / 100", profiling=True),
    Field("DCGM_FI_PROF_DRAM_ACTIVE", "gauge",
          "Ratio of cycles the device memory interface is active sending or receiving data.",
          "nvmlGpmMetricsGet(NVML_GPM_METRIC_DRAM_BW_UTIL) / 100", profiling=True),
    Field("DCGM_FI_PROF_PCIE_TX_BYTES", "gauge",
          "The rate of data transmitted over the PCIe bus - including both protocol headers and data payloads - "
          "in bytes per second.", "nvmlGpmMetricsGet(NVML_GPM_METRIC_PCIE_TX_PER_SEC) * 2^20", profiling=True),
    Field("DCGM_FI_PROF_PCIE_RX_BYTES", "gauge",
          "The rate of data received over the PCIe bus - including both protocol headers and data payloads - "
          "in bytes per second.", "nvmlGpmMetricsGet(NVML_GPM_METRIC_PCIE_RX_PER_SEC) * 2^20", profiling=True),
)

# Profiling fields outside the default list that the idle signals need (dcgm-exporter users enable them
# in their counters file; the agent publishes them whenever GPM gives them).
EXTRA_PROFILING: tuple[Field, ...] = (
    Field("DCGM_FI_PROF_SM_ACTIVE", "gauge", "The ratio of cycles an SM has at least 1 warp assigned.",
          "nvmlGpmMetricsGet(NVML_GPM_METRIC_SM_UTIL) / 100", profiling=True),
    Field("DCGM_FI_PROF_SM_OCCUPANCY", "gauge", "The ratio of number of warps resident on an SM.",
          "nvmlGpmMetricsGet(NVML_GPM_METRIC_SM_OCCUPANCY) / 100", profiling=True),
)

# GPM metric id (pynvml NVML_GPM_METRIC_*) -> (DCGM field, factor from NVML's unit to DCGM's)
GPM_METRICS: tuple[tuple[int, str, float], ...] = (
    (1, "DCGM_FI_PROF_GR_ENGINE_ACTIVE", 0.01),  # GRAPHICS_UTIL, percent -> ratio
    (2, "DCGM_FI_PROF_SM_ACTIVE", 0.01),  # SM_UTIL
    (3, "DCGM_FI_PROF_SM_OCCUPANCY", 0.01),  # SM_OCCUPANCY
    (5, "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", 0.01),  # ANY_TENSOR_UTIL
    (10, "DCGM_FI_PROF_DRAM_ACTIVE", 0.01),  # DRAM_BW_UTIL
    (20, "DCGM_FI_PROF_PCIE_TX_BYTES", float(2**20)),  # PCIE_TX_PER_SEC, MiB/s -> bytes/s
    (21, "DCGM_FI_PROF_PCIE_RX_BYTES", float(2**20)),  # PCIE_RX_PER_SEC
)

# The idle signals an IdlePolicy can choose (beyond GPUUtil) and the DCGM field each one is.
SIGNALS: dict[str, str] = {
    "GraphicsActive": "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "SMActive": "DCGM_FI_PROF_SM_ACTIVE",
    "TensorActive": "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
}

EXPORTED: tuple[Field, ...] = tuple(f for f in DEFAULT_COUNTERS + EXTRA_PROFILING if f.source and f.type != "label")
BY_NAME: dict[str, Field] = {f.name: f for f in DEFAULT_COUNTERS + EXTRA_PROFILING}
