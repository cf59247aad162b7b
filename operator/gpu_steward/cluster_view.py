"""What an evaluation pass reads of the cluster besides the GPU pods: workload objects (and their owners),
namespaces' labels and nodes — from watch-fed projections (``WatchView``, the operator) or from LISTs
(``ListView``: one-off tools, tests, benchmarks that build a controller over a bare ``Kube``).

Projections keep what a decision reads and drop the bulk (pod templates, managedFields, the
last-applied-configuration annotation, status): metadata, and a workload's scalar spec fields and its
small spec sections (``suspend``, ``replicas``, ``runPolicy``, ``active``, the PVC retention policy...).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from gpu_steward.kube import JSON, Kube
from gpu_steward.kube_watch import Watches
from gpu_steward.workloads.actions import KubeLookup
from gpu_steward.workloads.adapters import DECISION_SPEC_PARTS
from gpu_steward.workloads.resolve import owned_by

# Spec sections that hold pod templates or replica specs: never read by a decision, most of an object's size.
_BULK = re.compile(r"template|spec|replicatedjobs|podsets|containers|volumes", re.IGNORECASE)
_DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
_META_KEYS = ("name", "namespace", "uid", "generation", "resourceVersion", "creationTimestamp",
              "deletionTimestamp")


def _meta(obj: JSON) -> JSON:
    meta = obj.get("metadata") or {}
    out = {k: meta[k] for k in _META_KEYS if meta.get(k) is not None}
    out["labels"] = dict(meta.get("labels") or {})
    out["annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _DROPPED_ANNOTATIONS}
    out["ownerReferences"] = [{k: r[k] for k in ("apiVersion", "kind", "name", "uid", "controller") if k in r}
                              for r in meta.get("ownerReferences") or []]
    return out


def project_workload(obj: JSON) -> JSON:
    spec = obj.get("spec") or {}
    kept = {k: v for k, v in spec.items() if not isinstance(v, (dict, list)) or not _BULK.search(k)}
    for section, parts in DECISION_SPEC_PARTS.items():  # what the data-loss rules read inside a template
        held = spec.get(section)
        if isinstance(held, dict) and section not in kept:
            thin = {p: held[p] for p in parts if p in held}
            if isinstance(thin.get("volumeClaimTemplates"), list):  # their presence counts, not their specs
                thin["volumeClaimTemplates"] = [{"metadata": (t or {}).get("metadata") or {}}
                                                for t in thin["volumeClaimTemplates"]]
            kept[section] = thin
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": _meta(obj), "spec": kept}


def project_node(obj: JSON) -> JSON:
    status = obj.get("status") or {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": _meta(obj),
            "status": {k: status[k] for k in ("capacity", "allocatable") if k in status}}


def project_small(obj: JSON) -> JSON:
    """Our own objects (records, budgets, leases): whole, less managedFields."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def project_agent_pod(obj: JSON) -> JSON:
    """What finding an agent's endpoint reads: node, IP, phase, Ready."""
    status = obj.get("status") or {}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _meta(obj),
            "spec": {"nodeName": (obj.get("spec") or {}).get("nodeName")},
            "status": {"phase": status.get("phase"), "podIP": status.get("podIP"),
                       "conditions": [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]}}


def project_namespace(obj: JSON) -> JSON:
    """A Namespace's name and labels, shaped as the object (``Kube.list`` of namespaces serves it too)."""
    meta = obj.get("metadata") or {}
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": meta.get("name", ""), "uid": meta.get("uid"),
                         "labels": dict(meta.get("labels") or {})}}


class ClusterView(Protocol):
    def objects(self, api_version: str, kind: str, label_selector: str | None = None) -> list[JSON]: ...

    def lookup(self, api_version: str, kind: str, namespace: str | None, name: str) -> JSON | None: ...

    def owned(self, api_version: str, kind: str, namespace: str | None, owner_uid: str) -> list[JSON]: ...

    def namespaces(self) -> dict[str, dict[str, str]]: ...

    def nodes(self) -> dict[str, JSON]: ...


def _selected(obj: JSON, label_selector: str | None) -> bool:
    """Equality selectors only (``k=v,k2=v2``): all the passes use."""
    if not label_selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, _, v in (part.partition("=") for part in label_selector.split(",")))


def _owned(owns: Callable[[str], bool]) -> Callable[[JSON], JSON | None]:
    """``project_workload`` for the namespaces ``owns`` accepts; None (not kept) for the others. Cluster-scoped
    objects are every shard's."""
    def project(obj: JSON) -> JSON | None:
        namespace = (obj.get("metadata") or {}).get("namespace")
        return project_workload(obj) if not namespace or owns(namespace) else None
    return project


class WatchView:
    """Reads from the watches (no API read once a kind is listed); a kind asked for the first time is
    listed then, and waited for up to ``first_list_timeout`` seconds."""

    def __init__(self, watches: Watches, first_list_timeout: float = 30.0,
                 owns: Callable[[str], bool] | None = None) -> None:
        self.watches, self.timeout = watches, first_list_timeout
        # Sharded mode: workloads of the namespaces this shard owns only (nodes and namespaces: all of them).
        self._workload = project_workload if owns is None else _owned(owns)

    def _cache(self, api_version: str, kind: str) -> Any:
        project = {"Node": project_node, "Namespace": project_namespace}.get(kind, self._workload) \
            if api_version == "v1" else self._workload
        cache = self.watches.cache(api_version, kind, project)
        cache.wait(self.timeout)
        return cache

    def objects(self, api_version: str, kind: str, label_selector: str | None = None) -> list[JSON]:
        return [o for o in self._cache(api_version, kind).items() if _selected(o, label_selector)]

    def lookup(self, api_version: str, kind: str, namespace: str | None, name: str) -> JSON | None:
        return self._cache(api_version, kind).get(namespace, name)  # type: ignore[no-any-return]

    def owned(self, api_version: str, kind: str, namespace: str | None, owner_uid: str) -> list[JSON]:
        return [o for o in self._cache(api_version, kind).items()
                if (o.get("metadata") or {}).get("namespace") == namespace and owned_by(o, owner_uid)]

    def namespaces(self) -> dict[str, dict[str, str]]:
        return {n["metadata"]["name"]: n["metadata"]["labels"] for n in self._cache("v1", "Namespace").items()}

    def nodes(self) -> dict[str, JSON]:
        return {n["metadata"]["name"]: n for n in self._cache("v1", "Node").items()}


class ListView:
    """The same reads as LISTs and GETs (cached for the life of the view: make one per pass)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        reads = KubeLookup(kube)  # resolve's GETs and LISTs, cached for the life of the view
        self.lookup, self.owned = reads.__call__, reads.owned

    def objects(self, api_version: str, kind: str, label_selector: str | None = None) -> list[JSON]:
        return self.kube.list_optional(api_version, kind, None, label_selector=label_selector)

    def namespaces(self) -> dict[str, dict[str, str]]:
        return {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in self.kube.list("v1", "Namespace")}

    def nodes(self) -> dict[str, JSON]:
        return {n["metadata"]["name"]: n for n in self.kube.list("v1", "Node")}
