"""ExperimentLease: a time-boxed grant of GPUs for one experiment."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from gpu_steward.api.common import (
    LONG_TEXT_MAX,
    NAME_MAX,
    Duration,
    LabelSelector,
    Model,
    Money,
    Quantity,
    ResourceStatus,
    Time,
    WorkloadRef,
    cel_seconds,
    duration_bounds,
    rule,
    validations,
)

Phase = Literal["PendingApproval", "Active", "Expiring", "Expired", "Released", "Rejected"]
OnExpiry = Literal["Suspend", "Notify"]
LEASE_LABEL = "gpusteward.dev/lease"
# Applied by the operator, not the schema: a schema default is filled in before CEL runs and would
# reject every lease shorter than 15 minutes under the "gracePeriod < duration" rule.
DEFAULT_GRACE_PERIOD = timedelta(minutes=15)
MAX_LEASE_DURATION_S = 90 * 86400
MAX_RENEWALS = 52
MAX_LEASE_GPUS = 4096

_IMMUTABLE = "self == oldSelf"


class ExperimentLeaseSpec(Model):
    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "has(self.duration) != has(self.expiresAt)",
                "exactly one of spec.duration or spec.expiresAt must be set",
                reason="FieldValueInvalid",
            ),
            rule(
                f"!has(self.duration) || !has(self.gracePeriod) || "
                f"{cel_seconds('self.gracePeriod')} < {cel_seconds('self.duration')}",
                "spec.gracePeriod must be shorter than spec.duration",
                field_path=".gracePeriod",
            ),
            rule(
                "has(self.expiresAt) == has(oldSelf.expiresAt)",
                "spec.duration and spec.expiresAt cannot be swapped after creation",
            ),
        )
    )

    owner: str = Field(
        min_length=1,
        max_length=NAME_MAX,
        description="Who the lease is for (a user name); immutable.",
        json_schema_extra=validations(rule(_IMMUTABLE, "spec.owner is immutable")),
    )
    owner_email: str | None = Field(None, max_length=NAME_MAX, json_schema_extra={"format": "email"})
    purpose: str = Field(
        min_length=1,
        max_length=LONG_TEXT_MAX,
        description="What the GPUs are for; immutable.",
        json_schema_extra=validations(rule(_IMMUTABLE, "spec.purpose is immutable")),
    )
    dataset: str | None = Field(None, max_length=LONG_TEXT_MAX)
    gpus: int = Field(ge=1, le=MAX_LEASE_GPUS)
    duration: Duration | None = Field(
        None, json_schema_extra=duration_bounds(60, MAX_LEASE_DURATION_S, "spec.duration")
    )
    expires_at: Time | None = None
    max_spend: Money | None = None
    selector: LabelSelector | None = Field(
        None, description=f"The pods the lease covers; absent: pods labelled {LEASE_LABEL}=<lease name>."
    )
    renewals: int = Field(
        0,
        ge=0,
        le=MAX_RENEWALS,
        description="How many renewals the owner asks for; each extends the lease by its duration.",
        json_schema_extra=validations(rule("self >= oldSelf", "spec.renewals cannot decrease")),
    )
    grace_period: Duration | None = Field(
        None,
        description="Notice before the lease's action on expiry; absent: 15m, cut to the duration.",
        json_schema_extra=duration_bounds(None, 86400, "spec.gracePeriod"),
    )
    on_expiry: OnExpiry = "Suspend"
    approved: bool = Field(
        False,
        description="Set by an approver; the admission webhook checks who and stamps the approved terms. "
        "An edit of gpus, duration, expiresAt, maxSpend or selector withdraws it.",
    )

    @model_validator(mode="after")
    def _one_end(self) -> ExperimentLeaseSpec:
        # Mirrors the CEL rules so objects built in Python obey the same invariants.
        if (self.duration is None) == (self.expires_at is None):
            raise ValueError("exactly one of duration or expiresAt must be set")
        if self.duration is not None and self.grace_period is not None and self.grace_period >= self.duration:
            raise ValueError("gracePeriod must be shorter than duration")
        return self

    def effective_grace_period(self) -> timedelta:
        """The grace period in force: the one set, else 15m cut to half the duration."""
        if self.grace_period is not None:
            return self.grace_period
        if self.duration is not None:
            return min(DEFAULT_GRACE_PERIOD, self.duration / 2)
        return DEFAULT_GRACE_PERIOD


class ExperimentLeaseStatus(ResourceStatus):
    phase: Phase | None = None
    expires_at: Time | None = None
    approved_by: str | None = Field(None, max_length=NAME_MAX)
    gpu_hours: Quantity | None = None
    spend: Money | None = None
    renewals_granted: int | None = Field(None, ge=0)
    workloads: list[WorkloadRef] = Field(default_factory=list, max_length=1000)
    created_by: str | None = Field(None, max_length=NAME_MAX, description="Who created the lease (admission).")
    granted_gpus: int | None = Field(None, ge=0, description="GPUs the lease was granted (what the quota adds).")
    foreign_workloads: int | None = Field(
        None, ge=0,
        description="Workloads the selector matches that the lease's creator did not create: never suspended by it.",
    )


__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "LEASE_LABEL",
    "ExperimentLeaseSpec",
    "ExperimentLeaseStatus",
    "OnExpiry",
    "Phase",
]
