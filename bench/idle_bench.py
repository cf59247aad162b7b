"""One idle evaluation pass at scale on the real local control plane (prints numbers, asserts nothing).

    python bench/idle_bench.py [--nodes 250] [--jobs 250] [--pods-per-job 8] [--passes 5]

250 KWOK nodes with 8 GPUs each; 250 Jobs of 8 one-GPU pods (2,000 GPU pods) scheduled and Running;
an enforcing IdlePolicy over their namespace. The utilization source is an in-memory stand-in that
reports every pod busy (the agent has its own benchmark): this measures the operator's pass — index,
owner resolution, reads, decisions — and its API writes in steady state (goal: zero).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import resource
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from gpu_steward.idle.controller import IdleController
from gpu_steward.index import Registry
from gpu_steward.kube import Kube
from gpu_steward.policy.usage import Usage
from gpu_steward.settings import Settings
from gpu_steward.sources.base import PodRef
from gpu_steward_testground.build import RUN_FOREVER_ANNOTATION
from gpu_steward_testground.operator_process import OperatorProcess
from gpu_steward_testground.runner import ControlPlane, gpu_node

REPO = Path(__file__).resolve().parents[1]
NS = "bench"


class BusySource:
    async def fetch(self, pods: Sequence[PodRef], now: dt.datetime) -> dict[str, Usage]:
        return {p.uid: Usage.ok(75.0, 90.0, 60, now, 60.0) for p in pods}

    async def close(self) -> None:
        return None


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def operator_process_numbers(cp: ControlPlane, seconds: float) -> None:
    """The real operator process on the same cluster: its resident memory and its writes per pass.

    No agents run here, so every workload reads as unknown (never idle) and, having nothing to
    remember, is never annotated: passes write only the policies' status when it changes. The cost
    loop runs too and reads the same watch-fed index (no LIST of every pod per pass).
    """
    log = Path(cp.workdir or "/tmp") / "bench-operator.log"
    op = OperatorProcess(cp.kubeconfig, log, settings={"evaluation_interval_seconds": "5", "metrics_port": "0",
                                                       "log_format": "console"}).start()
    try:
        time.sleep(seconds)
        assert op.popen is not None
        status = Path(f"/proc/{op.popen.pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024
        hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024
    finally:
        op.stop()
    passes = re.findall(r"idle pass.*?seconds=([0-9.]+).*?writes=(\d+)", re.sub(r"\x1b\[[0-9;]*m", "", op.log_text()))
    print(f"operator process: RSS {rss:.0f} MB (peak {hwm:.0f} MB) after {seconds:.0f}s with 2,000 GPU pods indexed")
    for i, (secs, writes) in enumerate(passes, 1):
        print(f"  operator pass {i}: {float(secs):.2f}s, {writes} API writes")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=250)
    ap.add_argument("--jobs", type=int, default=250)
    ap.add_argument("--pods-per-job", type=int, default=8)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--operator-seconds", type=float, default=60.0)
    args = ap.parse_args()
    want = args.jobs * args.pods_per_job
    with ControlPlane() as cp:
        t0 = time.monotonic()
        nodes = "\n---\n".join(yaml.safe_dump(gpu_node(f"bench-{i:03d}", 8)) for i in range(args.nodes))
        cp.kubectl("apply", "-f", "-", input=nodes)
        cp.apply_crds(*sorted((REPO / "crds").glob("*.yaml")))
        cp.create_namespace(NS)
        policy = {"apiVersion": "gpusteward.dev/v1alpha1", "kind": "IdlePolicy", "metadata": {"name": "bench"},
                  "spec": {"idle": {"gpuUtilPercent": 10, "for": "30m"},
                           "notice": {"before": "10m", "maxSnooze": "1h"}, "dryRun": False}}
        cp.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(policy))
        jobs = "\n---\n".join(yaml.safe_dump({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"train-{j:03d}"},
            "spec": {"parallelism": args.pods_per_job, "completions": args.pods_per_job, "backoffLimit": 0,
                     "template": {"metadata": {"annotations": {RUN_FOREVER_ANNOTATION: "true"}},
                                  "spec": {"restartPolicy": "Never", "containers": [{
                         "name": "m", "image": "train:1", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}})
            for j in range(args.jobs))
        cp.kubectl("apply", "-n", NS, "-f", "-", input=jobs)
        kube = Kube(cp.api_client())
        registry = Registry()
        while True:
            pods = kube.list("v1", "Pod", NS)
            running = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")
            if running >= want or time.monotonic() - t0 > 900:
                break
            time.sleep(2)
        for p in kube.list("v1", "Pod", None):
            registry.pod_event("ADDED", p)
        for pol in kube.list("gpusteward.dev/v1alpha1", "IdlePolicy", NS):
            registry.policy_event("ADDED", pol)
        print(f"setup: {args.nodes} nodes, {len(registry.pods())} GPU pods Running "
              f"({running}/{want}) in {time.monotonic() - t0:.0f}s")
        settings = Settings(metrics_port=0)
        controller = IdleController(kube, settings, BusySource(), registry)
        base_rss = rss_mb()
        for i in range(args.passes):
            before = kube.writes.count
            started = time.perf_counter()
            result = asyncio.run(controller.run_pass())
            secs = time.perf_counter() - started
            print(f"pass {i + 1}: {secs:.2f}s wall, {result.workloads} workloads, {result.decisions} decisions, "
                  f"{kube.writes.count - before} API writes")
        operator_process_numbers(cp, args.operator_seconds)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"operator-side RSS: {rss_mb():.0f} MB now, {peak:.0f} MB peak (before passes: {base_rss:.0f} MB;"
              " includes the Kubernetes client and this bench's lists)")


if __name__ == "__main__":
    main()
