"""IdlePolicy: which GPU workloads count as idle, how owners are told, and what happens then."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from gpu_steward.api.common import (
    LIST_MAX,
    Currency,
    Duration,
    LabelSelector,
    Model,
    Money,
    Quantity,
    ResourceStatus,
    duration_bounds,
    rule,
    validations,
)

# Every kind workloads.model.SUSPENDABLE_KINDS lists, and Pod (bare pods: notify only); a test keeps them equal.
WorkloadKind = Literal[
    "Job", "Notebook", "StatefulSet", "Deployment", "JobSet", "TrainJob", "PyTorchJob", "TFJob", "MPIJob",
    "XGBoostJob", "PaddleJob", "JAXJob", "RayJob", "RayCluster", "LeaderWorkerSet", "Pod"
]
Channel = Literal["Slack", "Event"]
Action = Literal["Suspend", "NotifyOnly"]
Mode = Literal["DryRun", "Enforcing"]
# What "utilization" means for the threshold: NVML's GPU utilization (the share of time any kernel ran), or
# a profiling figure from NVML GPM / DCGM (Hopper and later): graphics engine active, SM active (the share
# of SMs with work: a tiny kernel loop keeps GPUUtil at 100 % but SMActive near 0), tensor pipe active.
Signal = Literal["GPUUtil", "GraphicsActive", "SMActive", "TensorActive"]

MAX_SNOOZE_S = 7 * 86400
MAX_EXEMPTION_S = 30 * 86400
MAX_NOTICE_S = 86400
DEFAULT_STARTUP_GRACE = timedelta(minutes=10)

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class IdleSelector(Model):
    """Which workloads the policy watches. Absent: every GPU workload in the policy's own namespace."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "!(has(self.namespaces) && has(self.namespaceSelector))",
                "set at most one of spec.selector.namespaces or spec.selector.namespaceSelector",
                field_path=".namespaceSelector",
            )
        )
    )

    namespaces: list[Annotated[str, Field(max_length=63, pattern=_DNS_LABEL)]] | None = Field(None, max_length=LIST_MAX)
    namespace_selector: LabelSelector | None = None
    workload_selector: LabelSelector | None = None
    kinds: list[WorkloadKind] | None = Field(
        None,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Workload kinds to act on; absent: all supported kinds.",
    )


class IdleCriteria(Model):
    """A workload is idle when its GPU utilization (the chosen signal) stays below gpuUtilPercent for the whole
    `for` window."""

    gpu_util_percent: int = Field(ge=0, le=100, description="Threshold in percent of the chosen signal.")
    signal: Signal | None = Field(
        None,
        description="Which figure is compared with gpuUtilPercent: GPUUtil (the default: NVML/DCGM GPU "
        "utilization), or the profiling ratios GraphicsActive, SMActive, TensorActive (in percent; NVML GPM "
        "or DCGM, Hopper and "
        "later). A workload whose GPUs cannot give the signal is judged on GPUUtil, and the policy's status "
        "says so (signalFallbacks, condition SignalFallback).",
    )
    for_: Duration = Field(
        alias="for",
        json_schema_extra=duration_bounds(60, 7 * 86400, "spec.idle.for"),
        description="How long utilization must stay low; at least 1m.",
    )
    startup_grace: Duration = Field(
        DEFAULT_STARTUP_GRACE,
        json_schema_extra=duration_bounds(None, 86400, "spec.idle.startupGrace"),
        description="Time after a pod starts during which it is never idle.",
    )


def _default_channels() -> list[Channel]:
    return ["Event"]


class Notice(Model):
    """How long before acting the owner is told, on which channels, and how long they may snooze."""

    before: Duration = Field(json_schema_extra=duration_bounds(1, MAX_NOTICE_S, "spec.notice.before"))
    channels: list[Channel] = Field(
        default_factory=_default_channels,
        min_length=1,
        max_length=2,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    max_snooze: Duration = Field(
        json_schema_extra=duration_bounds(None, MAX_SNOOZE_S, "spec.notice.maxSnooze"),
        description="The longest snooze an owner may set (gpusteward.dev/snooze-until is cut to it); at most 7d.",
    )


class ScheduleWindow(Model):
    cron: str = Field(min_length=1, max_length=128, description="Start of each window, 5-field cron syntax.")
    duration: Duration = Field(json_schema_extra=duration_bounds(60, 7 * 86400, "spec.schedule.windows[].duration"))


class Schedule(Model):
    """The policy enforces only inside these windows; no schedule means always."""

    time_zone: str = Field("UTC", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")
    windows: list[ScheduleWindow] = Field(min_length=1, max_length=20)


class Exemptions(Model):
    """Workloads matching a selector are skipped for at most maxExemption from when the operator first saw
    them match (the labels are the workload's: its users write them); per-workload exempt-until is cut to
    maxExemption too. A workload that must never be governed is left out of the policy's selector."""

    selectors: list[LabelSelector] = Field(default_factory=list, max_length=20)
    max_exemption: Duration = Field(
        json_schema_extra=duration_bounds(None, MAX_EXEMPTION_S, "spec.exemptions.maxExemption"),
        description="The longest exemption honoured, by a selector (from when the operator first saw the "
                    "workload match) or by gpusteward.dev/exempt-until; at most 30d.",
    )


class IdlePolicySpec(Model):
    selector: IdleSelector | None = None
    idle: IdleCriteria
    notice: Notice
    action: Action = "Suspend"
    schedule: Schedule | None = None
    exemptions: Exemptions | None = None
    dry_run: bool = Field(True, description="Shadow mode: compute and report, touch nothing. On by default.")


class IdlePolicyStatus(ResourceStatus):
    mode: Mode | None = None
    watched: int | None = Field(None, ge=0)
    active: int | None = Field(None, ge=0, description="Workloads measured busy (or held: grace, snooze, exemption).")
    unknown: int | None = Field(None, ge=0, description="Workloads without usable utilization data: never idle.")
    idle: int | None = Field(None, ge=0)
    warned: int | None = Field(None, ge=0)
    suspended: int | None = Field(None, ge=0)
    reclaimed_gpu_hours: Quantity | None = Field(None, alias="reclaimedGPUHours")
    reclaimed_cost: Money | None = None
    would_suspend: int | None = Field(None, ge=0)
    would_save_gpu_hours: Quantity | None = Field(None, alias="wouldSaveGPUHours")
    would_save_cost: Money | None = None
    currency: Currency | None = None
    failed: int | None = Field(None, ge=0, description="Workloads whose evaluation failed in the last pass "
                               "(an API error); the others were evaluated, these are retried next pass.")
    protected: int | None = Field(None, ge=0, description="Workloads only notified about because suspending "
                                  "them would delete data (condition DataProtected says which and why).")
    signal_fallbacks: int | None = Field(None, ge=0, description="Workloads judged on GPUUtil in the last pass "
                                         "because their GPUs cannot give the chosen idle.signal.")
    deferred: int | None = Field(None, ge=0, description="Suspensions held back in the last pass by the "
                                 "blast-radius limits (caps per pass/hour, circuit breaker, global switch); "
                                 "they wait for a later pass, their warnings stand.")


__all__ = [
    "Action",
    "Channel",
    "Exemptions",
    "IdleCriteria",
    "IdlePolicySpec",
    "IdlePolicyStatus",
    "IdleSelector",
    "Mode",
    "Notice",
    "Schedule",
    "ScheduleWindow",
    "Signal",
    "WorkloadKind",
]
