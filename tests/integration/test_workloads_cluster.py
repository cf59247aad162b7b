"""Adapters and resolution against the real control plane (apiserver, controller-manager, scheduler,
KWOK GPU nodes) and the real upstream CRDs (Kubeflow Notebook, JobSet, Kueue Workload).

No Notebook, JobSet or Kueue controller runs here: for those kinds the test checks the field the
real controller acts on, and plays the controller's part where the chain needs an object it would
create (the Notebook's StatefulSet, the Kueue Workload owned by a Job).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpu_steward import cli
from gpu_steward.kube import Kube
from gpu_steward.settings import Settings
from gpu_steward.workloads import actions
from gpu_steward.workloads.model import RESUME_ANNOTATION, SNOOZE_ANNOTATION, SUSPENDED_STATE_ANNOTATION, WorkloadRef
from gpu_steward.workloads.resolve import owner_of, resolve
from gpu_steward_testground import processes
from gpu_steward_testground.build import RUN_FOREVER_ANNOTATION

pytestmark = pytest.mark.cluster

NOW = dt.datetime(2026, 11, 26, 22, 0, tzinfo=dt.UTC)
GPU_NODE = "wl-gpu-node-0"
TOLERATE_ALL = [{"operator": "Exists"}]


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 60.0, interval: float = 0.5) -> Any:
    return processes.wait_for(fn, timeout, interval, what)


@pytest.fixture(scope="module")
def kube(cluster: Any) -> Kube:
    return Kube(cluster.api_client())


@pytest.fixture(scope="module")
def crds(cluster: Any, kube: Kube, upstream_crds: Path) -> None:
    for name in ("kubeflow.org_notebooks.yaml", "jobset.x-k8s.io_jobsets.yaml", "kueue.x-k8s.io_workloads.yaml"):
        body = yaml.safe_load((upstream_crds / name).read_text())
        # create, not client-side apply: the JobSet CRD is larger than the last-applied annotation allows
        if kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", body["metadata"]["name"]) is None:
            kube.create(body, dry_run=False)
        wait_for(f"CRD {body['metadata']['name']} Established", lambda n=body["metadata"]["name"]: any(
            c["type"] == "Established" and c["status"] == "True" for c in
            (kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", n).get("status") or {})
            .get("conditions") or []))


@pytest.fixture(scope="module")
def gpu_node(cluster: Any) -> str:
    cluster.add_gpu_node(GPU_NODE, gpus=16)
    return GPU_NODE


@pytest.fixture
def ns(cluster: Any) -> Iterator[str]:
    name = f"wl-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def gpu_pod_spec(gpus: int = 1, restart: str = "Never") -> dict[str, Any]:
    return {
        "restartPolicy": restart,
        "tolerations": TOLERATE_ALL,
        # our own node: other test files add GPU nodes to the same session cluster
        "nodeSelector": {"kubernetes.io/hostname": GPU_NODE},
        "containers": [{"name": "train", "image": "example.com/train:1",
                        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
    }


def pods_of(kube: Kube, ns: str, selector: str) -> list[dict[str, Any]]:
    return kube.list("v1", "Pod", ns, label_selector=selector)


def live(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def running(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in live(pods) if (p.get("status") or {}).get("phase") == "Running"]


# ---- Job --------------------------------------------------------------------------------------------

def test_job_pod_on_gpu_node_resolves_to_the_job(kube: Kube, gpu_node: str, ns: str) -> None:
    # KWOK completes a Job's pod as soon as it runs; it still names its Job, which is what matters
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "done", "namespace": ns, "labels": {"gpusteward.dev/owner": "alice"}},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"app": "done"}}, "spec": gpu_pod_spec()}},
    }
    kube.create(job, dry_run=False)
    pod = wait_for("the Job's GPU pod to run on the KWOK GPU node", lambda: [
        p for p in pods_of(kube, ns, "app=done") if p["status"].get("phase") in ("Running", "Succeeded")])[0]
    assert pod["spec"]["nodeName"] == gpu_node
    lookup = actions.KubeLookup(kube)
    res = resolve(pod, lookup, lookup.owned)
    assert res.suspendable, res.reason
    assert [r.kind for r in res.chain] == ["Pod", "Job"]
    assert res.workload is not None and res.workload.name == "done" and res.workload.uid
    assert owner_of(res.objects, Settings()).name == "alice"


def test_job_is_suspended_its_pods_deleted_and_resumed(kube: Kube, gpu_node: str, ns: str) -> None:
    # KWOK keeps pods with this annotation Running, like a long training run
    template = {"metadata": {"labels": {"app": "train"}, "annotations": {RUN_FOREVER_ANNOTATION: "true"}},
                "spec": gpu_pod_spec()}
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "train", "namespace": ns},
        "spec": {"parallelism": 2, "completions": 4, "template": template},
    }
    kube.create(job, dry_run=False)
    pods = wait_for("2 running GPU pods", lambda: len(running(pods_of(kube, ns, "app=train"))) == 2
                    and running(pods_of(kube, ns, "app=train")))
    assert {p["spec"]["nodeName"] for p in pods} == {gpu_node}
    lookup = actions.KubeLookup(kube)
    res = resolve(pods[0], lookup, lookup.owned)
    assert res.suspendable and res.workload is not None and res.workload.kind == "Job"

    # dry-run: the Result says what would change, the cluster is untouched
    preview = actions.suspend(kube, res.workload, NOW, dry_run=True)
    assert preview.ok and preview.changed and "spec.suspend: false -> true" in preview.changes
    assert kube.get("batch/v1", "Job", "train", ns)["spec"]["suspend"] is False

    out = actions.suspend(kube, res.workload, NOW, dry_run=False)
    assert out.ok and out.changed, out.error
    got = kube.get("batch/v1", "Job", "train", ns)
    assert got["spec"]["suspend"] is True
    record = json.loads(got["metadata"]["annotations"][SUSPENDED_STATE_ANNOTATION])
    assert record["previous"] is False and record["present"] is True
    # the Job controller really deletes the running pods of a suspended Job and says so
    wait_for("the suspended Job's pods to go", lambda: not pods_of(kube, ns, "app=train"))
    wait_for("condition Suspended=True", lambda: any(
        c["type"] == "Suspended" and c["status"] == "True"
        for c in (kube.get("batch/v1", "Job", "train", ns).get("status") or {}).get("conditions") or []))

    again = actions.suspend(kube, res.workload, NOW + dt.timedelta(hours=1), dry_run=False)
    assert again.ok and not again.changed and again.record == record

    back = actions.resume(kube, res.workload, dry_run=False)
    assert back.ok and back.changed, back.error
    got = kube.get("batch/v1", "Job", "train", ns)
    assert got["spec"]["suspend"] is False
    assert SUSPENDED_STATE_ANNOTATION not in (got["metadata"].get("annotations") or {})
    wait_for("2 pods running again after resume", lambda: len(running(pods_of(kube, ns, "app=train"))) == 2)


# ---- StatefulSet ------------------------------------------------------------------------------------

def statefulset(ns: str, name: str, replicas: int, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                    "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                    "controller": True, "blockOwnerDeletion": True}]
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta,
        "spec": {"replicas": replicas, "serviceName": name, "podManagementPolicy": "Parallel",
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": gpu_pod_spec(restart="Always")}},
    }


def test_statefulset_scaled_to_zero_and_restored_exactly(kube: Kube, gpu_node: str, ns: str) -> None:
    kube.create(statefulset(ns, "db", 3), dry_run=False)
    pods = wait_for("3 StatefulSet pods running", lambda: len(running(pods_of(kube, ns, "app=db"))) == 3
                    and running(pods_of(kube, ns, "app=db")))
    lookup = actions.KubeLookup(kube)
    res = resolve(pods[0], lookup, lookup.owned)
    assert res.suspendable and res.workload is not None and res.workload.kind == "StatefulSet"

    out = actions.suspend(kube, res.workload, NOW, dry_run=False)
    assert out.ok and out.changed
    got = kube.get("apps/v1", "StatefulSet", "db", ns)
    assert got["spec"]["replicas"] == 0
    assert json.loads(got["metadata"]["annotations"][SUSPENDED_STATE_ANNOTATION])["previous"] == 3
    wait_for("StatefulSet pods to go", lambda: not live(pods_of(kube, ns, "app=db")), timeout=90)
    # suspending again must not record 0 as the count to restore
    assert not actions.suspend(kube, res.workload, NOW, dry_run=False).changed

    back = actions.resume(kube, res.workload, dry_run=False)
    assert back.ok and back.changed
    assert kube.get("apps/v1", "StatefulSet", "db", ns)["spec"]["replicas"] == 3
    wait_for("3 pods back", lambda: len(running(pods_of(kube, ns, "app=db"))) == 3, timeout=90)


def test_resume_cli_restores_and_asks_the_operator(cluster: Any, kube: Kube, ns: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    sts = statefulset(ns, "web", 2)
    sts["spec"]["template"]["spec"]["nodeSelector"] = {"no-such-node": "x"}  # pods stay Pending: enough here
    kube.create(sts, dry_run=False)
    ref = WorkloadRef("apps/v1", "StatefulSet", ns, "web")
    assert actions.suspend(kube, ref, NOW, dry_run=False).changed

    argv = ["resume", "sts/web", "-n", ns, "--kubeconfig", str(cluster.kubeconfig)]
    assert cli.main([*argv, "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "[dry-run]" in dry and "spec.replicas: 0 -> 2" in dry
    assert kube.get("apps/v1", "StatefulSet", "web", ns)["spec"]["replicas"] == 0

    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert f"set {RESUME_ANNOTATION}=true" in out and "spec.replicas: 0 -> 2" in out
    got = kube.get("apps/v1", "StatefulSet", "web", ns)
    assert got["spec"]["replicas"] == 2
    assert got["metadata"]["annotations"][RESUME_ANNOTATION] == "true"
    assert SUSPENDED_STATE_ANNOTATION not in got["metadata"]["annotations"]

    assert cli.main(["resume", "sts/nope", "-n", ns, "--kubeconfig", str(cluster.kubeconfig)]) == 1
    assert "not found" in capsys.readouterr().err


def test_snooze_cli_sets_a_snooze_and_dry_run_does_not(cluster: Any, kube: Kube, ns: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    kube.create(_pending_job(ns, "nap"), dry_run=False)
    argv = ["snooze", "job/nap", "-n", ns, "--for", "90m", "--kubeconfig", str(cluster.kubeconfig)]
    assert cli.main([*argv, "--dry-run"]) == 0
    assert "[dry-run] would set" in capsys.readouterr().out
    assert SNOOZE_ANNOTATION not in (kube.get("batch/v1", "Job", "nap", ns)["metadata"].get("annotations") or {})
    before = dt.datetime.now(dt.UTC)
    assert cli.main(argv) == 0
    assert f"set {SNOOZE_ANNOTATION}=" in capsys.readouterr().out
    text = kube.get("batch/v1", "Job", "nap", ns)["metadata"]["annotations"][SNOOZE_ANNOTATION]
    until = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert before + dt.timedelta(minutes=90) - dt.timedelta(seconds=2) <= until
    assert until <= dt.datetime.now(dt.UTC) + dt.timedelta(minutes=90)


def _pending_job(ns: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "nodeSelector": {"no-such-node": "x"},
                                           "containers": [{"name": "m", "image": "trainer:1"}]}}}}


# ---- Kubeflow Notebook ------------------------------------------------------------------------------

def test_notebook_stopped_annotation_and_pod_resolution(kube: Kube, crds: None, gpu_node: str, ns: str) -> None:
    nb = {
        "apiVersion": "kubeflow.org/v1", "kind": "Notebook",
        "metadata": {"name": "alice-nb", "namespace": ns,
                     "annotations": {"notebooks.kubeflow.org/creator": "alice@example.com"}},
        "spec": {"template": {"spec": {"containers": [{"name": "alice-nb", "image": "jupyter:1"}]}}},
    }
    nb = kube.create(nb, dry_run=False)
    # play the notebook controller: the StatefulSet it owns
    kube.create(statefulset(ns, "alice-nb", 1, owner=nb), dry_run=False)
    pods = wait_for("the notebook pod", lambda: running(pods_of(kube, ns, "app=alice-nb")))
    lookup = actions.KubeLookup(kube)
    res = resolve(pods[0], lookup, lookup.owned)
    assert res.suspendable and [r.kind for r in res.chain] == ["Pod", "StatefulSet", "Notebook"]
    assert res.workload is not None

    out = actions.suspend(kube, res.workload, NOW, dry_run=False)
    assert out.ok and out.changed, out.error
    got = kube.get("kubeflow.org/v1", "Notebook", "alice-nb", ns)
    assert got["metadata"]["annotations"]["kubeflow-resource-stopped"] == "2026-11-26T22:00:00Z"
    # the StatefulSet is the notebook controller's business: we did not scale it
    assert kube.get("apps/v1", "StatefulSet", "alice-nb", ns)["spec"]["replicas"] == 1

    back = actions.resume(kube, res.workload, dry_run=False)
    assert back.ok and back.changed
    annotations = kube.get("kubeflow.org/v1", "Notebook", "alice-nb", ns)["metadata"].get("annotations") or {}
    assert "kubeflow-resource-stopped" not in annotations and SUSPENDED_STATE_ANNOTATION not in annotations
    assert annotations["notebooks.kubeflow.org/creator"] == "alice@example.com"


# ---- JobSet ---------------------------------------------------------------------------------------

def test_jobset_suspend_field(kube: Kube, crds: None, ns: str) -> None:
    js = {
        "apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
        "metadata": {"name": "big", "namespace": ns},
        "spec": {"replicatedJobs": [{"name": "w", "replicas": 1, "template": {"spec": {"template": {
            "spec": gpu_pod_spec()}}}}]},
    }
    kube.create(js, dry_run=False)
    had_suspend = "suspend" in kube.get("jobset.x-k8s.io/v1alpha2", "JobSet", "big", ns)["spec"]
    ref = WorkloadRef("jobset.x-k8s.io/v1alpha2", "JobSet", ns, "big")
    assert actions.suspend(kube, ref, NOW, dry_run=False).changed
    assert kube.get("jobset.x-k8s.io/v1alpha2", "JobSet", "big", ns)["spec"]["suspend"] is True
    assert actions.resume(kube, ref, dry_run=False).changed
    spec = kube.get("jobset.x-k8s.io/v1alpha2", "JobSet", "big", ns)["spec"]
    assert ("suspend" in spec) == had_suspend and not spec.get("suspend")


# ---- Kueue ----------------------------------------------------------------------------------------

def test_kueue_managed_job_is_deactivated_through_its_workload(kube: Kube, crds: None, ns: str) -> None:
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "queued", "namespace": ns, "labels": {"kueue.x-k8s.io/queue-name": "team-a"}},
        # Kueue's webhook creates such Jobs suspended and unsuspends them on admission
        "spec": {"suspend": False, "template": {"metadata": {"labels": {"app": "queued"}},
                                                "spec": gpu_pod_spec() | {"nodeSelector": {"no-such": "x"}}}},
    }
    job = kube.create(job, dry_run=False)
    # no Kueue controller runs here: create the Workload it would create, owned by the Job
    wl = {
        "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload",
        "metadata": {"name": "job-queued-1a2b3", "namespace": ns,
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "queued",
                                          "uid": job["metadata"]["uid"], "controller": True}]},
        "spec": {"queueName": "team-a", "podSets": [{"name": "main", "count": 1,
                                                      "template": {"spec": gpu_pod_spec()}}]},
    }
    kube.create(wl, dry_run=False)
    assert kube.get("kueue.x-k8s.io/v1beta2", "Workload", "job-queued-1a2b3", ns)["spec"]["active"] is True

    pod = wait_for("the queued Job's pod", lambda: pods_of(kube, ns, "app=queued"))[0]
    lookup = actions.KubeLookup(kube)
    res = resolve(pod, lookup, lookup.owned)
    assert res.suspendable and res.kueue_managed, res.reason
    assert res.workload is not None and res.workload.kind == "Job"
    assert res.target is not None and res.target.name == "job-queued-1a2b3"

    out = actions.suspend(kube, res.workload, NOW, dry_run=False)
    assert out.ok and out.changed and out.target is not None and out.target.kind == "Workload", out.error
    assert kube.get("kueue.x-k8s.io/v1beta2", "Workload", "job-queued-1a2b3", ns)["spec"]["active"] is False
    # the older served version sees the same thing
    assert kube.get("kueue.x-k8s.io/v1beta1", "Workload", "job-queued-1a2b3", ns)["spec"]["active"] is False
    # Kueue owns the Job's suspend: we left it alone
    assert kube.get("batch/v1", "Job", "queued", ns)["spec"]["suspend"] is False

    back = actions.resume(kube, res.workload, dry_run=False)
    assert back.ok and back.changed
    got = kube.get("kueue.x-k8s.io/v1beta2", "Workload", "job-queued-1a2b3", ns)
    assert got["spec"]["active"] is True
    assert SUSPENDED_STATE_ANNOTATION not in (got["metadata"].get("annotations") or {})


def test_missing_and_bare(kube: Kube, gpu_node: str, ns: str) -> None:
    out = actions.suspend(kube, WorkloadRef("batch/v1", "Job", ns, "ghost"), NOW, dry_run=False)
    assert not out.ok and "not found" in (out.error or "")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare", "namespace": ns},
           "spec": gpu_pod_spec()}
    kube.create(pod, dry_run=False)
    got = kube.get("v1", "Pod", "bare", ns)
    res = resolve(got, actions.KubeLookup(kube))
    assert not res.suspendable and "bare pod" in res.reason
    # a kind this cluster does not serve reads as absent, not as an exception
    assert actions.KubeLookup(kube)("kubeflow.org/v1", "PyTorchJob", ns, "x") is None


class RacingKube(Kube):
    """A real Kube; right after our first read, another writer scales the StatefulSet."""

    def __init__(self, api_client: Any, ns: str) -> None:
        super().__init__(api_client)
        self.ns, self.raced = ns, False

    def get_optional(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        obj = super().get_optional(api_version, kind, name, namespace)
        if not self.raced and kind == "StatefulSet":
            self.raced = True
            self.patch("apps/v1", "StatefulSet", name, namespace, {"spec": {"replicas": 5}}, dry_run=False)
        return obj


def test_write_that_raced_another_writer_is_rebuilt_from_a_fresh_read(cluster: Any, kube: Kube, ns: str) -> None:
    sts = statefulset(ns, "raced", 2)
    sts["spec"]["template"]["spec"]["nodeSelector"] = {"no-such-node": "x"}
    kube.create(sts, dry_run=False)
    racing = RacingKube(cluster.api_client(), ns)
    out = actions.suspend(racing, WorkloadRef("apps/v1", "StatefulSet", ns, "raced"), NOW, dry_run=False)
    assert racing.raced and out.ok and out.changed, out.error
    got = kube.get("apps/v1", "StatefulSet", "raced", ns)
    # the stale read (2) was refused by the apiserver (409); the record holds what was really there
    assert got["spec"]["replicas"] == 0
    assert json.loads(got["metadata"]["annotations"][SUSPENDED_STATE_ANNOTATION])["previous"] == 5


def test_deployment_pod_resolves_through_its_replicaset(kube: Kube, gpu_node: str, ns: str) -> None:
    dep = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "serve", "namespace": ns},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "serve"}},
                 "template": {"metadata": {"labels": {"app": "serve"}}, "spec": gpu_pod_spec(restart="Always")}},
    }
    kube.create(dep, dry_run=False)
    pods = wait_for("2 Deployment pods running", lambda: len(running(pods_of(kube, ns, "app=serve"))) == 2
                    and running(pods_of(kube, ns, "app=serve")))
    assert {p["spec"]["nodeName"] for p in pods} == {gpu_node}
    lookup = actions.KubeLookup(kube)
    res = resolve(pods[0], lookup, lookup.owned)
    assert res.suspendable and [r.kind for r in res.chain] == ["Pod", "ReplicaSet", "Deployment"]
    assert res.workload is not None

    assert actions.suspend(kube, res.workload, NOW, dry_run=False).changed
    wait_for("Deployment pods to go", lambda: not live(pods_of(kube, ns, "app=serve")), timeout=90)
    assert actions.resume(kube, res.workload, dry_run=False).changed
    assert kube.get("apps/v1", "Deployment", "serve", ns)["spec"]["replicas"] == 2
    wait_for("2 pods back", lambda: len(running(pods_of(kube, ns, "app=serve"))) == 2, timeout=90)
