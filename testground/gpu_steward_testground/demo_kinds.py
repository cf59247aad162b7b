"""``gpu-steward demo --chapter idle --kind KIND``: the idle story told with a workload of another kind,
run by its real upstream controller (JobSet, KubeRay, Trainer, training operator, LWS; the Notebook by
the test ground's stand-in for Kubeflow's notebook controller). The controller is built on first use."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from gpu_steward_testground.examples import EXAMPLE_KINDS, Example, example
from gpu_steward_testground.gpunode import pod_gpus
from gpu_steward_testground.processes import wait_for

if TYPE_CHECKING:
    from gpu_steward_testground.demo import Demo

NS = "ml-kinds"
KINDS = EXAMPLE_KINDS


def start_controllers(demo: Demo, ex: Example) -> None:
    from gpu_steward_testground.demo import NOTEBOOK_CRD, say
    from gpu_steward_testground.notebookcontroller import NotebookStandIn
    from gpu_steward_testground.upstream import UpstreamController

    assert demo.stack is not None and demo.workdir is not None
    for name in ex.controllers:
        if name == "notebook":
            demo.cp.apply_crds(NOTEBOOK_CRD)
            stand_in = NotebookStandIn(demo.cp.kubeconfig, demo.workdir / "notebook-stand-in.log").start()
            demo.stack.callback(stand_in.stop)
            say("Kubeflow's notebook controller: the test ground's stand-in (StatefulSet, kubeflow-resource-stopped)")
            continue
        say(f"starting the real {name} controller (built from its Go module on first use: minutes)")
        ctrl = UpstreamController(name, demo.cp, demo.workdir / name).start()
        demo.stack.callback(ctrl.stop)
        say(f"{name} is up (log: {ctrl.log})", style="ok")


def gpus_in_use(demo: Demo) -> int:
    pods = json.loads(demo.cp.kubectl("get", "pods", "-n", NS, "-o", "json").stdout)["items"]
    return sum(pod_gpus(p) for p in pods if p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")
               and p.get("status", {}).get("phase") not in ("Succeeded", "Failed"))


def chapter_idle_kind(demo: Demo, kind: str) -> None:
    from gpu_steward_testground.demo import _policy, say

    ex = example(kind, f"{kind.lower()}-train", demo.nodes[0].name,
                 {"annotations": {"gpusteward.dev/owner": "lin@example.com"}})
    start_controllers(demo, ex)
    demo.cp.create_namespace(NS, labels=ex.namespace_labels)
    demo.cp.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(_policy()))
    for obj in ex.objects:
        demo.cp.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(obj))
    ref = f"{kind.lower()}/{ex.name}"
    wait_for(lambda: gpus_in_use(demo) == ex.gpus, 120, 1.0, f"the {kind}'s controller to start its pods")
    say(f"lin@example.com starts {ref}: its controller runs pods holding {ex.gpus} GPU(s), all idle")
    msg = wait_for(lambda: next((m for m in demo.slack.messages if ex.name in json.dumps(m.payload)), None),
                   180, 1.0, "the Slack warning")
    demo.show_slack(msg)

    def current() -> dict[str, Any]:
        return demo.get(ex.resource, ex.name, NS)

    wait_for(lambda: ex.suspended(current()), 120, 1.0, "the suspension")
    say(f"suspended at its own level: {'.'.join(ex.path)} set on the {kind}", style="ok")
    wait_for(lambda: gpus_in_use(demo) == 0, 120, 1.0, "its controller to delete its pods")
    say(f"the {kind}'s own controller deleted its pods: {ex.gpus} GPU(s) back on the node", style="ok")
    say(f"the owner resumes it:  gpu-steward resume {ref} -n {NS}", style="head")
    res = subprocess.run([sys.executable, "-m", "gpu_steward.cli", "resume", ref, "-n", NS,
                          "--kubeconfig", str(demo.cp.kubeconfig)], capture_output=True, text=True, timeout=60)
    for line in (res.stdout + res.stderr).strip().splitlines():
        say("   " + line)
    wait_for(lambda: gpus_in_use(demo) == ex.gpus, 120, 1.0, "its pods to come back")
    say(f"its controller brought its pods back ({ex.gpus} GPU(s))", style="ok")
