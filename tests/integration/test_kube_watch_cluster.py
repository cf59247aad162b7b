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
        crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "gadgets.late.example.dev"},
               "spec": {"group": "late.example.dev", "scope": "Namespaced",
                        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                            "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(crd))
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
