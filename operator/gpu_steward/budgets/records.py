"""What the operator must remember and users must not be able to change: one ConfigMap per object
in the operator's own namespace (``settings.platform_namespace``).

Users write leases and (platform) budgets, their annotations, and whoever holds a ``/status`` right
writes their status; none of them can write ConfigMaps in the operator's namespace. So the facts
the reconcile *relies on* live here (DESIGN.md invariant 9): a lease's phase, activation, end, the
terms it was granted and its spend/GPU-hour ledgers; a budget's spend ledger. Status stays the
display copy, rewritten from these records on every reconcile.

A record is keyed by the object's uid: a deleted and re-created object starts afresh, and a record
outliving its object is ignored (every reader matches uids of objects that exist).
"""

from __future__ import annotations

import json
from typing import Any

from gpu_steward.kube import Kube
from gpu_steward.policy.budget import MANAGED_BY, MANAGED_BY_LABEL

JSON = dict[str, Any]
RECORD_KEY = "record"
KIND_LABEL = "gpusteward.dev/record-of"
NAMESPACE_LABEL = "gpusteward.dev/record-namespace"
NAME_ANNOTATION = "gpusteward.dev/record-name"


def record_name(kind: str, uid: str) -> str:
    return f"gpusteward-{kind}-{uid}"


class RecordStore:
    """Read and write records for ``kind`` ("lease", "budget") in the operator's namespace."""

    def __init__(self, kube: Kube, namespace: str, kind: str) -> None:
        self.kube, self.namespace, self.kind = kube, namespace, kind

    def get(self, uid: str) -> JSON | None:
        cm = self.kube.get("v1", "ConfigMap", record_name(self.kind, uid), self.namespace)
        return _decode(cm)

    def in_namespace(self, namespace: str) -> dict[str, JSON]:
        """Records of objects of ``namespace``, by uid (one LIST)."""
        cms = self.kube.list("v1", "ConfigMap", self.namespace,
                             label_selector=f"{KIND_LABEL}={self.kind},{NAMESPACE_LABEL}={namespace}")
        out: dict[str, JSON] = {}
        prefix = record_name(self.kind, "")
        for cm in cms:
            data = _decode(cm)
            if data is not None:
                out[cm["metadata"]["name"].removeprefix(prefix)] = data
        return out

    def all(self) -> dict[str, JSON]:
        """Every record of this kind, by uid (one LIST)."""
        cms = self.kube.list("v1", "ConfigMap", self.namespace, label_selector=f"{KIND_LABEL}={self.kind}")
        prefix = record_name(self.kind, "")
        out: dict[str, JSON] = {}
        for cm in cms:
            data = _decode(cm)
            if data is not None:
                out[cm["metadata"]["name"].removeprefix(prefix)] = data
        return out

    def put(self, obj: JSON, data: JSON, *, previous: JSON | None, dry_run: bool) -> bool:
        """Write the record of ``obj`` when it changed; True when written."""
        if previous == data:
            return False
        meta = obj["metadata"]
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        name = record_name(self.kind, meta["uid"])
        if previous is None and self.kube.get("v1", "ConfigMap", name, self.namespace) is None:
            self.kube.create({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": self.namespace,
                             "labels": {MANAGED_BY_LABEL: MANAGED_BY, KIND_LABEL: self.kind,
                                        NAMESPACE_LABEL: meta["namespace"]},
                             "annotations": {NAME_ANNOTATION: f"{meta['namespace']}/{meta['name']}"}},
                "data": {RECORD_KEY: text},
            }, dry_run=dry_run)
        else:
            self.kube.patch("v1", "ConfigMap", name, self.namespace, {"data": {RECORD_KEY: text}}, dry_run=dry_run)
        return True


def _decode(cm: JSON | None) -> JSON | None:
    if cm is None:
        return None
    try:
        data = json.loads((cm.get("data") or {}).get(RECORD_KEY) or "")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
