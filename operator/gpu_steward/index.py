"""The in-memory index the evaluation loops run over: GPU pods and IdlePolicies (no I/O, no kopf).

Watch events feed it (handlers/watch.py); the idle pass and the cost pass read snapshots, so neither
LISTs every pod of the cluster each interval. Entries keep only the fields a decision or a cost needs
(``slim_pod``), never whole bodies: at 10k GPU pods the index stays a few MB.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gpu_steward.policy.cost import parse_time, pod_gpus
from gpu_steward.policy.gpus import is_gpu_resource


@dataclass(frozen=True)
class GpuPod:
    namespace: str
    name: str
    uid: str
    node: str | None
    gpus: int
    phase: str
    started_at: datetime | None
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]  # only ours and the owner keys (see OWN_PREFIXES)
    owner_refs: tuple[tuple[tuple[str, Any], ...], ...]

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


# Pod annotations worth keeping: ours, and the usual owner hints.
OWN_PREFIXES = ("gpusteward.dev/", "owner", "team")


def _slim_container(container: Mapping[str, Any]) -> dict[str, Any]:
    resources = container.get("resources") or {}
    return {"name": container.get("name", ""),
            "resources": {k: {r: v for r, v in (resources.get(k) or {}).items() if is_gpu_resource(r)}
                          for k in ("limits", "requests")
                          if any(is_gpu_resource(r) for r in resources.get(k) or {})}}


def slim_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a pod body that GPU accounting reads, in the pod's own shape (so every function that
    takes a pod takes this too): identity, labels, our and the owner annotations, owner references,
    node, GPU requests, phase, start, finish and the Ready condition: about a kilobyte instead of the
    whole body (managedFields, env, volumes...)."""
    meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    slim_meta = {k: meta[k] for k in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp")
                 if meta.get(k) is not None}
    slim_meta["labels"] = dict(meta.get("labels") or {})
    slim_meta["annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(OWN_PREFIXES)}
    slim_meta["ownerReferences"] = [dict(r) for r in meta.get("ownerReferences") or []]
    finished = [{"state": {"terminated": {"finishedAt": t}}}
                for cs in status.get("containerStatuses") or []
                if (t := ((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))]
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": slim_meta,
        "spec": {"nodeName": spec.get("nodeName"),
                 "containers": [_slim_container(c) for c in spec.get("containers") or []],
                 "initContainers": [_slim_container(c) for c in spec.get("initContainers") or []]},
        "status": {"phase": status.get("phase", "Pending"), "startTime": status.get("startTime"),
                   "containerStatuses": finished,
                   "conditions": [dict(c) for c in status.get("conditions") or [] if c.get("type") == "Ready"]},
    }


def gpu_pod_entry(body: Mapping[str, Any]) -> GpuPod | None:
    """The index entry for a pod, or None when it asks for no GPU."""
    gpus = pod_gpus(body)
    if gpus <= 0:
        return None
    meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    started = parse_time(status.get("startTime"))
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(OWN_PREFIXES)}
    refs = tuple(tuple(sorted((k, v) for k, v in r.items() if k in ("apiVersion", "kind", "name", "uid",
                                                                     "controller")))
                 for r in meta.get("ownerReferences") or [])
    return GpuPod(
        namespace=meta.get("namespace", ""), name=meta.get("name", ""), uid=meta.get("uid", ""),
        node=spec.get("nodeName"), gpus=gpus, phase=status.get("phase", "Pending"), started_at=started,
        labels=tuple(sorted((meta.get("labels") or {}).items())), annotations=tuple(sorted(annotations.items())),
        owner_refs=refs,
    )


class Registry:
    """Thread-safe: watch handlers write, the evaluation pass takes snapshots."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pods: dict[str, GpuPod] = {}
        self._bodies: dict[str, dict[str, Any]] = {}  # uid -> slim_pod(body), for the cost pass
        self._policies: dict[tuple[str, str], dict[str, Any]] = {}

    def pod_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        uid = (body.get("metadata") or {}).get("uid")
        if not uid:
            return
        # One projection kept (slim_pod); the idle pass's entry is derived from it, not from the body.
        slim = None if event_type == "DELETED" or pod_gpus(body) <= 0 else slim_pod(body)
        entry = gpu_pod_entry(slim) if slim is not None else None
        with self._lock:
            if entry is None or slim is None:
                self._pods.pop(uid, None)
                self._bodies.pop(uid, None)
            else:
                self._pods[uid] = entry
                self._bodies[uid] = slim

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

    def pod_bodies(self, namespaces: tuple[str, ...] | list[str] = ()) -> list[dict[str, Any]]:
        """Slim GPU pod bodies (``slim_pod``), optionally only those in ``namespaces``."""
        with self._lock:
            bodies = list(self._bodies.values())
        if namespaces:
            wanted = set(namespaces)
            bodies = [b for b in bodies if b["metadata"].get("namespace") in wanted]
        return bodies

    def policies(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._policies.values())
