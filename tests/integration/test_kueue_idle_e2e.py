"""Kueue-admitted workloads, end to end with the real Kueue (and KubeRay): GPU Steward suspends an idle
Job or RayJob by deactivating its Kueue Workload (Kueue owns `suspend`); Kueue evicts it, its pods go
and the ClusterQueue's GPU usage drops; resume reactivates the Workload and Kueue admits it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from fixtures.idle_env import IdleEnv, idle_env, policy
from fixtures.upstream_env import gpus_in_use
from gpu_steward_testground.examples import gpu_pod_template, rayjob
from gpu_steward_testground.processes import wait_for
from gpu_steward_testground.runner import ControlPlane
from gpu_steward_testground.upstream import UpstreamController, namespace_label

pytestmark = pytest.mark.cluster
NODE = "kueue-gpu-a"
KUEUE_API, RAY_API = "kueue.x-k8s.io/v1beta2", "ray.io/v1"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


@dataclass
class Story:
    api_version: str
    kind: str
    name: str
    namespace: str
    cluster_queue: str
    gpus: int


STORIES = {
    "Job": Story("batch/v1", "Job", "kq-train", "kq-job", "cq-job", 2),
    "RayJob": Story(RAY_API, "RayJob", "kq-ray", "kq-ray", "cq-ray", 2),
}


def _queue(e: IdleEnv, namespace: str, cluster_queue: str) -> None:
    """A ClusterQueue with 4 GPUs of one flavor serving ``namespace`` through LocalQueue ``team``."""
    e.cluster.create_namespace(namespace, labels={namespace_label("kueue"): "on"})
    e.apply({"apiVersion": KUEUE_API, "kind": "ClusterQueue", "metadata": {"name": cluster_queue}, "spec": {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "resourceGroups": [{"coveredResources": ["nvidia.com/gpu"], "flavors": [
            {"name": "gpu-flavor", "resources": [{"name": "nvidia.com/gpu", "nominalQuota": 4}]}]}]}})
    e.apply({"apiVersion": KUEUE_API, "kind": "LocalQueue", "metadata": {"name": "team"},
             "spec": {"clusterQueue": cluster_queue}}, namespace)


def _meta(name: str) -> dict[str, Any]:
    return {"name": name, "labels": {QUEUE_LABEL: "team"}, "annotations": {"gpusteward.dev/owner": "ada@example.com"}}


@pytest.fixture(scope="module")
def env(cluster: ControlPlane, kueue_controller: UpstreamController,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdleEnv]:
    with idle_env(cluster, tmp_path_factory.mktemp("kueue"), NODE) as e:
        e.apply({"apiVersion": KUEUE_API, "kind": "ResourceFlavor", "metadata": {"name": "gpu-flavor"}})
        _queue(e, "kq-job", "cq-job")
        e.apply({"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta("kq-train"), "spec": {
            "parallelism": 2, "completions": 2, "backoffLimit": 0, "template": gpu_pod_template(NODE)}}, "kq-job")
        e.apply(policy("queued-jobs"), "kq-job")

        _queue(e, "kq-ray", "cq-ray")
        meta = _meta("kq-ray")
        e.apply(rayjob("kq-ray", NODE, {k: v for k, v in meta.items() if k != "name"}), "kq-ray")
        e.apply(policy("queued-rayjobs"), "kq-ray")
        # Kueue admitted each and its pods run (checked here: each test's story goes on without it)
        for story in STORIES.values():
            wait_for(lambda s=story: _admitted(_workload(e, s)), timeout=120, what=f"Kueue to admit the {story.kind}")
            wait_for(lambda s=story: gpus_in_use(e, s.namespace) == s.gpus, timeout=120, what="its GPU pods to run")
            wait_for(lambda s=story: _cq_gpus(e, s.cluster_queue) == s.gpus, timeout=60,
                     what="the ClusterQueue to count them")
        yield e
        print(e.operator.log_text()[-5000:])
        print(kueue_controller.log_text()[-5000:])


def _workload(e: IdleEnv, story: Story) -> dict[str, Any] | None:
    owned = [w for w in e.kube.list(KUEUE_API, "Workload", story.namespace)
             if any(r.get("name") == story.name and r.get("kind") == story.kind
                    for r in w["metadata"].get("ownerReferences") or [])]
    return owned[0] if owned else None


def _admitted(wl: dict[str, Any] | None) -> bool:
    conds = ((wl or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Admitted" and c["status"] == "True" for c in conds)


def _cq_gpus(e: IdleEnv, name: str) -> float:
    cq = e.kube.get(KUEUE_API, "ClusterQueue", name, None) or {}
    total = 0.0
    for flavor in (cq.get("status") or {}).get("flavorsUsage") or []:
        for res in flavor.get("resources") or []:
            if res["name"] == "nvidia.com/gpu":
                total += float(res.get("total") or 0)
    return total


@pytest.mark.parametrize("kind", sorted(STORIES))
def test_idle_kueue_workload_is_deactivated_evicted_and_readmitted(env: IdleEnv, kind: str) -> None:
    story = STORIES[kind]
    wait_for(lambda: env.notices(story.name, "warning"), timeout=180, what=f"the warning for the idle {kind}")
    wait_for(lambda: (_workload(env, story) or {}).get("spec", {}).get("active") is False, timeout=120,
             what="its Kueue Workload to be deactivated")
    wait_for(lambda: not _admitted(_workload(env, story)), timeout=60, what="Kueue to evict it")
    wait_for(lambda: gpus_in_use(env, story.namespace) == 0, timeout=120, what="its pods to go")
    wait_for(lambda: _cq_gpus(env, story.cluster_queue) == 0, timeout=60, what="the ClusterQueue's GPU usage to drop")
    # Kueue, not GPU Steward, suspended the workload itself
    assert env.get(story.api_version, story.kind, story.name, story.namespace)["spec"].get("suspend") is True
    wait_for(lambda: env.notices(story.name, "suspended"), timeout=30, what="the suspended notice")

    resource = "job" if kind == "Job" else "rayjobs.ray.io"
    env.cluster.kubectl("annotate", resource, story.name, "-n", story.namespace, "gpusteward.dev/resume=true")
    wait_for(lambda: (_workload(env, story) or {}).get("spec", {}).get("active") is True, timeout=60,
             what="its Workload to be active again")
    wait_for(lambda: _admitted(_workload(env, story)), timeout=120, what="Kueue to admit it again")
    wait_for(lambda: gpus_in_use(env, story.namespace) == story.gpus, timeout=120, what="its pods to come back")
    wait_for(lambda: _cq_gpus(env, story.cluster_queue) == story.gpus, timeout=60, what="the usage to come back")
