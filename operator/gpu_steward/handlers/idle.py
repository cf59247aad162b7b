"""kopf wiring for idle policies — thin: one loop runs the passes over the index that
``handlers.watch`` feeds.

Pods and other projects' workloads are only *watched* (kopf writes nothing on them); our deliberate
annotations are the only writes. One evaluation loop per operator, never a timer per pod.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import kopf
import structlog

from gpu_steward.budgets import requests
from gpu_steward.cluster_view import WatchView
from gpu_steward.handlers import loops, watch  # noqa: F401  (watch: registers the index's watches)
from gpu_steward.idle.controller import IdleController
from gpu_steward.idle.metrics import record_pass
from gpu_steward.notify.slack import SlackNotifier
from gpu_steward.runtime import get_runtime

log = structlog.get_logger(__name__)


@kopf.on.startup()
async def start_idle_loop(memo: kopf.Memo, **_: Any) -> None:
    rt = get_runtime()
    assert rt.source is not None
    # Budgets and leases suspend nothing themselves: their requests are carried out by this pass.
    shard = rt.settings.shard()
    view = WatchView(rt.watches, owns=shard.owns if shard.sharded else None) if rt.watches is not None else None
    controller = IdleController(rt.kube, rt.settings, rt.source, rt.index, SlackNotifier.from_settings(rt.settings),
                                requests=lambda: requests.load(rt.kube, rt.settings, rt.requests), view=view)

    async def one_pass() -> None:
        # The first pass waits for the pod watch's first full list (a pass over half the pods would report
        # half the workloads in the policies' status).
        await asyncio.to_thread(rt.index.pods_synced.wait, 120.0)
        result = await controller.run_pass()
        record_pass(result)
        log.info("idle pass", workloads=result.workloads, writes=result.writes, actions=dict(result.actions),
                 seconds=round(result.seconds, 3))

    # A short first delay lets the first watch lists fill the index.
    loops.start(memo, "idle", rt.settings.evaluation_interval_seconds, one_pass,
                initial_delay=min(rt.settings.evaluation_interval_seconds, 2.0))
    reports = controller.reports
    if reports is not None:  # sharded: other shards' parts reach the statuses this shard writes within seconds
        async def merge_reported() -> None:
            await asyncio.to_thread(reports.merge_reported, dt.datetime.now(dt.UTC))

        loops.start(memo, "idle-status-merge", min(rt.settings.evaluation_interval_seconds, 3.0), merge_reported,
                    initial_delay=3.0)
