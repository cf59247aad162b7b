"""Plain records passed between the agent's parts: NVML readings, pod identities, attributed samples."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ProcessReading:
    pid: int
    used_memory: int | None  # bytes; None where NVML cannot tell
    sm_util: float | None  # percent, from nvmlDeviceGetProcessUtilization; None when not available
    gpu_instance_id: int | None = None  # MIG GPU instance the process runs in
    compute_instance_id: int | None = None


@dataclass(slots=True)
class MigReading:
    uuid: str
    name: str
    gpu_instance_id: int
    compute_instance_id: int
    mem_used: int | None
    mem_total: int | None
    prof: dict[str, float] | None = None  # GPM figures of the instance (DCGM_FI_PROF_* name -> DCGM unit)


@dataclass(slots=True)
class GpuReading:
    """One GPU in one sampling round. ok=False: the GPU is unknown this round (error_kind says why)."""

    index: int
    uuid: str
    model: str = ""
    ok: bool = True
    error_kind: str | None = None
    util: float | None = None  # percent
    mem_util: float | None = None  # percent (memory copy engine activity)
    mem_used: int | None = None  # bytes
    mem_total: int | None = None
    mem_free: int | None = None
    mem_reserved: int | None = None  # None where only the v1 memory call answers
    pci_bus_id: str = ""
    power_w: float | None = None
    temp_c: float | None = None
    processes: list[ProcessReading] = field(default_factory=list)
    processes_known: bool = True  # False when NVML could not list the processes this round
    process_util: bool = False  # NVML gave per-process utilization this round
    migs: list[MigReading] = field(default_factory=list)
    # Device-wide hardware fields by dcgm-exporter name (clocks, energy, XID, remapped rows, ...), in
    # dcgm-exporter's units; a field the device does not support is absent.
    hw: dict[str, float] = field(default_factory=dict)
    # GPM profiling figures (DCGM_FI_PROF_* name -> ratio 0..1 or bytes/s); None: no GPM on this device
    # (or not yet: GPM needs two samples, so the first round after start has none).
    prof: dict[str, float] | None = None


@dataclass(frozen=True, slots=True)
class NvmlError:
    """A failed NVML call: which GPU (index, uuid if known), which call, and the NVML error name."""

    index: int | None
    uuid: str
    call: str
    kind: str


@dataclass(frozen=True, slots=True)
class NodeReading:
    gpus: list[GpuReading]
    errors: list[NvmlError]


@dataclass(frozen=True, slots=True)
class Holder:
    """A container the kubelet gave a device to (pod-resources) — or, without it, a pod seen in a cgroup."""

    namespace: str = ""
    pod: str = ""
    container: str = ""
    uid: str = ""


@dataclass(frozen=True, slots=True)
class Assignment:
    """One container's devices of one resource, as the kubelet pod-resources API lists them."""

    namespace: str
    pod: str
    container: str
    resource: str
    device_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PodRef:
    """What /proc/<pid>/cgroup says about a process."""

    uid: str
    container_id: str = ""


@dataclass(slots=True)
class PodSample:
    """One container's GPU figures for one round.

    attribution: "device" (it holds the GPU alone: device figures), "process" (shared GPU, summed from
    its own processes), "none" (no figure can be attributed: shared without per-process data, MIG
    instance, or the GPU is unknown). shared=True marks a pod on a shared GPU whose utilization could
    not be split, so util is None rather than the device's value copied to every pod.
    """

    holder: Holder
    gpus: list[str]
    util: float | None
    mem_used: int | None
    attribution: str
    shared: bool = False
    unknown: bool = False  # a GPU it holds was unknown this round
    # Idle signals from GPM (GraphicsActive/SMActive/TensorActive -> percent 0..100) where the container's
    # GPUs (or MIG instances) are its alone and have GPM; None otherwise (never a device value copied to
    # several pods).
    signals: dict[str, float] | None = None
