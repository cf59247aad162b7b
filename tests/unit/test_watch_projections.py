"""The watch-fed projections: a stream split into event lines as they arrive, caches that follow events
and full lists, workload projections without pod templates, GPU pod entries that share repeated values,
and a view that answers the idle pass's reads (objects, owner lookups, namespaces, nodes) without the API."""

from __future__ import annotations

from typing import Any

import pytest

from gpu_steward.cluster_view import WatchView, project_node, project_workload
from gpu_steward.index import Registry, gpu_pod_entry
from gpu_steward.kube_watch import ObjectCache, iter_lines


def test_lines_come_out_whole_whatever_the_chunking() -> None:
    events = [b'{"type":"ADDED","object":{"a":1}}', b'{"type":"MODIFIED","object":{"b":"x\\ny"}}']
    stream = b"\n".join(events) + b"\n"
    for size in (1, 3, 7, len(stream)):
        chunks = [stream[i:i + size] for i in range(0, len(stream), size)]
        assert list(iter_lines(iter(chunks))) == events
    assert list(iter_lines(iter([b'{"x":1}\n\n{"y"', b':2}']))) == [b'{"x":1}', b'{"y":2}']


def _obj(kind: str, name: str, uid: str, ns: str = "ml", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "kubeflow.org/v1", "kind": kind,
            "metadata": {"name": name, "namespace": ns, "uid": uid, **meta},
            "spec": {"template": {"spec": {"containers": [{"name": "big", "env": [{"name": "X"}] * 100}]}}}}


def test_cache_follows_events_and_a_relist_drops_what_was_deleted_unseen() -> None:
    cache = ObjectCache(project_workload)
    cache.apply("ADDED", _obj("Notebook", "a", "u-a"))
    cache.apply("ADDED", _obj("Notebook", "b", "u-b"))
    assert cache.get("ml", "a")["metadata"]["uid"] == "u-a"
    cache.apply("DELETED", _obj("Notebook", "a", "u-a"))
    assert cache.get("ml", "a") is None
    cache.apply("ADDED", _obj("Notebook", "c", "u-c"))
    cache.relisted({"u-c"})  # b went while the watch was away
    assert [o["metadata"]["name"] for o in cache.items()] == ["c"] and cache.get("ml", "b") is None


def test_workload_projection_keeps_what_decisions_read_and_drops_templates() -> None:
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "s", "namespace": "ml", "uid": "u", "labels": {"team": "x"},
                        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}",
                                        "gpusteward.dev/snooze-until": "2026-01-01T00:00:00Z"},
                        "managedFields": [{"manager": "kubectl"}],
                        "ownerReferences": [{"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "name": "nb",
                                             "uid": "n", "controller": True, "blockOwnerDeletion": True}]},
           "spec": {"replicas": 1, "serviceName": "s", "template": {"spec": {}}, "volumeClaimTemplates": [{}],
                    "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete"}},
           "status": {"replicas": 1}}
    p = project_workload(sts)
    assert p["spec"] == {"replicas": 1, "serviceName": "s",
                         "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete"}}
    assert p["metadata"]["annotations"] == {"gpusteward.dev/snooze-until": "2026-01-01T00:00:00Z"}
    assert p["metadata"]["ownerReferences"] == [{"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "name": "nb",
                                                 "uid": "n", "controller": True}]
    assert "managedFields" not in p["metadata"] and "status" not in p
    pytorch = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "j", "uid": "j"},
               "spec": {"runPolicy": {"suspend": True}, "pytorchReplicaSpecs": {"Worker": {}}}}
    assert project_workload(pytorch)["spec"] == {"runPolicy": {"suspend": True}}
    node = {"metadata": {"name": "n1", "labels": {"nvidia.com/gpu.product": "A100"}},
            "spec": {"podCIDR": "x"}, "status": {"capacity": {"nvidia.com/gpu": "8"}, "images": [{}] * 50}}
    assert project_node(node)["status"] == {"capacity": {"nvidia.com/gpu": "8"}}


def _gpu_pod(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"nb-0-{i}", "namespace": "ml", "uid": f"p{i}",
                         "labels": {"notebook-name": "nb-0", "team": "t"},
                         "ownerReferences": [{"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "name": "nb-0",
                                              "uid": "n0", "controller": True}]},
            "spec": {"nodeName": "gpu-1",
                     "containers": [{"name": "m", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
            "status": {"phase": "Running", "startTime": "2026-01-01T00:00:00Z"}}


def test_gpu_pod_entries_are_slotted_and_share_what_pods_repeat() -> None:
    a, b = gpu_pod_entry(_gpu_pod(1)), gpu_pod_entry(_gpu_pod(2))
    assert a is not None and b is not None
    assert not hasattr(a, "__dict__")  # slotted: no per-entry dict
    assert a.labels is b.labels and a.owner_refs is b.owner_refs and a.containers is b.containers


class FakeWatches:
    def __init__(self, caches: dict[str, ObjectCache]) -> None:
        self.caches = caches

    def cache(self, api_version: str, kind: str, project: Any) -> ObjectCache:
        return self.caches.setdefault(kind, ObjectCache(project, served=False))


def test_the_view_answers_the_pass_from_the_caches() -> None:
    notebooks, namespaces, nodes = ObjectCache(project_workload), ObjectCache(lambda o: None), ObjectCache(project_node)
    notebooks.apply("ADDED", _obj("Notebook", "nb-0", "n0", labels={"gpusteward.dev/suspended": "true"}))
    notebooks.apply("ADDED", _obj("Notebook", "nb-1", "n1"))
    from gpu_steward.cluster_view import project_namespace
    namespaces.project = project_namespace
    namespaces.apply("ADDED", {"metadata": {"name": "ml", "uid": "ns", "labels": {"env": "prod"}}})
    nodes.apply("ADDED", {"metadata": {"name": "gpu-1", "uid": "g"}, "status": {}})
    view = WatchView(FakeWatches({"Notebook": notebooks, "Namespace": namespaces, "Node": nodes}))  # type: ignore[arg-type]
    assert view.lookup("kubeflow.org/v1", "Notebook", "ml", "nb-0")["metadata"]["uid"] == "n0"
    assert [o["metadata"]["name"] for o in view.objects("kubeflow.org/v1", "Notebook",
                                                          "gpusteward.dev/suspended=true")] == ["nb-0"]
    assert view.namespaces() == {"ml": {"env": "prod"}} and list(view.nodes()) == ["gpu-1"]
    assert view.objects("ray.io/v1", "RayJob") == []  # a kind the cluster does not serve reads as empty
    reg = Registry()
    reg.relisted(set())
    assert reg.pods_synced.is_set()


def test_lists_of_watched_collections_are_answered_from_memory() -> None:
    from gpu_steward.kube import Kube, equality_selector

    assert equality_selector(None) == {} and equality_selector("a=b,c=d") == {"a": "b", "c": "d"}
    assert equality_selector("a in (b)") is None and equality_selector("a!=b") is None
    assert equality_selector("a") is None
    kube = Kube.__new__(Kube)  # no API behind it: a LIST that reached the API would fail
    cms = [{"metadata": {"name": "rec-1", "labels": {"gpusteward.dev/kind": "budget"}}, "data": {"x": "1"}},
           {"metadata": {"name": "other", "labels": {}}}]
    kube.served_lists = {("v1", "ConfigMap", "gpu-steward"): lambda: cms}
    got = kube.list("v1", "ConfigMap", "gpu-steward", label_selector="gpusteward.dev/kind=budget")
    assert [c["metadata"]["name"] for c in got] == ["rec-1"]
    got[0]["data"]["x"] = "changed"  # callers get copies: the cache is not theirs to edit
    assert cms[0]["data"]["x"] == "1"


def test_the_projection_keeps_what_the_data_loss_rules_read_inside_a_template() -> None:
    """A LeaderWorkerSet that deletes its volumes when scaled is notify-only; its projection (the template
    dropped for size) must still say so, or the owner is told it will be suspended."""
    from gpu_steward.workloads.adapters import data_loss_reason

    lws = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
           "metadata": {"name": "serve", "namespace": "ml"},
           "spec": {"replicas": 1, "leaderWorkerTemplate": {
               "size": 2, "workerTemplate": {"spec": {"containers": [{"name": "w", "image": "x" * 500}]}},
               "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete", "whenDeleted": "Retain"},
               "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {}}}]}}}
    assert data_loss_reason(lws) is not None
    projected = project_workload(lws)
    assert data_loss_reason(projected) == data_loss_reason(lws)
    assert "workerTemplate" not in projected["spec"]["leaderWorkerTemplate"]


def test_the_cost_history_store_is_not_held_by_the_configmap_watch() -> None:
    """Its records and cursors are hundreds of bytes per pod (per pod per day): the watch keeps their metadata
    only, and a list that selects them goes to the API (once, when the history loads)."""
    from gpu_steward.handlers.watch import COST_STORE, project_records
    from gpu_steward.kube import Kube

    cursors = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"uid-1": "{}"},
               "metadata": {"name": "gpusteward-cost-cursors-00", "labels": {"gpusteward.dev/store": "cost-cursors"}}}
    controls = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"paused": "false"},
                "metadata": {"name": "gpu-steward-controls", "labels": {}}}
    assert "data" not in project_records(cursors) and project_records(controls)["data"] == {"paused": "false"}

    class Listed(Kube):
        def _resource(self, api_version: str, kind: str) -> object:
            raise AssertionError("reached the API")

    kube = Listed.__new__(Listed)
    kube.served_lists = {("v1", "ConfigMap", "gpu-steward"): lambda: [project_records(cursors), controls]}
    kube.unserved_labels = COST_STORE
    assert [c["metadata"]["name"] for c in kube.list("v1", "ConfigMap", "gpu-steward")] == [
        "gpusteward-cost-cursors-00", "gpu-steward-controls"]
    with pytest.raises(AssertionError, match="reached the API"):
        kube.list("v1", "ConfigMap", "gpu-steward", label_selector="gpusteward.dev/store=cost-cursors")
