"""kopf decorators for GPUBudgets and the cost-annotation loop — thin: they call gpu_steward.budgets."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import kopf
import structlog

from gpu_steward.api.common import GROUP, VERSION
from gpu_steward.budgets.budget import reconcile_budget
from gpu_steward.budgets.costs import Prices, opencost_prices, price_table, reconcile_pod_costs, write_budget
from gpu_steward.budgets.metrics import COLLECTOR, forget_budget
from gpu_steward.budgets.utilization import sample
from gpu_steward.cluster_view import WatchView
from gpu_steward.handlers import loops, watch  # noqa: F401  (watch: registers the index's watches)
from gpu_steward.runtime import configured_settings, get_runtime

log = structlog.get_logger(__name__)
_INTERVAL = configured_settings().evaluation_interval_seconds


def _reconcile(namespace: str, name: str) -> None:
    rt = get_runtime()
    budget = loops.current(f"{GROUP}/{VERSION}", "GPUBudget", name, namespace)
    if budget is None:
        return
    with rt.serialized(budget["metadata"]["uid"]):
        reconcile_budget(rt.kube, rt.settings, budget, dt.datetime.now(dt.UTC), rt.notifier,
                         ledger=rt.ledger, book=rt.requests, history=rt.history)


# Only spec changes trigger: our own status and ledger-annotation writes must not re-trigger us.
# Sharded mode: a budget is reconciled by the shard that owns its namespace only (loops.owned).
@kopf.on.create(GROUP, VERSION, "gpubudgets", when=loops.owned)
@kopf.on.update(GROUP, VERSION, "gpubudgets", field="spec", when=loops.owned)
@kopf.timer(GROUP, VERSION, "gpubudgets", interval=_INTERVAL, initial_delay=1.0, when=loops.owned)
def budget_reconcile(namespace: str, name: str, **_: Any) -> None:
    loops.require_leader()
    _reconcile(namespace, name)


@kopf.on.delete(GROUP, VERSION, "gpubudgets", optional=True, when=loops.owned)
def budget_deleted(namespace: str, name: str, **_: Any) -> None:
    forget_budget(namespace, name)  # its gauges go with it


async def _cost_pass() -> None:
    rt = get_runtime()
    now = dt.datetime.now(dt.UTC)
    # The watch-fed index, not a LIST of every pod each interval (memory and apiserver load at scale); the
    # bodies are built one at a time as the pass reads them.
    pods = rt.index.pod_view(rt.settings.namespaces)
    rt.utilization = await sample(rt.source, pods, now) if rt.source is not None else None
    COLLECTOR.is_leader = rt.is_leader  # the counters are exported by the replica that acts only
    if rt.cost_budget is None:
        rt.cost_budget = write_budget(rt.settings)
    prices, namespaces = None, None
    if rt.watches is not None:  # nodes and namespaces from their watches too (no LIST per pass)
        view = WatchView(rt.watches)
        table = await asyncio.to_thread(lambda: price_table(rt.settings, opencost_prices(rt.settings)))
        nodes = await asyncio.to_thread(view.nodes)
        prices, namespaces = Prices(table, nodes.values()), set(await asyncio.to_thread(view.namespaces))
    result = await asyncio.to_thread(reconcile_pod_costs, rt.kube, rt.settings, now, rt.ledger, rt.utilization, pods,
                                     prices, rt.history, rt.cost_budget, namespaces)
    log.debug("cost pass", pods=result.pods, written=result.written, rate_limited=result.skipped_rate_limited)


@kopf.on.startup()
async def start_cost_loop(memo: kopf.Memo, **_: Any) -> None:
    # A short first delay lets the first watch lists fill the index (as the idle loop does).
    loops.start(memo, "cost", _INTERVAL, _cost_pass, initial_delay=min(_INTERVAL, 2.0))
