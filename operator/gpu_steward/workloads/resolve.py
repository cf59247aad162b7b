"""From a GPU pod to the workload that can be suspended, and who owns it. Pure: reads go through the
``lookup`` / ``owned`` callables the caller passes (dict-backed in tests, a cached Kube getter live).

The walk follows ``ownerReferences`` with ``controller: true`` only, and climbs only through the
pairs in ``_CLIMB``: an owner GPU Steward has no adapter for (an Argo Workflow, a DaemonSet) makes the
pod notify-only rather than letting us suspend something another controller would fight over.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpu_steward.policy.lease import CREATED_BY_ANNOTATION
from gpu_steward.settings import Settings
from gpu_steward.workloads.model import (
    JSON,
    KUEUE_QUEUE_LABEL,
    KUEUE_WORKLOAD_ANNOTATION,
    KUEUE_WORKLOAD_VERSIONS,
    NOTEBOOK_CREATOR_ANNOTATION,
    TRAINING_OPERATOR_KINDS,
    Lookup,
    Owned,
    Owner,
    Resolution,
    WorkloadRef,
    group_of,
)

Key = tuple[str, str]  # (API group, kind)

JOB: Key = ("batch", "Job")
CRONJOB: Key = ("batch", "CronJob")
POD: Key = ("", "Pod")
STATEFULSET: Key = ("apps", "StatefulSet")
DEPLOYMENT: Key = ("apps", "Deployment")
REPLICASET: Key = ("apps", "ReplicaSet")
NOTEBOOK: Key = ("kubeflow.org", "Notebook")
PYTORCHJOB: Key = ("kubeflow.org", "PyTorchJob")
TRAINING_OPERATOR: frozenset[Key] = frozenset(("kubeflow.org", k) for k in TRAINING_OPERATOR_KINDS)
JOBSET: Key = ("jobset.x-k8s.io", "JobSet")
TRAINJOB: Key = ("trainer.kubeflow.org", "TrainJob")
RAYJOB: Key = ("ray.io", "RayJob")
RAYCLUSTER: Key = ("ray.io", "RayCluster")
LWS: Key = ("leaderworkerset.x-k8s.io", "LeaderWorkerSet")
KUEUE_WORKLOAD: Key = ("kueue.x-k8s.io", "Workload")

# Kinds a pod's controller chain may end at (each has an adapter).
SUSPENDABLE: frozenset[Key] = frozenset(
    {JOB, STATEFULSET, DEPLOYMENT, NOTEBOOK, JOBSET, TRAINJOB, RAYJOB, RAYCLUSTER, LWS} | TRAINING_OPERATOR)
# child kind -> controllers we climb to. A ReplicaSet is only a step: it must lead to a Deployment.
# A Pod as an owner is only a step too: an LWS worker group's StatefulSet is owned by the group's
# leader pod, whose StatefulSet the LeaderWorkerSet owns (the chain must end at the LWS).
_CLIMB: dict[Key, frozenset[Key]] = {
    JOB: frozenset({JOBSET, RAYJOB}),  # a RayJob's submitter Job belongs to the RayJob
    JOBSET: frozenset({TRAINJOB}),  # the Trainer rewrites its JobSet's suspend from the TrainJob
    STATEFULSET: frozenset({NOTEBOOK, LWS, POD}),
    POD: frozenset({STATEFULSET}),
    REPLICASET: frozenset({DEPLOYMENT}),
    RAYCLUSTER: frozenset({RAYJOB}),  # suspending a RayJob tears its RayCluster down
}
# A controller that leaves its child in charge: a CronJob's Job is suspended as the Job.
_STAY: dict[Key, frozenset[Key]] = {JOB: frozenset({CRONJOB})}
# Kinds Kueue manages through a Workload owned by the object itself (not pod groups).
KUEUE_INTEGRATED: frozenset[Key] = frozenset({JOB, JOBSET, TRAINJOB, RAYJOB, RAYCLUSTER} | TRAINING_OPERATOR)

_MAX_DEPTH = 8


def key_of(obj_or_ref: JSON) -> Key:
    return group_of(obj_or_ref["apiVersion"]), obj_or_ref["kind"]


def controller_ref(obj: JSON) -> JSON | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref  # type: ignore[no-any-return]
    return None


def resolve(pod: JSON, lookup: Lookup, owned: Owned | None = None) -> Resolution:
    """Walk from ``pod`` to the workload to suspend. Never raises on odd input: an unsupported or
    broken chain comes back with ``suspendable=False`` and a reason."""
    namespace = (pod.get("metadata") or {}).get("namespace")
    objects: list[JSON] = [pod]
    chain: list[WorkloadRef] = [WorkloadRef.of(pod)]

    def stop(reason: str, workload: WorkloadRef | None = None, final: bool = True) -> Resolution:
        return Resolution(workload, None, tuple(chain), False, reason, tuple(objects), final)

    ref = controller_ref(pod)
    if ref is None:
        return stop("bare pod: no controller owns it, so it can only be notified about")
    for _ in range(_MAX_DEPTH):
        key = key_of(ref)
        obj = lookup(ref["apiVersion"], ref["kind"], namespace, ref["name"])
        if obj is None:  # not created yet, or its CRD installed after our last discovery: try again later
            return stop(f"owner {ref['kind']}/{ref['name']} was not found", final=False)
        if ref.get("uid") and (obj.get("metadata") or {}).get("uid") not in (None, ref["uid"]):
            return stop(f"owner {ref['kind']}/{ref['name']} was replaced (uid differs)")
        objects.append(obj)
        chain.append(WorkloadRef.of(obj))
        nxt = controller_ref(obj)
        nxt_key = key_of(nxt) if nxt is not None else None
        if nxt is not None and nxt_key in _CLIMB.get(key, frozenset()):
            ref = nxt
            continue
        if POD in {(r.group, r.kind) for r in chain[1:]} and key != LWS:
            return stop(f"{ref['kind']}/{ref['name']} is reached through a pod that owns it, "
                        "which only a LeaderWorkerSet's groups do: no adapter for this chain")
        if key not in SUSPENDABLE:
            if key == REPLICASET:
                return stop("ReplicaSet not controlled by a Deployment: no adapter")
            return stop(f"{ref['kind']} ({key[0] or 'core'}) has no suspend adapter")
        if nxt is not None and nxt_key not in _STAY.get(key, frozenset()):
            return stop(f"{ref['kind']}/{ref['name']} is controlled by {nxt['kind']}/{nxt['name']}, "
                        "which has no suspend adapter", WorkloadRef.of(obj))
        return _with_kueue(obj, pod, lookup, owned, chain, objects)
    return stop("ownerReferences chain too deep")


def _with_kueue(workload: JSON, pod: JSON, lookup: Lookup, owned: Owned | None,
                chain: list[WorkloadRef], objects: list[JSON]) -> Resolution:
    ref = WorkloadRef.of(workload)
    queue = kueue_queue(workload)
    if queue is None:
        return Resolution(ref, ref, tuple(chain), True, "", tuple(objects))
    wl = find_kueue_workload(workload, lookup, owned, pod)
    if wl is None:
        return Resolution(ref, None, tuple(chain), False,
                          f"managed by Kueue (queue {queue}) but its Kueue Workload was not found (yet)",
                          tuple(objects), final=False)
    target = WorkloadRef.of(wl)
    return Resolution(ref, target, (*chain, target), True, "", tuple(objects))


def kueue_queue(workload: JSON) -> str | None:
    """The Kueue queue name when Kueue manages this workload (label, or the older annotation)."""
    if key_of(workload) not in KUEUE_INTEGRATED:
        return None
    meta = workload.get("metadata") or {}
    return (meta.get("labels") or {}).get(KUEUE_QUEUE_LABEL) or (meta.get("annotations") or {}).get(KUEUE_QUEUE_LABEL)


def find_kueue_workload(workload: JSON, lookup: Lookup, owned: Owned | None, pod: JSON | None = None) -> JSON | None:
    """Kueue's Workload object owned by ``workload``: by the name Kueue writes on admitted pods when
    there is one, else by listing Workloads owned by the workload's uid. Tries v1beta2 then v1beta1."""
    meta = workload.get("metadata") or {}
    uid, namespace = meta.get("uid"), meta.get("namespace")
    name = (((pod or {}).get("metadata") or {}).get("annotations") or {}).get(KUEUE_WORKLOAD_ANNOTATION)
    for api_version in KUEUE_WORKLOAD_VERSIONS:
        if name:
            wl = lookup(api_version, "Workload", namespace, name)
            if wl is not None and owned_by(wl, uid):
                return wl
        if owned is not None and uid:
            found = [wl for wl in owned(api_version, "Workload", namespace, uid) if owned_by(wl, uid)]
            if found:
                return sorted(found, key=lambda w: w["metadata"]["name"])[0]
    return None


def owned_by(obj: JSON, uid: str | None) -> bool:
    """Whether ``obj`` names ``uid`` among its owner references."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return uid is not None and any(r.get("uid") == uid for r in refs)


def owner_of(objects: Sequence[JSON], settings: Settings) -> Owner:
    """Who to notify: the first configured label/annotation found, looking at the workload first and
    down the chain to the pod (``objects`` in pod-to-workload order, as in ``Resolution.objects``).
    A Kubeflow Notebook's ``notebooks.kubeflow.org/creator`` (the dashboard user) comes last; when an
    owner name looks like an e-mail address and no e-mail key is set, it doubles as the e-mail. With the
    webhooks on, a stamped creator that is an e-mail address is the e-mail (labels cannot move it)."""
    ordered = list(reversed(objects))
    name = _first(ordered, settings.owner_keys)
    if name is None:
        name = _first([o for o in ordered if key_of(o) == NOTEBOOK], (NOTEBOOK_CREATOR_ANNOTATION,))
    email = _first(ordered, settings.owner_email_keys)
    if email is None and name is not None and "@" in name:
        email = name
    # The creator the admission webhook stamped (from the request's userInfo) wins over labels anyone
    # with edit in the namespace can write: relabelling a colleague's workload does not redirect the
    # notices before its suspension. Only with the webhooks on, and only when the creator is an e-mail.
    creator = _first(ordered, (CREATED_BY_ANNOTATION,)) if settings.webhook_enabled else None
    if creator is not None and "@" in creator:
        email = creator
    return Owner(name=name, email=email, team=_first(ordered, settings.team_keys))


def _first(objects: Sequence[JSON], keys: Sequence[str]) -> str | None:
    for obj in objects:
        meta = obj.get("metadata") or {}
        labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
        for k in keys:
            value = labels.get(k) or annotations.get(k)
            if value:
                return str(value)
    return None
