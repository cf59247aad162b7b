"""GPU workloads as people name them (the Job, the Notebook), with their pods and the operator's record.

Read-only; every read goes through ``gpu_steward.kube.Kube`` and the operator's records through
``views.records``. Suspended workloads have no GPU pods left: they are found by the operator's label.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from gpu_steward.policy import cost as c
from gpu_steward.policy.idle_model import Phase
from gpu_steward.views import records
from gpu_steward.workloads import actions
from gpu_steward.workloads.model import WorkloadRef, listed_versions
from gpu_steward.workloads.resolve import owner_of, resolve

SUSPENDED_LABEL = "gpusteward.dev/suspended"  # the idle controller's label (idle/controller.py)
# Kinds a suspended workload can be (each has an adapter): (api_version, kind).
SUSPENDABLE_KINDS = listed_versions()
STATES = ("active", "idle", "warned", "suspended", "unknown")


@dataclass
class GpuWorkload:
    ref: WorkloadRef
    obj: dict[str, Any]
    pods: list[dict[str, Any]] = field(default_factory=list)
    chain_objects: tuple[dict[str, Any], ...] = ()
    suspendable: bool = True
    reason: str = ""
    record: records.Record = field(default_factory=lambda: records.Record(None))

    @property
    def gpus(self) -> int:
        held = sum(c.pod_gpus(p) for p in self.pods)
        if held:
            return held
        state = self.record.state
        return state.suspended_gpus if state is not None else 0

    def state(self) -> str:
        """active | idle | warned | suspended | unknown: what ``top`` shows."""
        st = self.record.state
        if st is not None:
            if st.phase is Phase.SUSPENDED:
                return "suspended"
            if st.phase is Phase.WARNED:
                return "warned"
            if st.phase in (Phase.IDLE, Phase.WOULD_SUSPEND):
                return "idle"
            if st.phase is Phase.UNKNOWN:
                return "unknown"
            return "active"
        if not self.pods:
            return "suspended" if (self.obj.get("metadata") or {}).get("labels", {}).get(SUSPENDED_LABEL) else "unknown"
        # Never noticed idle: busy, or no data yet. Without any utilization on record it is unknown.
        return "active" if self.util_avg() is not None else "unknown"

    def idle_since(self) -> dt.datetime | None:
        st = self.record.state
        if st is None or st.phase not in (Phase.IDLE, Phase.WARNED, Phase.WOULD_SUSPEND):
            return None
        return st.idle_since

    def util_avg(self) -> Decimal | None:
        """GPU-weighted average of the pods' ``gpusteward.dev/gpu-util-avg`` (the operator's cost ledger)."""
        total, weight = Decimal(0), 0
        for pod in self.pods:
            value = decimal_ann(pod, c.ANN_UTIL_AVG)
            if value is not None:
                g = max(c.pod_gpus(pod), 1)
                total += value * g
                weight += g
        return (total / weight).quantize(Decimal("0.1")) if weight else None

    def cost_so_far(self) -> Decimal | None:
        values = [v for v in (decimal_ann(p, c.ANN_COST) for p in self.pods) if v is not None]
        return sum(values, Decimal(0)) if values else None


def decimal_ann(obj: dict[str, Any], key: str) -> Decimal | None:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    if raw is None:
        return None
    try:
        return Decimal(str(raw))
    except (InvalidOperation, ValueError):
        return None


def gpu_workloads(kube: Any, namespace: str | None) -> list[GpuWorkload]:
    """Every workload holding GPUs in ``namespace`` (None: all), plus those GPU Steward suspended."""
    lookup = actions.KubeLookup(kube)
    found: dict[tuple[str, str, str, str], GpuWorkload] = {}
    for pod in kube.list("v1", "Pod", namespace):
        if c.pod_gpus(pod) <= 0 or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        res = resolve(pod, lookup, lookup.owned)
        ref = res.workload or WorkloadRef.of(pod)
        obj = res.objects[-1] if res.workload is not None and res.objects else pod
        if res.workload is not None:
            obj = next((o for o in res.objects if WorkloadRef.of(o) == ref), obj)
        key = (ref.namespace or "", ref.api_version, ref.kind, ref.name)
        wl = found.get(key)
        if wl is None:
            wl = found[key] = GpuWorkload(ref, obj, [], tuple(res.objects), res.suspendable, res.reason,
                                          records.idle_state(kube, obj))
        wl.pods.append(pod)
    for api_version, kind in SUSPENDABLE_KINDS:
        for obj in kube.list_optional(api_version, kind, namespace, label_selector=SUSPENDED_LABEL):
            ref = WorkloadRef.of(obj)
            key = (ref.namespace or "", ref.api_version, ref.kind, ref.name)
            if key not in found:
                found[key] = GpuWorkload(ref, obj, [], (obj,), True, "", records.idle_state(kube, obj))
    return list(found.values())


def pods_of(kube: Any, obj: dict[str, Any]) -> tuple[list[dict[str, Any]], tuple[dict[str, Any], ...]]:
    """The GPU pods whose workload is ``obj``, and the owner chain of the first (for the owner lookup)."""
    ref = WorkloadRef.of(obj)
    lookup = actions.KubeLookup(kube)
    pods, chain = [], (obj,)
    for pod in kube.list("v1", "Pod", ref.namespace):
        if c.pod_gpus(pod) <= 0:
            continue
        res = resolve(pod, lookup, lookup.owned)
        if res.workload is not None and (res.workload.kind, res.workload.name) == (ref.kind, ref.name):
            pods.append(pod)
            chain = res.objects
    return pods, chain


def owner(objects: tuple[dict[str, Any], ...]) -> str | None:
    from gpu_steward.settings import Settings

    o = owner_of(objects, Settings())
    return o.email or o.name


def hourly_rate(kube: Any, pods: list[dict[str, Any]], nodes: dict[str, Any] | None = None) -> Decimal:
    """What the running pods cost per hour: the operator's ``gpusteward.dev/hourly-rate``, else GPUs x price."""
    from gpu_steward.budgets.costs import price_table
    from gpu_steward.settings import Settings

    table = price_table(Settings())
    total = Decimal(0)
    for pod in pods:
        rate = decimal_ann(pod, c.ANN_HOURLY_RATE)
        if rate is None:
            node = (nodes or {}).get((pod.get("spec") or {}).get("nodeName") or "")
            rate = c.pod_gpus(pod) * c.gpu_hour_price(table, node)
        total += rate
    return total


def node_index(kube: Any) -> dict[str, Any]:
    """Nodes by name for prices; empty when the user may not list nodes (prices fall back to the default)."""
    try:
        return {n["metadata"]["name"]: n for n in kube.list("v1", "Node")}
    except Exception as exc:
        from kubernetes.client.exceptions import ApiException

        if isinstance(exc, ApiException) and exc.status in (401, 403):
            return {}
        raise


def age(delta: dt.timedelta | None) -> str:
    """kubectl's short age: 45s, 12m, 3h10m, 2d4h."""
    if delta is None:
        return "-"
    s = max(int(delta.total_seconds()), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h}h{m}m" if m else f"{h}h"
    d, h = divmod(s // 3600, 24)
    return f"{d}d{h}h" if h else f"{d}d"
