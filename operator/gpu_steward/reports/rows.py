"""Pure row builders for showback: one ``PodRecord`` per GPU pod, grouped by namespace, team or lease.

Cost is recomputed from pod timestamps and node prices for the requested window (so a report is
right even between the operator's rate-limited annotation writes); idle GPU-hours and the
utilization average come from the operator's ledger (its cost-history cursors), never from the pod's
cost annotations, which anyone with ``edit`` in the namespace can rewrite.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from gpu_steward.policy import cost as c

GroupBy = Literal["namespace", "team", "lease"]
UNSET = "(none)"


@dataclass(frozen=True)
class PodRecord:
    namespace: str
    pod: str
    uid: str
    owner: str | None
    team: str | None
    lease: str | None
    node: str | None
    gpu_model: str | None
    gpus: int
    start: dt.datetime  # inside the window
    end: dt.datetime
    gpu_hours: Decimal
    idle_gpu_hours: Decimal
    cost: Decimal
    price_per_gpu_hour: Decimal
    util_avg: Decimal | None
    # From the settled history (policy.history terms); defaults for records built from live pods.
    list_cost: Decimal | None = None
    list_price: Decimal | None = None
    idle_cost: Decimal = Decimal(0)
    kind: str = "Pod"
    workload: str = ""
    category: str = "Standard"
    region: str | None = None
    zone: str | None = None
    pool: str | None = None
    price_source: str = ""
    resources: str = ""
    units: Decimal | None = None
    settled: bool = False


def history_pod_records(recs: Iterable[Any], util: Mapping[str, Decimal | None] | None = None) -> list[PodRecord]:
    """``PodRecord`` rows of settled records and open parts (``policy.history.Record``)."""
    out = []
    for r in recs:
        t = r.t
        units = r.units
        out.append(PodRecord(
            namespace=t("namespace"), pod=t("pod"), uid=r.uid, owner=t("owner") or None, team=t("team") or None,
            lease=t("lease") or None, node=t("node") or None, gpu_model=t("model") or None,
            gpus=int(t("devices") or 0), start=r.start, end=r.end, gpu_hours=r.gpu_hours,
            idle_gpu_hours=r.idle_gpu_hours, cost=r.cost, price_per_gpu_hour=r.unit_price,
            util_avg=(util or {}).get(r.uid), list_cost=r.list_cost,
            list_price=r.list_cost / r.gpu_hours if r.gpu_hours > 0 else Decimal(t("listPrice") or "0"),
            idle_cost=r.idle_cost, kind=t("kind") or "Pod", workload=t("workload"),
            category=t("category") or "Standard",
            region=t("region") or None, zone=t("zone") or None, pool=t("pool") or None, price_source=t("source"),
            resources=t("resources"), units=units, settled=getattr(r, "settled", True),
        ))
    out.sort(key=lambda x: (x.namespace, x.pod, x.start))
    return out


def _first(meta: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for source in (meta.get("labels") or {}, meta.get("annotations") or {}):
        for key in keys:
            value = source.get(key)
            if value:
                return str(value)
    return None


def pod_records(
    pods: Iterable[Mapping[str, Any]], nodes: Iterable[Mapping[str, Any]], table: c.PriceTable,
    window: tuple[dt.datetime, dt.datetime], now: dt.datetime,
    owner_keys: Sequence[str], team_keys: Sequence[str], ledgers: Mapping[str, c.UtilLedger] | None = None,
) -> list[PodRecord]:
    """Records of the GPU pods that held GPUs inside ``window`` (sorted by namespace, pod). ``ledgers``: the
    operator's utilization ledger by pod uid (``Cursor.util``); a pod without one has no idle hours counted."""
    by_name = {n["metadata"]["name"]: n for n in nodes}
    out: list[PodRecord] = []
    for pod in pods:
        gpus = c.pod_gpus(pod)
        ran = c.pod_window(pod, now)
        if gpus <= 0 or ran is None:
            continue
        part = c.overlap(ran, (window[0], min(window[1], now)))
        if part[1] <= part[0]:
            continue
        meta = pod.get("metadata") or {}
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = by_name.get(node_name) if node_name else None
        pp = c.pod_price(table, pod, node)
        price = pp.unit_price
        ledger = (ledgers or {}).get(meta.get("uid", "")) or c.UtilLedger()
        pc = c.pod_cost(pod, pp.node.price, now, ledger, window=window, price=pp)
        model = pp.node.model
        out.append(PodRecord(
            namespace=meta.get("namespace", ""), pod=meta.get("name", ""), uid=meta.get("uid", ""),
            owner=_first(meta, owner_keys), team=_first(meta, team_keys),
            lease=(meta.get("labels") or {}).get(c.LEASE_LABEL), node=node_name, gpu_model=model, gpus=gpus,
            start=part[0], end=part[1], gpu_hours=pc.gpu_hours, idle_gpu_hours=pc.idle_gpu_hours, cost=pc.cost,
            price_per_gpu_hour=price, util_avg=pc.util_avg, idle_cost=pc.idle_gpu_hours * price,
            list_cost=pc.gpu_hours * pp.list_rate / pp.units if pp.units > 0 else pc.cost,
            category=pp.node.category, region=pp.node.region, zone=pp.node.zone, pool=pp.node.pool,
            price_source=pp.node.source, resources=pp.resources, units=pp.units,
        ))
    out.sort(key=lambda r: (r.namespace, r.pod))
    return out


@dataclass(frozen=True)
class BudgetView:
    """What a report shows of a namespace's GPUBudget (from its spec and status)."""

    limit: Decimal | None
    spend: Decimal | None
    forecast: Decimal | None


def budget_views(budgets: Iterable[Mapping[str, Any]]) -> dict[str, BudgetView]:
    out: dict[str, BudgetView] = {}
    for b in budgets:
        spec, status = b.get("spec") or {}, b.get("status") or {}

        def dec(v: object) -> Decimal | None:
            try:
                return Decimal(str(v)) if v is not None else None
            except ArithmeticError:
                return None

        ns = b["metadata"]["namespace"]
        if ns not in out:
            out[ns] = BudgetView(dec((spec.get("spend") or {}).get("limit")), dec(status.get("spend")),
                                 dec(status.get("forecast")))
    return out


@dataclass(frozen=True)
class ShowbackRow:
    group: str
    pods: int
    gpu_hours: Decimal
    idle_gpu_hours: Decimal
    cost: Decimal
    budget: Decimal | None
    forecast: Decimal | None
    idle_cost: Decimal = Decimal(0)

    @property
    def idle_share(self) -> Decimal:
        return self.idle_gpu_hours / self.gpu_hours if self.gpu_hours > 0 else Decimal(0)


def showback(records: Sequence[PodRecord], by: GroupBy, budgets: Mapping[str, BudgetView] | None = None
             ) -> list[ShowbackRow]:
    """Totals per group; the namespace view adds the budget's limit and forecast (from its status)."""
    groups: dict[str, list[PodRecord]] = {}
    for r in records:
        key = {"namespace": r.namespace, "team": r.team, "lease": r.lease}[by] or UNSET
        groups.setdefault(key, []).append(r)
    if by == "namespace":
        for ns in budgets or {}:
            groups.setdefault(ns, [])
    rows = []
    for key in sorted(groups):
        recs = groups[key]
        view = (budgets or {}).get(key) if by == "namespace" else None
        rows.append(ShowbackRow(
            group=key, pods=len({r.uid for r in recs}),
            gpu_hours=sum((r.gpu_hours for r in recs), Decimal(0)),
            idle_gpu_hours=sum((r.idle_gpu_hours for r in recs), Decimal(0)),
            cost=sum((r.cost for r in recs), Decimal(0)),
            idle_cost=sum((r.idle_cost for r in recs), Decimal(0)),
            budget=view.limit if view else None,
            forecast=view.forecast if view else None,
        ))
    return rows


def row_dict(row: ShowbackRow, by: GroupBy, currency: str) -> dict[str, str | int | None]:
    """One showback row with rounded decimal strings (JSON/CSV/table share it)."""
    def money(v: Decimal | None) -> str | None:
        return None if v is None else c.fmt_decimal(c.q_money(v))

    return {
        by: row.group,
        "pods": row.pods,
        "gpuHours": c.fmt_decimal(c.q_hours(row.gpu_hours)),
        "idleGpuHours": c.fmt_decimal(c.q_hours(row.idle_gpu_hours)),
        "cost": money(row.cost),
        "idleCost": money(row.idle_cost),
        "budget": money(row.budget),
        "forecast": money(row.forecast),
        "currency": currency,
    }
