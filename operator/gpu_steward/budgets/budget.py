"""Reconcile one GPUBudget: measure the namespace, decide, write quota / status, send notices, and on an
overrun with ``SuspendIdleFirst`` publish a suspension request (``budgets.requests``): the idle pass warns
the owner of each idle workload of the namespace and suspends it only after the notice period — the budget
suspends nothing itself.

Order matters for restart safety: notices first, then the status that records them
(``announcedThresholds``). A crash in between can repeat a notice, never lose one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog

from gpu_steward.api.common import API_VERSION
from gpu_steward.api.conditions import invalid_status, set_condition, status_patch
from gpu_steward.budgets import kueue
from gpu_steward.budgets.costs import CostLedger, Prices, holds_gpus, list_gpu_pods, pod_terms
from gpu_steward.budgets.history import CostHistory, open_part
from gpu_steward.budgets.metrics import record_budget
from gpu_steward.budgets.notifier import Notice, Notifier
from gpu_steward.budgets.parse import ParsedBudget, parse_budget
from gpu_steward.budgets.records import RecordStore
from gpu_steward.budgets.requests import RECORD_KEY as REQUESTS_KEY
from gpu_steward.budgets.requests import RequestBook, encode
from gpu_steward.kube import Kube
from gpu_steward.policy import budget as pb
from gpu_steward.policy import cost as c
from gpu_steward.policy import gpus as gpu_resources
from gpu_steward.policy import kueue_quota as kq
from gpu_steward.policy.lease import QUOTA_PHASES, Grant
from gpu_steward.policy.requests import Published, SuspensionRequest
from gpu_steward.settings import Settings
from gpu_steward.units import format_money

log = structlog.get_logger(__name__)

JSON = dict[str, Any]


@dataclass
class BudgetResult:
    status: JSON
    status_written: bool
    quota: str  # created / patched / unchanged / skipped
    announced: list[int] = field(default_factory=list)
    requested: list[Published] = field(default_factory=list)  # suspension requests published (SuspendIdleFirst)


LEASE_RECORDS = "lease"
BUDGET_RECORDS = "budget"


def lease_records(kube: Kube, settings: Settings) -> RecordStore:
    return RecordStore(kube, settings.platform_namespace, LEASE_RECORDS)


def granted_lease_gpus(kube: Kube, settings: Settings, namespace: str) -> int:
    """GPUs the namespace's Active/Expiring leases were granted, from the operator's records (a
    lease's spec or status cannot raise it)."""
    uids = {lease["metadata"]["uid"] for lease in kube.list_optional(API_VERSION, "ExperimentLease", namespace)}
    total = 0
    for uid, rec in lease_records(kube, settings).in_namespace(namespace).items():
        grant = Grant.from_json(rec.get("grant"))
        if uid in uids and rec.get("phase") in QUOTA_PHASES and grant is not None:
            total += grant.gpus
    return total




def measure(pods: list[JSON], prices: Prices, window: tuple[dt.datetime, dt.datetime], now: dt.datetime,
            ledger: CostLedger | None = None) -> tuple[dict[str, Decimal], Decimal, int]:
    """(cost inside window per pod uid, hourly burn of running pods, GPUs held)."""
    costs: dict[str, Decimal] = {}
    burn = Decimal(0)
    in_use = 0
    for pod in pods:
        price = prices.pod_price(pod)
        util = ledger.ledger_for(pod) if ledger else None
        pc = c.pod_cost(pod, price.node.price, now, util, window=window, price=price)
        if pc.gpu_hours > 0:
            costs[pod["metadata"]["uid"]] = pc.cost
        if holds_gpus(pod):
            in_use += pc.gpus
        if c.is_running(pod):
            burn += pc.hourly_rate
    return costs, burn, in_use


def history_costs(history: CostHistory, pods: list[JSON], prices: Prices, settings: Settings, namespace: str,
                  window: tuple[dt.datetime, dt.datetime], now: dt.datetime) -> dict[str, Decimal]:
    """Cost per pod uid of ``namespace`` inside ``window``: its settled records plus open parts, exactly
    as ``gpu-steward report`` sums them (policy.history.rows_in)."""
    if not history.loaded:
        history.load()
    costs = history.period_costs(namespace, window)
    by_uid = {p["metadata"]["uid"]: p for p in pods if (p.get("metadata") or {}).get("uid")}
    uids = {u for u, cur in history.cursors.items() if cur.terms.get("namespace") == namespace} | set(by_uid)
    for uid in uids:
        pod, cur = by_uid.get(uid), history.cursors.get(uid)
        part = open_part(pod, cur, pod_terms(pod, prices, settings) if pod is not None and cur is None else None,
                         now)
        clipped = part.clipped(window) if part is not None else None
        if clipped is not None:
            costs[uid] = costs.get(uid, Decimal(0)) + clipped.cost
    return costs


def gpus_used_by_resource(pods: list[JSON]) -> dict[str, int]:
    """GPUs per GPU resource of the pods the apiserver's quota counts (not finished, not being deleted)."""
    used: dict[str, int] = {}
    for pod in pods:
        if holds_gpus(pod):
            for resource, n in gpu_resources.pod_gpu_resources(pod).items():
                used[resource] = used.get(resource, 0) + n
    return used


def advertised_gpu_resources(nodes: Iterable[JSON]) -> set[str]:
    """Every GPU resource some node advertises (capacity or allocatable): each gets a quota entry."""
    found: set[str] = set()
    for node in nodes:
        status = node.get("status") or {}
        for key in ("capacity", "allocatable"):
            found |= gpu_resources.gpu_resources_of(status.get(key) or {})
    return found


def _notice(budget: JSON, parsed: ParsedBudget, reason: str, message: str, type_: str = "Warning") -> Notice:
    return Notice(subject=budget, reason=reason, message=message, type=type_,  # type: ignore[arg-type]
                  owners=parsed.owners, slack_channel=parsed.slack_channel,
                  webhook_secret_ref=parsed.webhook_secret_ref)


def reconcile_budget(
    kube: Kube, settings: Settings, budget: JSON, now: dt.datetime, notifier: Notifier,
    *, ledger: CostLedger | None = None, book: RequestBook | None = None, history: CostHistory | None = None,
) -> BudgetResult:
    """``book``: where requests go under the global dry-run (no record is written then)."""
    meta = budget["metadata"]
    ns, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    status = dict(budget.get("status") or {})
    dry_run = settings.dry_run
    try:
        parsed = parse_budget(budget)
    except ValueError as exc:
        desired = invalid_status(status, str(exc), generation, now)
        written = _write_status(kube, budget, status, desired, dry_run)
        return BudgetResult({**status, **desired}, written, "skipped")

    terms = parsed.terms
    period = terms.spend.period if terms.spend else "Monthly"
    start, end = c.period_bounds(period, now)
    pods = list_gpu_pods(kube, settings, ns)
    prices = Prices.load(kube, settings)
    costs, burn, in_use = measure(pods, prices, (start, end), now, ledger)
    if history is not None:  # spend from the settled history: what reports and exports sum
        costs = history_costs(history, pods, prices, settings, ns, (start, end), now)
    # The ledger is the operator's record (never the budget's annotations or status): editing or
    # deleting what users can write does not lower counted spend. An older version's annotation is
    # read once, when no record exists yet.
    records = RecordStore(kube, settings.platform_namespace, BUDGET_RECORDS)
    rec = records.get(meta["uid"])
    legacy = (meta.get("annotations") or {}).get(pb.SPEND_LEDGER_ANNOTATION)
    previous = pb.SpendLedger.from_json(rec.get("spendLedger") if rec is not None else legacy)
    spend_ledger = pb.roll_ledger(previous, c.format_time(start), costs)
    obs = pb.BudgetObservation(spend_ledger.spend, burn, in_use, granted_lease_gpus(kube, settings, ns))
    decision = pb.decide(terms, obs, status.get("announcedThresholds") or [], status.get("periodStart"), now)
    currency = terms.spend.currency if terms.spend else settings.currency

    kueue_plan, cluster_queue = kueue.plan_for(kube, ns)
    if kueue_plan.mode == "None":
        used = gpus_used_by_resource(pods)
        advertised = advertised_gpu_resources(prices.nodes.values())
        quota = kube.apply(pb.desired_quota(ns, name, meta.get("uid"), decision.effective_quota, used, advertised),
                           dry_run=dry_run)
    else:
        # Kueue admits this namespace's work: a ResourceQuota of ours would refuse pods Kueue admitted.
        quota = "deleted" if kueue.remove_own_quota(kube, ns, name, dry_run=dry_run) else "skipped"
        if kueue_plan.mode == "Exclusive" and cluster_queue is not None:
            quota = kueue.set_nominal_quota(kube, kueue_plan, cluster_queue, decision.effective_quota,
                                            dry_run=dry_run)

    requested = [suspend_idle_request(ns, name, terms, start, currency, settings)] if decision.suspend_idle else []

    for threshold in decision.announce:
        assert terms.spend is not None
        msg = pb.threshold_message(ns, name, threshold, spend_ledger.spend, terms.spend.limit, currency,
                                   decision.forecast, decision.period_end)
        if threshold >= 100 and terms.on_exceeded != "Notify":
            msg += (" New GPU pods are blocked (quota shrunk to the GPUs in use)." if terms.on_exceeded == "BlockNew"
                    else " New GPU pods are blocked; the owners of idle GPU workloads are warned, and each is "
                         f"suspended {_minutes(settings.budget_suspend_notice_seconds)} after its warning "
                         "unless it is in use again.")
        notifier.send(_notice(budget, parsed, "BudgetThreshold", msg, "Warning" if threshold >= 80 else "Normal"),
                      now=now, dry_run=dry_run)

    # The request is recorded before the idle pass can act on it, and only rewritten when it changes.
    record: JSON = {"spendLedger": spend_ledger.to_json()}
    if requested:
        record[REQUESTS_KEY] = encode(requested)
    records.put(budget, record, previous=rec, dry_run=dry_run)
    if book is not None:
        book.put(meta["uid"], encode(requested))

    conds = status.get("conditions") or []
    conds = set_condition(conds, "Ready", "True", "Reconciled", "quota and spend are up to date", generation, now)
    if decision.exceeded and terms.spend is not None:
        conds = set_condition(conds, "Exceeded", "True", f"OnExceeded{terms.on_exceeded}",
                              f"spend {format_money(spend_ledger.spend)} >= limit {format_money(terms.spend.limit)} "
                              f"{currency}; action: {terms.on_exceeded}", generation, now)
    else:
        conds = set_condition(conds, "Exceeded", "False", "WithinLimit", "spend is within the limit", generation, now)
    conds = _kueue_condition(conds, kueue_plan, decision.effective_quota, generation, now)
    desired = {
        "gpusInUse": in_use,
        "effectiveQuota": decision.effective_quota,
        "spend": format_money(spend_ledger.spend),
        "forecast": format_money(decision.forecast),
        "currency": currency,
        "periodStart": c.format_time(decision.period_start),
        "periodEnd": c.format_time(decision.period_end),
        "announcedThresholds": decision.announced,
        "observedGeneration": generation,
        "conditions": conds,
    }
    written = _write_status(kube, budget, status, desired, dry_run)
    record_budget(ns, name, currency, desired, terms.spend.limit if terms.spend else None)
    return BudgetResult({**status, **desired}, written, quota, decision.announce, requested)


def suspend_idle_request(ns: str, name: str, terms: pb.BudgetTerms, period_start: dt.datetime, currency: str,
                         settings: Settings) -> Published:
    """The overrun's request: every idle workload of the namespace, after the budget notice period; one per
    period (a warning of the last period does not count for this one). Its text never changes within a
    period, so the record is not rewritten on every reconcile."""
    limit = f"{format_money(terms.spend.limit)} {currency}" if terms.spend is not None else "its limit"
    period = terms.spend.period if terms.spend is not None else "Monthly"
    reason = (f"GPUBudget {ns}/{name} is over its {period.lower()} spend limit ({limit}): "
              "idle GPU work is suspended first")
    return Published(ns, SuspensionRequest(
        source=f"GPUBudget {ns}/{name}", cycle=c.format_time(period_start), reason=reason,
        notice=dt.timedelta(seconds=settings.budget_suspend_notice_seconds), idle_only=True))


def _kueue_condition(conds: list[JSON], plan: kq.KueuePlan, quota: int, generation: int | None,
                     now: dt.datetime) -> list[JSON]:
    """``KueueManaged``: whether Kueue admits the namespace's work, and so where the GPU quota lives.
    Only written once Kueue serves the namespace (a budget that never met Kueue carries none)."""
    if plan.mode == "Exclusive":
        return set_condition(conds, "KueueManaged", "True", "ClusterQueueQuota",
                             f"Kueue admits this namespace's work; the budget {plan.reason}: {quota} GPUs, "
                             "and owns no ResourceQuota", generation, now)
    if plan.mode == "Shared":
        return set_condition(conds, "KueueManaged", "True", "SharedClusterQueue",
                             f"Kueue admits this namespace's work and the budget enforces no GPU quota "
                             f"(no ResourceQuota beside Kueue, the ClusterQueue left alone): {plan.reason}. "
                             "Spend is tracked and announced as usual", generation, now)
    if any(c.get("type") == "KueueManaged" for c in conds):
        return set_condition(conds, "KueueManaged", "False", "NoLocalQueue",
                             "no Kueue LocalQueue in the namespace: the budget owns its ResourceQuota", generation, now)
    return conds


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min" if seconds >= 60 else f"{int(seconds)} s"


def _write_status(kube: Kube, obj: JSON, current: JSON, desired: JSON, dry_run: bool) -> bool:
    patch = status_patch(current, desired)
    if not patch:
        return False
    meta = obj["metadata"]
    kube.patch(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"), {"status": patch},
               dry_run=dry_run, subresource="status")
    return True
