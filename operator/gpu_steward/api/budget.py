"""GPUBudget: the GPU quota and the spend limit of one namespace."""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from gpu_steward.api.common import (
    LIST_MAX,
    NAME_MAX,
    Currency,
    Duration,
    Model,
    Money,
    ResourceStatus,
    SecretKeyRef,
    Time,
    duration_bounds,
    rule,
    validations,
)

Period = Literal["Daily", "Weekly", "Monthly"]
OnExceeded = Literal["Notify", "BlockNew", "SuspendIdleFirst"]
DEFAULT_ALERT_AT = (50, 80, 100)
ALERT_PERCENT_MAX = 1000
MAX_GPUS = 100_000


class SpendSpec(Model):
    """How much the namespace may spend per period, and when to warn."""

    limit: Money
    currency: Currency = "USD"
    period: Period = "Monthly"
    alert_at: list[Annotated[int, Field(ge=1, le=ALERT_PERCENT_MAX)]] = Field(
        default_factory=lambda: list(DEFAULT_ALERT_AT),
        max_length=10,
        description="Percent of the limit at which owners are told, strictly ascending, each 1..1000.",
        json_schema_extra=validations(
            rule(
                "self.isSorted() && self.all(x, self.exists_one(y, y == x))",
                "spec.spend.alertAt must be strictly ascending (no repeats)",
            )
        ),
    )

    @field_validator("alert_at")
    @classmethod
    def _ascending(cls, value: list[int]) -> list[int]:
        # Mirrors the CEL rule so objects built in Python obey the same invariant.
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("alertAt must be strictly ascending (no repeats)")
        return value


class FastLane(Model):
    """Leases within these bounds are active at once; beyond them they wait for an approver."""

    max_gpus: int = Field(alias="maxGPUs", ge=0, le=MAX_GPUS)
    max_duration: Annotated[
        Duration, Field(json_schema_extra=duration_bounds(60, 30 * 86400, "spec.fastLane.maxDuration"))
    ]
    max_spend: Money | None = None
    max_renewals: int = Field(2, ge=0, le=52)
    max_active_per_owner: int = Field(
        1, ge=0, le=1000,
        description="Active fast-lane leases one user (the lease's creator) may hold in this namespace at once.",
    )
    max_active_per_namespace: int = Field(
        4, ge=0, le=10000, description="Active fast-lane leases this namespace may hold at once."
    )


class BudgetNotify(Model):
    """Who hears about this budget, and where."""

    slack_channel: str | None = Field(None, pattern=r"^#?[A-Za-z0-9._-]{1,80}$")
    webhook_secret_ref: SecretKeyRef | None = None
    owners: list[Annotated[str, Field(min_length=1, max_length=NAME_MAX)]] | None = Field(None, max_length=LIST_MAX)


class GPUBudgetSpec(Model):
    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "!has(self.fastLane) || self.fastLane.maxGPUs <= self.gpuQuota",
                "spec.fastLane.maxGPUs must not exceed spec.gpuQuota",
                field_path=".fastLane.maxGPUs",
            ),
            rule(
                "!has(self.fastLane) || !has(self.fastLane.maxSpend) || !has(self.spend)"
                " || double(self.fastLane.maxSpend) <= double(self.spend.limit)",
                "spec.fastLane.maxSpend must not exceed spec.spend.limit",
                field_path=".fastLane.maxSpend",
            ),
        )
    )

    gpu_quota: int = Field(ge=0, le=MAX_GPUS, description="The most GPUs the namespace may request at once.")
    spend: SpendSpec | None = None
    on_exceeded: OnExceeded = "Notify"
    fast_lane: FastLane | None = None
    notify: BudgetNotify | None = None

    @model_validator(mode="after")
    def _fast_lane_within_budget(self) -> GPUBudgetSpec:
        if self.fast_lane is None:
            return self
        if self.fast_lane.max_gpus > self.gpu_quota:
            raise ValueError("fastLane.maxGPUs must not exceed gpuQuota")
        spend_cap = self.fast_lane.max_spend
        if spend_cap is not None and self.spend is not None and spend_cap > self.spend.limit:
            raise ValueError("fastLane.maxSpend must not exceed spend.limit")
        return self


class GPUBudgetStatus(ResourceStatus):
    gpus_in_use: int | None = Field(None, ge=0)
    effective_quota: int | None = Field(None, ge=0)
    spend: Money | None = None
    forecast: Money | None = None
    currency: Currency | None = None
    period_start: Time | None = None
    period_end: Time | None = None
    announced_thresholds: list[int] = Field(default_factory=list, max_length=10)


__all__ = [
    "DEFAULT_ALERT_AT",
    "BudgetNotify",
    "FastLane",
    "GPUBudgetSpec",
    "GPUBudgetStatus",
    "OnExceeded",
    "Period",
    "SpendSpec",
]
