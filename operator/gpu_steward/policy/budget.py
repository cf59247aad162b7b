"""GPUBudget decisions: the quota the namespace gets, thresholds to announce, what to do when the
spend limit is exceeded, and period roll-over. Pure: plain values in, plain values out.

The quota is a ``ResourceQuota`` that the operator owns, so the apiserver enforces it (a pod over it
is rejected at admission, not after the fact). It holds one ``requests.<resource>`` entry per GPU
resource (``policy.gpus``: the well-known names, every GPU resource a node advertises and every one a
pod of the namespace asks for), because a ResourceQuota cannot sum different resources. ``gpuQuota``
bounds the *sum* of all of them: each entry is what that resource holds now plus the headroom left
to the namespace as a whole (``quota_hard``). With nothing running every entry equals ``gpuQuota``;
once GPUs of any kind are in use, every other kind shrinks by as much at the next reconcile. Between
two reconciles a namespace that races several kinds at once can overshoot by at most the headroom
per kind; the next pass blocks it until it is back under (status ``gpusInUse`` shows the sum).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from gpu_steward.policy.cost import Period, fmt_decimal, forecast, format_time, period_bounds, q_money
from gpu_steward.policy.gpus import GPU_RESOURCE_NAMES, quota_key

OnExceeded = Literal["Notify", "BlockNew", "SuspendIdleFirst"]

QUOTA_RESOURCE = "requests.nvidia.com/gpu"  # the main entry; see quota_hard for the others
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "gpu-steward"
BUDGET_LABEL = "gpusteward.dev/budget"
SPEND_LEDGER_ANNOTATION = "gpusteward.dev/spend-ledger"
DEFAULT_ALERT_AT = (50, 80, 100)


@dataclass(frozen=True)
class SpendTerms:
    limit: Decimal
    currency: str
    period: Period = "Monthly"
    alert_at: tuple[int, ...] = DEFAULT_ALERT_AT


@dataclass(frozen=True)
class BudgetTerms:
    """The parts of a GPUBudget spec that decisions need (parsed and validated at the edge)."""

    gpu_quota: int
    spend: SpendTerms | None = None
    on_exceeded: OnExceeded = "Notify"


def quota_name(budget_name: str) -> str:
    return f"gpusteward-{budget_name}"


def quota_hard(limit: int, used: Mapping[str, int] | None = None, resources: Iterable[str] = ()) -> dict[str, str]:
    """``spec.hard`` for ``limit`` GPUs of any kind together: every GPU resource (the well-known ones,
    ``resources`` and those in ``used``) may grow by the headroom ``limit - sum(used)`` from what it
    holds now (``used``, GPUs per resource of the pods the apiserver's quota counts)."""
    used = {r: n for r, n in (used or {}).items() if n > 0}
    headroom = max(0, limit - sum(used.values()))
    names = set(GPU_RESOURCE_NAMES) | set(resources) | set(used)
    return {quota_key(r): str(used.get(r, 0) + headroom) for r in sorted(names)}


def desired_quota(namespace: str, budget_name: str, budget_uid: str | None, hard: int,
                  used: Mapping[str, int] | None = None, resources: Iterable[str] = ()) -> dict[str, Any]:
    """The ResourceQuota the budget owns (``hard`` GPUs of every kind together, see ``quota_hard``); an
    ownerReference deletes it with the budget."""
    meta: dict[str, Any] = {
        "name": quota_name(budget_name),
        "namespace": namespace,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY, BUDGET_LABEL: budget_name},
    }
    if budget_uid:
        meta["ownerReferences"] = [
            {
                "apiVersion": "gpusteward.dev/v1alpha1",
                "kind": "GPUBudget",
                "name": budget_name,
                "uid": budget_uid,
                "controller": True,
                "blockOwnerDeletion": False,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": meta,
        "spec": {"hard": quota_hard(hard, used, resources)},
    }


# ---- the spend ledger (restart-safe and survives deleted pods) -----------------------------------


@dataclass(frozen=True)
class SpendLedger:
    """Spend of one period: ``settled`` for pods that are gone, ``live`` per pod uid as last seen.

    Pod timestamps let the operator recompute a live pod's cost at any time; a deleted pod's cost
    would vanish with it, so its last known cost moves to ``settled`` when it disappears. Stored as
    JSON in an annotation of the budget (or lease), so a restart loses nothing.
    """

    period_start: str
    settled: Decimal = Decimal(0)
    live: Mapping[str, Decimal] = field(default_factory=dict)

    @property
    def spend(self) -> Decimal:
        return self.settled + sum(self.live.values(), Decimal(0))

    def to_json(self) -> str:
        return json.dumps(
            {
                "period": self.period_start,
                "settled": fmt_decimal(q_money(self.settled)),
                "live": {uid: fmt_decimal(q_money(v)) for uid, v in sorted(self.live.items())},
            },
            separators=(",", ":"),
        )

    @staticmethod
    def from_json(text: object) -> SpendLedger | None:
        if not isinstance(text, str):
            return None
        try:
            raw = json.loads(text)
            ledger = SpendLedger(
                period_start=str(raw["period"]),
                settled=Decimal(str(raw.get("settled", "0"))),
                live={str(k): Decimal(str(v)) for k, v in (raw.get("live") or {}).items()},
            )
        except (ValueError, KeyError, TypeError, InvalidOperation, AttributeError):
            return None  # a mangled ledger restarts from the live pods rather than crashing
        # Spend is finite and never negative: a ledger saying otherwise was not written by us (an older
        # version's annotation, read once, is user-writable) and would hide spend from maxSpend.
        if not all(v.is_finite() and v >= 0 for v in (ledger.settled, *ledger.live.values())):
            return None
        return ledger


def roll_ledger(previous: SpendLedger | None, period_start: str, live_costs: Mapping[str, Decimal]) -> SpendLedger:
    """The ledger after observing ``live_costs`` (cost inside the period per pod uid).

    A new period starts from zero; pods seen before and gone now settle at their last cost.
    """
    if previous is None or previous.period_start != period_start:
        return SpendLedger(period_start, Decimal(0), dict(live_costs))
    settled = previous.settled + sum((cost for uid, cost in previous.live.items() if uid not in live_costs), Decimal(0))
    live = {uid: max(cost, previous.live.get(uid, Decimal(0))) for uid, cost in live_costs.items()}
    return SpendLedger(period_start, settled, live)


# ---- thresholds and decisions ---------------------------------------------------------------------


def crossed_thresholds(alert_at: Sequence[int], spend: Decimal, limit: Decimal) -> list[int]:
    if limit <= 0:
        return sorted(alert_at) if spend > 0 else []
    return sorted(t for t in alert_at if spend * 100 >= limit * t)


@dataclass(frozen=True)
class BudgetObservation:
    """What the orchestration measured, for one namespace at ``now``."""

    spend: Decimal
    hourly_burn: Decimal  # rate of the GPU pods running now
    gpus_in_use: int
    lease_gpus: int  # GPUs of the namespace's Active/Expiring leases


@dataclass(frozen=True)
class BudgetDecision:
    period_start: dt.datetime
    period_end: dt.datetime
    rolled_over: bool
    effective_quota: int
    exceeded: bool
    blocked: bool  # quota shrunk to what is in use
    suspend_idle: bool  # suspend idle workloads (SuspendIdleFirst)
    announce: list[int]  # thresholds to send a notice for now
    announced: list[int]  # status.announcedThresholds after this pass
    forecast: Decimal


def decide(
    terms: BudgetTerms,
    obs: BudgetObservation,
    announced_before: Sequence[int],
    status_period_start: str | None,
    now: dt.datetime,
) -> BudgetDecision:
    """One reconcile of a budget. ``announced_before`` is status.announcedThresholds, valid for
    ``status_period_start``; a new period forgets them (each threshold is announced once a period)."""
    period: Period = terms.spend.period if terms.spend else "Monthly"
    start, end = period_bounds(period, now)
    rolled_over = status_period_start is not None and status_period_start != format_time(start)
    previous = [] if rolled_over or status_period_start is None else sorted(set(announced_before))

    normal = terms.gpu_quota + obs.lease_gpus
    exceeded = False
    announce: list[int] = []
    if terms.spend is not None:
        crossed = crossed_thresholds(terms.spend.alert_at, obs.spend, terms.spend.limit)
        announce = [t for t in crossed if t not in previous]
        exceeded = obs.spend >= terms.spend.limit
    blocked = exceeded and terms.on_exceeded in ("BlockNew", "SuspendIdleFirst")
    quota = min(normal, obs.gpus_in_use) if blocked else normal
    return BudgetDecision(
        period_start=start,
        period_end=end,
        rolled_over=rolled_over,
        effective_quota=max(0, quota),
        exceeded=exceeded,
        blocked=blocked,
        suspend_idle=exceeded and terms.on_exceeded == "SuspendIdleFirst",
        announce=announce,
        announced=sorted(set(previous) | set(announce)),
        forecast=forecast(obs.spend, obs.hourly_burn, now, end),
    )


def threshold_message(
    namespace: str,
    budget: str,
    threshold: int,
    spend: Decimal,
    limit: Decimal,
    currency: str,
    forecast_value: Decimal,
    period_end: dt.datetime,
) -> str:
    return (
        f"GPU budget {namespace}/{budget} reached {threshold}% of its limit: spent "
        f"{fmt_decimal(q_money(spend))} of {fmt_decimal(limit)} {currency} this period; forecast at period end "
        f"({format_time(period_end)}): {fmt_decimal(q_money(forecast_value))} {currency}."
    )


def parse_alert_at(raw: object) -> tuple[int, ...]:
    if raw is None:
        return DEFAULT_ALERT_AT
    if not isinstance(raw, list) or not all(isinstance(x, int) and 1 <= x <= 1000 for x in raw):
        raise ValueError("spec.spend.alertAt: a list of integer percents 1..1000")
    return tuple(sorted(set(raw)))
