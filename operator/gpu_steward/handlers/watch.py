"""The watches that feed the runtime's in-memory index (``gpu_steward.index``): GPU pods and
IdlePolicies. Both evaluation loops (idle and cost) read the index instead of LISTing the cluster.

Only *watched* (``on.event``): kopf writes nothing on pods. The filter and the index count GPUs the
same way (``policy.cost.pod_gpus``: app containers and init containers).
"""

from __future__ import annotations

from typing import Any

import kopf

from gpu_steward.api.common import GROUP, VERSION
from gpu_steward.policy.cost import pod_gpus
from gpu_steward.runtime import get_runtime


def _holds_gpus(body: kopf.Body, **_: Any) -> bool:
    return pod_gpus(body) > 0


@kopf.on.event("", "v1", "pods", when=_holds_gpus)
def gpu_pod_event(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    get_runtime().index.pod_event(event.get("type"), body)


@kopf.on.event(GROUP, VERSION, "idlepolicies")
def idle_policy_event(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    get_runtime().index.policy_event(event.get("type"), body)
