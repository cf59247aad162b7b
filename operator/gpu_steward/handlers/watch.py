"""The watches that feed the runtime's in-memory index (``gpu_steward.index``).

IdlePolicies (few, small) through kopf's ``on.event``. GPU pods do not go through kopf: kopf keeps
per-object machinery for every pod it sees, GPU or not, which cost ~45 KB of memory per pod at 8,000
pods (docs/scale.md). ``start_pod_watch`` runs the lean watch of ``gpu_steward.kube_watch`` instead,
which decodes one event at a time and keeps a slotted projection of GPU pods only.
"""

from __future__ import annotations

import threading
from typing import Any

import kopf

from gpu_steward.api.common import API_VERSION, GROUP, VERSION
from gpu_steward.budgets.history import CURSORS, RECORDS, STORE_LABEL
from gpu_steward.budgets.kueue import KUEUE_VERSIONS
from gpu_steward.cluster_view import project_agent_pod, project_namespace, project_small
from gpu_steward.runtime import Runtime, get_runtime


@kopf.on.event(GROUP, VERSION, "idlepolicies")
def idle_policy_event(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    get_runtime().index.policy_event(event.get("type"), body)


COST_STORE = frozenset({(STORE_LABEL, RECORDS), (STORE_LABEL, CURSORS)})


def project_records(obj: dict[str, Any]) -> dict[str, Any]:
    """Our ConfigMaps, less the cost history's data: its records and cursors (hundreds of bytes per pod, and
    per pod per day) are read once at start by a LIST (``Kube.unserved_labels``) and kept decoded by the
    history; holding their JSON in the watch too cost ~600 bytes per GPU pod, growing each day."""
    out = project_small(obj)
    labels = out["metadata"].get("labels") or {}
    if any(labels.get(k) == v for k, v in COST_STORE):
        out.pop("data", None)
    return out


def start_watches(rt: Runtime) -> None:
    """Pods into the index (cluster-wide, or one watch per namespace the operator is scoped to); then, in the
    background, the collections every pass lists (our records in the platform namespace, budgets, leases,
    agent pods) served from watches (``Kube.served_lists``)."""
    watches, s = rt.watches, rt.settings
    assert watches is not None
    shard = s.shard()

    def owned_namespaces() -> list[str]:
        return [n["metadata"]["name"] for n in rt.kube.list("v1", "Namespace") if shard.owns(n["metadata"]["name"])]

    watches.watch_crds()  # a CRD installed later: its kind is looked up again then (no discovery polling)
    for namespace in s.namespaces or (None,):
        # Sharded: list only the shard's namespaces' pods (the others' are not even decoded at start; the
        # watch's events of other namespaces are dropped by the index as they come).
        watches.watch_into("v1", "Pod", rt.index, namespace,
                           list_namespaces=owned_namespaces if shard.sharded and namespace is None else None)

    def serve() -> None:
        rt.kube.unserved_labels = rt.kube.unserved_labels | COST_STORE
        watches.serve_lists("v1", "ConfigMap", project_records, s.platform_namespace)
        watches.serve_lists(API_VERSION, "GPUBudget", project_small)
        watches.serve_lists(API_VERSION, "ExperimentLease", project_small)
        if s.utilization_source == "agents" and not s.agent_endpoints:
            watches.serve_lists("v1", "Pod", project_agent_pod, s.agent_namespace)
        # A budget beside Kueue reads the namespace's LocalQueues, their ClusterQueue and the namespaces
        # (budgets.kueue): from watches too where Kueue is installed at start (else by LIST, still correct).
        for version in KUEUE_VERSIONS:
            if watches.path(version, "LocalQueue") is not None:
                watches.serve_lists(version, "LocalQueue", project_small)
                watches.serve_lists(version, "ClusterQueue", project_small)
                watches.serve_lists("v1", "Namespace", project_namespace)
                break

    threading.Thread(target=serve, name="serve-lists", daemon=True).start()
