"""kopf decorators for GPUBudgets and the cost-annotation loop — thin: they call gpu_steward.budgets."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import kopf
import structlog

from gpu_steward.api.common import GROUP, VERSION
from gpu_steward.budgets.budget import reconcile_budget
from gpu_steward.budgets.costs import reconcile_pod_costs
from gpu_steward.budgets.runtime import get_runtime
from gpu_steward.settings import Settings

log = structlog.get_logger(__name__)
_INTERVAL = Settings().evaluation_interval_seconds


def _reconcile(namespace: str, name: str) -> None:
    rt = get_runtime()
    budget = rt.kube.get(f"{GROUP}/{VERSION}", "GPUBudget", name, namespace)
    if budget is None:
        return
    with rt.serialized(budget["metadata"]["uid"]):
        reconcile_budget(rt.kube, rt.settings, budget, dt.datetime.now(dt.UTC), rt.notifier,
                         utilization=rt.utilization, ledger=rt.ledger)


# Only spec changes trigger: our own status and ledger-annotation writes must not re-trigger us.
@kopf.on.create(GROUP, VERSION, "gpubudgets")
@kopf.on.update(GROUP, VERSION, "gpubudgets", field="spec")
@kopf.timer(GROUP, VERSION, "gpubudgets", interval=_INTERVAL, initial_delay=1.0)
def budget_reconcile(namespace: str, name: str, **_: Any) -> None:
    _reconcile(namespace, name)


async def _cost_loop(interval: float) -> None:
    while True:
        rt = get_runtime()
        try:
            result = await asyncio.to_thread(reconcile_pod_costs, rt.kube, rt.settings, dt.datetime.now(dt.UTC),
                                             rt.ledger, rt.utilization)
            log.debug("cost pass", pods=result.pods, written=result.written,
                      rate_limited=result.skipped_rate_limited)
        except Exception as exc:  # one failed pass (apiserver blip) must not end the loop
            log.warning("cost pass failed", error=str(exc)[:200])
        await asyncio.sleep(interval)


@kopf.on.startup()
async def start_cost_loop(memo: kopf.Memo, **_: Any) -> None:
    memo["gpusteward_cost_task"] = asyncio.create_task(_cost_loop(_INTERVAL))


@kopf.on.cleanup()
async def stop_cost_loop(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get("gpusteward_cost_task")
    if task is not None:
        task.cancel()
