"""The operator process at scale on the real local control plane (prints numbers, asserts nothing).

    python bench/scale.py --pods 8000 [--per-node 8] [--per-notebook 8] [--steady 180] [--interval 15]

How the cluster is built: ``pods / per-node`` KWOK GPU nodes; ``pods / per-notebook`` Kubeflow Notebooks
(a minimal Notebook CRD: no notebook controller runs, so the Notebooks own their pods directly, as
controller); GPU pods created *pre-bound* (``spec.nodeName`` set: no scheduler work) by a pool of threads
POSTing in parallel, which KWOK marks Running; one enforcing IdlePolicy over their namespace. No agents
run, so every workload reads as unknown (never idle): this measures reads, memory, passes and writes.

What it prints (the numbers docs/scale.md tabulates):
- RSS of the operator process, steady and peak (VmHWM: the initial listing counts);
- idle pass times: the first (cold) and the steady ones, from the operator's log;
- cold start: from the process start to the IdlePolicy's status counting every workload;
- API requests per minute by verb and resource in the steady window, from the apiserver's own
  ``apiserver_request_total``, minus the same counters over a window of the same length without the operator.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from gpu_steward import memtrace
from gpu_steward.kube import Kube
from gpu_steward_testground.build import RUN_FOREVER_ANNOTATION
from gpu_steward_testground.operator_process import OperatorProcess
from gpu_steward_testground.runner import ControlPlane, gpu_node

REPO = Path(__file__).resolve().parents[1]
NS = "scale"
NOTEBOOK_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "notebooks.kubeflow.org"},
    "spec": {"group": "kubeflow.org", "scope": "Namespaced",
             "names": {"plural": "notebooks", "singular": "notebook", "kind": "Notebook"},
             "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}
_METRIC = re.compile(r'^apiserver_request_total\{(.*)\} ([0-9.e+]+)$')


def request_counts(cp: ControlPlane) -> Counter[tuple[str, str]]:
    """The apiserver's request counters, by (verb, resource)."""
    text = cp.kubectl("get", "--raw", "/metrics").stdout
    out: Counter[tuple[str, str]] = Counter()
    for line in text.splitlines():
        m = _METRIC.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        out[(labels.get("verb", ""), labels.get("resource", ""))] += int(float(m.group(2)))
    return out


def per_minute(before: Counter[tuple[str, str]], after: Counter[tuple[str, str]],
               seconds: float) -> dict[tuple[str, str], float]:
    return {k: (after[k] - before[k]) * 60.0 / seconds for k in after if after[k] != before[k]}


def events_since(cp: ControlPlane, since: str) -> Counter[tuple[str, str, str]]:
    """Events created at or after ``since`` (RFC 3339), by (reporter, reason, kind of the object): who wrote
    the Event POSTs that the request counters show."""
    items = json.loads(cp.kubectl("get", "events", "-A", "-o", "json", "--chunk-size=1000").stdout)["items"]
    out: Counter[tuple[str, str, str]] = Counter()
    for ev in items:
        if (ev["metadata"].get("creationTimestamp") or "") < since:
            continue
        who = ev.get("reportingComponent") or (ev.get("source") or {}).get("component") or "?"
        out[(who, ev.get("reason") or "", (ev.get("involvedObject") or {}).get("kind") or "")] += 1
    return out


def proc_status(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def build(cp: ControlPlane, kube: Kube, pods: int, per_node: int, per_notebook: int, threads: int) -> None:
    t0 = time.monotonic()
    nodes = [gpu_node(f"scale-{i:05d}", per_node) for i in range(-(-pods // per_node))]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda n: kube.create(n, dry_run=False), nodes))
    cp.apply_crds(*sorted((REPO / "crds").glob("*.yaml")))
    crd = Path(cp.workdir or "/tmp") / "notebook-crd.yaml"
    crd.write_text(yaml.safe_dump(NOTEBOOK_CRD))
    cp.apply_crds(crd)
    cp.create_namespace(NS)
    policy = {"apiVersion": "gpusteward.dev/v1alpha1", "kind": "IdlePolicy", "metadata": {"name": "scale"},
              "spec": {"idle": {"gpuUtilPercent": 10, "for": "30m"},
                       "notice": {"before": "10m", "maxSnooze": "1h"}, "dryRun": False}}
    cp.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(policy))
    print(f"setup: {len(nodes)} nodes in {time.monotonic() - t0:.0f}s", flush=True)

    def notebook_and_pods(j: int) -> None:
        nb = kube.create({"apiVersion": "kubeflow.org/v1", "kind": "Notebook",
                          "metadata": {"name": f"nb-{j:05d}", "namespace": NS, "labels": {"team": f"t{j % 20}"}},
                          "spec": {"template": {"spec": {"containers": [{"name": "nb", "image": "nb:1"}]}}}},
                         dry_run=False)
        assert nb is not None
        ref = {"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "name": nb["metadata"]["name"],
               "uid": nb["metadata"]["uid"], "controller": True}
        for k in range(per_notebook):
            i = j * per_notebook + k
            kube.create({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": f"nb-{j:05d}-{k}", "namespace": NS, "ownerReferences": [ref],
                                      "labels": {"notebook-name": nb["metadata"]["name"], "team": f"t{j % 20}"},
                                      "annotations": {RUN_FOREVER_ANNOTATION: "true"}},
                         "spec": {"nodeName": f"scale-{i // per_node:05d}", "containers": [{
                             "name": "m", "image": "train:1", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
                             "tolerations": [{"operator": "Exists"}]}}, dry_run=False)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(notebook_and_pods, range(pods // per_notebook)))
    print(f"setup: {pods} pods created in {time.monotonic() - t0:.0f}s", flush=True)
    while True:
        left = cp.kubectl("get", "pods", "-n", NS, "--field-selector=status.phase!=Running", "--chunk-size=1000",
                          "-o", "name").stdout.split()
        if not left or time.monotonic() - t0 > 3600:
            break
        time.sleep(5)
    print(f"setup: {pods - len(left)}/{pods} pods Running after {time.monotonic() - t0:.0f}s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=2000)
    ap.add_argument("--per-node", type=int, default=8)
    ap.add_argument("--per-notebook", type=int, default=8)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--baseline", type=float, default=60.0, help="seconds measured without the operator")
    ap.add_argument("--steady", type=float, default=180.0, help="seconds measured in steady state")
    ap.add_argument("--interval", type=float, default=15.0, help="the operator's evaluation interval")
    ap.add_argument("--tracemalloc", type=int, default=0,
                    help="frames: trace the operator's allocations and print where they are at the end")
    ap.add_argument("--settle", type=float, default=60.0, help="seconds after cold start before the steady window")
    args = ap.parse_args()
    workloads = args.pods // args.per_notebook
    with ControlPlane() as cp:
        kube = Kube(cp.api_client())
        build(cp, kube, args.pods, args.per_node, args.per_notebook, args.threads)
        b0 = request_counts(cp)
        time.sleep(args.baseline)
        baseline = per_minute(b0, request_counts(cp), args.baseline)
        log = Path(cp.workdir or "/tmp") / "scale-operator.log"
        if args.tracemalloc:  # read by the child (gpu_steward.memtrace); the operator dumps on SIGUSR1
            os.environ[memtrace.ENV] = str(args.tracemalloc)
        op = OperatorProcess(cp.kubeconfig, log, settings={
            "evaluation_interval_seconds": str(args.interval), "metrics_port": "0", "log_format": "console"}).start()
        assert op.popen is not None
        started, cold, peak = time.monotonic(), None, 0.0
        try:
            while cold is None and time.monotonic() - started < 900:
                _, peak = proc_status(op.popen.pid)
                status = json.loads(cp.kubectl("get", "idlepolicy", "scale", "-n", NS, "-o", "json").stdout).get(
                    "status") or {}
                if status.get("watched") == workloads:
                    cold = time.monotonic() - started
                time.sleep(0.5)
            print(f"cold start to every status: {cold if cold is None else round(cold, 1)} s", flush=True)
            time.sleep(args.settle)
            s0, t_s = request_counts(cp), time.monotonic()
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            rss_samples = []
            while time.monotonic() - t_s < args.steady:
                rss_samples.append(proc_status(op.popen.pid)[0])
                time.sleep(5)
            steady = per_minute(s0, request_counts(cp), time.monotonic() - t_s)
            rss, peak = proc_status(op.popen.pid)
            events = events_since(cp, since)
            if args.tracemalloc:
                traced = memtrace.dump_path(op.popen.pid)
                os.kill(op.popen.pid, signal.SIGUSR1)
                while not traced.exists():
                    time.sleep(1)
                print(f"allocations: {traced}\n" + "\n".join(traced.read_text().splitlines()[:60]), flush=True)
        finally:
            op.stop()
        text = re.sub(r"\x1b\[[0-9;]*m", "", op.log_text())
        passes = [(float(re.search(r"seconds=([0-9.]+)", line).group(1)),  # type: ignore[union-attr]
                   int(re.search(r"writes=(\d+)", line).group(1)))  # type: ignore[union-attr]
                  for line in text.splitlines() if "idle pass" in line and "seconds=" in line]
    print(f"RSS: steady {max(rss_samples or [rss]):.0f} MB (now {rss:.0f}), peak {peak:.0f} MB")
    if passes:
        later = [s for s, _ in passes[1:]] or [passes[0][0]]
        print(f"idle passes: {len(passes)}; cold {passes[0][0]:.2f}s; steady {min(later):.2f}-{max(later):.2f}s; "
              f"writes per steady pass {[w for _, w in passes[1:]]}")
    print("operator API requests per minute in steady state (minus the baseline without it):")
    rows = {k: v - baseline.get(k, 0.0) for k, v in steady.items()}
    for (verb, resource), rate in sorted(rows.items(), key=lambda kv: -kv[1]):
        if abs(rate) >= 0.5 and verb != "WATCH":
            print(f"  {verb:7s} {resource:28s} {rate:8.1f}/min")
    print("Events created in the steady window, by reporter, reason, object kind:")
    for (who, reason, kind), n in events.most_common(10):
        print(f"  {who:24s} {reason:28s} {kind:12s} {n}")
    reads = sum(v for (verb, _), v in rows.items() if verb in ("GET", "LIST"))
    writes = sum(v for (verb, _), v in rows.items() if verb in ("POST", "PUT", "PATCH", "DELETE", "CREATE", "UPDATE"))
    pod_writes = sum(v for (verb, res), v in rows.items() if res == "pods" and verb in ("PATCH", "UPDATE"))
    print(f"reads/min {reads:.1f}; writes/min {writes:.1f}; pod writes/s {pod_writes / 60:.2f}")


if __name__ == "__main__":
    main()
