"""What the apiserver needs to know about each kind besides its schema: names, scope, printer columns.

Handlers and the Kube module use these names (``GPUBUDGET.plural`` ...) instead of spelling them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from gpu_steward.api.budget import GPUBudgetSpec, GPUBudgetStatus
from gpu_steward.api.common import GROUP, VERSION
from gpu_steward.api.idlepolicy import IdlePolicySpec, IdlePolicyStatus
from gpu_steward.api.lease import ExperimentLeaseSpec, ExperimentLeaseStatus

CATEGORY = "gpusteward"


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str  # integer | number | string | boolean | date
    json_path: str
    description: str
    priority: int = 0  # 0: always shown; 1: only with -o wide


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    description: str
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    columns: tuple[PrinterColumn, ...]
    group: str = GROUP
    version: str = VERSION
    categories: tuple[str, ...] = field(default=(CATEGORY,))

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since the resource was created.")

GPUBUDGET = Kind(
    kind="GPUBudget",
    plural="gpubudgets",
    singular="gpubudget",
    short_names=("gb",),
    description="The GPU quota and spend limit of a namespace.",
    spec_model=GPUBudgetSpec,
    status_model=GPUBudgetStatus,
    columns=(
        PrinterColumn("Quota", "integer", ".spec.gpuQuota", "The most GPUs the namespace may request at once."),
        PrinterColumn("In-Use", "integer", ".status.gpusInUse", "GPUs requested by running pods now."),
        PrinterColumn("Spend", "string", ".status.spend", "Spend so far this period."),
        PrinterColumn("Limit", "string", ".spec.spend.limit", "Spend limit per period."),
        PrinterColumn("Forecast", "string", ".status.forecast", "Forecast spend at the end of the period."),
        _AGE,
        PrinterColumn("Currency", "string", ".status.currency", "Currency of the amounts.", priority=1),
        PrinterColumn("Effective", "integer", ".status.effectiveQuota", "Quota in force incl. leases.", priority=1),
    ),
)

EXPERIMENTLEASE = Kind(
    kind="ExperimentLease",
    plural="experimentleases",
    singular="experimentlease",
    # "lease" alone resolves to the built-in coordination.k8s.io Lease in kubectl (built-in names win over
    # CRD short names), so it works only qualified as `lease.gpusteward.dev`; "explease" works everywhere.
    short_names=("lease", "explease"),
    description="A time-boxed grant of GPUs for one experiment.",
    spec_model=ExperimentLeaseSpec,
    status_model=ExperimentLeaseStatus,
    columns=(
        PrinterColumn("Owner", "string", ".spec.owner", "Who the lease is for."),
        PrinterColumn("GPUs", "integer", ".spec.gpus", "GPUs granted."),
        PrinterColumn("Phase", "string", ".status.phase", "Where the lease is in its life."),
        # A string, not a date: kubectl shows future dates as "<invalid>".
        PrinterColumn("Expires", "string", ".status.expiresAt", "When the lease ends."),
        PrinterColumn("Spend", "string", ".status.spend", "Spend so far."),
        PrinterColumn("Purpose", "string", ".spec.purpose", "What the GPUs are for.", priority=1),
        _AGE,
    ),
)

IDLEPOLICY = Kind(
    kind="IdlePolicy",
    plural="idlepolicies",
    singular="idlepolicy",
    short_names=("idlepol",),
    description="Which GPU workloads count as idle, how owners are told, and what happens then.",
    spec_model=IdlePolicySpec,
    status_model=IdlePolicyStatus,
    columns=(
        PrinterColumn("Mode", "string", ".status.mode", "DryRun (shadow) or Enforcing."),
        PrinterColumn("Idle", "integer", ".status.idle", "Workloads idle now."),
        PrinterColumn("Warned", "integer", ".status.warned", "Workloads whose owners were warned."),
        PrinterColumn("Suspended", "integer", ".status.suspended", "Workloads suspended by this policy."),
        PrinterColumn("Saved", "string", ".status.reclaimedCost", "Money reclaimed from idle GPUs."),
        PrinterColumn("Would-Save", "string", ".status.wouldSaveCost", "Dry-run: money that would be saved.", 1),
        PrinterColumn("Watched", "integer", ".status.watched", "Workloads the policy watches.", priority=1),
        PrinterColumn("Unknown", "integer", ".status.unknown",
                      "Workloads without usable utilization data (never treated as idle).", priority=1),
        _AGE,
    ),
)

KINDS: tuple[Kind, ...] = (GPUBUDGET, EXPERIMENTLEASE, IDLEPOLICY)
