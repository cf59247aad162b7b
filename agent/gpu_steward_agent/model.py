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


@dataclass(frozen=True, slots=True)
class MigReading:
    uuid: str
    name: str
    gpu_instance_id: int
    compute_instance_id: int
    mem_used: int | None
    mem_total: int | None


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
    power_w: float | None = None
    temp_c: float | None = None
    processes: list[ProcessReading] = field(default_factory=list)
    processes_known: bool = True  # False when NVML could not list the processes this round
    process_util: bool = False  # NVML gave per-process utilization this round
    migs: list[MigReading] = field(default_factory=list)


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
