"""The idle pass in-process at scale: time per pass, where the CPU goes, what it keeps per pod
(prints numbers, asserts nothing).

    python bench/idle_pass_profile.py [--pods 8000] [--passes 5] [--memory] [--profile] [--top 25]

``--memory`` traces allocations (the passes are then several times slower: their times are not the numbers);
``--profile`` runs one more pass under cProfile with the pass's thread hops run inline (cProfile sees only
the thread it runs in).

The real ``IdleController`` and ``Registry`` over pods shaped like the apiserver's (bench/memory_profile.py),
one controller-less Notebook per 8 pods (the projections the watches hold), nodes of 8 GPUs, one enforcing
IdlePolicy, and a utilization source with no data (every workload "unknown", as in bench/scale.py). The
API is an in-memory stand-in that counts writes and Events.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import gc
import io
import pstats
import sys
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_steward.cluster_view import project_node, project_workload
from gpu_steward.idle.controller import IdleController
from gpu_steward.index import Registry
from gpu_steward.policy.usage import Usage
from gpu_steward.settings import Settings
from gpu_steward.sources.base import PodRef
from memory_profile import pod

NS = "scale"


class NoData:
    async def fetch(self, pods: Sequence[PodRef], now: dt.datetime, **_: Any) -> dict[str, Usage]:
        unknown = Usage.unknown("no agent on the node")  # as the agents source: one per node, shared
        return {p.uid: unknown for p in pods}

    async def close(self) -> None:
        return None


class MemoryKube:
    """ConfigMaps and the policy's status in memory; every write and Event counted."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.writes = 0
        self.events = 0

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        return self.objects.get((kind, namespace or "", name))

    get_optional = get

    def list(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
             ) -> list[dict[str, Any]]:
        return [o for (k, ns, _), o in self.objects.items() if k == kind and ns == (namespace or ns)]

    list_optional = list

    def create(self, body: dict[str, Any], *, dry_run: bool) -> Any:
        self.writes += 1
        meta = body["metadata"]
        obj = {**body, "metadata": {**meta, "resourceVersion": "1"}}
        self.objects[(body["kind"], meta.get("namespace") or "", meta["name"])] = obj
        return obj

    def replace(self, body: dict[str, Any], *, dry_run: bool) -> Any:
        return self.create(body, dry_run=dry_run)

    def patch(self, api_version: str, kind: str, name: str, namespace: str | None, body: dict[str, Any], *,
              dry_run: bool, subresource: str | None = None) -> Any:
        self.writes += 1
        obj = self.objects.setdefault((kind, namespace or "", name), {"metadata": {"name": name}})
        for key, value in body.items():
            if isinstance(value, dict) and isinstance(obj.get(key), dict):
                obj[key] = {**obj[key], **{k: v for k, v in value.items()}}
            else:
                obj[key] = value
        obj["metadata"]["resourceVersion"] = str(int(obj["metadata"].get("resourceVersion", "1")) + 1)
        return obj

    def event(self, involved: dict[str, Any], reason: str, message: str, **_: Any) -> bool:
        self.events += 1
        return True


class StaticView:
    """The watches' projections, held as dicts (what ``WatchView`` reads from)."""

    def __init__(self, notebooks: list[dict[str, Any]], nodes: list[dict[str, Any]]) -> None:
        self.notebooks = {(n["metadata"]["namespace"], n["metadata"]["name"]): n for n in notebooks}
        self._nodes = {n["metadata"]["name"]: n for n in nodes}

    def objects(self, api_version: str, kind: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        if kind != "Notebook":
            return []
        if label_selector:
            k, _, v = label_selector.partition("=")
            return [o for o in self.notebooks.values() if o["metadata"]["labels"].get(k) == v]
        return list(self.notebooks.values())

    def lookup(self, api_version: str, kind: str, namespace: str | None, name: str) -> Any:
        return self.notebooks.get((namespace or "", name)) if kind == "Notebook" else None

    def owned(self, api_version: str, kind: str, namespace: str | None, owner_uid: str) -> list[Any]:
        return []

    def namespaces(self) -> dict[str, dict[str, str]]:
        return {NS: {}}

    def nodes(self) -> dict[str, Any]:
        return dict(self._nodes)


def world(n: int, per_notebook: int = 8) -> tuple[Registry, StaticView, MemoryKube]:
    registry = Registry()
    for i in range(n):
        registry.pod_event("ADDED", pod(i, per_notebook))
    registry.pods_synced.set()
    notebooks = [project_workload({
        "apiVersion": "kubeflow.org/v1", "kind": "Notebook",
        "metadata": {"name": f"nb-{j:05d}", "namespace": NS, "uid": f"0f9d1c2b-7a6e-4d3c-8b5a-{j:012d}",
                     "labels": {"team": f"t{j % 20}"}, "resourceVersion": "1"},
        "spec": {"template": {"spec": {"containers": [{"name": "nb", "image": "nb:1"}]}}}})
        for j in range(-(-n // per_notebook))]
    nodes = [project_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"scale-{k:05d}", "labels": {
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}}, "status": {"capacity": {"nvidia.com/gpu": "8"}}})
        for k in range(-(-n // 8))]
    registry.policy_event("ADDED", {
        "apiVersion": "gpusteward.dev/v1alpha1", "kind": "IdlePolicy",
        "metadata": {"name": "scale", "namespace": NS, "uid": "p1", "generation": 1},
        "spec": {"idle": {"gpuUtilPercent": 10, "for": "30m"}, "notice": {"before": "10m", "maxSnooze": "1h"},
                 "dryRun": False}})
    return registry, StaticView(notebooks, nodes), MemoryKube()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=8000)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="cProfile one steady pass")
    ap.add_argument("--memory", action="store_true", help="what the controller keeps per pod (tracemalloc)")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    registry, view, kube = world(args.pods)
    settings = Settings(platform_namespace="gpu-steward", metrics_port=0)
    gc.collect()
    if args.memory:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    controller = IdleController(kube, settings, NoData(), registry, view=view)  # type: ignore[arg-type]
    t0 = dt.datetime(2026, 11, 27, 15, 0, tzinfo=dt.UTC)
    times = []
    for k in range(args.passes):
        writes, events = kube.writes, kube.events
        started = time.perf_counter()
        result = asyncio.run(controller.run_pass(now=t0 + dt.timedelta(seconds=15 * k)))
        times.append(time.perf_counter() - started)
        print(f"pass {k}: {times[-1]:.3f}s workloads={result.workloads} writes={kube.writes - writes} "
              f"events={kube.events - events}", flush=True)
    print(f"steady passes: {min(times[1:] or times):.3f}-{max(times[1:] or times):.3f}s")
    if args.memory:
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - base
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        print(f"kept by the controller after {args.passes} passes: {kept / args.pods:.0f} bytes per pod")
        for stat in snapshot.statistics("lineno")[:10]:
            print(f"  {stat.size / args.pods:7.0f} B/pod  {stat.traceback[0]}")
    if args.profile:
        async def inline(fn: Any, /, *a: Any, **kw: Any) -> Any:
            return fn(*a, **kw)

        asyncio.to_thread = inline  # type: ignore[assignment]
        prof = cProfile.Profile()
        prof.enable()
        asyncio.run(controller.run_pass(now=t0 + dt.timedelta(seconds=15 * args.passes)))
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(args.top)
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())


if __name__ == "__main__":
    main()
