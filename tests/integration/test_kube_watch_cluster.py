"""The lean watches on the real control plane: GPU pods reach the index (and leave it) from the watch, not
from LISTs per pass; a kind whose CRD is installed after the operator started is picked up without a
restart; the list is read in pages."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import yaml

from gpu_steward.cluster_view import WatchView
from gpu_steward.index import Registry
from gpu_steward.kube import Kube
from gpu_steward.kube_watch import Watches
from gpu_steward_testground.runner import ControlPlane

pytestmark = pytest.mark.cluster
NS = "lean-watch"


def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.2)


def _pod(name: str, gpus: int) -> dict:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"nodeName": "nowhere", "containers": [{"name": "m", "image": "x", "resources": resources}]}}


def _crd(group: str, kind: str) -> dict:
    """A namespaced CRD that keeps whatever it is given (its schema does not matter here)."""
    plural = kind.lower() + "s"
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                         "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


def test_gpu_pods_follow_the_watch_and_the_first_list_comes_in_pages(cluster: ControlPlane) -> None:
    cluster.create_namespace(NS)
    kube = Kube(cluster.api_client())
    for i in range(5):  # listed before the watch starts: more than one page of 2
        kube.create(_pod(f"before-{i}", 1), dry_run=False)
    watches, reg = Watches(kube, page_size=2), Registry()
    watch = watches.watch_into("v1", "Pod", reg, NS)
    try:
        assert watch is not None and reg.pods_synced.wait(30)
        assert sorted(p.name for p in reg.pods()) == [f"before-{i}" for i in range(5)]
        assert watch.lists >= 3  # five pods in pages of two
        kube.create(_pod("gpu", 2), dry_run=False)
        kube.create(_pod("cpu", 0), dry_run=False)
        _until(lambda: "gpu" in {p.name for p in reg.pods()})
        assert "cpu" not in {p.name for p in reg.pods()} and {p.gpus for p in reg.pods() if p.name == "gpu"} == {2}
        # No kubelet confirms a graceful deletion on a node that does not exist: force it.
        cluster.kubectl("delete", "pod", "gpu", "-n", NS, "--grace-period=0", "--force")
        _until(lambda: "gpu" not in {p.name for p in reg.pods()})
        lists = watch.lists
        time.sleep(1.0)
        assert watch.lists == lists  # steady: the watch, no further LIST
        # Items of a built-in kind's list carry no apiVersion/kind; the projection has them (owner resolution
        # and the adapters read them).
        cluster.kubectl("create", "configmap", "cm1", "-n", NS)
        (cm,) = [o for o in WatchView(watches).objects("v1", "ConfigMap") if o["metadata"]["name"] == "cm1"]
        assert (cm["apiVersion"], cm["kind"]) == ("v1", "ConfigMap")
    finally:
        watches.stop()


def test_a_crd_installed_later_is_watched_without_a_restart(cluster: ControlPlane) -> None:
    kube = Kube(cluster.api_client())
    kube.MISSING_KIND_RECHECK_SECONDS = 0.0
    watches = Watches(kube)
    watches.MISSING_KIND_RECHECK_SECONDS = 0.0
    view = WatchView(watches, first_list_timeout=30)
    try:
        assert view.objects("late.example.dev/v1", "Gadget") == []  # not served yet
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(_crd("late.example.dev", "Gadget")))
        cluster.kubectl("wait", "--for=condition=Established", "crd/gadgets.late.example.dev", "--timeout=60s")
        cluster.create_namespace("late-crd")
        cluster.kubectl("apply", "-n", "late-crd", "-f", "-", input=yaml.safe_dump(
            {"apiVersion": "late.example.dev/v1", "kind": "Gadget", "metadata": {"name": "g1"},
             "spec": {"suspend": False, "template": {"big": "x" * 1000}}}))
        _until(lambda: [o["metadata"]["name"] for o in view.objects("late.example.dev/v1", "Gadget")] == ["g1"])
        (g1,) = view.objects("late.example.dev/v1", "Gadget")
        assert g1["spec"] == {"suspend": False}  # the projection, not the body
        assert view.lookup("late.example.dev/v1", "Gadget", "late-crd", "g1") is not None
    finally:
        watches.stop()


class Recorder:
    """A sink that keeps what it was given, to tell the listed objects from the watched ones."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []  # (type, namespace, name)
        self.synced: set[str] | None = None

    def apply(self, event_type: str, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        self.events.append((event_type, meta.get("namespace", ""), meta.get("name", "")))

    def relisted(self, uids: set[str]) -> None:
        self.synced = uids


def test_a_shard_lists_only_its_namespaces_and_still_sees_every_later_change(cluster: ControlPlane) -> None:
    """Sharded mode: the first list reads the shard's namespaces only (the others' pods are never decoded at
    start), and the watch of the whole collection, from a version taken before the list, misses no change."""
    mine, other = "shard-list-mine", "shard-list-other"
    kube = Kube(cluster.api_client())
    for ns in (mine, other):
        cluster.create_namespace(ns)
        for i in range(3):
            kube.create({**_pod(f"before-{i}", 1), "metadata": {"name": f"before-{i}", "namespace": ns}},
                        dry_run=False)
    watches, sink = Watches(kube, page_size=2), Recorder()
    watch = watches.watch_into("v1", "Pod", sink, list_namespaces=lambda: [mine])
    try:
        assert watch is not None and watch.synced.wait(30)
        listed = [(ns, name) for kind, ns, name in sink.events if kind == "ADDED"]
        assert sorted(listed) == [(mine, f"before-{i}") for i in range(3)]  # nothing of the other namespace
        assert sink.synced is not None and len(sink.synced) == 3
        for ns in (mine, other):
            kube.create({**_pod("after", 1), "metadata": {"name": "after", "namespace": ns}}, dry_run=False)
        _until(lambda: {(ns, n) for k, ns, n in sink.events if k == "ADDED" and n == "after"} == {(mine, "after"),
                                                                                              (other, "after")})
    finally:
        watches.stop()


def test_with_the_crd_watch_a_missing_kind_is_not_polled_and_a_later_crd_is_picked_up_at_once(
        cluster: ControlPlane) -> None:
    kube = Kube(cluster.api_client())
    kube.MISSING_KIND_RECHECK_SECONDS = 3600.0  # time alone would never look again within this test
    watches = Watches(kube)
    watches.MISSING_KIND_RECHECK_SECONDS = 3600.0
    discoveries = []
    real_get = kube.dynamic.resources.get

    def counted(**kw):  # every lookup that reaches the dynamic client's discovery
        discoveries.append(kw.get("kind"))
        return real_get(**kw)

    kube.dynamic.resources.get = counted
    crd_watch = watches.watch_crds()
    view = WatchView(watches, first_list_timeout=30)
    try:
        assert crd_watch is not None and crd_watch.synced.wait(30)
        _until(lambda: kube.crds_watched)
        assert view.objects("later.example.dev/v1", "Widget") == []  # not served: looked up once
        asked = len(discoveries)
        for _ in range(20):  # a pass every few seconds asks again: no discovery request for it
            assert view.objects("later.example.dev/v1", "Widget") == []
        assert len(discoveries) == asked
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(_crd("later.example.dev", "Widget")))
        cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.later.example.dev", "--timeout=60s")
        cluster.create_namespace("later-crd")
        cluster.kubectl("apply", "-n", "later-crd", "-f", "-", input=yaml.safe_dump(
            {"apiVersion": "later.example.dev/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {}}))
        _until(lambda: [o["metadata"]["name"] for o in view.objects("later.example.dev/v1", "Widget")] == ["w1"])
    finally:
        watches.stop()
    assert not kube.crds_watched  # stopped: missing kinds are looked up by time again
