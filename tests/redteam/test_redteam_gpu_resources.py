"""Attempt: ask for GPUs under another resource name than ``nvidia.com/gpu`` (a MIG slice, a shared
time-sliced replica, an AMD GPU) so that the budget's quota, the pod index and idle policies miss it.

Every attempt must be counted: by ``policy.gpus`` (the one place that says which resources are GPUs),
the watch filter and the index (so idle policies and the cost pass see the pod), and the ResourceQuota
(the apiserver refuses the pod; the cluster test at the end)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from gpu_steward.budgets.budget import advertised_gpu_resources, gpus_used_by_resource
from gpu_steward.index import Registry, slim_pod
from gpu_steward.policy import budget as pb
from gpu_steward.policy import cost as c
from gpu_steward.policy import gpus

SNEAKY = ["nvidia.com/mig-1g.10gb", "nvidia.com/mig-3g.40gb", "nvidia.com/gpu.shared", "amd.com/gpu",
          "nvidia.com/mig-1g.5gb.shared"]


def pod(resource: str, n: int = 2, uid: str = "u1", where: str = "limits", phase: str = "Running") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p-{uid}", "namespace": "ml", "uid": uid},
            "spec": {"nodeName": "n1", "containers": [{"name": "main", "resources": {where: {resource: str(n),
                                                                                            "cpu": "1"}}}]},
            "status": {"phase": phase, "startTime": "2026-03-10T10:00:00Z"}}


@pytest.mark.parametrize("resource", SNEAKY)
@pytest.mark.redteam("quota")
def test_every_gpu_resource_is_a_gpu(resource):
    assert gpus.is_gpu_resource(resource)
    assert c.pod_gpus(pod(resource)) == 2
    assert c.pod_gpus(pod(resource, where="requests")) == 2


def test_non_gpu_resources_are_not_gpus():
    for name in ("cpu", "memory", "nvidia.com/gpux", "example.com/gpu", "hugepages-2Mi", "nvidia.com/mig"):
        assert not gpus.is_gpu_resource(name), name


@pytest.mark.parametrize("resource", SNEAKY)
@pytest.mark.redteam("quota")
def test_index_watches_pods_asking_for_any_gpu_resource(resource):
    reg = Registry()
    reg.pod_event("ADDED", pod(resource))
    [entry] = reg.pods()
    assert entry.gpus == 2
    [slim] = reg.pod_bodies()
    assert c.pod_gpus(slim) == 2 and slim == slim_pod(pod(resource))


@pytest.mark.redteam("quota")
def test_cost_counts_slices_like_gpus():
    now = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
    pc = c.pod_cost(pod("nvidia.com/mig-1g.10gb"), Decimal("2"), now)
    assert pc.gpus == 2 and pc.cost == Decimal("8")  # 2 slices x 2 h x 2.00


@pytest.mark.redteam("quota")
def test_mixed_resources_add_up_and_init_containers_count_per_resource():
    p = pod("nvidia.com/gpu", 1)
    p["spec"]["containers"].append({"name": "b", "resources": {"limits": {"nvidia.com/mig-1g.10gb": "2"}}})
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"limits": {"amd.com/gpu": "3"}}}]
    assert gpus.pod_gpu_resources(p) == {"nvidia.com/gpu": 1, "nvidia.com/mig-1g.10gb": 2, "amd.com/gpu": 3}
    assert c.pod_gpus(p) == 6


@pytest.mark.redteam("quota")
def test_quota_caps_every_gpu_resource_and_their_sum():
    # Nothing in use: every GPU resource (well-known, advertised by a node) may reach gpuQuota.
    nodes = [{"status": {"allocatable": {"cpu": "8", "nvidia.com/mig-2g.20gb": "3"}}}]
    advertised = advertised_gpu_resources(nodes)
    assert advertised == {"nvidia.com/mig-2g.20gb"}
    hard = pb.quota_hard(4, {}, advertised)
    for r in ("nvidia.com/gpu", "nvidia.com/gpu.shared", "amd.com/gpu", "nvidia.com/mig-2g.20gb"):
        assert hard[f"requests.{r}"] == "4"
    # Three MIG slices in use: the other kinds shrink to the one GPU left of the namespace's four.
    used = gpus_used_by_resource([pod("nvidia.com/mig-1g.10gb", 3), pod("nvidia.com/gpu", 5, uid="done",
                                                                        phase="Succeeded")])
    assert used == {"nvidia.com/mig-1g.10gb": 3}
    hard = pb.quota_hard(4, used, advertised)
    assert hard["requests.nvidia.com/mig-1g.10gb"] == "4"
    assert hard["requests.nvidia.com/gpu"] == hard["requests.amd.com/gpu"] == "1"
    # Blocked (quota shrunk to what is in use): no kind may grow.
    hard = pb.quota_hard(3, used, advertised)
    assert hard["requests.nvidia.com/mig-1g.10gb"] == "3" and hard["requests.nvidia.com/gpu"] == "0"


# ---- on the real apiserver: the ResourceQuota refuses the pod -----------------------------------------


@pytest.mark.cluster
@pytest.mark.parametrize("resource", ["nvidia.com/mig-1g.10gb", "nvidia.com/gpu.shared", "amd.com/gpu"])
@pytest.mark.redteam("quota")
def test_budget_quota_refuses_other_gpu_resources(cluster, resource):
    from fixtures.budget_cluster import API, apply, gpu_pod, install_crds, new_namespace
    from gpu_steward.budgets.budget import reconcile_budget
    from gpu_steward.budgets.notifier import RecordingNotifier
    from gpu_steward.kube import Kube
    from gpu_steward.settings import Settings
    from gpu_steward_testground.processes import wait_for
    from gpu_steward_testground.runner import gpu_node

    install_crds(cluster)
    kube = Kube(cluster.api_client())
    # A node that advertises MIG slices (a MIG profile gets its quota entry because a node offers it).
    node = gpu_node("rt-mig-node", gpus=0)
    node["status"]["capacity"]["nvidia.com/mig-1g.10gb"] = node["status"]["allocatable"]["nvidia.com/mig-1g.10gb"] = "7"
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(node))
    ns = new_namespace(cluster, "rt-gpures")
    apply(cluster, {"apiVersion": API, "kind": "GPUBudget", "metadata": {"name": "main", "namespace": ns},
                    "spec": {"gpuQuota": 2, "notify": {"owners": ["lead@example.com"]}}})
    budget = kube.get(API, "GPUBudget", "main", ns)
    reconcile_budget(kube, Settings(), budget, dt.datetime.now(dt.UTC), RecordingNotifier())
    key = f"requests.{resource}"
    wait_for(lambda: ((kube.get("v1", "ResourceQuota", "gpusteward-main", ns) or {}).get("status") or {})
             .get("hard", {}).get(key) == "2", 60, what=f"quota on {key}")

    sneaky = gpu_pod(ns, "sneaky", 3)
    sneaky["spec"]["containers"][0]["resources"] = {"limits": {resource: "3"}}
    with pytest.raises(ApiException) as err:
        kube.create(sneaky, dry_run=False)
    assert err.value.status == 403 and "exceeded quota" in err.value.body
