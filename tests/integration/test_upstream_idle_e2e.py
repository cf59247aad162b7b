"""Idle workloads of the upstream controllers, end to end: the real JobSet, KubeRay, Trainer, training
operator and LWS controllers (and the test ground's stand-in for Kubeflow's notebook controller) run
beside the control plane, the operator (a real process) warns the owner, suspends the workload at its
own level, the workload's controller deletes its pods (the GPUs go back to the node), the workload
stays suspended across evaluation passes, and resume brings the pods back.

All scenarios start together (each policy needs an idle minute), then each test checks its own story.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from fixtures.idle_env import IdleEnv, idle_env, policy
from fixtures.upstream_env import gpus_in_use, passes
from gpu_steward_testground.examples import EXAMPLE_KINDS, Example, example, rayjob
from gpu_steward_testground.processes import free_port, wait_for
from gpu_steward_testground.runner import ControlPlane
from gpu_steward_testground.upstream import UpstreamController

pytestmark = pytest.mark.cluster
NODE = "upstream-gpu-a"
OWNER = {"annotations": {"gpusteward.dev/owner": "ada@example.com"}}
# One namespace per kind; the RayJob's has a second RayJob (1 GPU) that KubeRay could not suspend.
STORIES = {kind: (f"up-{kind.lower()}", example(kind, f"{kind.lower()}-idle", NODE, OWNER)) for kind in EXAMPLE_KINDS}
OTHERS = {"RayJob": 1}


@dataclass
class Env:
    idle: IdleEnv
    metrics: str


@pytest.fixture(scope="module")
def env(cluster: ControlPlane, jobset_controller: UpstreamController, kuberay_controller: UpstreamController,
        trainer_controller: UpstreamController, training_operator_controller: UpstreamController,
        lws_controller: UpstreamController, notebook_controller: Any,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    port = free_port()
    with idle_env(cluster, tmp_path_factory.mktemp("upstream"), NODE, settings={"metrics_port": str(port)}) as e:
        for kind, (ns, ex) in STORIES.items():
            e.cluster.create_namespace(ns, labels=ex.namespace_labels)
            for obj in ex.objects:
                e.apply(obj, ns)  # kubectl leaves a cluster-scoped object (the TrainJob's runtime) unnamespaced
            e.apply(policy(kind.lower()), ns)
        # KubeRay fails a RayJob that keeps its cluster if it is suspended: that one is only warned about
        e.apply(rayjob("ray-keep", NODE, OWNER, worker_gpus=1, shutdown_after=False), STORIES["RayJob"][0])
        # every controller started its GPU pods (checked here: each test's story goes on without it)
        for kind, (ns, ex) in STORIES.items():
            wait_for(lambda ns=ns, ex=ex, kind=kind: gpus_in_use(e, ns) == ex.gpus + OTHERS.get(kind, 0),
                     timeout=120, what=f"the {kind}'s controller to start its GPU pods")
        yield Env(e, f"http://127.0.0.1:{port}/metrics")
        print(e.operator.log_text()[-5000:])
        for c in (jobset_controller, kuberay_controller, trainer_controller, training_operator_controller,
                  lws_controller):
            print(f"--- {c.name}", c.log_text()[-2000:])


def _suspended(e: IdleEnv, ns: str, ex: Example) -> bool:
    return ex.suspended(e.get(ex.api_version, ex.kind, ex.name, ns))


@pytest.mark.parametrize("kind", sorted(STORIES))
def test_idle_workload_is_warned_suspended_emptied_kept_suspended_and_resumed(env: Env, kind: str) -> None:
    (ns, ex), e, others = STORIES[kind], env.idle, OTHERS.get(kind, 0)
    wait_for(lambda: e.notices(ex.name, "warning"), timeout=180, what=f"the warning for the idle {kind}")
    wait_for(lambda: _suspended(e, ns, ex), timeout=120, what=f"the {kind} to be suspended at its own level")
    # its own controller, not GPU Steward, deletes the pods: the node gets its GPUs back
    wait_for(lambda: gpus_in_use(e, ns) == others, timeout=120, what=f"the {kind}'s pods to go")
    wait_for(lambda: e.notices(ex.name, "suspended"), timeout=30, what="the suspended notice")

    seen = passes(env.metrics)
    wait_for(lambda: passes(env.metrics) >= seen + 2, timeout=60, what="two more evaluation passes")
    assert _suspended(e, ns, ex) and gpus_in_use(e, ns) == others  # nobody reverted it

    e.cluster.kubectl("annotate", ex.resource, ex.name, "-n", ns, "gpusteward.dev/resume=true")
    wait_for(lambda: not _suspended(e, ns, ex), timeout=60, what=f"the {kind} to be resumed")
    wait_for(lambda: gpus_in_use(e, ns) == ex.gpus + others, timeout=120,
             what=f"the {kind}'s controller to bring its GPU pods back")
    wait_for(lambda: e.notices(ex.name, "resumed"), timeout=30, what="the resumed notice")


def test_rayjob_kuberay_would_fail_if_suspended_is_warned_but_never_suspended(env: Env) -> None:
    e, (ns, ray) = env.idle, STORIES["RayJob"]
    wait_for(lambda: [m for m in e.notices("ray-keep") if "no action will be taken" in str(m.payload.get("text"))],
             timeout=180, what="the notify-only warning")
    wait_for(lambda: _suspended(e, ns, ray) or e.notices(ray.name, "suspended"), timeout=180,
             what="the suspendable RayJob beside it to be suspended")
    seen = passes(env.metrics)
    wait_for(lambda: passes(env.metrics) >= seen + 2, timeout=60, what="two more evaluation passes")
    keep = e.get("ray.io/v1", "RayJob", "ray-keep", ns)
    assert not keep["spec"].get("suspend")
    assert keep.get("status", {}).get("jobDeploymentStatus") != "ValidationFailed"
    assert e.notices("ray-keep", "suspended") == []
    conditions = (e.get("gpusteward.dev/v1alpha1", "IdlePolicy", "rayjob", ns).get("status") or {}).get(
        "conditions") or []
    protected = next(c for c in conditions if c["type"] == "DataProtected")
    assert protected["status"] == "True" and "shutdownAfterJobFinishes" in protected["message"]
