"""Reconcile one ExperimentLease: usage of its covered pods, the state machine, notices, expiry
actions (suspend through the workload adapters; bare pods are notify-only) and the quota it adds.

Notices go out before the status that records the transition, so a crash can repeat a notice but
never lose one; the phase in status is what makes each notice go out once across restarts.
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
from gpu_steward.budgets.budget import _write_status, reconcile_budget
from gpu_steward.budgets.costs import Prices, gpu_pods, holds_gpus
from gpu_steward.budgets.notifier import Notice, Notifier
from gpu_steward.budgets.parse import ParsedBudget, parse_budget, parse_lease
from gpu_steward.kube import Kube
from gpu_steward.policy import budget as pb
from gpu_steward.policy import cost as c
from gpu_steward.policy import lease as pl
from gpu_steward.settings import Settings
from gpu_steward.units import format_money, format_quantity

log = structlog.get_logger(__name__)

JSON = dict[str, Any]
LEASE_PERIOD = "lease"  # the lease's ledgers run for its whole life, not per budget period
GPU_HOURS_LEDGER_ANNOTATION = "gpusteward.dev/gpu-hours-ledger"


@dataclass
class LeaseResult:
    phase: str
    status: JSON
    status_written: bool
    notices: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)


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


def _workload_refs(kube: Kube, pods: list[JSON]) -> list[JSON]:
    from gpu_steward.workloads import actions
    from gpu_steward.workloads.resolve import resolve

    lookup = actions.KubeLookup(kube)
    refs: dict[tuple[str, str, str], JSON] = {}
    for pod in pods:
        res = resolve(pod, lookup, lookup.owned)
        ref = res.workload if res.workload is not None else res.chain[0]
        refs[(ref.api_version, ref.kind, ref.name)] = {"apiVersion": ref.api_version, "kind": ref.kind,
                                                       "name": ref.name}
    return [refs[k] for k in sorted(refs)][:1000]


def reconcile_lease(
    kube: Kube, settings: Settings, lease: JSON, now: dt.datetime, notifier: Notifier,
    *, suspend_workload: Any = None,
) -> LeaseResult:
    from gpu_steward.budgets.suspend import suspend_pod_workload

    meta = lease["metadata"]
    ns, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    status = dict(lease.get("status") or {})
    dry_run = settings.dry_run
    try:
        parsed = parse_lease(lease)
    except ValueError as exc:
        invalid = invalid_status(status, str(exc), generation, now)
        written = _write_status(kube, lease, status, invalid, dry_run)
        return LeaseResult(str(status.get("phase")), {**status, **invalid}, written)

    if status.get("phase") in pl.TERMINAL_PHASES and status.get("observedGeneration") == generation:
        # Released / Rejected leases are history: nothing to measure, nothing to write.
        return LeaseResult(status["phase"], status, False)

    budget = namespace_budget(kube, ns)
    bparsed = _budget_parsed(budget)
    lane = bparsed.fast_lane if bparsed else None

    pods = gpu_pods(kube.list("v1", "Pod", ns, label_selector=parsed.label_selector))
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
    spend_ledger = pb.roll_ledger(pb.SpendLedger.from_json(ann.get(pb.SPEND_LEDGER_ANNOTATION)), LEASE_PERIOD, costs)
    hours_ledger = pb.roll_ledger(pb.SpendLedger.from_json(ann.get(GPU_HOURS_LEDGER_ANNOTATION)), LEASE_PERIOD, hours)
    holding = [p for p in pods if holds_gpus(p) and (p.get("spec") or {}).get("nodeName")]
    usage = pl.LeaseUsage(spend_ledger.spend, len(holding))

    state = pl.LeaseState(status.get("phase"), c.parse_time(status.get("expiresAt")),
                          int(status.get("renewalsGranted") or 0))
    decision = pl.step(parsed.terms, state, lane, usage, settings.default_gpu_hour_price, now)

    owners = tuple(x for x in (parsed.terms.owner, parsed.owner_email) if x)

    def notice(reason: str, message: str, type_: str) -> Notice:
        return Notice(subject=lease, reason=reason, message=message, type=type_,  # type: ignore[arg-type]
                      owners=owners, slack_channel=bparsed.slack_channel if bparsed else None,
                      webhook_secret_ref=bparsed.webhook_secret_ref if bparsed else None)

    sent: list[str] = []
    actions_taken: list[str] = []
    became_expired = decision.phase in ("Expired", "Released") and state.phase not in ("Expired", "Released")

    if decision.suspend_workloads or (became_expired and parsed.terms.on_expiry == "Suspend"):
        act = suspend_workload or suspend_pod_workload
        for pod in holding:
            outcome = act(kube, pod, now, dry_run)
            if outcome.changed or (became_expired and not outcome.suspendable):
                actions_taken.append(outcome.message)
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

    desired: JSON = {
        "phase": decision.phase,
        "gpuHours": format_quantity(hours_ledger.spend),
        "spend": format_money(spend_ledger.spend),
        "renewalsGranted": decision.renewals_granted,
        "workloads": _workload_refs(kube, pods),
        "observedGeneration": generation,
        "conditions": conds,
    }
    if decision.expires_at is not None:
        desired["expiresAt"] = c.format_time(decision.expires_at)
    if parsed.approved_by:
        desired["approvedBy"] = parsed.approved_by

    ledgers = {pb.SPEND_LEDGER_ANNOTATION: spend_ledger.to_json(), GPU_HOURS_LEDGER_ANNOTATION: hours_ledger.to_json()}
    changed = {k: v for k, v in ledgers.items() if ann.get(k) != v}
    if changed:
        kube.patch(API_VERSION, "ExperimentLease", name, ns, {"metadata": {"annotations": changed}}, dry_run=dry_run)
    written = _write_status(kube, lease, status, desired, dry_run)

    quota_changed = (state.phase in pl.QUOTA_PHASES) != decision.counts_for_quota
    if quota_changed and budget is not None and not dry_run:
        # The lease's GPUs join or leave the quota now, not at the budget's next timer tick.
        reconcile_budget(kube, settings, kube.get(API_VERSION, "GPUBudget", budget["metadata"]["name"], ns) or budget,
                         now, notifier)
    return LeaseResult(decision.phase, {**status, **desired}, written, sent, actions_taken)
