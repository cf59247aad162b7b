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
from fixtures.upstream_env import gpu_pod_template, gpus_in_use, passes, rayjob
from gpu_steward_testground.processes import free_port, wait_for
from gpu_steward_testground.runner import ControlPlane
from gpu_steward_testground.upstream import UpstreamController, namespace_label

pytestmark = pytest.mark.cluster
NODE = "upstream-gpu-a"
JOBSET_API, RAY_API = "jobset.x-k8s.io/v1alpha2", "ray.io/v1"
TRAINER_API, KUBEFLOW_API, LWS_API = "trainer.kubeflow.org/v1alpha1", "kubeflow.org/v1", "leaderworkerset.x-k8s.io/v1"
STOPPED = "kubeflow-resource-stopped"
ANY = object()  # any value present


@dataclass
class Story:
    """One workload: where it lives, the field its controller honours and the value that means
    suspended, how many GPUs it runs on (``gpus_in_use`` counts the whole namespace: ``others`` are the
    GPUs of workloads beside it)."""

    api_version: str
    kind: str
    name: str
    namespace: str
    gpus: int
    path: tuple[str, ...] = ("spec", "suspend")
    value: Any = True
    others: int = 0

    def suspended(self, env: IdleEnv) -> bool:
        field: Any = env.get(self.api_version, self.kind, self.name, self.namespace)
        for part in self.path:
            field = field.get(part) if isinstance(field, dict) else None
        return field is not None if self.value is ANY else field == self.value and type(field) is type(self.value)

    @property
    def resource(self) -> str:
        plural = self.kind.lower() + "s"
        return plural if "." not in self.api_version.split("/")[0] else f"{plural}.{self.api_version.split('/')[0]}"


STORIES = {
    "JobSet": Story(JOBSET_API, "JobSet", "js-train", "up-jobset", 2),
    "RayJob": Story(RAY_API, "RayJob", "ray-train", "up-ray", 2, others=1),
    "TrainJob": Story(TRAINER_API, "TrainJob", "tj-train", "up-trainjob", 2),
    "PyTorchJob": Story(KUBEFLOW_API, "PyTorchJob", "pt-train", "up-pytorch", 2, ("spec", "runPolicy", "suspend")),
    "LeaderWorkerSet": Story(LWS_API, "LeaderWorkerSet", "lws-serve", "up-lws", 2, ("spec", "replicas"), 0),
    "Notebook": Story(KUBEFLOW_API, "Notebook", "nb-lab", "up-notebook", 1, ("metadata", "annotations", STOPPED),
                      ANY),
}


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
        _start_scenarios(e)
        # every controller started its GPU pods (checked here: each test's story goes on without it)
        for story in STORIES.values():
            wait_for(lambda s=story: gpus_in_use(e, s.namespace) == s.gpus + s.others, timeout=120,
                     what=f"the {story.kind}'s controller to start its GPU pods")
        yield Env(e, f"http://127.0.0.1:{port}/metrics")
        print(e.operator.log_text()[-5000:])
        for c in (jobset_controller, kuberay_controller, trainer_controller, training_operator_controller,
                  lws_controller):
            print(f"--- {c.name}", c.log_text()[-2000:])


def _owner() -> dict[str, Any]:
    return {"annotations": {"gpusteward.dev/owner": "ada@example.com"}}


def _start_scenarios(e: IdleEnv) -> None:
    e.cluster.create_namespace("up-jobset", labels={namespace_label("jobset"): "on"})
    e.apply({"apiVersion": JOBSET_API, "kind": "JobSet", "metadata": {"name": "js-train", **_owner()},
             "spec": {"replicatedJobs": [{"name": "workers", "replicas": 1, "template": {"spec": {
                 "parallelism": 2, "completions": 2, "backoffLimit": 0,
                 "template": gpu_pod_template(NODE)}}}]}}, "up-jobset")
    e.apply(policy("jobsets"), "up-jobset")

    e.cluster.create_namespace("up-ray")
    e.apply(rayjob("ray-train", NODE, _owner()), "up-ray")
    # KubeRay fails a RayJob that keeps its cluster if it is suspended: that one is only warned about
    e.apply(rayjob("ray-keep", NODE, _owner(), worker_gpus=1, shutdown_after=False), "up-ray")
    e.apply(policy("rayjobs"), "up-ray")

    # A TrainJob runs as a JobSet (JobSet's webhooks default it) from a runtime the platform team provides.
    e.cluster.create_namespace("up-trainjob", labels={namespace_label("jobset"): "on"})
    e.apply({"apiVersion": TRAINER_API, "kind": "ClusterTrainingRuntime", "metadata": {"name": "gs-torch"}, "spec": {
        "mlPolicy": {"numNodes": 1, "torch": {"numProcPerNode": "auto"}},
        "template": {"spec": {"replicatedJobs": [{"name": "node", "template": {
            "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
            "spec": {"template": gpu_pod_template(NODE, gpus=0, container="node")}}}]}}}})
    e.apply({"apiVersion": TRAINER_API, "kind": "TrainJob", "metadata": {"name": "tj-train", **_owner()},
             "spec": {"runtimeRef": {"name": "gs-torch"}, "trainer": {
                 "numNodes": 1, "resourcesPerNode": {"limits": {"nvidia.com/gpu": "2"}}}}}, "up-trainjob")
    e.apply(policy("trainjobs"), "up-trainjob")

    e.cluster.create_namespace("up-pytorch")
    replica = {"replicas": 1, "restartPolicy": "OnFailure", "template": gpu_pod_template(NODE, container="pytorch")}
    e.apply({"apiVersion": KUBEFLOW_API, "kind": "PyTorchJob", "metadata": {"name": "pt-train", **_owner()},
             "spec": {"pytorchReplicaSpecs": {"Master": replica, "Worker": replica}}}, "up-pytorch")
    e.apply(policy("pytorchjobs"), "up-pytorch")

    # LWS's pod webhook labels each pod with its group (its controller relies on it)
    e.cluster.create_namespace("up-lws", labels={namespace_label("lws"): "on"})
    group = gpu_pod_template(NODE)
    del group["spec"]["restartPolicy"]  # StatefulSet pods restart Always
    e.apply({"apiVersion": LWS_API, "kind": "LeaderWorkerSet", "metadata": {"name": "lws-serve", **_owner()},
             "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": 2, "workerTemplate": group}}}, "up-lws")
    e.apply(policy("leaderworkersets"), "up-lws")

    e.cluster.create_namespace("up-notebook")
    lab = gpu_pod_template(NODE, container="lab")["spec"]
    del lab["restartPolicy"]
    e.apply({"apiVersion": KUBEFLOW_API, "kind": "Notebook", "metadata": {"name": "nb-lab", **_owner()},
             "spec": {"template": {"spec": lab}}}, "up-notebook")  # the Notebook's template has a spec only
    e.apply(policy("notebooks"), "up-notebook")


@pytest.mark.parametrize("kind", sorted(STORIES))
def test_idle_workload_is_warned_suspended_emptied_kept_suspended_and_resumed(env: Env, kind: str) -> None:
    story, e = STORIES[kind], env.idle
    wait_for(lambda: e.notices(story.name, "warning"), timeout=180, what=f"the warning for the idle {kind}")
    wait_for(lambda: story.suspended(e), timeout=120, what=f"the {kind} to be suspended through its spec.suspend")
    # its own controller, not GPU Steward, deletes the pods: the node gets its GPUs back
    wait_for(lambda: gpus_in_use(e, story.namespace) == story.others, timeout=120, what=f"the {kind}'s pods to go")
    wait_for(lambda: e.notices(story.name, "suspended"), timeout=30, what="the suspended notice")

    seen = passes(env.metrics)
    wait_for(lambda: passes(env.metrics) >= seen + 2, timeout=60, what="two more evaluation passes")
    assert story.suspended(e) and gpus_in_use(e, story.namespace) == story.others  # nobody reverted it

    e.cluster.kubectl("annotate", story.resource, story.name, "-n", story.namespace, "gpusteward.dev/resume=true")
    wait_for(lambda: not story.suspended(e), timeout=60, what=f"the {kind} to be resumed")
    wait_for(lambda: gpus_in_use(e, story.namespace) == story.gpus + story.others, timeout=120,
             what=f"the {kind}'s controller to bring its GPU pods back")
    wait_for(lambda: e.notices(story.name, "resumed"), timeout=30, what="the resumed notice")


def test_rayjob_kuberay_would_fail_if_suspended_is_warned_but_never_suspended(env: Env) -> None:
    e = env.idle
    wait_for(lambda: [m for m in e.notices("ray-keep") if "no action will be taken" in str(m.payload.get("text"))],
             timeout=180, what="the notify-only warning")
    wait_for(lambda: STORIES["RayJob"].suspended(e), timeout=180,
             what="the suspendable RayJob beside it to be suspended")
    seen = passes(env.metrics)
    wait_for(lambda: passes(env.metrics) >= seen + 2, timeout=60, what="two more evaluation passes")
    keep = e.get(RAY_API, "RayJob", "ray-keep", "up-ray")
    assert not keep["spec"].get("suspend")
    assert keep.get("status", {}).get("jobDeploymentStatus") != "ValidationFailed"
    assert e.notices("ray-keep", "suspended") == []
    conditions = (e.get("gpusteward.dev/v1alpha1", "IdlePolicy", "rayjobs", "up-ray").get("status") or {}).get(
        "conditions") or []
    protected = next(c for c in conditions if c["type"] == "DataProtected")
    assert protected["status"] == "True" and "shutdownAfterJobFinishes" in protected["message"]
