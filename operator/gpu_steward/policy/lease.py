"""ExperimentLease state machine and approval rules. Pure.

Phases::

    (new) ──inside fast lane──▶ Active ──gracePeriod before end──▶ Expiring ──end / maxSpend──▶ Expired
      │                          ▲  ▲                                  │                          │
      └──beyond it──▶ PendingApproval ──approved──┘  └────renewal───────┘     no covered pod holds GPUs
                            │                                                                     ▼
                            └──approved: false──▶ Rejected                                     Released

- Only Active and Expiring leases add their GPUs to the namespace's quota; at Expired the quota
  is released and covered workloads are suspended (``onExpiry: Suspend``; through the notice
  protocol, see ``policy.requests``) or their owner told.
- Released: an expired lease none of whose covered pods still holds a GPU — the grant is over.
- A renewal (``spec.renewals`` raised) extends the end by one lease length each, up to
  ``fastLane.maxRenewals``; beyond that it is refused with a reason (condition + Event).
- What the lease holds is its **grant** (``Grant``): the terms the operator activated it on (inside
  the fast lane, or approved), recorded where users cannot write. Quota, end, spend cap and the pods
  covered come from the grant, never from the spec as edited since: an edit of an active lease that
  stays inside the fast lane (or narrows the grant) is granted at once; any other edit waits for an
  approval of exactly those terms while the lease keeps running on its grant.
- Approval (``LeaseTerms.approved``) is decided at the edge: an approver's stamp written by the
  admission webhook for exactly the current terms, by someone other than the lease's creator.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
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
# Digest of the terms an approver approved (stamped by the mutating webhook next to approved-by).
APPROVED_TERMS_ANNOTATION = "gpusteward.dev/approved-terms"
# Who created the object, from the admission request's userInfo (stamped by the mutating webhook).
CREATED_BY_ANNOTATION = "gpusteward.dev/created-by"
# The spec fields that make a lease's terms: a change to any of them is a new request.
TERM_FIELDS = ("gpus", "duration", "expiresAt", "maxSpend", "selector")
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
    approved: bool | None = None  # True: validly approved for exactly these terms; False: rejected
    selector: str = ""  # the covered pods, as a label-selector string

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
    max_active_per_owner: int = 1
    max_active_per_namespace: int = 4


Grounds = Literal["FastLane", "Approved"]


@dataclass(frozen=True)
class Grant:
    """The terms a lease was activated on; only these count (quota, end, spend cap, covered pods)."""

    gpus: int
    length: dt.timedelta
    max_spend: Decimal | None
    selector: str
    grounds: Grounds

    @staticmethod
    def of(terms: LeaseTerms, grounds: Grounds) -> Grant:
        return Grant(terms.gpus, terms.length, terms.max_spend, terms.selector, grounds)

    def same_terms(self, terms: LeaseTerms) -> bool:
        return (self.gpus, self.length, self.max_spend, self.selector) == (
            terms.gpus, terms.length, terms.max_spend, terms.selector)

    def covers(self, terms: LeaseTerms) -> bool:
        """The terms ask for no more than this grant (fewer GPUs, shorter, a lower spend cap, same pods)."""
        spend_ok = self.max_spend is None or (terms.max_spend is not None and terms.max_spend <= self.max_spend)
        return (terms.gpus <= self.gpus and terms.length <= self.length and spend_ok
                and terms.selector == self.selector)

    def to_json(self) -> dict[str, Any]:
        return {"gpus": self.gpus, "lengthSeconds": int(self.length.total_seconds()),
                "maxSpend": None if self.max_spend is None else fmt_decimal(self.max_spend),
                "selector": self.selector, "grounds": self.grounds}

    @staticmethod
    def from_json(raw: Any) -> Grant | None:
        if not isinstance(raw, Mapping):
            return None
        try:
            spend = raw.get("maxSpend")
            grounds = raw.get("grounds")
            return Grant(int(raw["gpus"]), dt.timedelta(seconds=int(raw["lengthSeconds"])),
                         None if spend is None else Decimal(str(spend)), str(raw["selector"]),
                         "Approved" if grounds == "Approved" else "FastLane")
        except (KeyError, TypeError, ValueError, ArithmeticError):
            return None


@dataclass(frozen=True)
class LeaseState:
    """What the operator recorded (phase None: never reconciled)."""

    phase: Phase | None = None
    expires_at: dt.datetime | None = None
    renewals_granted: int = 0
    activated_at: dt.datetime | None = None
    grant: Grant | None = None


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
    activated_at: dt.datetime | None = None
    grant: Grant | None = None

    @property
    def quota_gpus(self) -> int:
        """GPUs this lease adds to its namespace's quota: the grant's, while Active or Expiring."""
        return self.grant.gpus if self.counts_for_quota and self.grant is not None else 0

    @property
    def state(self) -> LeaseState:
        """What to record for the next step."""
        return LeaseState(self.phase, self.expires_at, self.renewals_granted, self.activated_at, self.grant)


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


def _end(terms: LeaseTerms, activated: dt.datetime, renewals: int = 0) -> dt.datetime:
    """The end of a lease activated at ``activated`` with ``renewals`` renewals granted."""
    if terms.duration is not None:
        return activated + terms.duration * (1 + renewals)
    first = terms.expires_at if terms.expires_at is not None else activated
    return first + terms.length * renewals


def step(
    terms: LeaseTerms,
    state: LeaseState,
    lane: FastLane | None,
    usage: LeaseUsage,
    price_per_gpu_hour: Decimal,
    now: dt.datetime,
    *,
    lane_closed: str | None = None,
    approvals_possible: bool = True,
) -> LeaseDecision:
    """The lease's next state. Notices are attached to transitions only, and the new phase is
    recorded by the operator, so each notice goes out once even across operator restarts.

    ``lane_closed``: why the fast lane takes no further lease now (``maxActivePerOwner`` /
    ``maxActivePerNamespace`` reached), or None. ``approvals_possible``: False when no admission
    webhook can vouch for an approver (webhooks off): a lease beyond the fast lane then never activates.
    """
    phase = state.phase
    expires_at = state.expires_at
    granted = state.renewals_granted
    activated = state.activated_at
    grant = state.grant
    notices: list[Notice] = []
    conditions: dict[str, tuple[str, str, str]] = {}
    max_renewals = lane.max_renewals if lane is not None else 0

    def decision(phase: Phase, suspend: bool = False) -> LeaseDecision:
        return LeaseDecision(phase, expires_at, granted, phase in QUOTA_PHASES, suspend, notices, conditions,
                             activated, grant)

    if phase in TERMINAL_PHASES:
        notices, conditions = [], {}
        return decision(phase)

    if phase is None or phase == "PendingApproval":
        excess = fast_lane_excess(terms, lane, price_per_gpu_hour)
        if not excess and lane_closed:
            excess = [lane_closed]
        if terms.approved is False:
            notices.append(Notice("LeaseRejected", f"lease for {terms.owner} was rejected by an approver", "Warning"))
            conditions["Approved"] = ("False", "Rejected", "an approver rejected the lease")
            expires_at, granted, activated, grant = None, 0, None, None
            return decision("Rejected")
        if excess and (terms.approved is not True or not approvals_possible):
            why = "; ".join(excess)
            reason = "BeyondFastLane"
            if not approvals_possible:
                reason = "ApprovalUnavailable"
                why += ("; refused: approvals need the admission webhook (webhook_enabled), which is off, "
                        "so this lease cannot become active")
            if phase is None:
                notices.append(Notice("LeasePendingApproval", f"lease needs approval: {why}",
                                      "Warning" if not approvals_possible else "Normal"))
            conditions["Approved"] = ("False", reason, why)
            expires_at, granted, activated, grant = None, 0, None, None
            return decision("PendingApproval")
        phase = "Active"
        activated = now
        grant = Grant.of(terms, "Approved" if excess else "FastLane")
        expires_at = _end(terms, now)
        granted = 0
        how = "approved" if excess else "inside the fast lane"
        notices.append(Notice("LeaseActive", f"lease active ({how}) until {format_time(expires_at)}"))
        conditions["Approved"] = ("True", "Approved" if excess else "FastLane", how)
    elif grant is not None and not grant.same_terms(terms):
        # The spec was edited after activation: the lease keeps its grant unless the new terms
        # are themselves grantable (inside the fast lane, narrower, or approved as they are).
        assert activated is not None
        excess = fast_lane_excess(terms, lane, price_per_gpu_hour)
        grounds: Grounds | None = None
        if grant.covers(terms):
            grounds = grant.grounds
        elif not excess and (lane_closed is None or grant.grounds == "FastLane"):
            grounds = "FastLane"
        elif terms.approved is True and approvals_possible:
            grounds = "Approved"
        if grounds is not None:
            grant = Grant.of(terms, grounds)
            expires_at = _end(terms, activated, granted)
            notices.append(Notice("LeaseChanged", f"lease terms changed: {terms.gpus} GPU until "
                                                  f"{format_time(expires_at)}"))
            conditions["Approved"] = ("True", grounds, "the changed terms are granted")
        else:
            why = "; ".join(excess or [lane_closed or "beyond the fast lane"])
            conditions["Approved"] = (
                "False", "ChangePendingApproval",
                f"the edited terms wait for an approval ({why}); the lease keeps its granted terms "
                f"({grant.gpus} GPU, {grant.length})",
            )
    if grant is None:  # recorded by an older version: the terms it runs on are the current ones
        grant = Grant.of(terms, "FastLane")
    if activated is None:
        activated = now if expires_at is None else expires_at - grant.length * (1 + granted)
    assert expires_at is not None
    # Renewals: each one asked for and allowed extends the end by one granted lease length.
    if phase in ("Active", "Expiring") and terms.renewals > granted:
        allowed = min(terms.renewals, max_renewals)
        if allowed > granted:
            expires_at = expires_at + grant.length * (allowed - granted)
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

    cap = grant.max_spend
    over_spend = cap is not None and usage.spend >= cap
    if phase in ("Active", "Expiring") and (now >= expires_at or over_spend):
        why = (
            f"spend {fmt_decimal(q_money(usage.spend))} reached spec.maxSpend {fmt_decimal(cap)}"
            if over_spend and cap is not None
            else f"it ended at {format_time(expires_at)}"
        )
        action = ("its workloads are suspended after their owners' warning (at least gracePeriod ahead)"
                  if terms.on_expiry == "Suspend" else "its workloads keep running")
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

    return decision(phase, phase == "Expired" and terms.on_expiry == "Suspend")


def _human(delta: dt.timedelta) -> str:
    minutes = max(0, int(delta.total_seconds()) // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


# ---- who may approve, and who created ------------------------------------------------------------


def terms_digest(spec: Mapping[str, Any]) -> str:
    """A digest of a lease's terms (``TERM_FIELDS`` as written): an approval is for exactly these."""
    terms = {k: spec.get(k) for k in TERM_FIELDS}
    text = json.dumps(terms, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _parts(obj: Mapping[str, Any] | None) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    obj = obj or {}
    return (obj.get("spec") or {}), ((obj.get("metadata") or {}).get("annotations") or {})


def creator_denial(old: Mapping[str, Any] | None, new: Mapping[str, Any], username: str) -> str | None:
    """Why this request may not carry its ``gpusteward.dev/created-by`` (None: fine). The mutating
    webhook stamps the requesting user on CREATE; a user-written value that is not theirs, and any
    later change, are refused."""
    new_by = _parts(new)[1].get(CREATED_BY_ANNOTATION)
    if old is None:
        if new_by is not None and new_by != username:
            return f"annotation {CREATED_BY_ANNOTATION} is set by the admission webhook to the creating user " \
                   f"({username!r}); it cannot be written"
        return None
    if _parts(old)[1].get(CREATED_BY_ANNOTATION) != new_by:
        return f"annotation {CREATED_BY_ANNOTATION} records who created this object and cannot be changed"
    return None


def lease_creator(obj: Mapping[str, Any]) -> str | None:
    return _parts(obj)[1].get(CREATED_BY_ANNOTATION)


def _is_approver(username: str, groups: Collection[str], approver_groups: Collection[str]) -> bool:
    return bool(username) and bool(set(groups) & set(approver_groups))


def approval_denial(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    username: str,
    groups: Collection[str],
    approver_groups: Collection[str],
) -> str | None:
    """Why ``username`` may not make this change to a lease, or None when allowed.

    ``old``/``new`` are whole objects (old is None on CREATE; ``new`` after the mutating webhook).
    Granting an approval (``spec.approved`` true, the approved-by / approved-terms stamps) or a
    rejection takes a member of an approver group who neither created the lease (the
    ``created-by`` stamp from the request's userInfo) nor is named its owner: nobody approves their
    own lease. Withdrawing an approval (approved false, stamps removed) is anybody's right: it only
    ever takes something away.
    """
    old_spec, old_ann = _parts(old)
    new_spec, new_ann = _parts(new)
    # spec.approved defaults to false: absent and false mean the same.
    was, now = bool(old_spec.get("approved")), bool(new_spec.get("approved"))
    stamps = (APPROVED_BY_ANNOTATION, APPROVED_TERMS_ANNOTATION)
    stamp_changed = any(old_ann.get(k) != new_ann.get(k) for k in stamps)
    reject_changed = old_ann.get(REJECTED_ANNOTATION) != new_ann.get(REJECTED_ANNOTATION)
    withdrawal = not now and all(new_ann.get(k) is None for k in stamps)
    granting = (now and not was) or (stamp_changed and not withdrawal)
    if not (granting or reject_changed):
        return None
    if not _is_approver(username, groups, approver_groups):
        return (
            f"user {username!r} may not set spec.approved: not a member of an approver group "
            f"({', '.join(sorted(approver_groups))})"
        )
    creator = new_ann.get(CREATED_BY_ANNOTATION)
    owner = new_spec.get("owner")
    if username in (creator, owner) or (old is None and creator is None):
        return f"user {username!r} owns this lease and cannot approve or reject it"
    by = new_ann.get(APPROVED_BY_ANNOTATION)
    if by is not None and old_ann.get(APPROVED_BY_ANNOTATION) != by and by != username:
        return f"annotation {APPROVED_BY_ANNOTATION} must name the approving user ({username!r})"
    digest = new_ann.get(APPROVED_TERMS_ANNOTATION)
    if digest is not None and digest != old_ann.get(APPROVED_TERMS_ANNOTATION) and digest != terms_digest(new_spec):
        return f"annotation {APPROVED_TERMS_ANNOTATION} must be the digest of the lease's terms"
    return None


def lease_admission_patch(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    username: str,
    groups: Collection[str],
    approver_groups: Collection[str],
) -> dict[str, Any]:
    """What the mutating webhook adds to a lease (a merge patch; None deletes an annotation).

    - CREATE: ``created-by`` = the requesting user (a different value is left for validation to refuse).
    - An approval by someone allowed to give it (``spec.approved`` turned true, or set again by an
      approver after the terms changed): ``approved-by`` = the user and ``approved-terms`` = the
      digest of the terms approved.
    - A change of the terms (``TERM_FIELDS``) by anyone else withdraws the approval
      (``spec.approved: false``, stamps removed): the edited lease waits for a new approval, and
      keeps running on what was granted.
    """
    old_spec, old_ann = _parts(old)
    new_spec, new_ann = _parts(new)
    annotations: dict[str, Any] = {}
    patch: dict[str, Any] = {}
    if old is None and CREATED_BY_ANNOTATION not in new_ann and username:
        annotations[CREATED_BY_ANNOTATION] = username
    creator = new_ann.get(CREATED_BY_ANNOTATION, annotations.get(CREATED_BY_ANNOTATION))
    digest = terms_digest(new_spec)
    terms_changed = old is not None and any(old_spec.get(k) != new_spec.get(k) for k in TERM_FIELDS)
    wants = bool(new_spec.get("approved"))
    stamped = new_ann.get(APPROVED_TERMS_ANNOTATION) == digest and new_ann.get(APPROVED_BY_ANNOTATION)
    may_approve = _is_approver(username, groups, approver_groups) and username not in (creator, new_spec.get("owner"))
    if wants and may_approve and not stamped:
        annotations[APPROVED_BY_ANNOTATION] = username
        annotations[APPROVED_TERMS_ANNOTATION] = digest
    elif terms_changed and not may_approve and (wants or old_ann.get(APPROVED_BY_ANNOTATION)):
        patch["spec"] = {"approved": False}
        annotations[APPROVED_BY_ANNOTATION] = None
        annotations[APPROVED_TERMS_ANNOTATION] = None
    if annotations:
        patch["metadata"] = {"annotations": annotations}
    return patch
