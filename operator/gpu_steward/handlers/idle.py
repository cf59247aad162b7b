"""kopf wiring for idle policies — thin: watch events feed the index, one loop runs the passes.

Pods and other projects' workloads are only *watched* (``on.event``: kopf writes nothing on them);
our deliberate annotations are the only writes. One evaluation loop per operator, never a timer per
pod.
"""

from __future__ import annotations

from typing import Any

import kopf
import structlog

from gpu_steward.api.common import GROUP, VERSION
from gpu_steward.handlers import loops
from gpu_steward.idle.controller import IdleController
from gpu_steward.idle.index import Registry
from gpu_steward.idle.metrics import record_pass
from gpu_steward.notify.slack import SlackNotifier
from gpu_steward.runtime import get_runtime

log = structlog.get_logger(__name__)
registry = Registry()


def _wants_gpu(spec: Any, **_: Any) -> bool:
    for c in (spec or {}).get("containers") or []:
        res = c.get("resources") or {}
        if "nvidia.com/gpu" in (res.get("limits") or {}) or "nvidia.com/gpu" in (res.get("requests") or {}):
            return True
    return False


@kopf.on.event("", "v1", "pods", when=_wants_gpu)
def gpu_pod_event(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    registry.pod_event(event.get("type"), body)


@kopf.on.event(GROUP, VERSION, "idlepolicies")
def idle_policy_event(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    registry.policy_event(event.get("type"), body)


@kopf.on.startup()
async def start_idle_loop(memo: kopf.Memo, **_: Any) -> None:
    rt = get_runtime()
    assert rt.source is not None
    controller = IdleController(rt.kube, rt.settings, rt.source, registry, SlackNotifier.from_settings(rt.settings))

    async def one_pass() -> None:
        result = await controller.run_pass()
        record_pass(result)
        log.info("idle pass", workloads=result.workloads, writes=result.writes, actions=dict(result.actions),
                 seconds=round(result.seconds, 3))

    # A short first delay lets the first watch lists fill the index.
    loops.start(memo, "idle", rt.settings.evaluation_interval_seconds, one_pass,
                initial_delay=min(rt.settings.evaluation_interval_seconds, 2.0))
