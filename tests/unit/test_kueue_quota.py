"""A GPUBudget beside Kueue: when it may drive the ClusterQueue's GPU quota, and why it stands aside."""

from __future__ import annotations

from typing import Any

from gpu_steward.policy import kueue_quota as kq

NS = "team-a"
NAMESPACES = {"team-a": {"kubernetes.io/metadata.name": "team-a", "team": "a"},
              "team-b": {"kubernetes.io/metadata.name": "team-b", "team": "b"}}


def lq(cluster_queue: str, name: str = "main") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS}, "spec": {"clusterQueue": cluster_queue}}


def cq(name: str, selector: dict[str, Any] | None, *, cohort: str | None = None,
       flavors: tuple[tuple[str, str, str], ...] = (("gpu", "nvidia.com/gpu", "8"),)) -> dict[str, Any]:
    spec: dict[str, Any] = {"resourceGroups": [{
        "coveredResources": sorted({r for _, r, _ in flavors} | {"cpu"}),
        "flavors": [{"name": f, "resources": [{"name": "cpu", "nominalQuota": "64"},
                                              {"name": r, "nominalQuota": q}]} for f, r, q in flavors]}]}
    if selector is not None:
        spec["namespaceSelector"] = selector
    if cohort:
        spec["cohortName"] = cohort
    return {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": name}, "spec": spec}


ONLY_A = {"matchLabels": {"kubernetes.io/metadata.name": NS}}


def test_no_local_queue_keeps_the_resource_quota() -> None:
    assert kq.plan(NS, [], {}, NAMESPACES).mode == "None"


def test_a_cluster_queue_serving_only_this_namespace_is_driven_by_the_budget() -> None:
    p = kq.plan(NS, [lq("cq-a")], {"cq-a": cq("cq-a", ONLY_A)}, NAMESPACES)
    assert (p.mode, p.cluster_queue, p.flavor, p.resource) == ("Exclusive", "cq-a", "gpu", "nvidia.com/gpu")


def test_a_cluster_queue_admitting_other_namespaces_is_shared_and_left_alone() -> None:
    for selector in ({}, {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]}):
        p = kq.plan(NS, [lq("cq")], {"cq": cq("cq", selector)}, NAMESPACES)
        assert p.mode == "Shared" and "also admits workloads from team-b" in p.reason


def test_a_cluster_queue_in_a_cohort_is_shared() -> None:
    p = kq.plan(NS, [lq("cq-a")], {"cq-a": cq("cq-a", ONLY_A, cohort="org")}, NAMESPACES)
    assert p.mode == "Shared" and "cohort org" in p.reason


def test_several_cluster_queues_or_a_missing_one_or_several_gpu_flavors_are_shared() -> None:
    two = kq.plan(NS, [lq("cq-a"), lq("cq-x", "other")], {"cq-a": cq("cq-a", ONLY_A), "cq-x": cq("cq-x", ONLY_A)},
                  NAMESPACES)
    assert two.mode == "Shared" and "several ClusterQueues" in two.reason
    assert kq.plan(NS, [lq("gone")], {}, NAMESPACES).reason == "ClusterQueue gone does not exist"
    split = cq("cq-a", ONLY_A, flavors=(("a100", "nvidia.com/gpu", "4"), ("h100", "nvidia.com/gpu", "4")))
    assert kq.plan(NS, [lq("cq-a")], {"cq-a": split}, NAMESPACES).mode == "Shared"


def test_an_absent_namespace_selector_admits_from_no_namespace() -> None:
    # Kueue's reading: absent admits nothing, {} admits everything
    assert not kq.admits_from(None, NAMESPACES["team-b"])
    assert kq.admits_from({}, NAMESPACES["team-b"])
    assert kq.plan(NS, [lq("cq-a")], {"cq-a": cq("cq-a", None)}, NAMESPACES).mode == "Exclusive"


def test_the_nominal_gpu_quota_is_rewritten_and_nothing_else() -> None:
    queue = cq("cq-a", ONLY_A)
    groups = kq.with_nominal_quota(queue, "gpu", "nvidia.com/gpu", 3)
    assert groups[0]["flavors"][0]["resources"] == [{"name": "cpu", "nominalQuota": "64"},
                                                    {"name": "nvidia.com/gpu", "nominalQuota": "3"}]
    assert groups[0]["coveredResources"] == queue["spec"]["resourceGroups"][0]["coveredResources"]
    assert kq.nominal_quota(queue, "gpu", "nvidia.com/gpu") == "8"  # the input is not changed
