"""Idle -> warn -> suspend -> resume cycles under faults, on the real local control plane (prints figures,
asserts nothing).

    python bench/faults.py [--workloads 22] [--duration 900] [--kills 100] [--slack-failure 0.3] [--seed 11]

What runs: etcd, kube-apiserver, controller-manager, scheduler, KWOK; simulated GPU nodes with the real
agent on the fake NVML; a local Slack receiver that fails a share of requests; TWO operator processes
configured as the chart configures them (the chart's environment from `helm template`, its RBAC and
ServiceAccount token, leader election through a coordination.k8s.io Lease, webhooks on).
The workloads (Jobs, StatefulSets with volumeClaimTemplates, Deployments, Kubeflow Notebooks when the
upstream CRD is beside the repo) go idle, get warned, suspended, resumed by their "owners" (annotation or
CLI), and some become busy again after a warning. Meanwhile: SIGKILLs of the replicas at random moments
(some timed to land while a notice is in flight or right after a workload changed), restarts after each
kill, the apiserver restarted, one node's agent stopped for a while.

At the end the chaos stops, every suspended workload is resumed and must come back, and an auditor reads
the Slack receiver's log, the Events, the workloads (and the operator's records on them) and the
operators' logs, and prints what it counts.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import itertools
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "chart"))  # the chart helpers: helm template, the chart's RBAC identity

from chart_rbac import operator_kubeconfig  # noqa: E402
from helmtools import find_helm, one, operator_env, template  # noqa: E402

from gpu_steward_testground.build import RUN_FOREVER_ANNOTATION  # noqa: E402
from gpu_steward_testground.deviceplugin import DevicePluginLoop  # noqa: E402
from gpu_steward_testground.gpunode import SimulatedGpuNode  # noqa: E402
from gpu_steward_testground.processes import die_with_parent, free_port  # noqa: E402
from gpu_steward_testground.runner import ControlPlane  # noqa: E402
from gpu_steward_testground.slackreceiver import SlackReceiver  # noqa: E402

NS = "faults"
OP_NS = "gpu-steward"
RELEASE = "gs"
NOTEBOOK_CRD = next((p for p in (REPO.parent / "shared" / "upstream-crds" / "kubeflow.org_notebooks.yaml",
                                 Path("/work/shared/upstream-crds/kubeflow.org_notebooks.yaml")) if p.exists()), None)
BUSY, IDLE, THRESHOLD = 80, 0, 10
TOL = 1.0  # seconds: Events and the suspension record carry whole seconds
LATENCY = 8.0  # seconds: agent interval + its window reaching the threshold + an evaluation interval + a pass
STAGES = ("warning", "suspended", "resumed")


def now() -> float:
    return time.time()


def ts(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%H:%M:%S")


def parse_time(s: str | None) -> float | None:
    if not s:
        return None
    with contextlib.suppress(ValueError):
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    return None


# ------------------------------------------------------------------------------------------ world
@dataclass
class Workload:
    kind: str  # Job | StatefulSet | Deployment | Notebook
    name: str
    node: str
    uid: str = ""
    pvc_uid: str = ""
    # owner model
    busy_until: float = 0.0
    resume_at: float | None = None
    suspended: bool = False
    warned_seen: int = -1  # episode of the last warning the owner reacted to

    @property
    def resource(self) -> str:
        return {"Job": "job", "StatefulSet": "statefulset", "Deployment": "deployment",
                "Notebook": "notebook"}[self.kind]


@dataclass
class Log:
    """What the test ground did (the auditor's ground truth): util changes, agent gaps, kills, restarts."""
    util: dict[str, list[tuple[float, int]]] = field(default_factory=lambda: defaultdict(list))
    agent_down: dict[str, list[list[float]]] = field(default_factory=lambda: defaultdict(list))
    kills: list[dict[str, Any]] = field(default_factory=list)
    apiserver: list[tuple[float, float]] = field(default_factory=list)  # (stopped, ready again)
    suspensions: list[dict[str, Any]] = field(default_factory=list)  # observed by the poller
    resumptions: list[dict[str, Any]] = field(default_factory=list)
    resume_requests: Counter[str] = field(default_factory=Counter)
    busy_after_warning: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def job(wl: Workload) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": wl.name, "annotations": {"gpusteward.dev/owner": f"{wl.name}@example.com"}},
            "spec": {"backoffLimit": 100, "template": {
                "metadata": {"annotations": {RUN_FOREVER_ANNOTATION: "true"}},
                "spec": {"restartPolicy": "Never", "nodeSelector": {"kubernetes.io/hostname": wl.node},
                         "containers": [{"name": "train", "image": "pytorch/pytorch:2.9",
                                         "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}}


def pod_template(wl: Workload, app: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": app}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": wl.node},
                     "containers": [{"name": "main", "image": "jupyter/pytorch-notebook:2026.11",
                                     "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}


def statefulset(wl: Workload, name: str, owner_ref: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "annotations": {"gpusteward.dev/owner": f"{wl.name}@example.com"}}
    if owner_ref:
        meta["ownerReferences"] = [owner_ref]
    spec: dict[str, Any] = {"replicas": 1, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                            "template": pod_template(wl, name)}
    if wl.kind == "StatefulSet":
        spec["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": "", "resources": {"requests": {"storage": "1Gi"}}}}]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta, "spec": spec}


def persistent_volume(wl: Workload) -> dict[str, Any]:
    """A PV pre-bound to the StatefulSet's claim (there is no provisioner on the local control plane)."""
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"pv-{wl.name}"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                     "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": f"/tmp/pv-{wl.name}"},
                     "claimRef": {"namespace": NS, "name": f"data-{wl.name}-0"}}}


def deployment(wl: Workload) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": wl.name, "annotations": {"gpusteward.dev/owner": f"{wl.name}@example.com"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": wl.name}},
                     "template": pod_template(wl, wl.name)}}


def notebook(wl: Workload) -> dict[str, Any]:
    return {"apiVersion": "kubeflow.org/v1", "kind": "Notebook",
            "metadata": {"name": wl.name, "annotations": {"gpusteward.dev/owner": f"{wl.name}@example.com"}},
            "spec": {"template": {"spec": {"containers": [{"name": "notebook", "image": "jupyter/pytorch-notebook",
                                                            "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}}


def policy(args: argparse.Namespace) -> dict[str, Any]:
    return {"apiVersion": "gpusteward.dev/v1alpha1", "kind": "IdlePolicy", "metadata": {"name": "faults"},
            "spec": {"idle": {"gpuUtilPercent": THRESHOLD, "for": args.idle_for, "startupGrace": "0s"},
                     "notice": {"before": f"{args.notice}s", "channels": ["Slack", "Event"], "maxSnooze": "2h"},
                     "action": "Suspend", "dryRun": False}}


# ------------------------------------------------------------------------------------------ operators
@dataclass
class Replica:
    name: str
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "gpu_steward.handlers.run"], env=self.env, cwd=REPO,
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=die_with_parent)
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def identity(self) -> str | None:
        """The leader-election identity of the running process (its start-up line)."""
        with open(self.log, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 400_000))
            tail = f.read().decode(errors="replace")
        found = re.findall(r'"identity": "([^"]+)"[^\n]*"standing by for the leader lease"', tail)
        return found[-1] if found else None

    def records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):  # kopf's own lines may follow a record on the same line: decode the first
                with contextlib.suppress(ValueError):
                    rec = json.JSONDecoder().raw_decode(line)[0]
                    rec["_t"] = parse_time(rec.get("timestamp"))
                    rec["_replica"] = self.name
                    out.append(rec)
        return out


def start_replicas(cp: ControlPlane, args: argparse.Namespace, work: Path, nodes: list[SimulatedGpuNode],
                   webhook_url: str) -> list[Replica]:
    helm = find_helm()
    assert helm is not None, "helm is built with the local control plane (python -m gpu_steward_testground.build)"
    sets = [f"operator.leaderElection.leaseDurationSeconds={args.lease}",
            f"operator.leaderElection.renewDeadlineSeconds={max(2, args.lease * 2 // 3)}",
            "operator.leaderElection.retryPeriodSeconds=1",
            # the chart-made certificate (the default, operator-made one needs its Secret written first)
            "webhook.certificates=helm",
            # the blast-radius gate would (rightly) hold back this run's many suspensions in one namespace:
            # the run measures the notice protocol; the gate has its own tests
            "config.blastRadius.perPass=1000", "config.blastRadius.perHour=10000",
            "config.blastRadius.perNamespacePerHour=10000", "config.blastRadius.breakerPercent=100"]
    ident = operator_kubeconfig(helm=helm, kubectl=Path(cp.bin_dir or "") / "kubectl", admin_kubeconfig=cp.kubeconfig,
                                namespace=OP_NS, release=RELEASE, out=work / "operator.kubeconfig", sets=sets,
                                duration="6h")
    chart_env = operator_env(helm, release=RELEASE, namespace=OP_NS, sets=sets)
    secret = one(template(helm, release=RELEASE, namespace=OP_NS, sets=sets,
                          extra=["--show-only", "templates/webhook.yaml"]), "Secret")
    cert_dir = work / "tls"
    cert_dir.mkdir(exist_ok=True)
    for key, value in secret["data"].items():
        (cert_dir / key).write_bytes(base64.b64decode(value))
    replicas = []
    for name in ("gs-operator-a", "gs-operator-b"):
        # stands for the Deployment's pod: the leader label goes on it
        cp.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": OP_NS},
            "spec": {"nodeSelector": {"gpusteward.dev/nowhere": "true"},
                     "containers": [{"name": "operator", "image": "example.invalid/operator"}]}}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_STEWARD_")}
        env.update(chart_env)
        env.update({  # only what a pod has and a local process has not, and the short windows of this run
            "KUBECONFIG": str(ident.kubeconfig), "PYTHONUNBUFFERED": "1",
            "GPU_STEWARD_LIVENESS_ENDPOINT": f"http://127.0.0.1:{free_port()}/healthz",
            "GPU_STEWARD_WEBHOOK_LISTEN_ADDR": "127.0.0.1", "GPU_STEWARD_WEBHOOK_HOST": "127.0.0.1",
            "GPU_STEWARD_WEBHOOK_PORT": str(free_port()), "GPU_STEWARD_WEBHOOK_CERT_DIR": str(cert_dir),
            "GPU_STEWARD_METRICS_PORT": str(free_port()), "GPU_STEWARD_POD_NAME": name,
            "GPU_STEWARD_POD_NAMESPACE": OP_NS,
            "GPU_STEWARD_EVALUATION_INTERVAL_SECONDS": str(args.interval),
            "GPU_STEWARD_SAMPLE_MAX_AGE_SECONDS": "30",
            "GPU_STEWARD_AGENT_ENDPOINTS": json.dumps({n.name: n.url for n in nodes}),
            "GPU_STEWARD_SLACK_WEBHOOK_URL": webhook_url,  # a secretKeyRef in the chart
        })
        r = Replica(name, env, work / f"{name}.log")
        r.start()
        replicas.append(r)
    return replicas


# ------------------------------------------------------------------------------------------ the run
class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.log = Log()
        self.stop = threading.Event()
        self.chaos_on = threading.Event()
        self.trigger = threading.Event()  # set when a notice is in flight or a workload just changed
        self.state: dict[str, dict[str, Any]] = {}  # poller's last view per workload
        # Children get PR_SET_PDEATHSIG, which fires when the *thread* that forked them ends: every process
        # started during the run is started from this one long-lived thread.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawner")

    def spawn(self, fn: Any, *args: Any) -> Any:
        return self._spawner.submit(fn, *args).result()

    # ---- setup -------------------------------------------------------------------------------
    def setup(self, stack: contextlib.ExitStack) -> None:
        a = self.args
        self.work = Path(a.workdir or tempfile.mkdtemp(prefix="gpu-steward-faults-"))
        self.work.mkdir(parents=True, exist_ok=True)
        cp = self.cp = ControlPlane(workdir=self.work / "cp")
        cp.start()
        stack.callback(cp.stop)
        self.use_notebooks = NOTEBOOK_CRD is not None
        cp.apply_crds(*sorted((REPO / "crds").glob("*.yaml")), *([NOTEBOOK_CRD] if NOTEBOOK_CRD else []))
        n_nodes = max(2, -(-a.workloads // 6))
        self.nodes: list[SimulatedGpuNode] = []
        for i in range(n_nodes):
            cp.add_gpu_node(f"gpu-{i}", gpus=8)
            node = SimulatedGpuNode(f"gpu-{i}", gpus=8, window_seconds=10).start()
            stack.callback(node.stop)
            self.nodes.append(node)
        self.node_of = {n.name: n for n in self.nodes}
        self.api = cp.api_client()
        plugin = DevicePluginLoop(self.api, self.nodes).start()
        stack.callback(plugin.stop)
        self.slack = SlackReceiver(failure_rate=0.0, seed=a.seed)
        stack.enter_context(self.slack)
        self.slack.on_request(lambda verb, path: self.trigger.set())
        cp.create_namespace(NS)
        cp.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(policy(a)))
        kinds = ["Job", "StatefulSet", "Deployment"] + (["Notebook"] if self.use_notebooks else [])
        self.workloads = [Workload(kinds[i % len(kinds)], "", self.nodes[i % n_nodes].name)
                          for i in range(a.workloads)]
        counters: Counter[str] = Counter()
        for wl in self.workloads:
            short = {"Job": "job", "StatefulSet": "sts", "Deployment": "dep", "Notebook": "nb"}[wl.kind]
            wl.name = f"{short}-{counters[wl.kind]:02d}"
            counters[wl.kind] += 1
        for wl in self.workloads:
            self.create(wl)
        self.by_name = {wl.name: wl for wl in self.workloads}
        for wl in self.workloads:  # busy at first, then idle at a random moment
            wl.busy_until = now() + self.rng.uniform(5, 60)
            self.set_util(wl, BUSY)
        self.replicas = start_replicas(cp, a, self.work, self.nodes, self.slack.add_webhook())
        stack.callback(lambda: [r.stop() for r in self.replicas])
        self.wait_running(set(self.by_name), 180)
        for wl in self.workloads:
            body = self.get(wl)
            wl.uid = body["metadata"]["uid"] if body else ""
            if wl.kind == "StatefulSet":
                pvc = self.get_json(f"/api/v1/namespaces/{NS}/persistentvolumeclaims/data-{wl.name}-0")
                wl.pvc_uid = pvc["metadata"]["uid"] if pvc else ""
        print(f"setup: {len(self.workloads)} workloads ({dict(counters)}) on {n_nodes} simulated GPU nodes, "
              f"notebooks {'on' if self.use_notebooks else 'off (CRD absent)'}; work dir {self.work}", flush=True)

    def create(self, wl: Workload) -> None:
        objs: list[dict[str, Any]]
        if wl.kind == "Job":
            objs = [job(wl)]
        elif wl.kind == "Deployment":
            objs = [deployment(wl)]
        elif wl.kind == "StatefulSet":
            self.cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(persistent_volume(wl)))
            objs = [statefulset(wl, wl.name)]
        else:
            self.cp.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(notebook(wl)))
            nb = json.loads(self.cp.kubectl("get", "notebook", wl.name, "-n", NS, "-o", "json").stdout)
            objs = [statefulset(wl, wl.name, {"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "name": wl.name,
                                              "uid": nb["metadata"]["uid"], "controller": True})]
        for obj in objs:
            self.cp.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(obj))

    # ---- API helpers (never raise: the apiserver may be down) --------------------------------
    def get_json(self, path: str) -> Any:
        try:
            return self.cp.get_json(path)
        except Exception:
            return None

    def path_of(self, wl: Workload) -> str:
        return {"Job": f"/apis/batch/v1/namespaces/{NS}/jobs/{wl.name}",
                "StatefulSet": f"/apis/apps/v1/namespaces/{NS}/statefulsets/{wl.name}",
                "Deployment": f"/apis/apps/v1/namespaces/{NS}/deployments/{wl.name}",
                "Notebook": f"/apis/kubeflow.org/v1/namespaces/{NS}/notebooks/{wl.name}"}[wl.kind]

    def get(self, wl: Workload) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.get_json(self.path_of(wl))
        return result

    def list_all(self) -> dict[str, dict[str, Any]] | None:
        out: dict[str, dict[str, Any]] = {}
        paths = [f"/apis/batch/v1/namespaces/{NS}/jobs", f"/apis/apps/v1/namespaces/{NS}/statefulsets",
                 f"/apis/apps/v1/namespaces/{NS}/deployments"]
        if self.use_notebooks:
            paths.append(f"/apis/kubeflow.org/v1/namespaces/{NS}/notebooks")
        for path in paths:
            body = self.get_json(path)
            if body is None:
                return None
            kind = {"jobs": "Job", "statefulsets": "StatefulSet", "deployments": "Deployment",
                    "notebooks": "Notebook"}[path.rsplit("/", 1)[1]]
            for item in body.get("items") or []:
                out[f"{kind}/{item['metadata']['name']}"] = item
        return out

    def running_pods(self) -> set[str] | None:
        body = self.get_json(f"/api/v1/namespaces/{NS}/pods")
        if body is None:
            return None
        names = set()
        for p in body.get("items") or []:
            if (p.get("status") or {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"):
                names.add(p["metadata"]["name"])
        return names

    def runs(self, wl: Workload, pods: set[str]) -> bool:
        return any(p.startswith(wl.name + "-") for p in pods)

    def wait_running(self, names: set[str], timeout: float, resumed: bool = False) -> set[str]:
        """Wait until each named workload has a Running pod (and, with ``resumed``, its object no longer says
        suspended, as the poller sees it); return those that never got there."""
        deadline = now() + timeout
        missing = set(names)
        while missing and now() < deadline:
            pods = self.running_pods() or set()
            missing = {n for n in missing if not self.runs(self.by_name[n], pods)
                       or (resumed and self.state.get(n, {}).get("suspended", True))}
            time.sleep(1)
        return missing

    def set_util(self, wl: Workload, pct: int) -> None:
        self.node_of[wl.node].set_util(NS, wl.name + "-", pct)
        with self.log.lock:
            if not self.log.util[wl.name] or self.log.util[wl.name][-1][1] != pct:
                self.log.util[wl.name].append((now(), pct))

    # ---- is it suspended? ----------------------------------------------------------------------
    @staticmethod
    def suspended(kind: str, body: dict[str, Any]) -> bool:
        spec = body.get("spec") or {}
        if kind == "Job":
            return bool(spec.get("suspend"))
        if kind == "Notebook":
            return "kubeflow-resource-stopped" in (body["metadata"].get("annotations") or {})
        return spec.get("replicas") == 0

    # ---- threads -------------------------------------------------------------------------------
    def poller(self) -> None:
        """Watches every workload once a second: suspensions and resumptions as they happen."""
        while not self.stop.is_set():
            items = self.list_all()
            t = now()
            if items is not None:
                for wl in self.workloads:
                    body = items.get(f"{wl.kind}/{wl.name}")
                    if body is None:
                        continue
                    ann = body["metadata"].get("annotations") or {}
                    state = {}
                    with contextlib.suppress(ValueError, TypeError):
                        state = json.loads(ann.get("gpusteward.dev/idle-state") or "{}")
                    sus = self.suspended(wl.kind, body)
                    prev = self.state.get(wl.name, {})
                    if sus and not prev.get("suspended", False):
                        record = {}
                        with contextlib.suppress(ValueError, TypeError):
                            record = json.loads(ann.get("gpusteward.dev/suspended-state") or "{}")
                        at = parse_time(record.get("suspendedAt")) or t
                        with self.log.lock:
                            self.log.suspensions.append({"wl": wl.name, "seen": t, "at": min(at, t)})
                        self.trigger.set()
                    elif not sus and prev.get("suspended", False):
                        with self.log.lock:
                            self.log.resumptions.append({"wl": wl.name, "seen": t})
                        self.trigger.set()
                    self.state[wl.name] = {"suspended": sus, "phase": state.get("phase"),
                                           "episode": state.get("episode", 0), "body": body}
            self.stop.wait(1.0)

    def notebook_controller(self) -> None:
        """Plays Kubeflow's notebook controller: a stopped Notebook's StatefulSet has 0 replicas, else 1."""
        from kubernetes import client
        apps = client.AppsV1Api(self.api)
        while not self.stop.is_set():
            for wl in self.workloads:
                if wl.kind != "Notebook":
                    continue
                seen = self.state.get(wl.name)
                if not seen:
                    continue
                want = 0 if seen["suspended"] else 1
                with contextlib.suppress(Exception):
                    sts = apps.read_namespaced_stateful_set(wl.name, NS)
                    if sts.spec.replicas != want:
                        apps.patch_namespaced_stateful_set(wl.name, NS, {"spec": {"replicas": want}})
            self.stop.wait(1.0)

    def owners(self) -> None:
        """The owners: go idle after a busy spell, sometimes get busy again after a warning, resume
        suspended work after a while (annotation or CLI)."""
        while not self.stop.is_set():
            t = now()
            for wl in self.workloads:
                seen = self.state.get(wl.name)
                if not seen:
                    continue
                if seen["suspended"]:
                    if wl.resume_at is None:
                        wl.resume_at = t + self.rng.uniform(*self.args.resume_after)
                        self.set_util(wl, IDLE)
                    elif t >= wl.resume_at and self.chaos_on.is_set():
                        self.resume(wl)
                        wl.resume_at = t + 30  # ask again if it is still suspended then
                    continue
                if wl.resume_at is not None:  # it came back
                    wl.resume_at = None
                    if self.rng.random() < 0.3:
                        wl.busy_until = t + self.rng.uniform(20, 60)
                if seen["phase"] == "Warned" and seen["episode"] != wl.warned_seen:
                    wl.warned_seen = seen["episode"]
                    if self.rng.random() < self.args.busy_after_warning and self.chaos_on.is_set():
                        wl.busy_until = t + self.rng.uniform(25, 45)
                        with self.log.lock:
                            self.log.busy_after_warning.append((t, wl.name))
                self.set_util(wl, BUSY if t < wl.busy_until else IDLE)
            self.stop.wait(1.0)

    def resume(self, wl: Workload) -> None:
        via_cli = self.rng.random() < 0.3
        with self.log.lock:
            self.log.resume_requests["cli" if via_cli else "annotation"] += 1
        if via_cli:
            subprocess.run([sys.executable, "-m", "gpu_steward.cli", "resume", f"{wl.resource}/{wl.name}", "-n", NS,
                            "--kubeconfig", str(self.cp.kubeconfig)], capture_output=True, timeout=60, check=False)
        else:
            with contextlib.suppress(Exception):
                self.cp.kubectl("annotate", "--overwrite", "-n", NS, f"{wl.resource}/{wl.name}",
                                "gpusteward.dev/resume=true", check=False)

    def leader(self) -> Replica | None:
        """The replica whose *current* process holds the Lease (a Lease naming a killed process of a pod
        that was restarted since names no one who acts)."""
        lease = self.get_json(f"/apis/coordination.k8s.io/v1/namespaces/{OP_NS}/leases/{RELEASE}-gpu-steward-leader")
        holder = ((lease or {}).get("spec") or {}).get("holderIdentity") or ""
        return next((r for r in self.replicas if r.alive() and holder and r.identity() == holder), None)

    def killer(self) -> None:
        """SIGKILL a replica at random moments (about half of them timed to land right after a notice went
        out or a workload changed, i.e. mid-step); restart it after a short random delay."""
        a = self.args
        mean_gap = a.duration / max(a.kills, 1)
        while not self.stop.is_set() and self.chaos_on.is_set():
            triggered = self.rng.random() < 0.5
            if triggered:
                self.stop.wait(self.rng.uniform(0.3, 1.2) * mean_gap * 0.5)
                self.trigger.clear()
                if not self.trigger.wait(mean_gap * 2):
                    triggered = False
                time.sleep(self.rng.uniform(0.0, 0.4))
            else:
                self.stop.wait(self.rng.uniform(0.3, 1.7) * mean_gap)
            if self.stop.is_set() or not self.chaos_on.is_set():
                return
            leader = self.leader()
            if leader is not None and self.rng.random() < a.leader_share:
                victim = leader
            else:
                victim = self.rng.choice([r for r in self.replicas if r is not leader] or self.replicas)
            if not victim.alive():
                continue
            victim.kill()
            with self.log.lock:
                self.log.kills.append({"t": now(), "replica": victim.name, "leader": victim is leader,
                                       "triggered": triggered})
            time.sleep(self.rng.uniform(0.5, 3.0))
            self.spawn(victim.start)

    def agent_outage(self, node: SimulatedGpuNode, at: float, seconds: float) -> None:
        if self.stop.wait(max(0.0, at - now())):
            return
        t0 = now()
        node.stop_agent()
        print(f"{ts(t0)}  agent on {node.name} stopped for {seconds:.0f}s", flush=True)
        with self.log.lock:
            self.log.agent_down[node.name].append([t0, float("inf")])
        self.stop.wait(seconds)
        self.spawn(node.start_agent)
        with self.log.lock:
            self.log.agent_down[node.name][-1][1] = now()

    def apiserver_restarts(self, times: list[float]) -> None:
        for at in times:
            if self.stop.wait(max(0.0, at - now())):
                return
            t0 = now()
            took = self.spawn(self.cp.restart_apiserver, self.args.apiserver_down)
            print(f"{ts(t0)}  kube-apiserver restarted: ready again after {took:.1f}s", flush=True)
            with self.log.lock:
                self.log.apiserver.append((t0, now()))

    # ---- main ----------------------------------------------------------------------------------
    def run(self) -> None:
        a = self.args
        threads = [threading.Thread(target=f, daemon=True) for f in (self.poller, self.owners)]
        if self.use_notebooks:
            threads.append(threading.Thread(target=self.notebook_controller, daemon=True))
        for th in threads:
            th.start()
        t0 = now()
        self.chaos_on.set()
        self.slack.set_failure_rate(a.slack_failure)
        chaos = [threading.Thread(target=self.killer, daemon=True),
                 threading.Thread(target=self.apiserver_restarts, daemon=True,
                                  args=([t0 + a.duration * (i + 1) / (a.apiserver_restarts + 1)
                                         for i in range(a.apiserver_restarts)],)),
                 threading.Thread(target=self.agent_outage, daemon=True,
                                  args=(self.nodes[0], t0 + a.duration * 0.45, a.agent_down))]
        for th in chaos:
            th.start()
        print(f"{ts(t0)}  chaos on for {a.duration:.0f}s: ~{a.kills} SIGKILLs, Slack failing {a.slack_failure:.0%}, "
              f"{a.apiserver_restarts} apiserver restarts, an agent stopped {a.agent_down:.0f}s", flush=True)
        last = t0
        while now() < t0 + a.duration:
            time.sleep(5)
            if now() - last >= 60:
                last = now()
                with self.log.lock:
                    print(f"{ts(last)}  +{last - t0:4.0f}s kills {len(self.log.kills)}, suspensions "
                          f"{len(self.log.suspensions)}, resumptions {len(self.log.resumptions)}, slack accepted "
                          f"{len(self.slack.messages)} failed {len(self.slack.failures)}", flush=True)
        self.chaos_on.clear()
        for th in chaos:
            th.join(timeout=120)
        self.t_chaos_end = now()
        # Quiet: both replicas up, Slack healthy, every agent up; everyone busy (no new episodes).
        for r in self.replicas:
            if not r.alive():
                self.spawn(r.start)
        self.slack.set_failure_rate(0.0)
        for node in self.nodes:
            if not node.agent_alive():
                self.spawn(node.start_agent)
        for wl in self.workloads:
            wl.busy_until = float("inf")
        time.sleep(a.interval * 3 + 2)
        # Resume what is still suspended and check it comes back.
        suspended = [wl for wl in self.workloads if self.state.get(wl.name, {}).get("suspended")]
        self.final_suspended = [wl.name for wl in suspended]
        t_res = now()
        for wl in suspended:
            with contextlib.suppress(Exception):
                self.cp.kubectl("annotate", "--overwrite", "-n", NS, f"{wl.resource}/{wl.name}",
                                "gpusteward.dev/resume=true", check=False)
        time.sleep(2)  # the poller sees the annotation before the workload can look resumed
        self.not_resumed = self.wait_running({wl.name for wl in suspended}, a.final_timeout, resumed=True)
        self.final_resume_seconds = now() - t_res
        time.sleep(a.interval * 3 + a.notice)  # let the last resumed notices go out
        self.stop.set()
        for th in threads:
            th.join(timeout=10)


# ------------------------------------------------------------------------------------------ the auditor
HEADLINE = re.compile(r"^(?P<kind>\w+) (?P<ns>[\w.-]+)/(?P<name>[\w.-]+) (?P<rest>.*)$")


def stage_of(rest: str) -> str | None:
    if rest.startswith("is idle and will be suspended at"):
        return "warning"
    if rest.startswith("is holding"):
        return "warning-notify-only"
    if rest.startswith("was suspended"):
        return "suspended"
    if rest.startswith("was resumed"):
        return "resumed"
    return None


@dataclass
class Notice:
    wl: str
    stage: str
    t: float
    channel: str
    headline: str
    idle_since: float | None
    suspend_at: float | None


def notices(run: Run) -> list[Notice]:
    """Delivered notices: Slack messages Slack accepted and Events that exist."""
    out: list[Notice] = []
    for m in run.slack.messages:
        text = str(m.payload.get("text") or "")
        blob = json.dumps(m.payload)
        out.extend(_notice(text, m.at, "Slack", blob))
    body = run.get_json(f"/api/v1/namespaces/{NS}/events") or {}
    for ev in body.get("items") or []:
        if (ev.get("source") or {}).get("component") != "gpu-steward":
            continue
        t = parse_time(ev["metadata"].get("creationTimestamp")) or parse_time(ev.get("firstTimestamp"))
        msg = ev.get("message") or ""
        out.extend(_notice(msg.split(". ", 1)[0].rstrip("."), t or 0.0, "Event", msg))
    return out


def _notice(headline: str, t: float, channel: str, blob: str) -> list[Notice]:
    m = HEADLINE.match(headline)
    if not m or m["ns"] != NS:
        return []
    stage = stage_of(m["rest"])
    if stage is None:
        return []
    stated = re.search(r"will be suspended at (\S+)", headline)
    # Slack blocks carry times as date tokens (<!date^EPOCH^...|RFC3339>): the fallback is the time
    since = re.search(r"(?:since|Idle since\*\\n)\s*(?:<!date\^\d+\^[^|]*\|)?(\d{4}-\d\d-\d\dT[\d:]+Z)", blob)
    return [Notice(m["name"], stage, t, channel, headline, parse_time(since[1]) if since else None,
                   parse_time(stated[1].rstrip(".")) if stated else None)]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def audit(run: Run) -> None:
    a, log = run.args, run.log
    before = float(a.notice)
    ns = notices(run)
    by_wl: dict[str, list[Notice]] = defaultdict(list)
    for n in ns:
        by_wl[n.wl].append(n)
    for lst in by_wl.values():
        lst.sort(key=lambda n: n.t)

    # 1. every suspension had a delivered warning >= notice.before earlier, in the same episode
    no_notice, too_early, before_stated, after_reset, while_unknown, margins = [], [], [], [], [], []
    for s in log.suspensions:
        wl = run.by_name[s["wl"]]
        at = s["at"]
        warnings = [n for n in by_wl[wl.name] if n.stage == "warning" and n.t <= at + TOL]
        down = [iv for iv in log.agent_down.get(wl.node, [])]
        if any(lo + LATENCY <= at <= hi for lo, hi in down):
            while_unknown.append((wl.name, ts(at)))
        if not warnings:
            no_notice.append((wl.name, ts(at)))
            continue
        w = warnings[-1]
        margin = at - w.t - before
        margins.append(margin)
        if margin < -TOL:
            too_early.append((wl.name, ts(at), round(margin, 1)))
        if w.suspend_at is not None and at < w.suspend_at - TOL:
            before_stated.append((wl.name, ts(at), ts(w.suspend_at)))
        busy = [t for t, p in log.util[wl.name] if p >= THRESHOLD and w.t < t <= at - LATENCY]
        gap = [lo for lo, hi in down if lo < at - LATENCY and hi > w.t]
        if busy or gap:
            after_reset.append((wl.name, ts(at), "busy" if busy else "agent gap"))
            if gap:
                while_unknown.append((wl.name, ts(at)))

    # 2. notices per stage per episode (Slack and Event copies of one notice share a headline)
    repeats: Counter[str] = Counter()
    in_window: Counter[str] = Counter()  # repeats explained by a leader kill right after the first copy
    episodes: Counter[str] = Counter()
    repeat_examples: list[str] = []
    for wl_name, lst in by_wl.items():
        susp = sorted(s["at"] for s in log.suspensions if s["wl"] == wl_name)
        groups: dict[tuple[str, Any], dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
        for n in lst:
            if n.stage in ("warning", "suspended"):
                key: Any = n.idle_since
            else:  # resumed: the suspension it follows
                key = max((t for t in susp if t <= n.t + TOL), default=None)
            groups[(n.stage, key)][n.headline][n.channel] += 1
        for (stage, key), heads in groups.items():
            count = sum(max(ch.values()) for ch in heads.values())
            episodes[stage] += 1
            if count > 1:
                repeats[stage] += count - 1
                # The one repeat a crash may cause: Slack took the first copy and the leader was killed
                # before the delivery was recorded (one store write later).
                copies = [n for n in lst if n.stage == stage and (n.idle_since if stage != "resumed" else
                          max((t for t in susp if t <= n.t + TOL), default=None)) == key]
                slack = [n.t for n in copies if n.channel == "Slack"]  # sent last, timed to the millisecond
                first = min(slack or [n.t for n in copies])
                if any(first - TOL <= k["t"] <= first + 1.5 and k["leader"] for k in log.kills):
                    in_window[stage] += count - 1
                if len(repeat_examples) < 6:
                    repeat_examples.append(f"{wl_name} {stage} x{count} (episode key {key and ts(key)})")

    # 3. deleted workloads, lost volumes
    items = run.list_all() or {}
    deleted = [wl.name for wl in run.workloads
               if (items.get(f"{wl.kind}/{wl.name}") or {}).get("metadata", {}).get("uid") != wl.uid]
    lost = []
    for wl in run.workloads:
        if wl.kind == "StatefulSet":
            pvc = run.get_json(f"/api/v1/namespaces/{NS}/persistentvolumeclaims/data-{wl.name}-0")
            if not pvc or pvc["metadata"]["uid"] != wl.pvc_uid or pvc.get("status", {}).get("phase") != "Bound":
                lost.append(wl.name)

    # 4. failover and recovery from the operators' logs
    recs = sorted((r for rep in run.replicas for r in rep.records() if r["_t"]), key=lambda r: r["_t"])
    leads = [(r["_t"], r["_replica"]) for r in recs if r.get("event") == "leading: this replica acts"]
    passes = [r["_t"] for r in recs if r.get("event") == "idle pass"]
    failovers = []
    for k in log.kills:
        if k["leader"]:
            nxt = next(((t, who) for t, who in leads if t > k["t"]), None)
            if nxt:
                failovers.append((nxt[0] - k["t"], nxt[1] != k["replica"]))
    recoveries = []
    for down, ready in log.apiserver:
        nxt = next((t for t in passes if t > ready), None)
        recoveries.append((ready - down, (nxt - ready) if nxt else float("nan")))
    longest_gap = max((b - t for t, b in itertools.pairwise(passes)), default=float("nan"))
    errors = Counter(r.get("event") for r in recs if r.get("level") in ("error", "critical"))
    cycles = sum(1 for s in log.suspensions
                 if any(r["wl"] == s["wl"] and r["seen"] > s["seen"] for r in log.resumptions))
    by_stage = Counter(n.stage for n in ns)
    by_channel = Counter(n.channel for n in ns)
    suspended_no_warning_reset = sum(1 for t, w in log.busy_after_warning
                                     if any(s["wl"] == w and t + LATENCY < s["at"] < t + 25 for s in log.suspensions))

    kills = log.kills
    print("\n=== auditor ===")
    rows = [
        ("suspensions observed", len(log.suspensions), ""),
        ("  without a delivered warning >= notice.before earlier", len(no_notice) + len(too_early), "goal 0"),
        ("    no warning at all / warning too late", f"{len(no_notice)} / {len(too_early)}", ""),
        ("  before the time the warning stated", len(before_stated), "goal 0"),
        ("  after the episode was reset (busy / agent gap) since the warning", len(after_reset), "goal 0"),
        ("  while utilization was unknown (agent stopped)", len(set(while_unknown)), "goal 0"),
        ("  margin over notice.before: min / median (s)",
         f"{min(margins, default=float('nan')):.1f} / {statistics.median(margins) if margins else float('nan'):.1f}",
         ""),
        ("busy again after a warning (owner reacted) / then suspended within 25s",
         f"{len(log.busy_after_warning)} / {suspended_no_warning_reset}", "goal -/0"),
        ("notice copies delivered: warning / suspended / resumed",
         f"{by_stage['warning']} / {by_stage['suspended']} / {by_stage['resumed']} "
         f"(Slack {by_channel['Slack']}, Event {by_channel['Event']})", ""),
        ("notice groups (stage x episode): warning / suspended / resumed",
         f"{episodes['warning']} / {episodes['suspended']} / {episodes['resumed']}", ""),
        ("repeated notices: warning / suspended / resumed",
         f"{repeats['warning']} / {repeats['suspended']} / {repeats['resumed']}", "goal 0 (≤1 per stage)"),
        ("  of which: leader killed within 1.5 s after the first copy (send→record window)",
         f"{in_window['warning']} / {in_window['suspended']} / {in_window['resumed']}", ""),
        ("Slack requests failed by the receiver", len(run.slack.failures), ""),
        ("workloads deleted (UID changed or gone)", len(deleted), "goal 0"),
        ("StatefulSet volumes lost (PVC gone, replaced or unbound)", len(lost), "goal 0"),
        ("suspended at the end / not back after resume",
         f"{len(run.final_suspended)} / {len(run.not_resumed)} ({run.final_resume_seconds:.0f}s)", "goal -/0"),
        ("cycles completed (suspended, then running again)", cycles, ""),
        ("owner resume requests: annotation / CLI",
         f"{log.resume_requests['annotation']} / {log.resume_requests['cli']}", ""),
        ("SIGKILLs: total / of the leader / timed mid-step",
         f"{len(kills)} / {sum(k['leader'] for k in kills)} / {sum(k['triggered'] for k in kills)}", ""),
        ("failover (leader SIGKILL -> a replica leading): median / p90 / max (s)",
         f"{pct([f for f, _ in failovers], .5):.1f} / {pct([f for f, _ in failovers], .9):.1f} / "
         f"{max((f for f, _ in failovers), default=float('nan')):.1f} (n={len(failovers)}, "
         f"other replica {sum(o for _, o in failovers)})", ""),
        ("apiserver restarts: stop..ready (s) -> first idle pass after ready (s)",
         ", ".join(f"{d:.1f} -> {r:.1f}" for d, r in recoveries) or "-", ""),
        ("agent outages", "; ".join(f"{n} {hi - lo:.0f}s" for n, ivs in log.agent_down.items() for lo, hi in ivs)
         or "-", ""),
        ("idle passes (both replicas) / leader changes / longest stretch without a pass (s)",
         f"{len(passes)} / {len(leads)} / {longest_gap:.1f}", ""),
        ("operator error log lines", sum(errors.values()), ""),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, goal in rows:
        print(f"{name:<{width}}  {value!s:<30} {goal}")
    for title, lst in (("no warning", no_notice), ("warning too late", too_early),
                       ("before stated time", before_stated), ("after reset", after_reset),
                       ("while unknown", sorted(set(while_unknown))),
                       ("deleted", deleted), ("lost volumes", lost), ("not resumed", sorted(run.not_resumed))):
        if lst:
            print(f"  {title}: {lst[:8]}")
    if repeat_examples:
        print("  repeats, e.g.: " + "; ".join(repeat_examples))
    if errors:
        print("  operator errors: " + ", ".join(f"{k} x{v}" for k, v in errors.most_common(5)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", type=int, default=22)
    ap.add_argument("--duration", type=float, default=900, help="seconds of chaos")
    ap.add_argument("--kills", type=int, default=110, help="SIGKILLs aimed for over the duration")
    ap.add_argument("--leader-share", type=float, default=0.5, help="share of kills aimed at the leader")
    ap.add_argument("--slack-failure", type=float, default=0.3, help="share of Slack requests answered with an error")
    ap.add_argument("--apiserver-restarts", type=int, default=2)
    ap.add_argument("--apiserver-down", type=float, default=3.0, help="seconds the apiserver stays down")
    ap.add_argument("--agent-down", type=float, default=75.0, help="seconds one node's agent is stopped")
    ap.add_argument("--idle-for", default="1m")
    ap.add_argument("--notice", type=int, default=20, help="notice.before in seconds")
    ap.add_argument("--interval", type=float, default=2.0, help="evaluation interval in seconds")
    ap.add_argument("--lease", type=int, default=6, help="leaderElection.leaseDurationSeconds (chart value)")
    ap.add_argument("--busy-after-warning", type=float, default=0.25, help="share of warnings the owner reacts to")
    ap.add_argument("--resume-after", type=float, nargs=2, default=(5.0, 25.0), metavar=("MIN", "MAX"))
    ap.add_argument("--final-timeout", type=float, default=150.0)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    started = now()
    run = Run(args)
    with contextlib.ExitStack() as stack:
        run.setup(stack)
        run.run()
        audit(run)
    print(f"\ntotal {now() - started:.0f}s; seed {args.seed}; command: python bench/faults.py "
          + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
