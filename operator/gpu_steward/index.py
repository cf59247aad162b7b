"""The in-memory index the evaluation loops run over: GPU pods and IdlePolicies (no I/O, no kopf).

A lean watch (``gpu_steward.kube_watch``) feeds it; the idle pass and the cost pass read snapshots, so
neither LISTs every pod of the cluster each interval. Each GPU pod is kept as one slotted, immutable
``GpuPod`` holding only the fields a decision or a cost needs, with repeated values (namespaces, nodes,
label sets, owner references, container resources) shared between pods instead of copied: a few hundred
bytes per pod, where a decoded pod body is tens of kilobytes (docs/scale.md). The cost pass reads pods in
their own shape (``slim_pod``), built one at a time from the entry when it is read (``PodBodies``).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gpu_steward.policy.cost import parse_time, pod_gpus
from gpu_steward.policy.gpus import is_gpu_resource

Pairs = tuple[tuple[str, Any], ...]
# (name, (("limits", pairs), ("requests", pairs))): the GPU resources of one container.
Container = tuple[str, tuple[tuple[str, Pairs], ...]]

# Values many pods repeat (a Job's label set, its owner reference, the container resources): one shared
# copy. Cleared when it grows past a bound, so pods that are long gone never pin their values.
_SHARED: dict[Any, Any] = {}
_SHARED_MAX = 200_000


def _share(value: Any) -> Any:
    if isinstance(value, str):
        return sys.intern(value)
    if len(_SHARED) >= _SHARED_MAX:
        _SHARED.clear()
    return _SHARED.setdefault(value, value)


def _pairs(mapping: Mapping[str, Any] | None) -> Pairs:
    return _share(tuple(sorted((sys.intern(k), v) for k, v in (mapping or {}).items())))  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class GpuPod:
    namespace: str
    name: str
    uid: str
    node: str | None
    gpus: int
    phase: str
    started_at: datetime | None
    labels: Pairs
    annotations: Pairs  # only ours and the owner keys (see OWN_PREFIXES)
    owner_refs: tuple[Pairs, ...]
    # What the cost pass reads besides (slim_pod): raw timestamps, GPU resources per container, finish times
    # of terminated containers and the Ready condition.
    created: str | None = None
    deleted: str | None = None
    start: str | None = None
    containers: tuple[Container, ...] = ()
    init_containers: tuple[Container, ...] = ()
    finished: tuple[str, ...] = ()
    ready: tuple[Pairs, ...] = ()

    @property
    def running(self) -> bool:
        return self.phase == "Running" and bool(self.node)

    def as_object(self) -> dict[str, Any]:
        """The slim pod dict that workload resolution and owner lookup read."""
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid,
                         "labels": dict(self.labels), "annotations": dict(self.annotations),
                         "ownerReferences": [dict(r) for r in self.owner_refs]},
        }

    def body(self) -> dict[str, Any]:
        """The pod in its own shape with only what accounting reads (``slim_pod``), built on demand."""
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace, "uid": self.uid}
        if self.created is not None:
            meta["creationTimestamp"] = self.created
        if self.deleted is not None:
            meta["deletionTimestamp"] = self.deleted
        meta["labels"] = dict(self.labels)
        meta["annotations"] = dict(self.annotations)
        meta["ownerReferences"] = [dict(r) for r in self.owner_refs]
        return {
            "apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": self.node, "containers": [_container_body(c) for c in self.containers],
                     "initContainers": [_container_body(c) for c in self.init_containers]},
            "status": {"phase": self.phase, "startTime": self.start,
                       "containerStatuses": [{"state": {"terminated": {"finishedAt": t}}} for t in self.finished],
                       "conditions": [dict(c) for c in self.ready]},
        }


def _container_body(container: Container) -> dict[str, Any]:
    name, sections = container
    return {"name": name, "resources": {k: dict(v) for k, v in sections}}


# Pod annotations worth keeping: ours, and the usual owner hints.
OWN_PREFIXES = ("gpusteward.dev/", "owner", "team")
# Owner reference fields a decision reads (blockOwnerDeletion is not one).
_REF_KEYS = ("apiVersion", "kind", "name", "uid", "controller")


def _container(container: Mapping[str, Any]) -> Container:
    resources = container.get("resources") or {}
    sections = tuple((k, _pairs({r: v for r, v in (resources.get(k) or {}).items() if is_gpu_resource(r)}))
                     for k in ("limits", "requests") if any(is_gpu_resource(r) for r in resources.get(k) or {}))
    return _share((sys.intern(container.get("name", "")), sections))  # type: ignore[no-any-return]


def project_pod(body: Mapping[str, Any], gpus: int | None = None) -> GpuPod:
    """The entry for any pod body (whole, or already slim): the fields above, shared where repeated."""
    meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(OWN_PREFIXES)}
    refs = tuple(_pairs({k: v for k, v in r.items() if k in _REF_KEYS}) for r in meta.get("ownerReferences") or [])
    finished = tuple(t for cs in status.get("containerStatuses") or []
                     if (t := ((cs.get("state") or {}).get("terminated") or {}).get("finishedAt")))
    node = spec.get("nodeName")
    return GpuPod(
        namespace=sys.intern(meta.get("namespace", "")), name=meta.get("name", ""), uid=meta.get("uid", ""),
        node=sys.intern(node) if node else node, gpus=pod_gpus(body) if gpus is None else gpus,
        phase=sys.intern(status.get("phase", "Pending")), started_at=parse_time(status.get("startTime")),
        labels=_pairs(meta.get("labels")), annotations=tuple(sorted(annotations.items())),
        owner_refs=_share(refs), created=meta.get("creationTimestamp"), deleted=meta.get("deletionTimestamp"),
        start=status.get("startTime"),
        containers=_share(tuple(_container(c) for c in spec.get("containers") or [])),
        init_containers=_share(tuple(_container(c) for c in spec.get("initContainers") or [])),
        finished=finished,
        ready=tuple(_pairs(c) for c in status.get("conditions") or [] if c.get("type") == "Ready"),
    )


def slim_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a pod body that GPU accounting reads, in the pod's own shape (so every function that
    takes a pod takes this too): identity, labels, our and the owner annotations, owner references,
    node, GPU requests, phase, start, finish and the Ready condition: about a kilobyte instead of the
    whole body (managedFields, env, volumes...)."""
    return project_pod(body).body()


def gpu_pod_entry(body: Mapping[str, Any]) -> GpuPod | None:
    """The index entry for a pod, or None when it asks for no GPU."""
    gpus = pod_gpus(body)
    return project_pod(body, gpus) if gpus > 0 else None


class PodBodies:
    """Slim GPU pod bodies over a snapshot of entries, each built when it is read and dropped after: the cost
    pass iterates them several times without holding tens of thousands of dicts at once."""

    def __init__(self, entries: Iterable[GpuPod]) -> None:
        self._entries = list(entries)
        self._by_uid: dict[str, GpuPod] | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (e.body() for e in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, uid: str) -> dict[str, Any] | None:
        if self._by_uid is None:
            self._by_uid = {e.uid: e for e in self._entries}
        entry = self._by_uid.get(uid)
        return entry.body() if entry is not None else None


class Registry:
    """Thread-safe: the watch writes, the evaluation passes take snapshots."""

    def __init__(self, owns: Callable[[str], bool] | None = None) -> None:
        self._lock = threading.Lock()
        self._owns = owns  # sharded mode: keep only the pods of the namespaces this shard owns
        self._pods: dict[str, GpuPod] = {}
        self._policies: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods_synced = threading.Event()  # set once the pod watch has listed every pod

    def pod_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        uid = (body.get("metadata") or {}).get("uid")
        if not uid:
            return
        drop = event_type == "DELETED" or (self._owns is not None and not self._owns(body["metadata"].get("namespace")))
        entry = None if drop else gpu_pod_entry(body)
        with self._lock:
            if entry is None:
                self._pods.pop(uid, None)
            else:
                self._pods[uid] = entry

    # The watch's sink (kube_watch.Sink): events, and after each full list the uids it held.
    apply = pod_event

    def relisted(self, uids: set[str]) -> None:
        """A full list was applied: pods not in it were deleted while the watch was not looking."""
        with self._lock:
            for uid in set(self._pods) - uids:
                del self._pods[uid]
        self.pods_synced.set()

    def policy_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        with self._lock:
            if event_type == "DELETED":
                self._policies.pop(key, None)
            else:
                # Policies are few and small; keep spec + metadata needed for status writes.
                self._policies[key] = {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
                                       "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid",
                                                                             "generation")},
                                       "spec": body.get("spec") or {}, "status": body.get("status") or {}}

    def pods(self) -> list[GpuPod]:
        with self._lock:
            return list(self._pods.values())

    def pod_view(self, namespaces: tuple[str, ...] | list[str] = ()) -> PodBodies:
        """Slim GPU pod bodies (``slim_pod``), optionally only those in ``namespaces``, built as read."""
        with self._lock:
            entries = list(self._pods.values())
        if namespaces:
            wanted = set(namespaces)
            entries = [e for e in entries if e.namespace in wanted]
        return PodBodies(entries)

    def pod_bodies(self, namespaces: tuple[str, ...] | list[str] = ()) -> list[dict[str, Any]]:
        """Slim GPU pod bodies as a list (small callers and tests; the cost pass uses ``pod_view``)."""
        return list(self.pod_view(namespaces))

    def policies(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._policies.values())
