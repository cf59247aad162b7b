"""``gpu-steward demo``: the whole idle-policy story on a local control plane, narrated.

A real control plane (built from Go modules on first use), two KWOK GPU nodes with real agents on the
fake NVML, a local Slack receiver, and the operator as a real process. A notebook goes idle, its
owner is warned on Slack, it is suspended, then the owner resumes it. Windows are short (one idle
minute, a 20-second notice), so the story takes about three minutes.
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
from pathlib import Path
from typing import Any

import yaml

from gpu_steward.workloads.model import IDLE_STATE_ANNOTATION
from gpu_steward_testground.deviceplugin import DevicePluginLoop
from gpu_steward_testground.gpunode import SimulatedGpuNode
from gpu_steward_testground.operator_process import OperatorProcess
from gpu_steward_testground.processes import free_port, wait_for
from gpu_steward_testground.runner import ControlPlane
from gpu_steward_testground.slackreceiver import SlackReceiver

REPO = Path(__file__).resolve().parents[2]
NS = "ml-team"
NOTEBOOK_CRD = REPO.parent / "shared" / "upstream-crds" / "kubeflow.org_notebooks.yaml"


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


def run_demo(keep: bool = False) -> int:
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
        use_notebook = NOTEBOOK_CRD.exists()
        cp.apply_crds(*crds, *([NOTEBOOK_CRD] if use_notebook else []))
        for name, product in (("gpu-node-a", "NVIDIA-A100-SXM4-80GB"), ("gpu-node-b", "NVIDIA-H100-80GB-HBM3")):
            cp.add_gpu_node(name, gpus=8, product=product)
            node = SimulatedGpuNode(name, gpus=8, product=product, window_seconds=10).start()
            stack.callback(node.stop)
            nodes.append(node)
            say(f"GPU node {name}: 8 x {product}, agent on {node.url}")
        plugin = DevicePluginLoop(cp.api_client(), nodes).start()
        stack.callback(plugin.stop)
        slack = stack.enter_context(SlackReceiver())
        webhook = slack.add_webhook()
        slack.add_user("lin@example.com", "U0LIN")  # the notebook's owner, DMed by the bot
        op = OperatorProcess(cp.kubeconfig, workdir / "operator.log", settings={
            "evaluation_interval_seconds": "3", "sample_max_age_seconds": "30", "log_format": "console",
            "agent_endpoints": {n.name: n.url for n in nodes}, "slack_webhook_url": webhook, "metrics_port": "0",
            # A signing secret and a bot token turn on the Snooze / Resume buttons (the bot tells who
            # clicked: only the owner may; the endpoint stays on loopback here).
            "slack_bot_token": slack.add_token(), "slack_api_url": slack.api_url,
            "slack_signing_secret": secrets.token_hex(16), "slack_interactions_listen_addr": "127.0.0.1",
            "slack_interactions_port": str(free_port()),
        }).start()
        stack.callback(op.stop)
        say("operator started (logs: %s)" % (workdir / "operator.log"))

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
        say("Slack message received by the owner:", style="head")
        for line in str(msg.payload.get("text", "")).splitlines():
            say("   | " + line, style="warn")
        for block in msg.payload.get("blocks", [])[:4]:
            text = (block.get("text") or {}).get("text") or ""
            for line in text.splitlines():
                say("   | " + line, style="dim")
        buttons = [e["text"]["text"] for b in msg.payload.get("blocks", []) if b.get("type") == "actions"
                   for e in b.get("elements", [])]
        if buttons:
            say("   | buttons: " + "  ".join(f"[{b}]" for b in buttons), style="warn")
        wait_for(lambda: state().get("phase") == "Suspended", 90, 1.0, "the suspension")
        body = json.loads(cp.kubectl("get", ref, "-n", NS, "-o", "json").stdout)
        if kind == "Notebook":
            stopped = body["metadata"]["annotations"]["kubeflow-resource-stopped"]
            say(f"suspended: annotation kubeflow-resource-stopped={stopped}", style="ok")
        else:
            say(f"suspended: replicas {body['spec']['replicas']} (old count recorded)", style="ok")
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
        say("demo complete", style="head")
        if keep:
            say(f"cluster kept running: export KUBECONFIG={cp.kubeconfig}; Ctrl-C to stop")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def add_demo_command(sub: Any) -> None:
    """The ``gpu-steward demo`` subcommand, registered through the ``gpu_steward.commands`` entry point."""
    demo = sub.add_parser("demo", help="start a local control plane with fake GPU nodes and run the operator on it")
    demo.add_argument("--keep", action="store_true", help="keep the local cluster running after the story")
    demo.set_defaults(func=lambda args: run_demo(keep=args.keep))
