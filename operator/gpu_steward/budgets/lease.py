"""Reconcile one ExperimentLease: usage of its covered pods, the state machine, notices, the quota it
adds, and at expiry (or ``maxSpend``) a suspension request (``budgets.requests``) for its covered
workloads. The lease suspends nothing itself: the idle pass warns each workload's owner, stating the
suspension time (no earlier than the lease's end, and at least ``gracePeriod`` after the warning), and
suspends it only then — through the same protocol as idle suspensions (bare pods: notify-only).

What the reconcile relies on — phase, activation, end, the granted terms, the spend and GPU-hour
ledgers — is the operator's record (``budgets.records``, a ConfigMap in the operator's namespace),
never the lease's status or annotations, which users (or anyone with a ``/status`` right) can write.
Status is the display copy. Notices go out before the record of the transition, so a crash can
repeat a notice but never lose one; the recorded phase makes each notice go out once across restarts.

Covered workloads: the pods the *granted* selector matches whose workload (the top of the owner
chain, or the bare pod) was created by the lease's creator (``gpusteward.dev/created-by``, stamped
at admission). Expiry requests the suspension of only those; others matched by the selector are counted in
``status.foreignWorkloads`` and named in the expiry notice, never touched.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog

from gpu_steward.api.common import API_VERSION
from gpu_steward.api.conditions import find_condition as get_condition
from gpu_steward.api.conditions import invalid_status, set_condition
from gpu_steward.budgets.budget import _write_status, lease_records, reconcile_budget
from gpu_steward.budgets.costs import Prices, gpu_pods, holds_gpus
from gpu_steward.budgets.notifier import Notice, Notifier
from gpu_steward.budgets.parse import ParsedBudget, ParsedLease, parse_budget, parse_lease
from gpu_steward.budgets.requests import RECORD_KEY as REQUESTS_KEY
from gpu_steward.budgets.requests import RequestBook, encode
from gpu_steward.kube import Kube
from gpu_steward.policy import budget as pb
from gpu_steward.policy import cost as c
from gpu_steward.policy import lease as pl
from gpu_steward.policy.requests import Published, SuspensionRequest, api_group
from gpu_steward.settings import Settings
from gpu_steward.units import format_money, format_quantity

log = structlog.get_logger(__name__)

JSON = dict[str, Any]
LEASE_PERIOD = "lease"  # the lease's ledgers run for its whole life, not per budget period
# Where older versions kept the lease's ledgers (user-writable): read once when no record exists yet.
GPU_HOURS_LEDGER_ANNOTATION = "gpusteward.dev/gpu-hours-ledger"


@dataclass
class LeaseResult:
    phase: str
    status: JSON
    status_written: bool
    notices: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    requested: list[Published] = field(default_factory=list)  # suspension requests published


def namespace_budget(kube: Kube, namespace: str) -> JSON | None:
    """The namespace's GPUBudget (the oldest when several exist: one governs)."""
    budgets = kube.list_optional(API_VERSION, "GPUBudget", namespace)
    budgets.sort(key=lambda b: (b["metadata"].get("creationTimestamp") or "", b["metadata"]["name"]))
    return budgets[0] if budgets else None


def _budget_parsed(budget: JSON | None) -> ParsedBudget | None:
    if budget is None:
        return None
    try:
        return parse_budget(budget)
    except ValueError:
        return None


def _state(rec: JSON | None, status: JSON) -> pl.LeaseState:
    if rec is None:
        # No record yet (new lease, or one reconciled by an older version): only the phases that
        # take something away are taken over from status; anything else starts afresh.
        phase = status.get("phase")
        if phase in ("Expired", "Released", "Rejected"):
            return pl.LeaseState(phase, c.parse_time(status.get("expiresAt")), int(status.get("renewalsGranted") or 0))
        return pl.LeaseState()
    return pl.LeaseState(rec.get("phase"), c.parse_time(rec.get("expiresAt")), int(rec.get("renewalsGranted") or 0),
                         c.parse_time(rec.get("activatedAt")), pl.Grant.from_json(rec.get("grant")))


def _lane_closed(kube: Kube, settings: Settings, lease: JSON, parsed: ParsedLease,
                 lane: pl.FastLane | None) -> str | None:
    """Why the fast lane takes no more leases now (maxActivePerOwner / maxActivePerNamespace)."""
    if lane is None:
        return None
    meta = lease["metadata"]
    others = {x["metadata"]["uid"]: x for x in kube.list_optional(API_VERSION, "ExperimentLease", meta["namespace"])
              if x["metadata"]["uid"] != meta["uid"]}
    active_ns = active_owner = 0
    for uid, rec in lease_records(kube, settings).in_namespace(meta["namespace"]).items():
        grant = pl.Grant.from_json(rec.get("grant"))
        if uid not in others or rec.get("phase") not in pl.QUOTA_PHASES or grant is None:
            continue
        if grant.grounds != "FastLane":
            continue
        active_ns += 1
        try:
            other = parse_lease(others[uid], webhooks=settings.webhook_enabled)
        except ValueError:
            continue
        if other.identity == parsed.identity:
            active_owner += 1
    if active_owner >= lane.max_active_per_owner:
        return (f"{parsed.identity} already holds {active_owner} active fast-lane lease(s) here "
                f"(fastLane.maxActivePerOwner {lane.max_active_per_owner})")
    if active_ns >= lane.max_active_per_namespace:
        return (f"the namespace already holds {active_ns} active fast-lane leases "
                f"(fastLane.maxActivePerNamespace {lane.max_active_per_namespace})")
    return None


@dataclass(frozen=True)
class _Covered:
    ref: JSON  # the workload {apiVersion, kind, name}
    creator: str | None  # its gpusteward.dev/created-by


def _covered(kube: Kube, pods: list[JSON]) -> dict[str, _Covered]:
    """Per pod uid: the workload behind it (top of the owner chain, or the pod) and who created it."""
    from gpu_steward.workloads import actions
    from gpu_steward.workloads.resolve import resolve

    lookup = actions.KubeLookup(kube)
    out: dict[str, _Covered] = {}
    for pod in pods:
        res = resolve(pod, lookup, lookup.owned)
        ref = res.workload if res.workload is not None else res.chain[-1]
        top = next((o for o in res.objects if o.get("kind") == ref.kind and
                    (o.get("metadata") or {}).get("name") == ref.name), pod)
        creator = ((top.get("metadata") or {}).get("annotations") or {}).get(pl.CREATED_BY_ANNOTATION)
        out[pod["metadata"]["uid"]] = _Covered(
            {"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name}, creator)
    return out


def _refs(items: list[_Covered]) -> list[JSON]:
    refs = {(x.ref["apiVersion"], x.ref["kind"], x.ref["name"]): x.ref for x in items}
    return [refs[k] for k in sorted(refs)][:1000]


def reconcile_lease(
    kube: Kube, settings: Settings, lease: JSON, now: dt.datetime, notifier: Notifier,
    *, book: RequestBook | None = None,
) -> LeaseResult:
    """``book``: where requests go under the global dry-run (no record is written then)."""
    meta = lease["metadata"]
    ns, name, generation, uid = meta["namespace"], meta["name"], meta.get("generation"), meta["uid"]
    status = dict(lease.get("status") or {})
    dry_run = settings.dry_run
    try:
        parsed = parse_lease(lease, webhooks=settings.webhook_enabled)
    except ValueError as exc:
        invalid = invalid_status(status, str(exc), generation, now)
        written = _write_status(kube, lease, status, invalid, dry_run)
        return LeaseResult(str(status.get("phase")), {**status, **invalid}, written)

    records = lease_records(kube, settings)
    rec = records.get(uid)
    state = _state(rec, status)
    if state.phase in pl.TERMINAL_PHASES and rec is not None and status.get("phase") == state.phase \
            and status.get("observedGeneration") == generation:
        # Released / Rejected leases are history: nothing to measure, nothing to write.
        return LeaseResult(str(state.phase), status, False)

    budget = namespace_budget(kube, ns)
    bparsed = _budget_parsed(budget)
    lane = bparsed.fast_lane if bparsed else None
    lane_closed = None
    if state.phase in (None, "PendingApproval") or (state.grant is not None
                                                   and not state.grant.same_terms(parsed.terms)):
        lane_closed = _lane_closed(kube, settings, lease, parsed, lane)

    # The pods of the grant (before activation: of the spec, for display only).
    selector = state.grant.selector if state.grant is not None else parsed.label_selector
    matched = gpu_pods(kube.list("v1", "Pod", ns, label_selector=selector))
    workloads = _covered(kube, matched)
    # Covered: created by the lease's creator. Without a trusted creator (webhooks off) nothing is
    # suspended, and everything matched counts for spend (never less than before).
    if parsed.creator is not None:
        pods = [p for p in matched if workloads[p["metadata"]["uid"]].creator == parsed.creator]
    else:
        pods = matched
    covered_uids = {p["metadata"]["uid"] for p in pods} if parsed.creator is not None else set()
    foreign = [w for u, w in workloads.items() if u not in covered_uids]

    prices = Prices.load(kube, settings)
    window = (parsed.terms.created, now)
    costs: dict[str, Decimal] = {}
    hours: dict[str, Decimal] = {}
    for pod in pods:
        pc = c.pod_cost(pod, prices.for_pod(pod), now, window=window)
        if pc.gpu_hours > 0:
            costs[pod["metadata"]["uid"]] = pc.cost
            hours[pod["metadata"]["uid"]] = pc.gpu_hours
    ann = meta.get("annotations") or {}
    old = rec if rec is not None else {"spendLedger": ann.get(pb.SPEND_LEDGER_ANNOTATION),
                                       "gpuHoursLedger": ann.get(GPU_HOURS_LEDGER_ANNOTATION)}
    spend_ledger = pb.roll_ledger(pb.SpendLedger.from_json(old.get("spendLedger")), LEASE_PERIOD, costs)
    hours_ledger = pb.roll_ledger(pb.SpendLedger.from_json(old.get("gpuHoursLedger")), LEASE_PERIOD, hours)
    holding = [p for p in pods if holds_gpus(p) and (p.get("spec") or {}).get("nodeName")]
    usage = pl.LeaseUsage(spend_ledger.spend, len(holding))

    decision = pl.step(parsed.terms, state, lane, usage, settings.default_gpu_hour_price, now,
                       lane_closed=lane_closed, approvals_possible=settings.webhook_enabled)

    owners = tuple(x for x in (parsed.terms.owner, parsed.owner_email) if x)

    def notice(reason: str, message: str, type_: str) -> Notice:
        return Notice(subject=lease, reason=reason, message=message, type=type_,  # type: ignore[arg-type]
                      owners=owners, slack_channel=bparsed.slack_channel if bparsed else None,
                      webhook_secret_ref=bparsed.webhook_secret_ref if bparsed else None)

    sent: list[str] = []
    actions_taken: list[str] = []
    became_expired = decision.phase in ("Expired", "Released") and state.phase not in ("Expired", "Released")

    requested = expiry_requests(ns, name, parsed, decision, usage,
                                [workloads[p["metadata"]["uid"]] for p in holding] if parsed.creator else [])
    if became_expired and requested:
        names = sorted(f"{k}/{n}" for _, k, n in requested[0].workloads or ())
        actions_taken.append(f"suspension requested for {', '.join(names)}: each owner is warned with the time, "
                             f"at least {_span(parsed.terms.grace)} ahead (gracePeriod)")
    if became_expired and foreign:
        who = parsed.creator or "nobody (no creator stamp: the admission webhook is off)"
        actions_taken.append(
            f"{len(_refs(foreign))} workload(s) matched by the selector but not created by {who} left alone: "
            + ", ".join(f"{r['kind']}/{r['name']}" for r in _refs(foreign)[:10]))
    prefix = f"ExperimentLease {ns}/{name} ({parsed.terms.gpus} GPU, owner {parsed.terms.owner}): "
    for n in decision.notices:
        message = prefix + n.message
        if n.reason == "LeaseExpired" and actions_taken:
            message += ". " + "; ".join(actions_taken)
        notifier.send(notice(n.reason, message, n.type), now=now, dry_run=dry_run)
        sent.append(n.reason)

    conds = list(status.get("conditions") or [])
    for ctype, (cstatus, reason, message) in decision.conditions.items():
        before = get_condition(conds, ctype)
        conds = set_condition(conds, ctype, cstatus, reason, message, generation, now)
        if ctype == "RenewalRefused" and cstatus == "True" and (
                before is None or before.get("status") != "True" or before.get("message") != message):
            notifier.send(notice("LeaseRenewalRefused", prefix + message, "Warning"), now=now, dry_run=dry_run)
            sent.append("LeaseRenewalRefused")
    conds = set_condition(conds, "Ready", "True", decision.phase, f"lease is {decision.phase}", generation, now)

    record: JSON = {
        "phase": decision.phase,
        "expiresAt": c.format_time(decision.expires_at) if decision.expires_at is not None else None,
        "activatedAt": c.format_time(decision.activated_at) if decision.activated_at is not None else None,
        "renewalsGranted": decision.renewals_granted,
        "grant": decision.grant.to_json() if decision.grant is not None else None,
        "spendLedger": spend_ledger.to_json(),
        "gpuHoursLedger": hours_ledger.to_json(),
    }
    # The request is recorded before the idle pass can act on it, and rewritten only when it changes.
    if requested:
        record[REQUESTS_KEY] = encode(requested)
    records.put(lease, record, previous=rec, dry_run=dry_run)
    if book is not None:
        book.put(uid, encode(requested))

    desired: JSON = {
        "phase": decision.phase,
        "gpuHours": format_quantity(hours_ledger.spend),
        "spend": format_money(spend_ledger.spend),
        "renewalsGranted": decision.renewals_granted,
        "workloads": _refs([workloads[p["metadata"]["uid"]] for p in pods]),
        "foreignWorkloads": len(_refs(foreign)),
        "grantedGpus": decision.quota_gpus,
        "observedGeneration": generation,
        "conditions": conds,
        "expiresAt": c.format_time(decision.expires_at) if decision.expires_at is not None else None,
        "approvedBy": parsed.approved_by if decision.grant is not None and decision.grant.grounds == "Approved"
        else None,
    }
    if parsed.creator:
        desired["createdBy"] = parsed.creator
    written = _write_status(kube, lease, status, desired, dry_run)

    quota_changed = (state.grant.gpus if state.grant and state.phase in pl.QUOTA_PHASES else 0) != decision.quota_gpus
    if quota_changed and budget is not None and not dry_run:
        # The lease's GPUs join or leave the quota now, not at the budget's next timer tick.
        reconcile_budget(kube, settings, kube.get(API_VERSION, "GPUBudget", budget["metadata"]["name"], ns) or budget,
                         now, notifier, book=book)
    return LeaseResult(decision.phase, {**status, **desired}, written, sent, actions_taken, requested)


def expiry_requests(ns: str, name: str, parsed: ParsedLease, decision: pl.LeaseDecision, usage: pl.LeaseUsage,
                    covered: list[_Covered]) -> list[Published]:
    """The lease's request to suspend its covered workloads (``onExpiry: Suspend``): from ``Expiring``
    on, so the owners' warnings go out ``gracePeriod`` before the end and state a time no earlier than
    the end; at once when the spend cap is reached (then ``gracePeriod`` after the warning). Its cycle is
    the lease's end: a renewal (a new end) voids the warnings given for the old one."""
    if parsed.terms.on_expiry != "Suspend" or decision.phase not in ("Expiring", "Expired") or not covered:
        return []
    end = decision.expires_at
    if end is None:
        return []
    cap = decision.grant.max_spend if decision.grant is not None else None
    if cap is not None and usage.spend >= cap:
        reason, not_before = f"its ExperimentLease {ns}/{name} reached its spend cap ({format_money(cap)})", None
    else:
        reason, not_before = f"its ExperimentLease {ns}/{name} ends at {c.format_time(end)}", end
    refs = frozenset((api_group(w.ref["apiVersion"]), w.ref["kind"], w.ref["name"]) for w in covered)
    return [Published(ns, SuspensionRequest(source=f"ExperimentLease {ns}/{name}", cycle=c.format_time(end),
                                            reason=reason, notice=parsed.terms.grace, not_before=not_before),
                      refs)]


def _span(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"
