"""How fast pods resolve to their workload and how many reads that takes, over a mixed fleet.

python bench/bench_workloads_resolve.py [pods]   — prints pods/s and lookups per pod (cached vs not).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import Any

from gpu_steward.workloads.adapters import suspend_patch
from gpu_steward.workloads.resolve import resolve


def ref(o: dict[str, Any]) -> dict[str, Any]:
    m = o["metadata"]
    return {"apiVersion": o["apiVersion"], "kind": o["kind"], "name": m["name"], "uid": m["uid"], "controller": True}


def obj(api_version: str, kind: str, name: str, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ml", "uid": f"{kind}-{name}"}
    if owner:
        meta["ownerReferences"] = [ref(owner)]
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": {"replicas": 4}}


def fleet(n_pods: int) -> tuple[list[dict[str, Any]], dict[tuple[str, str, str], dict[str, Any]]]:
    store: dict[tuple[str, str, str], dict[str, Any]] = {}
    pods = []

    def add(o: dict[str, Any]) -> dict[str, Any]:
        store[(o["apiVersion"], o["kind"], o["metadata"]["name"])] = o
        return o

    i = 0
    while len(pods) < n_pods:  # 8 pods per workload, five shapes of chain
        shape = i % 5
        if shape == 0:
            top = parent = add(obj("batch/v1", "Job", f"j{i}"))
        elif shape == 1:
            top = add(obj("jobset.x-k8s.io/v1alpha2", "JobSet", f"js{i}"))
            parent = add(obj("batch/v1", "Job", f"js{i}-w", top))
        elif shape == 2:
            top = add(obj("kubeflow.org/v1", "Notebook", f"nb{i}"))
            parent = add(obj("apps/v1", "StatefulSet", f"nb{i}", top))
        elif shape == 3:
            top = add(obj("apps/v1", "Deployment", f"d{i}"))
            parent = add(obj("apps/v1", "ReplicaSet", f"d{i}-rs", top))
        else:
            top = parent = add(obj("kubeflow.org/v1", "PyTorchJob", f"pt{i}"))
        pods += [obj("v1", "Pod", f"p{i}-{k}", parent) for k in range(8)]
        i += 1
    return pods[:n_pods], store


class CountingLookup:
    """The lookup contract over a dict, counting what would be apiserver reads."""

    def __init__(self, store: dict[tuple[str, str, str], dict[str, Any]], cached: bool) -> None:
        self.store, self.cached, self.reads = store, cached, 0
        self.cache: dict[tuple[str, str, str | None, str], Any] = {}

    def __call__(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (api_version, kind, namespace, name)
        if self.cached and key in self.cache:
            return self.cache[key]  # type: ignore[no-any-return]
        self.reads += 1
        self.cache[key] = self.store.get((api_version, kind, name))
        return self.cache[key]  # type: ignore[no-any-return]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    pods, store = fleet(n)
    for cached in (False, True):
        lookup = CountingLookup(store, cached)
        t0 = time.perf_counter()
        results = [resolve(p, lookup) for p in pods]
        took = time.perf_counter() - t0
        assert all(r.suspendable for r in results)
        print(f"resolve {n} pods ({'per-pass cache' if cached else 'no cache'}): {took * 1000:.0f} ms, "
              f"{n / took:,.0f} pods/s, {lookup.reads / n:.2f} reads/pod")
    now = dt.datetime.now(dt.UTC)
    workloads = [o for o in store.values() if o["kind"] not in ("ReplicaSet",) and
                 not (o["kind"] == "Job" and o["metadata"].get("ownerReferences"))
                 and not (o["kind"] == "StatefulSet" and o["metadata"].get("ownerReferences"))]
    t0 = time.perf_counter()
    for w in workloads:
        suspend_patch(w, now)
    took = time.perf_counter() - t0
    print(f"suspend_patch {len(workloads)} workloads: {took * 1000:.0f} ms, {len(workloads) / took:,.0f}/s")


if __name__ == "__main__":
    main()
