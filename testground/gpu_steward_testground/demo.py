"""``gpu-steward demo [--chapter idle|budget|lease]``: GPU Steward's stories on a local control plane, narrated.

A real control plane (built from Go modules on first use), two KWOK GPU nodes with real agents on the
fake NVML, a local Slack receiver (bot token: DMs, threads), and the operator as a real process with its
admission webhooks. Chapters (default: all, in this order); windows are short so each takes 1-2 minutes:

- ``idle``: a notebook goes idle, its owner is warned on Slack, it is suspended (the notice in the
  warning's thread), then the owner resumes it;
- ``budget``: a namespace's spend crosses its 50/80/100 % thresholds (one notice each), then
  ``onExceeded: BlockNew`` shrinks the quota to what is in use and a new GPU pod is refused with the
  quota's message;
- ``lease``: a lease beyond the fast lane waits for approval; its owner cannot approve it, an approver
  (``kubectl --as bob --as-group gpu-steward-approvers``) can; it raises the quota, expires (notice
  first), and its workload is warned and suspended.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpu_steward.workloads.model import IDLE_STATE_ANNOTATION
from gpu_steward_testground.demo_kinds import KINDS, chapter_idle_kind
from gpu_steward_testground.deviceplugin import DevicePluginLoop
from gpu_steward_testground.gpunode import SimulatedGpuNode
from gpu_steward_testground.operator_process import OperatorProcess
from gpu_steward_testground.processes import free_port, wait_for
from gpu_steward_testground.runner import ControlPlane
from gpu_steward_testground.slackreceiver import SlackReceiver

REPO = Path(__file__).resolve().parents[2]
NS = "ml-team"
NOTEBOOK_CRD = REPO.parent / "shared" / "upstream-crds" / "kubeflow.org_notebooks.yaml"
API = "gpusteward.dev/v1alpha1"
APPROVERS = "gpu-steward-approvers"
PRICES = {"NVIDIA-A100-SXM4-80GB": "4.10", "NVIDIA-H100-80GB-HBM3": "6.98"}
CHAPTERS = ("idle", "budget", "lease")


def say(msg: str, *, style: str = "") -> None:
    colors = {"head": "\033[1;36m", "ok": "\033[32m", "warn": "\033[33m", "dim": "\033[2m"}
    on = colors.get(style, "") if sys.stdout.isatty() else ""
    off = "\033[0m" if on else ""
    print(f"{on}{time.strftime('%H:%M:%S')}  {msg}{off}", flush=True)


def _policy() -> dict[str, Any]:
    return {"apiVersion": "gpusteward.dev/v1alpha1", "kind": "IdlePolicy", "metadata": {"name": "notebooks"},
            "spec": {"idle": {"gpuUtilPercent": 10, "for": "1m", "startupGrace": "0s"},
                     "notice": {"before": "20s", "channels": ["Slack", "Event"], "maxSnooze": "2h"},
                     "action": "Suspend", "dryRun": False}}


def _notebook_objects(use_crd: bool) -> tuple[list[dict[str, Any]], str, str]:
    container = {"name": "notebook", "image": "jupyter/pytorch-notebook:2026.11",
                 "resources": {"limits": {"nvidia.com/gpu": "1"}}}
    ann = {"gpusteward.dev/owner": "lin@example.com"}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "lin-notebook", "annotations": ann},
           "spec": {"replicas": 1, "serviceName": "lin-notebook", "selector": {"matchLabels": {"app": "lin-notebook"}},
                    "template": {"metadata": {"labels": {"app": "lin-notebook"}},
                                 "spec": {"nodeSelector": {"kubernetes.io/hostname": "gpu-node-a"},
                                          "containers": [container]}}}}
    if not use_crd:
        return [sts], "statefulset/lin-notebook", "StatefulSet"
    notebook = {"apiVersion": "kubeflow.org/v1", "kind": "Notebook",
                "metadata": {"name": "lin-notebook", "annotations": ann},
                "spec": {"template": {"spec": {"containers": [container]}}}}
    return [notebook, sts], "notebook/lin-notebook", "Notebook"


def _busy_job() -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "resnet-train", "annotations": {"gpusteward.dev/owner": "ada@example.com"}},
            "spec": {"template": {"metadata": {"annotations": {"gpusteward.dev/simulate-running": "true"}},
                                  "spec": {"restartPolicy": "Never",
                                           "nodeSelector": {"kubernetes.io/hostname": "gpu-node-b"},
                                           "containers": [{"name": "train", "image": "pytorch/pytorch:2.9",
                                                           "resources": {"limits": {"nvidia.com/gpu": "4"}}}]}}}}


@dataclass
class Demo:
    """What every chapter uses: the control plane, the GPU nodes' agents, the Slack receiver."""

    cp: ControlPlane
    nodes: list[SimulatedGpuNode]
    slack: SlackReceiver
    timings: dict[str, float] = field(default_factory=dict)
    workdir: Path | None = None
    stack: contextlib.ExitStack | None = None  # what a chapter starts (a controller) is stopped with the demo

    def apply(self, obj: dict[str, Any], ns: str, *who: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cp.kubectl("apply", "-n", ns, "-f", "-", *who, input=yaml.safe_dump(obj), check=check)

    def get(self, resource: str, name: str, ns: str) -> dict[str, Any]:
        out = self.cp.kubectl("get", resource, name, "-n", ns, "-o", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def show_slack(self, msg: Any, lines: int = 4) -> None:
        """A Slack message as its reader sees it (date tokens shown by their fallback)."""
        where = f" (reply in thread {msg.thread_ts})" if getattr(msg, "thread_ts", None) else ""
        say(f"Slack{where}:", style="head")
        for block in msg.payload.get("blocks") or [{"text": {"text": msg.payload.get("text", "")}}]:
            text = (block.get("text") or {}).get("text") or ""
            for line in _readable(text).splitlines()[:lines]:
                say("   | " + line, style="dim")
        buttons = [e["text"]["text"] for b in msg.payload.get("blocks") or [] if b.get("type") == "actions"
                   for e in b.get("elements", [])]
        if buttons:
            say("   | buttons: " + "  ".join(f"[{b}]" for b in buttons), style="warn")


def _readable(text: str) -> str:
    """Slack's date tokens as the fallback text a terminal can show."""
    import re

    text = re.sub(r"<!date\^\d+\^[^|>]*\|([^>]*)>", r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def selected(chapter: str | None) -> tuple[str, ...]:
    """The chapters to run: one by name, or all in order."""
    if chapter in (None, "all"):
        return CHAPTERS
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}: choose one of {', '.join(CHAPTERS)} (default: all)")
    return (chapter,)


def operator_settings(demo: Demo, webhook_port: int) -> dict[str, Any]:
    slack = demo.slack
    return {
        "evaluation_interval_seconds": "3", "sample_max_age_seconds": "30", "log_format": "console",
        "agent_endpoints": {n.name: n.url for n in demo.nodes}, "slack_webhook_url": slack.add_webhook(),
        "metrics_port": "0", "gpu_hour_prices": PRICES, "cost_annotation_min_interval_seconds": "5",
        # A signing secret and a bot token turn on the Snooze / Resume buttons (the bot tells who
        # clicked: only the owner may; the endpoint stays on loopback here) and threads.
        "slack_bot_token": slack.add_token(), "slack_api_url": slack.api_url,
        "slack_signing_secret": secrets.token_hex(16), "slack_interactions_listen_addr": "127.0.0.1",
        "slack_interactions_port": str(free_port()),
        # Admission webhooks (kopf registers them, self-signed, on loopback): who may approve a lease.
        "webhook_enabled": "true", "webhook_listen_addr": "127.0.0.1", "webhook_port": str(webhook_port),
        "approver_groups": [APPROVERS],
    }


def run_demo(keep: bool = False, chapter: str | None = None, kind: str | None = None) -> int:
    """``kind``: tell the idle chapter with a workload of that kind and its real controller."""
    chapters = selected(chapter)
    say("GPU Steward demo: a real control plane, fake GPU nodes, the operator, and a Slack receiver", style="head")
    workdir = Path(tempfile.mkdtemp(prefix="gpu-steward-demo-"))
    nodes: list[SimulatedGpuNode] = []
    with contextlib.ExitStack() as stack:
        cp = ControlPlane(workdir=workdir / "cp")
        say("starting etcd, kube-apiserver, controller-manager, scheduler and KWOK (first run builds them: minutes)")
        cp.start()
        stack.callback(cp.stop)
        say(f"control plane ready in {cp.start_seconds:.1f}s  (KUBECONFIG={cp.kubeconfig})", style="ok")
        crds = sorted((REPO / "crds").glob("*.yaml"))
        cp.apply_crds(*crds, *([NOTEBOOK_CRD] if NOTEBOOK_CRD.exists() else []))
        for name, product in (("gpu-node-a", "NVIDIA-A100-SXM4-80GB"), ("gpu-node-b", "NVIDIA-H100-80GB-HBM3")):
            cp.add_gpu_node(name, gpus=8, product=product)
            node = SimulatedGpuNode(name, gpus=8, product=product, window_seconds=10).start()
            stack.callback(node.stop)
            nodes.append(node)
            say(f"GPU node {name}: 8 x {product} at {PRICES[product]} USD/GPU-hour, agent on {node.url}")
        plugin = DevicePluginLoop(cp.api_client(), nodes).start()
        stack.callback(plugin.stop)
        slack = stack.enter_context(SlackReceiver())
        owners = (("lin@example.com", "U0LIN"), ("lead@example.com", "U0LEAD"), ("alice@example.com", "U0ALICE"))
        for email, uid in owners:
            slack.add_user(email, uid)  # owners the bot DMs and @mentions
        demo = Demo(cp, nodes, slack, workdir=workdir, stack=stack)
        port = free_port()
        op = OperatorProcess(cp.kubeconfig, workdir / "operator.log", settings=operator_settings(demo, port)).start()
        stack.callback(op.stop)
        say("operator started (logs: %s)" % (workdir / "operator.log"))
        wait_for(lambda: str(port) in cp.kubectl("get", "validatingwebhookconfiguration", "-o", "json",
                                                 check=False).stdout, 60, 1.0, "the admission webhooks")
        for name in chapters:
            began = time.monotonic()
            say(f"--- chapter: {name} ---", style="head")
            if name == "idle" and kind is not None:
                chapter_idle_kind(demo, kind)
            else:
                CHAPTER_RUNS[name](demo)
            demo.timings[name] = time.monotonic() - began
            say(f"chapter {name} done in {demo.timings[name]:.0f}s", style="ok")
        say("demo complete", style="head")
        if keep:
            say(f"cluster kept running: export KUBECONFIG={cp.kubeconfig}; Ctrl-C to stop")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def chapter_idle(demo: Demo) -> None:
    cp, nodes, slack = demo.cp, demo.nodes, demo.slack
    use_notebook = NOTEBOOK_CRD.exists()
    cp.create_namespace(NS)
    cp.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(_policy()))
    say("IdlePolicy 'notebooks': idle below 10% GPU for 1m -> Slack + Event notice -> suspend 20s later",
        style="head")
    objs, ref, kind = _notebook_objects(use_notebook)
    for obj in objs[:1]:
        cp.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(obj))
    if use_notebook:
        nb = json.loads(cp.kubectl("get", "notebook", "lin-notebook", "-n", NS, "-o", "json").stdout)
        objs[1]["metadata"]["ownerReferences"] = [{"apiVersion": "kubeflow.org/v1", "kind": "Notebook",
                                                   "name": "lin-notebook", "uid": nb["metadata"]["uid"],
                                                   "controller": True}]
        cp.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(objs[1]))
    cp.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(_busy_job()))
    nodes[1].set_util(NS, "resnet-train", 92)
    say(f"lin@example.com starts {ref} (1 GPU) and leaves it idle; ada@example.com trains on 4 GPUs at 92%")

    def state() -> dict[str, Any]:
        out = cp.kubectl("get", ref, "-n", NS, "-o", "json").stdout
        raw = (json.loads(out)["metadata"].get("annotations") or {}).get(IDLE_STATE_ANNOTATION)
        return json.loads(raw) if raw else {}

    wait_for(lambda: state().get("idleSince"), 90, 1.0, "the notebook to be seen idle")
    say(f"agent says: {ref} is at 0% GPU -> idle since {state()['idleSince']}", style="warn")
    msg = wait_for(lambda: next((m for m in slack.messages if "lin-notebook" in json.dumps(m.payload)), None),
                   150, 1.0, "the Slack warning")
    demo.show_slack(msg)
    wait_for(lambda: state().get("phase") == "Suspended", 90, 1.0, "the suspension")
    body = json.loads(cp.kubectl("get", ref, "-n", NS, "-o", "json").stdout)
    if kind == "Notebook":
        stopped = body["metadata"]["annotations"]["kubeflow-resource-stopped"]
        say(f"suspended: annotation kubeflow-resource-stopped={stopped}", style="ok")
    else:
        say(f"suspended: replicas {body['spec']['replicas']} (old count recorded)", style="ok")
    reply = wait_for(lambda: next((m for m in slack.messages if m.thread_ts == msg.ts and m.ts), None),
                     30, 1.0, "the suspension notice in the warning's thread")
    demo.show_slack(reply, lines=2)
    closed = slack.message(msg.channel, msg.ts)
    if closed is not None and closed.updated is not None:
        say("the warning was updated: " + _readable(str(closed.updated.get("text", ""))), style="dim")
    busy = json.loads(cp.kubectl("get", "job", "resnet-train", "-n", NS, "-o", "json").stdout)
    say(f"the busy training job is untouched (suspend={busy['spec'].get('suspend')})", style="ok")
    say(f"the owner resumes it:  gpu-steward resume {ref} -n {NS}", style="head")
    res = subprocess.run([sys.executable, "-m", "gpu_steward.cli", "resume", ref, "-n", NS,
                          "--kubeconfig", str(cp.kubeconfig)], capture_output=True, text=True, timeout=60)
    for line in (res.stdout + res.stderr).strip().splitlines():
        say("   " + line)
    wait_for(lambda: state().get("phase") == "Active", 60, 1.0, "the operator to see the workload running again")
    say("resumed; the operator's state for it is Active again", style="ok")
    status = cp.kubectl("get", "idlepolicies", "-n", NS).stdout
    say("kubectl get idlepolicies -n ml-team:")
    for line in status.strip().splitlines():
        say("   " + line)
    events = cp.kubectl("get", "events", "-n", NS, "--field-selector", "source=gpu-steward",
                        "-o", "custom-columns=REASON:.reason,MESSAGE:.message", check=False).stdout
    for line in events.strip().splitlines()[:8]:
        say("   " + line[:150], style="dim")


def _gpu_deployment(name: str, gpus: int, node: str, labels: dict[str, str] | None = None,
                    annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A Deployment whose pod keeps running on the KWOK node (a Job's pod would complete at once)."""
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name, **(labels or {})}},
                                  "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                                           "containers": [{"name": "main", "image": "pytorch/pytorch:2.9",
                                                           "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]}}}}


def _events(demo: Demo, ns: str, reason: str) -> list[dict[str, Any]]:
    out = demo.cp.kubectl("get", "events", "-n", ns, "-o", "json", check=False)
    items = json.loads(out.stdout).get("items", []) if out.returncode == 0 else []
    return [e for e in items if e.get("reason") == reason]


def _slack_about(demo: Demo, needle: str, seen: set[int]) -> list[Any]:
    """Slack messages (posted, not updates) mentioning ``needle`` not shown yet."""
    out = []
    for i, m in enumerate(demo.slack.messages):
        if i not in seen and m.kind != "chat.update" and needle in json.dumps(m.payload):
            seen.add(i)
            out.append(m)
    return out


def chapter_budget(demo: Demo) -> None:
    ns = "ml-budget"
    demo.cp.create_namespace(ns)
    demo.apply(_gpu_deployment("finetune", 4, "gpu-node-a"), ns)
    wait_for(lambda: any(p["status"].get("phase") == "Running" for p in json.loads(demo.cp.kubectl(
        "get", "pods", "-n", ns, "-l", "app=finetune", "-o", "json").stdout)["items"]), 60, 1.0, "finetune running")
    say("ml-budget trains on 4 x A100 (16.40 USD/h)")
    budget = {"apiVersion": API, "kind": "GPUBudget", "metadata": {"name": "team"},
              "spec": {"gpuQuota": 6, "spend": {"limit": "0.10", "currency": "USD", "period": "Daily",
                                                 "alertAt": [50, 80, 100]},
                       "onExceeded": "BlockNew", "notify": {"owners": ["lead@example.com"]}}}
    demo.apply(budget, ns)
    say("GPUBudget 'team': quota 6 GPUs, 0.10 USD a day (a demo-sized limit), alerts at 50/80/100 %, "
        "onExceeded: BlockNew", style="head")
    seen: set[int] = set()
    announced: list[int] = []
    deadline = time.monotonic() + 90
    while len(announced) < 3 and time.monotonic() < deadline:
        status = demo.get("gpubudget", "team", ns).get("status") or {}
        for t in status.get("announcedThresholds") or []:
            if t not in announced:
                announced.append(t)
                say(f"spend {status.get('spend')} {status.get('currency', 'USD')}: {t}% threshold crossed",
                    style="warn")
        for m in _slack_about(demo, ns, seen):
            demo.show_slack(m, lines=2)
        time.sleep(1.0)
    if len(announced) < 3:
        raise TimeoutError(f"thresholds announced: {announced}, expected 50, 80, 100")
    time.sleep(2)
    for m in _slack_about(demo, ns, seen):
        demo.show_slack(m, lines=2)
    notices = _events(demo, ns, "BudgetThreshold")
    say(f"one notice per threshold: {len(notices)} BudgetThreshold Events", style="ok")
    rq = wait_for(lambda: (lambda q: q if q.get("spec", {}).get("hard", {}).get("requests.nvidia.com/gpu") == "4"
                           and (q.get("status") or {}).get("hard", {}).get("requests.nvidia.com/gpu") == "4" else None)(
        demo.get("resourcequota", "gpusteward-team", ns)), 60, 1.0, "the quota to shrink to what is in use")
    say(f"BlockNew: ResourceQuota {rq['metadata']['name']} now allows "
        f"{rq['spec']['hard']['requests.nvidia.com/gpu']} GPUs (what is in use); running work is untouched",
        style="ok")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "one-more"},
           "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "pytorch/pytorch:2.9",
                                                              "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}
    say("a new GPU pod:  kubectl -n ml-budget apply -f one-more.yaml")
    refused = demo.apply(pod, ns, check=False)
    if refused.returncode == 0:
        raise RuntimeError("the new GPU pod was admitted; BlockNew should have refused it")
    say("   " + refused.stderr.strip().splitlines()[-1][:220], style="warn")
    say(f"kubectl get gpubudgets -n {ns}:")
    for line in demo.cp.kubectl("get", "gpubudgets", "-n", ns).stdout.strip().splitlines():
        say("   " + line)


LEASE_RBAC = [
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "demo-ml-user"},
     "rules": [{"apiGroups": ["gpusteward.dev"], "resources": ["experimentleases"],
                "verbs": ["get", "list", "create", "update", "patch"]},
               {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "create", "patch"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "demo-ml-user"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "demo-ml-user"},
     "subjects": [{"kind": "Group", "name": "ml", "apiGroup": "rbac.authorization.k8s.io"},
                  {"kind": "Group", "name": APPROVERS, "apiGroup": "rbac.authorization.k8s.io"}]},
]
ALICE = ("--as", "alice@example.com", "--as-group", "ml")
BOB = ("--as", "bob@example.com", "--as-group", APPROVERS)


def chapter_lease(demo: Demo) -> None:
    ns = "ml-lease"
    demo.cp.create_namespace(ns)
    for obj in LEASE_RBAC:
        demo.apply(obj, ns)
    budget = {"apiVersion": API, "kind": "GPUBudget", "metadata": {"name": "team"},
              "spec": {"gpuQuota": 1, "spend": {"limit": "1000", "currency": "USD", "period": "Monthly"},
                       "fastLane": {"maxGPUs": 1, "maxDuration": "1h"},
                       "notify": {"owners": ["lead@example.com"]}}}
    demo.apply(budget, ns)
    say("GPUBudget 'team' in ml-lease: quota 1 GPU; leases up to 1 GPU for 1h need no approval", style="head")
    lease = {"apiVersion": API, "kind": "ExperimentLease", "metadata": {"name": "sweep"},
             "spec": {"owner": "alice", "ownerEmail": "alice@example.com", "purpose": "lr sweep", "gpus": 2,
                      "duration": "1m", "gracePeriod": "20s", "onExpiry": "Suspend"}}
    say("alice asks for 2 GPUs for 1 minute (beyond the fast lane):  "
        "kubectl apply -f sweep.yaml --as alice@example.com")
    demo.apply(lease, ns, *ALICE)
    wait_for(lambda: (demo.get("experimentlease", "sweep", ns).get("status") or {}).get("phase") == "PendingApproval",
             60, 1.0, "the lease to wait for approval")
    say("phase: PendingApproval", style="warn")
    patch = '{"spec":{"approved":true}}'
    own = demo.cp.kubectl("patch", "experimentlease", "sweep", "-n", ns, "--type=merge", "-p", patch, *ALICE,
                          check=False)
    say("alice approves her own lease: " + (own.stderr.strip().splitlines() or ["(accepted?)"])[-1][:200],
        style="warn")
    say("bob (group gpu-steward-approvers) approves it:  kubectl patch experimentlease sweep ... --as bob@example.com "
        f"--as-group {APPROVERS}")
    demo.cp.kubectl("patch", "experimentlease", "sweep", "-n", ns, "--type=merge", "-p", patch, *BOB)
    status = wait_for(lambda: (lambda st: st if st.get("phase") == "Active" else None)(
        demo.get("experimentlease", "sweep", ns).get("status") or {}), 60, 1.0, "the lease to be active")
    say(f"Active, approved by {status.get('approvedBy')}, expires at {status.get('expiresAt')}", style="ok")
    quota = wait_for(lambda: (lambda q: q if q == "3" else None)(
        demo.get("resourcequota", "gpusteward-team", ns).get("spec", {}).get("hard", {})
        .get("requests.nvidia.com/gpu")), 60, 1.0, "the quota to grow by the lease")
    say(f"quota raised by the lease: {quota} GPUs")
    demo.apply(_gpu_deployment("sweep", 2, "gpu-node-b", labels={"gpusteward.dev/lease": "sweep"},
                               annotations={"gpusteward.dev/owner-email": "alice@example.com"}), ns, *ALICE)
    say("alice runs Deployment/sweep on 2 x H100 under the lease")
    seen: set[int] = set()
    wait_for(lambda: (demo.get("experimentlease", "sweep", ns).get("status") or {}).get("phase") in
             ("Expiring", "Expired"), 90, 1.0, "the expiry notice")
    say("20s before the end: LeaseExpiring", style="warn")
    for m in _slack_about(demo, "sweep", seen):
        demo.show_slack(m, lines=2)
    wait_for(lambda: (demo.get("experimentlease", "sweep", ns).get("status") or {}).get("phase") == "Expired",
             90, 1.0, "the lease to expire")
    say("the lease expired: its quota is released and it asks for the suspension of Deployment/sweep", style="warn")
    wait_for(lambda: demo.get("deployment", "sweep", ns).get("spec", {}).get("replicas") == 0, 120, 1.0,
             "the suspension (after its warning)")
    time.sleep(2)
    for m in _slack_about(demo, "sweep", seen):
        demo.show_slack(m, lines=2)
    say("Deployment/sweep suspended (replicas 0, old count recorded); resume with gpu-steward resume", style="ok")
    say(f"kubectl get experimentleases -n {ns}:")
    for line in demo.cp.kubectl("get", "experimentleases", "-n", ns).stdout.strip().splitlines():
        say("   " + line)


CHAPTER_RUNS: dict[str, Callable[[Demo], None]] = {"idle": chapter_idle, "budget": chapter_budget,
                                                   "lease": chapter_lease}


def add_demo_command(sub: Any) -> None:
    """The ``gpu-steward demo`` subcommand, registered through the ``gpu_steward.commands`` entry point."""
    demo = sub.add_parser("demo", help="start a local control plane with fake GPU nodes and run the operator on it")
    demo.add_argument("--keep", action="store_true", help="keep the local cluster running after the story")
    demo.add_argument("--chapter", choices=(*CHAPTERS, "all"), default="all",
                      help="one chapter: idle, budget or lease (default: all, in this order)")
    demo.add_argument("--kind", choices=KINDS,
                      help="tell the idle chapter with a workload of this kind, run by its real upstream controller "
                           "(built on first use; the Notebook by the test ground's stand-in)")
    demo.set_defaults(func=lambda args: run_demo(keep=args.keep, chapter=args.chapter, kind=args.kind))
