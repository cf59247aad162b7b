"""A GPUBudget beside Kueue (see ``policy.kueue_quota`` for the rules): read the namespace's LocalQueues and
their ClusterQueue, set the ClusterQueue's nominal GPU quota where the budget may, and keep the budget's own
ResourceQuota out of Kueue's way."""

from __future__ import annotations

from typing import Any

import structlog

from gpu_steward.kube import Kube
from gpu_steward.policy import budget as pb
from gpu_steward.policy import kueue_quota as kq

log = structlog.get_logger(__name__)

JSON = dict[str, Any]
# Served versions of Kueue's queue CRDs, newest first.
KUEUE_VERSIONS = ("kueue.x-k8s.io/v1beta2", "kueue.x-k8s.io/v1beta1")


def plan_for(kube: Kube, namespace: str) -> tuple[kq.KueuePlan, JSON | None]:
    """The plan for a budget of ``namespace`` and the ClusterQueue it concerns (None without one)."""
    for version in KUEUE_VERSIONS:
        queues = kube.list_optional(version, "LocalQueue", namespace)
        if queues:
            break
    else:
        return kq.KueuePlan("None"), None
    names = {(lq.get("spec") or {}).get("clusterQueue") for lq in queues} - {None, ""}
    # One list (the operator's watch serves it: no request), not a GET per queue.
    cqs = {cq["metadata"]["name"]: cq for cq in kube.list_optional(version, "ClusterQueue")
           if cq["metadata"]["name"] in names}
    namespaces = {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in kube.list("v1", "Namespace")}
    plan = kq.plan(namespace, queues, cqs, namespaces)
    return plan, cqs.get(plan.cluster_queue or "")


def set_nominal_quota(kube: Kube, plan: kq.KueuePlan, cq: JSON, gpus: int, *, dry_run: bool) -> str:
    """Make the ClusterQueue's GPU quota ``gpus``: patched / unchanged."""
    assert plan.flavor is not None and plan.resource is not None
    if kq.nominal_quota(cq, plan.flavor, plan.resource) == str(gpus):
        return "unchanged"
    meta = cq["metadata"]
    body = {"metadata": {"resourceVersion": meta.get("resourceVersion")},
            "spec": {"resourceGroups": kq.with_nominal_quota(cq, plan.flavor, plan.resource, gpus)}}
    kube.patch(cq["apiVersion"], "ClusterQueue", meta["name"], None, body, dry_run=dry_run)
    log.info("ClusterQueue quota set", cluster_queue=meta["name"], resource=plan.resource, gpus=gpus, dry_run=dry_run)
    return "patched"


def remove_own_quota(kube: Kube, namespace: str, budget_name: str, *, dry_run: bool) -> bool:
    """Delete the ResourceQuota this budget owns, if any (only ours: labelled as managed by us for this
    budget); True when one was deleted."""
    rq = kube.get_optional("v1", "ResourceQuota", pb.quota_name(budget_name), namespace)
    labels = ((rq or {}).get("metadata") or {}).get("labels") or {}
    if rq is None or labels.get(pb.MANAGED_BY_LABEL) != pb.MANAGED_BY or labels.get(pb.BUDGET_LABEL) != budget_name:
        return False
    kube.delete("v1", "ResourceQuota", pb.quota_name(budget_name), namespace, dry_run=dry_run)
    return True
