"""A GPUBudget in a namespace that Kueue serves: drive Kueue's quota, or stand aside. Pure.

Kueue admits a workload against its ClusterQueue's nominal quota and only then lets its pods be
created. A ResourceQuota beside it would be a second gate Kueue knows nothing of: Kueue admits, the
apiserver refuses the pods, and the workload sits admitted and broken, holding quota in the queue.
So a budget whose namespace has a Kueue LocalQueue owns no ResourceQuota. Instead:

- **Exclusive**: the namespace's LocalQueues all point at one ClusterQueue that admits from this
  namespace alone (its namespaceSelector matches no other namespace), belongs to no cohort (whose
  other queues could lend it more) and holds the GPU in one flavor: the budget sets that flavor's
  nominal GPU quota, and Kueue enforces the budget.
- **Shared**: anything else. Changing a shared queue's quota would cut other teams, so the budget
  leaves it alone, tracks spend as ever, and its status says why (``reason``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gpu_steward.policy.gpus import is_gpu_resource
from gpu_steward.policy.selection import selector_matches

JSON = dict[str, Any]
Mode = Literal["None", "Exclusive", "Shared"]


@dataclass(frozen=True)
class KueuePlan:
    mode: Mode
    cluster_queue: str | None = None
    flavor: str | None = None
    resource: str | None = None
    reason: str = ""


def plan(namespace: str, local_queues: Sequence[JSON], cluster_queues: Mapping[str, JSON],
         namespaces: Mapping[str, Mapping[str, str]]) -> KueuePlan:
    """How a budget of ``namespace`` meets Kueue, from its LocalQueues, the ClusterQueues by name and
    every namespace's labels."""
    targets = sorted({(lq.get("spec") or {}).get("clusterQueue") or "" for lq in local_queues})
    if not targets:
        return KueuePlan("None")
    if len(targets) > 1:
        return KueuePlan("Shared", reason=f"its LocalQueues point at several ClusterQueues ({', '.join(targets)}): "
                                          "one budget cannot be split between them")
    name = targets[0]
    cq = cluster_queues.get(name)
    if cq is None:
        return KueuePlan("Shared", name, reason=f"ClusterQueue {name or '<none>'} does not exist")
    spec = cq.get("spec") or {}
    cohort = spec.get("cohortName") or spec.get("cohort")  # v1beta2 / v1beta1
    if cohort:
        return KueuePlan("Shared", name, reason=f"ClusterQueue {name} is in cohort {cohort}, whose queues lend "
                                                "and borrow quota")
    others = sorted(ns for ns, labels in namespaces.items()
                    if ns != namespace and admits_from(spec.get("namespaceSelector"), labels))
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        return KueuePlan("Shared", name, reason=f"ClusterQueue {name} also admits workloads from {shown}")
    slots = gpu_slots(cq)
    if len(slots) != 1:
        return KueuePlan("Shared", name, reason=f"ClusterQueue {name} holds GPUs in {len(slots)} flavor/resource "
                                                "entries: no single quota to set")
    flavor, resource = slots[0]
    return KueuePlan("Exclusive", name, flavor, resource,
                     f"drives ClusterQueue {name}'s nominal {resource} quota (flavor {flavor})")


def admits_from(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kueue's reading of a ClusterQueue's namespaceSelector: absent admits from no namespace, ``{}``
    from every one."""
    return selector is not None and selector_matches(selector, labels)


def gpu_slots(cq: JSON) -> list[tuple[str, str]]:
    """(flavor, GPU resource) pairs that hold a GPU quota in the ClusterQueue."""
    out = []
    for group in (cq.get("spec") or {}).get("resourceGroups") or []:
        for flavor in group.get("flavors") or []:
            for res in flavor.get("resources") or []:
                if is_gpu_resource(res.get("name")):
                    out.append((flavor.get("name", ""), res["name"]))
    return out


def nominal_quota(cq: JSON, flavor: str, resource: str) -> str | None:
    for group in (cq.get("spec") or {}).get("resourceGroups") or []:
        for fl in group.get("flavors") or []:
            for res in fl.get("resources") or []:
                if fl.get("name") == flavor and res.get("name") == resource:
                    return str(res.get("nominalQuota"))
    return None


def with_nominal_quota(cq: JSON, flavor: str, resource: str, gpus: int) -> list[JSON]:
    """The ClusterQueue's ``spec.resourceGroups`` with ``gpus`` as the nominal quota of (flavor, resource):
    a list, which a merge patch replaces whole, so everything else in it is carried over."""
    groups = []
    for group in (cq.get("spec") or {}).get("resourceGroups") or []:
        flavors = []
        for fl in group.get("flavors") or []:
            resources = [dict(res, nominalQuota=str(gpus))
                         if fl.get("name") == flavor and res.get("name") == resource else res
                         for res in fl.get("resources") or []]
            flavors.append(dict(fl, resources=resources))
        groups.append(dict(group, flavors=flavors))
    return groups
