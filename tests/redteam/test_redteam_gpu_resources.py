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


# ---- on the real apiserver: other shapes of a pod that asks for more than the quota ------------------


def _quota_namespace(cluster, gpu_quota: int = 2, **spec):
    """A namespace whose GPUBudget (reconciled once) put its quota in force; returns (kube, ns)."""
    from fixtures.budget_cluster import API, NODE, apply, install_crds, new_namespace, wait_quota
    from gpu_steward.budgets.budget import reconcile_budget
    from gpu_steward.budgets.notifier import RecordingNotifier
    from gpu_steward.kube import Kube
    from gpu_steward.settings import Settings

    install_crds(cluster)
    cluster.add_gpu_node(NODE, gpus=64)
    kube = Kube(cluster.api_client())
    ns = new_namespace(cluster, "rt-quota")
    apply(cluster, {"apiVersion": API, "kind": "GPUBudget", "metadata": {"name": "main", "namespace": ns},
                    "spec": {"gpuQuota": gpu_quota, "notify": {"owners": ["lead@example.com"]}, **spec}})
    reconcile_budget(kube, Settings(), kube.get(API, "GPUBudget", "main", ns), dt.datetime.now(dt.UTC),
                     RecordingNotifier())
    wait_quota(kube, ns, "main", gpu_quota)
    return kube, ns


def _refused(kube, obj) -> ApiException:
    with pytest.raises(ApiException) as err:
        kube.create(obj, dry_run=False)
    assert kube.get("v1", "Pod", obj["metadata"]["name"], obj["metadata"]["namespace"]) is None
    return err.value


@pytest.mark.cluster
@pytest.mark.redteam("quota")
def test_gpus_asked_by_an_init_container_count_against_the_quota(cluster):
    from fixtures.budget_cluster import gpu_pod

    kube, ns = _quota_namespace(cluster)
    sneaky = gpu_pod(ns, "init-gpus", 0)
    sneaky["spec"]["containers"][0]["resources"] = {}
    sneaky["spec"]["initContainers"] = [{"name": "warmup", "image": "busybox",
                                         "resources": {"limits": {"nvidia.com/gpu": "3"}}}]
    err = _refused(kube, sneaky)
    assert err.status == 403 and "exceeded quota" in err.body


@pytest.mark.cluster
@pytest.mark.redteam("quota")
@pytest.mark.parametrize("resources", [{"requests": {"nvidia.com/gpu": "0"}, "limits": {"nvidia.com/gpu": "3"}},
                                       {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "3"}},
                                       {"limits": {"nvidia.com/gpu": "3"}}])
def test_gpus_as_limits_only_or_above_requests_are_refused(cluster, resources):
    # GPUs cannot be overcommitted: requests default to limits and must equal them, so a small request
    # with a large limit is invalid and a limit alone counts in full.
    from fixtures.budget_cluster import gpu_pod

    kube, ns = _quota_namespace(cluster)
    sneaky = gpu_pod(ns, "limits-only", 0)
    sneaky["spec"]["containers"][0]["resources"] = resources
    err = _refused(kube, sneaky)
    assert (err.status == 403 and "exceeded quota" in err.body) or (err.status == 422 and "must be equal" in err.body)


@pytest.mark.cluster
@pytest.mark.redteam("quota")
def test_an_ephemeral_container_cannot_ask_for_gpus(cluster):
    import json

    from fixtures.budget_cluster import kubectl

    kube, ns = _quota_namespace(cluster)
    kubectl(cluster, "-n", ns, "run", "plain", "--image=busybox", "--restart=Never")
    patch = {"spec": {"ephemeralContainers": [{"name": "dbg", "image": "busybox",
                                               "resources": {"limits": {"nvidia.com/gpu": "4"}}}]}}
    out = kubectl(cluster, "-n", ns, "patch", "pod", "plain", "--subresource=ephemeralcontainers",
                  "--type=strategic", "-p", json.dumps(patch), check=False)
    assert out.returncode != 0 and "ephemeral" in out.stderr.lower(), out.stderr
    assert not (kube.get("v1", "Pod", "plain", ns)["spec"].get("ephemeralContainers"))


@pytest.mark.cluster
@pytest.mark.redteam("quota")
def test_a_deployment_does_not_dodge_the_quota(cluster):
    # The check is on pods at admission, whoever creates them: the ReplicaSet controller is refused too.
    from fixtures.budget_cluster import events, gpu_deployment
    from gpu_steward_testground.processes import wait_for

    kube, ns = _quota_namespace(cluster)
    kube.create(gpu_deployment(ns, "big", 3), dry_run=False)

    def refused() -> bool:
        rs = kube.list("apps/v1", "ReplicaSet", ns)
        return bool(rs) and any(e.get("reason") == "FailedCreate" and "exceeded quota" in (e.get("message") or "")
                                for e in events(kube, ns, rs[0]["metadata"]["name"]))

    wait_for(refused, 60, what="the ReplicaSet refused by the quota")
    assert kube.list("v1", "Pod", ns) == []


@pytest.mark.cluster
@pytest.mark.redteam("quota")
def test_block_new_refuses_new_gpu_pods_once_the_spend_limit_is_reached(cluster):
    from decimal import Decimal

    from fixtures.budget_cluster import API, gpu_pod, running_pod, wait_quota
    from gpu_steward.budgets.budget import reconcile_budget
    from gpu_steward.budgets.notifier import RecordingNotifier
    from gpu_steward.settings import Settings

    kube, ns = _quota_namespace(cluster, 4, spend={"limit": "1", "currency": "USD"}, onExceeded="BlockNew")
    kube.create(gpu_pod(ns, "first", 1), dry_run=False)
    running_pod(kube, ns, "first")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)  # 2 GPU-hours at the default price > 1
    res = reconcile_budget(kube, Settings(default_gpu_hour_price=Decimal("2.50")),
                           kube.get(API, "GPUBudget", "main", ns), later, RecordingNotifier())
    assert Decimal(res.status["spend"]) > 1
    wait_quota(kube, ns, "main", 1)  # shrunk to the GPUs in use
    err = _refused(kube, gpu_pod(ns, "second", 1))
    assert err.status == 403 and "exceeded quota" in err.body


# ---- cost annotations on pods (user-writable) in reports ------------------------------------------------


def _report_row(annotations: dict[str, str], ledgers: dict[str, c.UtilLedger] | None = None):
    from gpu_steward.reports.rows import pod_records

    p = pod("nvidia.com/gpu", 2)
    p["metadata"]["annotations"] = annotations
    now = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
    table = c.PriceTable(currency="USD", default=Decimal("2"))
    [row] = pod_records([p], [], table, (now - dt.timedelta(days=1), now), now, ("owner",), ("team",), ledgers)
    return row


@pytest.mark.redteam("forgery")
def test_cost_annotations_written_by_a_user_do_not_lower_reported_cost():
    honest = _report_row({})
    forged = _report_row({"gpusteward.dev/cost": "0", "gpusteward.dev/gpu-hours": "0"})
    assert honest.cost == forged.cost == Decimal("8") and forged.gpu_hours == honest.gpu_hours == 4


@pytest.mark.redteam("forgery")
def test_idle_annotations_written_by_a_user_do_not_hide_idle_gpu_hours():
    # What the operator measured lives in its own records (the pod's cost-history cursor: Cursor.util).
    ledgers = {"u1": c.UtilLedger(Decimal("3.5"), Decimal(4), Decimal(16))}
    mirrored = {"gpusteward.dev/idle-gpu-hours": "3.5", "gpusteward.dev/gpu-util-avg": "4"}
    measured = _report_row(mirrored, ledgers)
    # The user zeroes the mirror on the pod (or writes one on a pod the operator has not measured yet).
    forged = _report_row({"gpusteward.dev/idle-gpu-hours": "0", "gpusteward.dev/gpu-util-avg": "99"}, ledgers)
    assert forged.idle_gpu_hours >= measured.idle_gpu_hours == Decimal("3.5")
    assert forged.util_avg == measured.util_avg == 4
    assert _report_row(mirrored).idle_gpu_hours == 0 and _report_row(mirrored).util_avg is None
