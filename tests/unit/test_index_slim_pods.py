"""The index keeps a slim projection of each GPU pod for the cost pass: every accounting function must
read the same from it as from the whole body, and the index must follow watch events."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from gpu_steward.budgets.costs import holds_gpus
from gpu_steward.index import Registry, gpu_pod_entry, slim_pod
from gpu_steward.policy import cost as c

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def _full_pod(uid: str = "u1", ns: str = "ml", phase: str = "Running", **kw: Any) -> dict[str, Any]:
    """A pod body as the apiserver returns it: the parts accounting reads buried among many it does not."""
    pod: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": f"train-{uid}", "namespace": ns, "uid": uid, "resourceVersion": "812",
            "creationTimestamp": "2026-11-26T08:59:00Z",
            "labels": {"team": "vision", "job-name": "train"},
            "annotations": {c.ANN_COST: "1.50", c.ANN_IDLE_GPU_HOURS: "0.40", c.ANN_UTIL_AVG: "37.5",
                            c.ANN_UTIL_OBSERVED_HOURS: "2.0", "gpusteward.dev/owner": "ada@example.com",
                            "kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 4000 + "}"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "train", "uid": "j1",
                                 "controller": True, "blockOwnerDeletion": True}],
            "managedFields": [{"manager": "kube-controller-manager", "fieldsV1": {"f:spec": {}}}] * 5,
        },
        "spec": {
            "nodeName": "gpu-1",
            "initContainers": [{"name": "fetch", "image": "busybox",
                                "resources": {"limits": {"nvidia.com/gpu": "1", "cpu": "1"}}}],
            "containers": [
                {"name": "main", "image": "trainer:1", "env": [{"name": f"V{i}", "value": "v"} for i in range(50)],
                 "resources": {"limits": {"nvidia.com/gpu": "2", "memory": "8Gi"},
                               "requests": {"nvidia.com/gpu": "2", "cpu": "4"}}},
                {"name": "sidecar", "image": "log:1", "resources": {"requests": {"cpu": "100m"}}},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
        "status": {"phase": phase, "startTime": "2026-11-26T09:00:00Z",
                   "conditions": [{"type": "PodScheduled", "status": "True"},
                                  {"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-26T11:00:00Z"}],
                   "containerStatuses": []},
    }
    pod.update(kw)
    return pod


def _finished(uid: str, with_records: bool) -> dict[str, Any]:
    pod = _full_pod(uid, phase="Succeeded")
    if with_records:
        pod["status"]["containerStatuses"] = [
            {"name": "main", "image": "trainer:1",
             "state": {"terminated": {"exitCode": 0, "finishedAt": "2026-11-26T10:30:00Z"}}},
            {"name": "sidecar", "state": {"terminated": {"exitCode": 0, "finishedAt": "2026-11-26T10:31:00Z"}}},
        ]
    return pod


CASES = {
    "running": _full_pod(),
    "finished with container records": _finished("u2", True),
    "finished without records (Ready condition)": _finished("u3", False),
    "being deleted": {**_full_pod("u4"), "metadata": {**_full_pod("u4")["metadata"],
                                                     "deletionTimestamp": "2026-11-26T11:59:00Z"}},
    "pending, not started": {**_full_pod("u5"), "status": {"phase": "Pending"}},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_accounting_reads_the_same_from_the_slim_pod(name: str) -> None:
    full = CASES[name]
    before = copy.deepcopy(full)
    slim = slim_pod(full)
    assert full == before  # the watch body is not modified
    price = Decimal("2.50")
    assert c.pod_gpus(slim) == c.pod_gpus(full) == 2
    assert c.pod_window(slim, NOW) == c.pod_window(full, NOW)
    assert c.is_running(slim) == c.is_running(full)
    assert holds_gpus(slim) == holds_gpus(full)
    assert c.ledger_from_annotations(slim) == c.ledger_from_annotations(full)
    assert c.pod_cost(slim, price, NOW).annotations() == c.pod_cost(full, price, NOW).annotations()
    window = (dt.datetime(2026, 11, 26, 10, tzinfo=dt.UTC), dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    assert c.pod_cost(slim, price, NOW, window=window) == c.pod_cost(full, price, NOW, window=window)
    assert gpu_pod_entry(slim) == gpu_pod_entry(full)
    assert len(repr(slim)) < len(repr(full)) / 4  # the point of it: about a kilobyte, not the whole body


def test_the_running_pod_costs_something_so_the_comparison_means_something() -> None:
    pc = c.pod_cost(slim_pod(_full_pod()), Decimal("2.50"), NOW)
    assert pc.gpu_hours == Decimal(6) and pc.cost == Decimal("15.00")  # 2 GPUs x 3 h x 2.50


def test_index_hands_the_cost_pass_slim_bodies_per_namespace_and_follows_deletes() -> None:
    reg = Registry()
    reg.pod_event("ADDED", _full_pod("a", "ml"))
    reg.pod_event("ADDED", _full_pod("b", "research"))
    cpu_only = _full_pod("c", "ml")
    cpu_only["spec"] = {"nodeName": "cpu-1", "containers": [{"name": "web", "resources": {}}]}
    reg.pod_event("ADDED", cpu_only)
    assert sorted(p["metadata"]["uid"] for p in reg.pod_bodies()) == ["a", "b"]
    assert [p["metadata"]["uid"] for p in reg.pod_bodies(("research",))] == ["b"]
    updated = _full_pod("a", "ml")
    updated["metadata"]["annotations"][c.ANN_COST] = "9.99"
    reg.pod_event("MODIFIED", updated)
    (a,) = reg.pod_bodies(("ml",))
    assert a["metadata"]["annotations"][c.ANN_COST] == "9.99"
    reg.pod_event("DELETED", updated)
    assert [p["metadata"]["uid"] for p in reg.pod_bodies()] == ["b"]
    assert [p.uid for p in reg.pods()] == ["b"]
