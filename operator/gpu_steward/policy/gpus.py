"""Which Kubernetes resources are GPUs: the one place that says so. Pure.

Every path that counts GPUs (the pod index and its watch filter, idle policies, cost, budgets, leases,
reports and the budget's ResourceQuota) asks this module, so a pod cannot step around a budget or a
policy by asking for a GPU under another name:

- whole devices: ``nvidia.com/gpu``, ``amd.com/gpu``, ``gpu.intel.com/i915``, ``gpu.intel.com/xe``;
- shared (time-sliced / MPS) replicas as the NVIDIA device plugin renames them: ``nvidia.com/gpu.shared``;
- MIG slices, by prefix: ``nvidia.com/mig-<profile>`` (``nvidia.com/mig-1g.10gb``,
  ``nvidia.com/mig-3g.40gb.shared``...).

Each device, slice or replica counts as one GPU *for quota and idle policies* (the conservative choice,
so that slicing never makes a GPU cheaper to hide than to use). Cost prices each as its share of the
GPU (``policy.cost.pod_price``: a ``1g`` MIG slice of an A100 is 1/7, one of 4 replicas 1/4).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

GPU_RESOURCE_NAMES: frozenset[str] = frozenset({
    "nvidia.com/gpu",
    "nvidia.com/gpu.shared",
    "amd.com/gpu",
    "gpu.intel.com/i915",
    "gpu.intel.com/xe",
})
MIG_PREFIX = "nvidia.com/mig-"
GPU_RESOURCE_PREFIXES: tuple[str, ...] = (MIG_PREFIX,)

# The ResourceQuota key of a GPU resource (extended resources are quota-able as requests only).
QUOTA_PREFIX = "requests."


def is_gpu_resource(name: object) -> bool:
    """True for every resource name that is a GPU, a GPU slice or a shared GPU replica."""
    return isinstance(name, str) and (name in GPU_RESOURCE_NAMES or name.startswith(GPU_RESOURCE_PREFIXES))


def gpu_resources_of(names: Iterable[object]) -> set[str]:
    """The GPU resource names among ``names`` (for instance a node's ``status.allocatable`` keys)."""
    return {n for n in names if isinstance(n, str) and is_gpu_resource(n)}


def quota_key(resource: str) -> str:
    return QUOTA_PREFIX + resource


def _int_quantity(value: object) -> int:
    try:
        return max(0, int(str(value)))
    except ValueError:
        return 0


def container_gpu_resources(container: Mapping[str, Any]) -> dict[str, int]:
    """GPUs per resource name one container asks for (extended resources: requests == limits; the limit
    wins where both are set, either alone is enough)."""
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    out: dict[str, int] = {}
    for name in gpu_resources_of(list(limits) + list(requests)):
        amount = _int_quantity(limits[name] if name in limits else requests[name])
        if amount > 0:
            out[name] = amount
    return out


def pod_gpu_resources(pod: Mapping[str, Any]) -> dict[str, int]:
    """GPUs per resource name a pod holds, as the apiserver's quota counts them: for each resource, the
    larger of the app containers' sum and the biggest init container."""
    spec = pod.get("spec") or {}
    app: dict[str, int] = {}
    for c in spec.get("containers") or []:
        for name, amount in container_gpu_resources(c).items():
            app[name] = app.get(name, 0) + amount
    out = dict(app)
    for c in spec.get("initContainers") or []:
        for name, amount in container_gpu_resources(c).items():
            out[name] = max(out.get(name, 0), amount)
    return out


def pod_gpus(pod: Mapping[str, Any]) -> int:
    """All GPUs a pod holds, every GPU resource together."""
    return sum(pod_gpu_resources(pod).values())
