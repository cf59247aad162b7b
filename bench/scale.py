"""The operator process at scale on the real local control plane (prints numbers, asserts nothing).

    python bench/scale.py --pods 8000 [--per-node 8] [--per-notebook 8] [--steady 180] [--interval 15]
                          [--namespaces 1] [--shards 1]

How the cluster is built: ``pods / per-node`` KWOK GPU nodes; ``pods / per-notebook`` Kubeflow Notebooks
(a minimal Notebook CRD: no notebook controller runs, so the Notebooks own their pods directly, as
controller); GPU pods created *pre-bound* (``spec.nodeName`` set: no scheduler work) by a pool of threads
POSTing in parallel, which KWOK marks Running; one enforcing IdlePolicy over their namespace. No agents
run, so every workload reads as unknown (never idle): this measures reads, memory, passes and writes.
With ``--namespaces K`` the Notebooks are spread round-robin over K namespaces and the one IdlePolicy lives in
the platform namespace, selecting them by label. With ``--shards N`` (sharded mode, docs/scale.md) N operator
processes run, shard 0..N-1 of N, each with leader election on its own Lease: figures are printed per shard,
and cold start is until the policy's status (merged by its one writer) counts every workload.

What it prints (the numbers docs/scale.md tabulates), for each configuration in turn (``--shards 1,4``
measures one replica, then four shards, on the same cluster: between them the operators' ConfigMaps and
Leases are deleted and the policy's status cleared):
- RSS of each operator process, steady and peak (VmHWM: the initial listing counts);
- idle pass times per process: the first (cold) and the steady ones, from the operator's log;
- cold start: from the processes' start to the IdlePolicy's status counting every workload;
- the operator's own API requests per minute in the steady window, by verb and resource, from the
  apiserver's audit log: the operators run as their own ServiceAccount and the audit policy records only
  that user's requests, so nobody else's traffic (KWOK's node heartbeats, the node controller) is counted.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
PLATFORM = "gpu-steward"
SCALE_LABEL = "gpusteward.dev/scale"
NOTEBOOK_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "notebooks.kubeflow.org"},
    "spec": {"group": "kubeflow.org", "scope": "Namespaced",
             "names": {"plural": "notebooks", "singular": "notebook", "kind": "Notebook"},
             "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}


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


def namespaces(count: int) -> list[str]:
    return [NS] if count <= 1 else [f"{NS}-{i:03d}" for i in range(count)]


def build(cp: ControlPlane, kube: Kube, pods: int, per_node: int, per_notebook: int, threads: int,
          spread: int = 1) -> tuple[str, str]:
    """The cluster; returns where the IdlePolicy is (namespace, name)."""
    t0 = time.monotonic()
    nodes = [gpu_node(f"scale-{i:05d}", per_node) for i in range(-(-pods // per_node))]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda n: kube.create(n, dry_run=False), nodes))
    cp.apply_crds(*sorted((REPO / "crds").glob("*.yaml")))
    crd = Path(cp.workdir or "/tmp") / "notebook-crd.yaml"
    crd.write_text(yaml.safe_dump(NOTEBOOK_CRD))
    cp.apply_crds(crd)
    spaces = namespaces(spread)
    for ns in spaces:
        cp.create_namespace(ns, labels={SCALE_LABEL: "true"})
    cp.create_namespace(PLATFORM)
    policy: dict = {"apiVersion": "gpusteward.dev/v1alpha1", "kind": "IdlePolicy", "metadata": {"name": "scale"},
                    # No startup grace: pods that became Running during the build would otherwise leave it
                    # during the measured windows, and each pass's changed counts would be written.
                    "spec": {"idle": {"gpuUtilPercent": 10, "for": "30m", "startupGrace": "0s"},
                             "notice": {"before": "10m", "maxSnooze": "1h"}, "dryRun": False}}
    home = NS if spread <= 1 else PLATFORM
    if spread > 1:  # one policy over every team namespace: in sharded mode it spans the shards
        policy["spec"]["selector"] = {"namespaceSelector": {"matchLabels": {SCALE_LABEL: "true"}}}
    cp.kubectl("apply", "-n", home, "-f", "-", input=yaml.safe_dump(policy))
    print(f"setup: {len(nodes)} nodes in {time.monotonic() - t0:.0f}s", flush=True)

    def notebook_and_pods(j: int) -> None:
        ns = spaces[j % len(spaces)]
        nb = kube.create({"apiVersion": "kubeflow.org/v1", "kind": "Notebook",
                          "metadata": {"name": f"nb-{j:05d}", "namespace": ns, "labels": {"team": f"t{j % 20}"}},
                          "spec": {"template": {"spec": {"containers": [{"name": "nb", "image": "nb:1"}]}}}},
                         dry_run=False)
        assert nb is not None
        ref = {"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "name": nb["metadata"]["name"],
               "uid": nb["metadata"]["uid"], "controller": True}
        for k in range(per_notebook):
            i = j * per_notebook + k
            kube.create({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": f"nb-{j:05d}-{k}", "namespace": ns, "ownerReferences": [ref],
                                      "labels": {"notebook-name": nb["metadata"]["name"], "team": f"t{j % 20}"},
                                      "annotations": {RUN_FOREVER_ANNOTATION: "true"}},
                         "spec": {"nodeName": f"scale-{i // per_node:05d}", "containers": [{
                             "name": "m", "image": "train:1", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
                             "tolerations": [{"operator": "Exists"}]}}, dry_run=False)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(notebook_and_pods, range(pods // per_notebook)))
    print(f"setup: {pods} pods created in {time.monotonic() - t0:.0f}s", flush=True)
    while True:
        left = [line for line in cp.kubectl("get", "pods", "-A", "--field-selector=status.phase!=Running",
                                            "--chunk-size=1000", "-o", "name").stdout.split()
                if line.startswith("pod/nb-")]
        if not left or time.monotonic() - t0 > 3600:
            break
        time.sleep(5)
    print(f"setup: {pods - len(left)}/{pods} pods Running after {time.monotonic() - t0:.0f}s", flush=True)
    return home, "scale"


def first_pass_at(text: str, started: float) -> float | None:
    """Seconds from ``started`` (epoch) to the end of the first idle pass in the log."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    for line in text.splitlines():
        m = re.match(r"(\S+Z) .*idle pass .*seconds=", line)
        if m:
            return dt.datetime.fromisoformat(m.group(1)).timestamp() - started
    return None


def passes_of(text: str) -> list[tuple[float, int]]:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return [(float(re.search(r"seconds=([0-9.]+)", line).group(1)),  # type: ignore[union-attr]
             int(re.search(r"writes=(\d+)", line).group(1)))  # type: ignore[union-attr]
            for line in text.splitlines() if "idle pass" in line and "seconds=" in line]


BENCH_SA = "bench-operator"
BENCH_USER = f"system:serviceaccount:{PLATFORM}:{BENCH_SA}"


def operator_kubeconfig(cp: ControlPlane) -> Path:
    """A kubeconfig of the operator's own (a ServiceAccount token): the apiserver's audit log then tells its
    requests from everyone else's (KWOK's heartbeats, the controllers'), exactly, with no baseline to subtract."""
    cp.kubectl("create", "serviceaccount", BENCH_SA, "-n", PLATFORM)
    cp.kubectl("create", "clusterrolebinding", BENCH_SA, "--clusterrole=cluster-admin",
               f"--serviceaccount={PLATFORM}:{BENCH_SA}")
    token = cp.kubectl("create", "token", BENCH_SA, "-n", PLATFORM, "--duration=48h").stdout.strip()
    return cp.kubeconfig_for_token(token, Path(cp.workdir or "/tmp") / "operator.kubeconfig")


def audited(cp: ControlPlane, since: float, until: float) -> Counter[tuple[str, str]]:
    """The operator's requests between two epochs, by (verb, resource[/subresource]), watches excluded."""
    out: Counter[tuple[str, str]] = Counter()
    with open(cp.audit_log, encoding="utf-8") as f:
        for line in f:
            ev = json.loads(line)
            if ev.get("stage") != "ResponseComplete" or ev.get("verb") == "watch":
                continue
            at = dt.datetime.fromisoformat(ev["stageTimestamp"]).timestamp()
            if since <= at < until:
                ref = ev.get("objectRef") or {}
                sub = ref.get("subresource")
                out[(ev["verb"], (ref.get("resource") or "") + (f"/{sub}" if sub else ""))] += 1
    return out


def reset(cp: ControlPlane, home: str, name: str) -> None:
    """Between two configurations on one cluster: what the previous operators kept goes (their records, stores,
    cost history, Leases) and the policy's status is cleared, so the next cold start is measured from nothing."""
    cp.kubectl("delete", "configmap", "-n", PLATFORM, "-l", "app.kubernetes.io/managed-by=gpu-steward",
               "--wait=false", check=False)
    cp.kubectl("delete", "leases", "-n", PLATFORM, "--all", "--wait=false", check=False)
    cp.kubectl("patch", "idlepolicy", name, "-n", home, "--subresource=status", "--type=merge",
               "-p", json.dumps({"status": None}), check=False)


def measure(cp: ControlPlane, kubeconfig: Path, args: argparse.Namespace, shards: int, home: str, name: str,
            workloads: int) -> None:
    ops = []
    for index in range(shards):
        settings = {"evaluation_interval_seconds": str(args.interval), "metrics_port": "0",
                    "log_format": "console", "platform_namespace": PLATFORM}
        if shards > 1:
            settings.update(shard_count=str(shards), shard_index=str(index),
                            leader_election_lease_name="scale-leader", leader_election_namespace=PLATFORM)
        log = Path(cp.workdir or "/tmp") / f"scale-operator-{shards}-{index}.log"
        ops.append(OperatorProcess(kubeconfig, log, settings=settings).start())
    pids = [op.popen.pid for op in ops if op.popen is not None]
    started_epoch, started, cold = time.time(), time.monotonic(), None
    peaks = [0.0] * len(ops)
    try:
        while cold is None and time.monotonic() - started < 900:
            peaks = [max(p, proc_status(pid)[1]) for p, pid in zip(peaks, pids, strict=True)]
            status = json.loads(cp.kubectl("get", "idlepolicy", name, "-n", home, "-o", "json").stdout).get(
                "status") or {}
            if status.get("watched") == workloads:
                cold = time.monotonic() - started
            time.sleep(0.5)
        time.sleep(args.settle)
        t_s = time.time()
        rss_samples: list[list[float]] = [[] for _ in pids]
        while time.time() - t_s < args.steady:
            for i, pid in enumerate(pids):
                rss_samples[i].append(proc_status(pid)[0])
            time.sleep(5)
        t_e = time.time()
        now = [proc_status(pid) for pid in pids]
        events = events_since(cp, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_s)))
        if args.tracemalloc:
            for pid in pids:
                traced = memtrace.dump_path(pid)
                os.kill(pid, signal.SIGUSR1)
                while not traced.exists():
                    time.sleep(1)
                print(f"allocations of {pid}: {traced}\n" + "\n".join(traced.read_text().splitlines()[:60]),
                      flush=True)
    finally:
        for op in ops:
            op.stop()
    logs = [op.log_text() for op in ops]
    requests = audited(cp, t_s, t_e)
    minutes = (t_e - t_s) / 60
    print(f"==== {shards} operator process{'es' if shards > 1 else ''} "
          f"({'sharded' if shards > 1 else 'one replica'}), load {os.getloadavg()[0]:.1f} ====")
    print(f"cold start to every status: {cold if cold is None else round(cold, 1)} s", flush=True)
    for i in range(len(ops)):
        rss, peak = now[i]
        who = f"shard {i}/{len(ops)}: " if len(ops) > 1 else ""
        print(f"{who}RSS: steady {max(rss_samples[i] or [rss]):.0f} MB (now {rss:.0f}), "
              f"peak {max(peak, peaks[i]):.0f} MB")
        passes = passes_of(logs[i])
        if passes:
            later = sorted(s for s, _ in passes[1:]) or [passes[0][0]]
            first = first_pass_at(logs[i], started_epoch)
            print(f"{who}idle passes: {len(passes)}; first done {first if first is None else round(first, 1)}s "
                  f"after start; cold {passes[0][0]:.2f}s; steady {later[0]:.2f}-{later[-1]:.2f}s, median "
                  f"{later[len(later) // 2]:.2f}s; writes per steady pass {[w for _, w in passes[1:]]}")
    print("the operator's own API requests per minute in the steady window (apiserver audit log, watches excluded):")
    for (verb, resource), n in requests.most_common():
        print(f"  {verb:7s} {resource:28s} {n / minutes:8.1f}/min")
    print("Events created in the steady window, by reporter, reason, object kind:")
    for (who, reason, kind), n in events.most_common(10):
        print(f"  {who:24s} {reason:28s} {kind:12s} {n}")
    reads = sum(n for (verb, _), n in requests.items() if verb in ("get", "list"))
    election = sum(n for (verb, res), n in requests.items() if res == "leases" and verb not in ("get", "list"))
    writes = sum(n for (verb, res), n in requests.items() if verb not in ("get", "list") and res != "leases")
    pod_writes = sum(n for (verb, res), n in requests.items() if res == "pods" and verb in ("patch", "update"))
    print(f"reads/min {reads / minutes:.1f}; writes/min {writes / minutes:.1f} (and leader-election Lease renewals "
          f"{election / minutes:.1f}/min); pod writes/s {pod_writes / minutes / 60:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=2000)
    ap.add_argument("--per-node", type=int, default=8)
    ap.add_argument("--per-notebook", type=int, default=8)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--steady", type=float, default=180.0, help="seconds measured in steady state")
    ap.add_argument("--interval", type=float, default=15.0, help="the operator's evaluation interval")
    ap.add_argument("--tracemalloc", type=int, default=0,
                    help="frames: trace the operator's allocations and print where they are at the end")
    ap.add_argument("--settle", type=float, default=60.0, help="seconds after cold start before the steady window")
    ap.add_argument("--namespaces", type=int, default=1, help="spread the Notebooks over this many namespaces")
    ap.add_argument("--shards", default="1",
                    help="operator processes, one per shard; a list (1,4) measures each in turn on one cluster")
    args = ap.parse_args()
    counts = [int(x) for x in str(args.shards).split(",")]
    workloads = args.pods // args.per_notebook
    spread = max(args.namespaces, 1 if max(counts) <= 1 else 8 * max(counts))
    with ControlPlane(audit_users=(BENCH_USER,)) as cp:
        kube = Kube(cp.api_client())
        home, name = build(cp, kube, args.pods, args.per_node, args.per_notebook, args.threads, spread)
        kubeconfig = operator_kubeconfig(cp)
        if args.tracemalloc:  # read by the child (gpu_steward.memtrace); the operator dumps on SIGUSR1
            os.environ[memtrace.ENV] = str(args.tracemalloc)
        for n, shards in enumerate(counts):
            if n:
                reset(cp, home, name)
            measure(cp, kubeconfig, args, shards, home, name, workloads)


if __name__ == "__main__":
    main()
