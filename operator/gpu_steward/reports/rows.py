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


@dataclass(frozen=True, slots=True)
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


def pod_record_of(r: Any, util: Mapping[str, Decimal | None] | None = None) -> PodRecord:
    """The ``PodRecord`` of one settled record or open part (``policy.history.Record``)."""
    t = r.terms.get
    units = Decimal(t("units") or "0")
    rate = Decimal(t("rate") or "0")
    unit_price = rate / units if units > 0 else Decimal(t("price") or "0")
    return PodRecord(
        namespace=t("namespace", ""), pod=t("pod", ""), uid=r.uid, owner=t("owner") or None, team=t("team") or None,
        lease=t("lease") or None, node=t("node") or None, gpu_model=t("model") or None,
        gpus=int(t("devices") or 0), start=r.start, end=r.end, gpu_hours=r.gpu_hours,
        idle_gpu_hours=r.idle_gpu_hours, cost=r.cost, price_per_gpu_hour=unit_price,
        util_avg=(util or {}).get(r.uid), list_cost=r.list_cost,
        list_price=r.list_cost / r.gpu_hours if r.gpu_hours > 0 else Decimal(t("listPrice") or "0"),
        idle_cost=r.idle_gpu_hours * unit_price, kind=t("kind") or "Pod", workload=t("workload", ""),
        category=t("category") or "Standard",
        region=t("region") or None, zone=t("zone") or None, pool=t("pool") or None, price_source=t("source", ""),
        resources=t("resources", ""), units=units, settled=getattr(r, "settled", True),
    )


def history_pod_records(recs: Iterable[Any], util: Mapping[str, Decimal | None] | None = None) -> list[PodRecord]:
    """``PodRecord`` rows of settled records and open parts (``policy.history.Record``)."""
    out = [pod_record_of(r, util) for r in recs]
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


@dataclass
class _Group:
    uids: set[str]
    gpu_hours: Decimal = Decimal(0)
    idle_gpu_hours: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    idle_cost: Decimal = Decimal(0)


class Showback:
    """Totals per group, added one row at a time (a report streams the history through it)."""

    def __init__(self, by: GroupBy) -> None:
        self.by = by
        self.groups: dict[str, _Group] = {}

    def add(self, namespace: str, team: str | None, lease: str | None, uid: str, gpu_hours: Decimal,
            idle_gpu_hours: Decimal, cost: Decimal, idle_cost: Decimal) -> None:
        key = (namespace if self.by == "namespace" else team if self.by == "team" else lease) or UNSET
        g = self.groups.get(key)
        if g is None:
            g = self.groups[key] = _Group(set())
        g.uids.add(uid)
        g.gpu_hours += gpu_hours
        g.idle_gpu_hours += idle_gpu_hours
        g.cost += cost
        g.idle_cost += idle_cost

    def add_record(self, r: PodRecord) -> None:
        self.add(r.namespace, r.team, r.lease, r.uid, r.gpu_hours, r.idle_gpu_hours, r.cost, r.idle_cost)

    def add_history(self, r: Any) -> None:
        """A ``policy.history.Record`` as it is, without building a ``PodRecord``."""
        t = r.terms.get
        self.add(t("namespace", ""), t("team"), t("lease"), r.uid, r.gpu_hours, r.idle_gpu_hours, r.cost,
                 r.idle_cost)

    def rows(self, budgets: Mapping[str, BudgetView] | None = None) -> list[ShowbackRow]:
        """The namespace view adds the budget's limit and forecast (from its status)."""
        groups = dict(self.groups)
        if self.by == "namespace":
            for ns in budgets or {}:
                groups.setdefault(ns, _Group(set()))
        out = []
        for key in sorted(groups):
            g = groups[key]
            view = (budgets or {}).get(key) if self.by == "namespace" else None
            out.append(ShowbackRow(group=key, pods=len(g.uids), gpu_hours=g.gpu_hours,
                                   idle_gpu_hours=g.idle_gpu_hours, cost=g.cost, idle_cost=g.idle_cost,
                                   budget=view.limit if view else None, forecast=view.forecast if view else None))
        return out


def showback(records: Iterable[PodRecord], by: GroupBy, budgets: Mapping[str, BudgetView] | None = None
             ) -> list[ShowbackRow]:
    """Totals per group; the namespace view adds the budget's limit and forecast (from its status)."""
    acc = Showback(by)
    for r in records:
        acc.add_record(r)
    return acc.rows(budgets)


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
