"""GPUBudgets beside the real Kueue: a budget never fights Kueue. Where the namespace's ClusterQueue serves
it alone, the budget becomes that queue's nominal GPU quota (Kueue admits up to the budget, and the budget's
own ResourceQuota goes away); where the queue is shared, the budget leaves it and the namespace's pods alone
and says why, while still counting spend."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fixtures.budget_cluster import API, NODE, apply, budget, gpu_pod_spec, install_crds, start_operator, stop_operator
from gpu_steward.kube import Kube
from gpu_steward_testground.processes import wait_for
from gpu_steward_testground.runner import ControlPlane
from gpu_steward_testground.upstream import UpstreamController, namespace_label

pytestmark = pytest.mark.cluster
KUEUE_API = "kueue.x-k8s.io/v1beta2"
A100 = "NVIDIA-A100-SXM4-80GB"


def _queues(cluster: ControlPlane, name: str, selector: dict[str, Any], namespace: str, gpus: int = 8) -> None:
    apply(cluster, {"apiVersion": KUEUE_API, "kind": "ResourceFlavor", "metadata": {"name": "budget-gpus"}})
    apply(cluster, {"apiVersion": KUEUE_API, "kind": "ClusterQueue", "metadata": {"name": name}, "spec": {
        "namespaceSelector": selector,
        "resourceGroups": [{"coveredResources": ["nvidia.com/gpu"], "flavors": [
            {"name": "budget-gpus", "resources": [{"name": "nvidia.com/gpu", "nominalQuota": gpus}]}]}]}})
    apply(cluster, {"apiVersion": KUEUE_API, "kind": "LocalQueue", "metadata": {"name": "team", "namespace": namespace},
                    "spec": {"clusterQueue": name}})


def _queued_job(ns: str, name: str, gpus: int) -> dict[str, Any]:
    template = gpu_pod_spec(1)
    template["metadata"]["annotations"] = {"gpusteward.dev/simulate-running": "true"}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": ns, "labels": {"kueue.x-k8s.io/queue-name": "team"}},
            "spec": {"parallelism": gpus, "completions": gpus, "backoffLimit": 0, "template": template}}


def _nominal(kube: Kube, name: str) -> str:
    cq = kube.get(KUEUE_API, "ClusterQueue", name, None) or {}
    return str(cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0]["nominalQuota"])


def _condition(kube: Kube, ns: str, type_: str) -> dict[str, Any] | None:
    status = (kube.get(API, "GPUBudget", "main", ns) or {}).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)


def _running_gpus(kube: Kube, ns: str) -> int:
    return sum(1 for p in kube.list("v1", "Pod", ns) if (p.get("status") or {}).get("phase") == "Running")


def _admitted(kube: Kube, ns: str, job: str) -> bool:
    for wl in kube.list(KUEUE_API, "Workload", ns):
        if any(r.get("name") == job for r in wl["metadata"].get("ownerReferences") or []):
            return any(c["type"] == "Admitted" and c["status"] == "True"
                       for c in (wl.get("status") or {}).get("conditions") or [])
    return False


def _quota_pending(kube: Kube, ns: str, job: str) -> dict[str, Any] | None:
    """Kueue's QuotaReserved=False condition on the job's Workload: it looked and the quota is short."""
    for wl in kube.list(KUEUE_API, "Workload", ns):
        if any(r.get("name") == job for r in wl["metadata"].get("ownerReferences") or []):
            return next((c for c in (wl.get("status") or {}).get("conditions") or []
                         if c["type"] == "QuotaReserved" and c["status"] == "False"), None)
    return None


@pytest.fixture(scope="module")
def kube(cluster: ControlPlane, kueue_controller: UpstreamController) -> Kube:
    install_crds(cluster)
    cluster.add_gpu_node(NODE, gpus=64, product=A100)
    return Kube(cluster.api_client())


def test_budget_drives_the_quota_of_a_cluster_queue_that_serves_its_namespace_alone(
        cluster: ControlPlane, kube: Kube, tmp_path: Any) -> None:
    ns = "kb-own"
    cluster.create_namespace(ns, labels={namespace_label("kueue"): "on"})
    apply(cluster, budget(ns, quota=3))
    op = start_operator(cluster, tmp_path / "operator.log", namespaces=json.dumps([ns]),
                        evaluation_interval_seconds="1", gpu_hour_prices=json.dumps({A100: "4.10"}))
    try:
        # before Kueue serves the namespace, the budget owns a ResourceQuota
        wait_for(lambda: kube.get("v1", "ResourceQuota", "gpusteward-main", ns), timeout=60, what="the budget's quota")
        _queues(cluster, "cq-kb-own", {"matchLabels": {"kubernetes.io/metadata.name": ns}}, ns)
        wait_for(lambda: _nominal(kube, "cq-kb-own") == "3", timeout=60, what="the ClusterQueue quota to be the budget")
        wait_for(lambda: kube.get("v1", "ResourceQuota", "gpusteward-main", ns) is None, timeout=60,
                 what="the budget's ResourceQuota to go (it would refuse pods Kueue admitted)")
        cond = wait_for(lambda: _condition(kube, ns, "KueueManaged"), timeout=30, what="the KueueManaged condition")
        assert (cond["status"], cond["reason"]) == ("True", "ClusterQueueQuota")

        # Kueue now enforces the budget: 2 GPUs are admitted and run, 2 more do not fit in 3
        apply(cluster, _queued_job(ns, "fits", 2))
        wait_for(lambda: _admitted(kube, ns, "fits") and _running_gpus(kube, ns) == 2, timeout=90,
                 what="the first job to be admitted and run")
        apply(cluster, _queued_job(ns, "over", 2))
        pending = wait_for(lambda: _quota_pending(kube, ns, "over"), timeout=60, what="Kueue to hold the second job")
        assert "nvidia.com/gpu" in pending["message"], pending
        assert not _admitted(kube, ns, "over")
        assert kube.get("batch/v1", "Job", "over", ns)["spec"]["suspend"] is True
        wait_for(lambda: (kube.get(API, "GPUBudget", "main", ns) or {}).get("status", {}).get("gpusInUse") == 2,
                 timeout=60, what="the budget to count the GPUs in use")
    finally:
        stop_operator(op)


def test_budget_beside_a_shared_cluster_queue_stands_aside_and_says_why(
        cluster: ControlPlane, kube: Kube, tmp_path: Any) -> None:
    ns, other = "kb-shared", "kb-shared-other"
    for name in (ns, other):
        cluster.create_namespace(name, labels={namespace_label("kueue"): "on", "kb-team": "shared"})
    _queues(cluster, "cq-kb-shared", {"matchLabels": {"kb-team": "shared"}}, ns)
    apply(cluster, budget(ns, quota=1))
    op = start_operator(cluster, tmp_path / "operator.log", namespaces=json.dumps([ns]),
                        evaluation_interval_seconds="1", gpu_hour_prices=json.dumps({A100: "4.10"}))
    try:
        cond = wait_for(lambda: _condition(kube, ns, "KueueManaged"), timeout=60, what="the KueueManaged condition")
        assert (cond["status"], cond["reason"]) == ("True", "SharedClusterQueue")
        assert f"also admits workloads from {other}" in cond["message"]
        # no ResourceQuota refuses what Kueue admits: 2 GPUs run although the budget says 1
        apply(cluster, _queued_job(ns, "train", 2))
        wait_for(lambda: _admitted(kube, ns, "train") and _running_gpus(kube, ns) == 2, timeout=90,
                 what="Kueue's job to be admitted and run")
        assert kube.get("v1", "ResourceQuota", "gpusteward-main", ns) is None
        assert _nominal(kube, "cq-kb-shared") == "8"  # other teams' queue untouched
        # spend tracking unchanged
        wait_for(lambda: (kube.get(API, "GPUBudget", "main", ns) or {}).get("status", {}).get("gpusInUse") == 2,
                 timeout=60, what="the budget to count the GPUs in use")
    finally:
        stop_operator(op)
