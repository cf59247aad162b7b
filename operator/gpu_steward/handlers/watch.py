"""The watches that feed the runtime's in-memory index (``gpu_steward.index``).

IdlePolicies (few, small) through kopf's ``on.event``. GPU pods do not go through kopf: kopf keeps
per-object machinery for every pod it sees, GPU or not, which cost ~45 KB of memory per pod at 8,000
pods (docs/scale.md). ``start_pod_watch`` runs the lean watch of ``gpu_steward.kube_watch`` instead,
which decodes one event at a time and keeps a slotted projection of GPU pods only.
"""

from __future__ import annotations

from typing import Any

import kopf

from gpu_steward.api.common import GROUP, VERSION
from gpu_steward.runtime import Runtime, get_runtime


@kopf.on.event(GROUP, VERSION, "idlepolicies")
def idle_policy_event(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    get_runtime().index.policy_event(event.get("type"), body)


def start_pod_watch(rt: Runtime) -> None:
    """Pods into the index: cluster-wide, or one watch per namespace the operator is scoped to."""
    assert rt.watches is not None
    for namespace in rt.settings.namespaces or (None,):
        rt.watches.watch_into("v1", "Pod", rt.index, namespace)
