"""The pydantic models of GPU Steward's three custom resources — the one source of their schemas.

Python attribute names are snake_case; the wire names (``by_alias``) are the camelCase fields of the CRDs.
Unit fields are parsed values here (``timedelta``, ``Decimal``, aware ``datetime``) and strings on the wire.
Build a resource body with ``model.to_body()``; read an admitted object with ``gpu_steward.api.parse``.
"""

from __future__ import annotations

from gpu_steward.api.budget import (
    DEFAULT_ALERT_AT,
    BudgetNotify,
    FastLane,
    GPUBudgetSpec,
    GPUBudgetStatus,
    OnExceeded,
    Period,
    SpendSpec,
)
from gpu_steward.api.common import (
    API_VERSION,
    GROUP,
    VERSION,
    Condition,
    Duration,
    LabelSelector,
    LabelSelectorRequirement,
    Money,
    Quantity,
    SecretKeyRef,
    Time,
    WorkloadRef,
)
from gpu_steward.api.idlepolicy import (
    DEFAULT_STARTUP_GRACE,
    Action,
    Channel,
    Exemptions,
    IdleCriteria,
    IdlePolicySpec,
    IdlePolicyStatus,
    IdleSelector,
    Mode,
    Notice,
    Schedule,
    ScheduleWindow,
    WorkloadKind,
)
from gpu_steward.api.lease import (
    DEFAULT_GRACE_PERIOD,
    LEASE_LABEL,
    ExperimentLeaseSpec,
    ExperimentLeaseStatus,
    OnExpiry,
    Phase,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_ALERT_AT",
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_STARTUP_GRACE",
    "GROUP",
    "LEASE_LABEL",
    "VERSION",
    "Action",
    "BudgetNotify",
    "Channel",
    "Condition",
    "Duration",
    "Exemptions",
    "ExperimentLeaseSpec",
    "ExperimentLeaseStatus",
    "FastLane",
    "GPUBudgetSpec",
    "GPUBudgetStatus",
    "IdleCriteria",
    "IdlePolicySpec",
    "IdlePolicyStatus",
    "IdleSelector",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Mode",
    "Money",
    "Notice",
    "OnExceeded",
    "OnExpiry",
    "Period",
    "Phase",
    "Quantity",
    "Schedule",
    "ScheduleWindow",
    "SecretKeyRef",
    "SpendSpec",
    "Time",
    "WorkloadKind",
    "WorkloadRef",
]
