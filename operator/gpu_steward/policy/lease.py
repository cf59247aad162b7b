"""ExperimentLease state machine and approval rules. Pure.

Phases::

    (new) ──inside fast lane──▶ Active ──gracePeriod before end──▶ Expiring ──end / maxSpend──▶ Expired
      │                          ▲  ▲                                  │                          │
      └──beyond it──▶ PendingApproval ──approved──┘  └────renewal───────┘     no covered pod holds GPUs
                            │                                                                     ▼
                            └──approved: false──▶ Rejected                                     Released

- Only Active and Expiring leases add their GPUs to the namespace's quota; at Expired the quota
  is released and covered workloads are suspended (``onExpiry: Suspend``) or their owner told.
- Released: an expired lease none of whose covered pods still holds a GPU — the grant is over.
- A renewal (``spec.renewals`` raised) extends the end by one lease length each, up to
  ``fastLane.maxRenewals``; beyond that it is refused with a reason (condition + Event).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from gpu_steward.policy.cost import fmt_decimal, format_time, q_money

Phase = Literal["PendingApproval", "Active", "Expiring", "Expired", "Released", "Rejected"]
OnExpiry = Literal["Suspend", "Notify"]
QUOTA_PHASES: frozenset[str] = frozenset({"Active", "Expiring"})
TERMINAL_PHASES: frozenset[str] = frozenset({"Released", "Rejected"})
APPROVED_BY_ANNOTATION = "gpusteward.dev/approved-by"
# An approver rejects a pending lease by setting this annotation (its value: the reason).
REJECTED_ANNOTATION = "gpusteward.dev/rejected"


@dataclass(frozen=True)
class LeaseTerms:
    """The parts of an ExperimentLease spec decisions need (parsed and validated at the edge)."""

    owner: str
    gpus: int
    created: dt.datetime
    duration: dt.timedelta | None = None
    expires_at: dt.datetime | None = None
    max_spend: Decimal | None = None
    renewals: int = 0
    grace: dt.timedelta = dt.timedelta(minutes=15)
    on_expiry: OnExpiry = "Suspend"
    approved: bool | None = None

    @property
    def length(self) -> dt.timedelta:
        """One lease length: ``duration``, or from creation to ``expiresAt``; renewals add this."""
        if self.duration is not None:
            return self.duration
        if self.expires_at is not None:
            return max(dt.timedelta(0), self.expires_at - self.created)
        return dt.timedelta(0)


@dataclass(frozen=True)
class FastLane:
    max_gpus: int
    max_duration: dt.timedelta
    max_spend: Decimal | None = None
    max_renewals: int = 2


@dataclass(frozen=True)
class LeaseState:
    """What status says (phase None: never reconciled)."""

    phase: Phase | None = None
    expires_at: dt.datetime | None = None
    renewals_granted: int = 0


@dataclass(frozen=True)
class LeaseUsage:
    spend: Decimal = Decimal(0)
    pods_holding_gpus: int = 0  # covered pods that are scheduled and not finished


@dataclass(frozen=True)
class Notice:
    reason: str
    message: str
    type: Literal["Normal", "Warning"] = "Normal"


@dataclass(frozen=True)
class LeaseDecision:
    phase: Phase
    expires_at: dt.datetime | None
    renewals_granted: int
    counts_for_quota: bool
    suspend_workloads: bool  # at/after expiry with onExpiry Suspend: suspend covered workloads
    notices: list[Notice] = field(default_factory=list)  # sent on the transition that caused them
    # condition type -> (status, reason, message)
    conditions: dict[str, tuple[str, str, str]] = field(default_factory=dict)


def fast_lane_excess(terms: LeaseTerms, lane: FastLane | None, price_per_gpu_hour: Decimal) -> list[str]:
    """Why the lease needs approval (empty: inside the fast lane, active at once)."""
    if lane is None:
        return ["no GPUBudget with a fastLane governs this namespace"]
    reasons: list[str] = []
    if terms.gpus > lane.max_gpus:
        reasons.append(f"gpus {terms.gpus} > fastLane.maxGPUs {lane.max_gpus}")
    if terms.length > lane.max_duration:
        reasons.append(f"duration {terms.length} > fastLane.maxDuration {lane.max_duration}")
    if lane.max_spend is not None:
        hours = Decimal(int(terms.length.total_seconds())) / Decimal(3600)
        estimate = Decimal(terms.gpus) * hours * price_per_gpu_hour
        if terms.max_spend is not None:
            estimate = min(estimate, terms.max_spend)
        if estimate > lane.max_spend:
            reasons.append(
                f"estimated spend {fmt_decimal(q_money(estimate))} > fastLane.maxSpend {fmt_decimal(lane.max_spend)}"
            )
    return reasons


def _first_end(terms: LeaseTerms, activated: dt.datetime) -> dt.datetime:
    if terms.duration is not None:
        return activated + terms.duration
    return terms.expires_at if terms.expires_at is not None else activated


def step(
    terms: LeaseTerms,
    state: LeaseState,
    lane: FastLane | None,
    usage: LeaseUsage,
    price_per_gpu_hour: Decimal,
    now: dt.datetime,
) -> LeaseDecision:
    """The lease's next state. Notices are attached to transitions only, and the new phase is
    persisted in status, so each notice goes out once even across operator restarts."""
    phase = state.phase
    expires_at = state.expires_at
    granted = state.renewals_granted
    notices: list[Notice] = []
    conditions: dict[str, tuple[str, str, str]] = {}
    max_renewals = lane.max_renewals if lane is not None else 0

    if phase in TERMINAL_PHASES:
        return LeaseDecision(phase, expires_at, granted, False, False, [], {})

    if phase is None or phase == "PendingApproval":
        excess = fast_lane_excess(terms, lane, price_per_gpu_hour)
        if terms.approved is False:
            notices.append(Notice("LeaseRejected", f"lease for {terms.owner} was rejected by an approver", "Warning"))
            return LeaseDecision(
                "Rejected",
                None,
                0,
                False,
                False,
                notices,
                {"Approved": ("False", "Rejected", "an approver set spec.approved to false")},
            )
        if excess and terms.approved is not True:
            why = "; ".join(excess)
            if phase is None:
                notices.append(Notice("LeasePendingApproval", f"lease needs approval: {why}"))
            return LeaseDecision(
                "PendingApproval", None, 0, False, False, notices, {"Approved": ("False", "BeyondFastLane", why)}
            )
        phase = "Active"
        expires_at = _first_end(terms, now)
        granted = 0
        how = "approved" if excess else "inside the fast lane"
        notices.append(Notice("LeaseActive", f"lease active ({how}) until {format_time(expires_at)}"))
        conditions["Approved"] = ("True", "Approved" if excess else "FastLane", how)

    assert expires_at is not None
    # Renewals: each one asked for and allowed extends the end by one lease length.
    if phase in ("Active", "Expiring") and terms.renewals > granted:
        allowed = min(terms.renewals, max_renewals)
        if allowed > granted:
            expires_at = expires_at + terms.length * (allowed - granted)
            notices.append(
                Notice("LeaseRenewed", f"lease renewed ({allowed}/{max_renewals}) until {format_time(expires_at)}")
            )
            granted = allowed
            if phase == "Expiring" and now < expires_at - terms.grace:
                phase = "Active"
    if terms.renewals > max_renewals:
        conditions["RenewalRefused"] = (
            "True",
            "RenewalLimit",
            f"renewal {terms.renewals} refused: at most {max_renewals} renewals (fastLane.maxRenewals); "
            "ask for a new lease",
        )
    else:
        conditions["RenewalRefused"] = ("False", "WithinLimit", f"{granted} of {max_renewals} renewals granted")

    over_spend = terms.max_spend is not None and usage.spend >= terms.max_spend
    if phase in ("Active", "Expiring") and (now >= expires_at or over_spend):
        why = (
            f"spend {fmt_decimal(q_money(usage.spend))} reached spec.maxSpend {fmt_decimal(terms.max_spend)}"
            if over_spend and terms.max_spend is not None
            else f"it ended at {format_time(expires_at)}"
        )
        action = "its workloads are being suspended" if terms.on_expiry == "Suspend" else "its workloads keep running"
        notices.append(Notice("LeaseExpired", f"lease expired: {why}; GPU quota released, {action}", "Warning"))
        phase = "Expired"
    elif phase == "Active" and now >= expires_at - terms.grace:
        notices.append(
            Notice(
                "LeaseExpiring",
                f"lease expires at {format_time(expires_at)} ({_human(expires_at - now)} left); raise spec.renewals "
                f"to renew ({granted} of {max_renewals} used) or save your work",
                "Warning",
            )
        )
        phase = "Expiring"

    if phase == "Expired" and usage.pods_holding_gpus == 0:
        phase = "Released"
        notices.append(Notice("LeaseReleased", "lease released: no covered pod holds a GPU any more"))

    return LeaseDecision(
        phase=phase,
        expires_at=expires_at,
        renewals_granted=granted,
        counts_for_quota=phase in QUOTA_PHASES,
        suspend_workloads=phase == "Expired" and terms.on_expiry == "Suspend",
        notices=notices,
        conditions=conditions,
    )


def _human(delta: dt.timedelta) -> str:
    minutes = max(0, int(delta.total_seconds()) // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


# ---- who may approve ----------------------------------------------------------------------------


def approval_denial(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    username: str,
    groups: Collection[str],
    approver_groups: Collection[str],
) -> str | None:
    """Why ``username`` may not make this change to a lease, or None when allowed.

    ``old``/``new`` are whole objects (old is None on CREATE). Setting or changing
    ``spec.approved``, the approved-by stamp or the rejected annotation takes a member of an approver group who is
    not the lease's owner: nobody approves their own lease.
    """
    old_spec = (old or {}).get("spec") or {}
    new_spec = new.get("spec") or {}
    old_ann = ((old or {}).get("metadata") or {}).get("annotations") or {}
    new_ann = (new.get("metadata") or {}).get("annotations") or {}
    # spec.approved defaults to false: absent and false mean the same.
    approval_changed = bool(old_spec.get("approved")) != bool(new_spec.get("approved"))
    stamp_changed = old_ann.get(APPROVED_BY_ANNOTATION) != new_ann.get(APPROVED_BY_ANNOTATION)
    reject_changed = old_ann.get(REJECTED_ANNOTATION) != new_ann.get(REJECTED_ANNOTATION)
    if not (approval_changed or stamp_changed or reject_changed):
        return None
    if not set(groups) & set(approver_groups):
        return (
            f"user {username!r} may not set spec.approved: not a member of an approver group "
            f"({', '.join(sorted(approver_groups))})"
        )
    owner = new_spec.get("owner")
    if owner is not None and username == owner:
        return f"user {username!r} owns this lease and cannot approve or reject it"
    stamp = new_ann.get(APPROVED_BY_ANNOTATION)
    if stamp_changed and stamp is not None and stamp != username:
        return f"annotation {APPROVED_BY_ANNOTATION} must name the approving user ({username!r})"
    return None
