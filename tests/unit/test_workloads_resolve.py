"""Resolution chains from dict fixtures: pod -> ... -> the workload an adapter suspends."""

from __future__ import annotations

from typing import Any

import pytest

from gpu_steward.settings import Settings
from gpu_steward.workloads.model import WorkloadRef
from gpu_steward.workloads.resolve import owner_of, resolve

NS = "ml"


def obj(api_version: str, kind: str, name: str, owner: dict[str, Any] | None = None, *, labels=None,
        annotations=None, controller: bool = True, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS, "uid": f"uid-{kind}-{name}"}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                    "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                    "controller": controller}]
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **extra}


class Store:
    """A dict-backed cluster speaking the lookup/owned contract of resolve()."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = list(objects)
        self.calls: list[tuple[str, str, str | None, str]] = []

    def lookup(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        self.calls.append((api_version, kind, namespace, name))
        for o in self.objects:
            m = o["metadata"]
            if (o["apiVersion"], o["kind"], m.get("namespace"), m["name"]) == (api_version, kind, namespace, name):
                return o
        return None

    def owned(self, api_version: str, kind: str, namespace: str | None, uid: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if (o["apiVersion"], o["kind"], o["metadata"].get("namespace")) ==
                (api_version, kind, namespace)
                and any(r["uid"] == uid for r in o["metadata"].get("ownerReferences", []))]


def kinds(res: Any) -> list[str]:
    return [r.kind for r in res.chain]


def test_job_pod_resolves_to_job() -> None:
    job = obj("batch/v1", "Job", "train")
    pod = obj("v1", "Pod", "train-abc", job)
    res = resolve(pod, Store(job).lookup)
    assert res.suspendable and res.reason == ""
    assert res.workload == WorkloadRef("batch/v1", "Job", NS, "train", "uid-Job-train")
    assert res.target == res.workload
    assert kinds(res) == ["Pod", "Job"]


def test_cronjob_job_stays_the_job() -> None:
    cron = obj("batch/v1", "CronJob", "nightly")
    job = obj("batch/v1", "Job", "nightly-123", cron)
    pod = obj("v1", "Pod", "nightly-123-x", job)
    res = resolve(pod, Store(cron, job).lookup)
    assert res.suspendable and res.workload is not None
    assert res.workload.kind == "Job" and res.workload.name == "nightly-123"
    assert kinds(res) == ["Pod", "Job"]


def test_jobset_through_its_job() -> None:
    js = obj("jobset.x-k8s.io/v1alpha2", "JobSet", "big")
    job = obj("batch/v1", "Job", "big-workers-0", js)
    pod = obj("v1", "Pod", "big-workers-0-0", job)
    res = resolve(pod, Store(js, job).lookup)
    assert res.suspendable and kinds(res) == ["Pod", "Job", "JobSet"]
    assert res.target == WorkloadRef.of(js)


def test_notebook_through_statefulset() -> None:
    nb = obj("kubeflow.org/v1", "Notebook", "alice-nb", annotations={"notebooks.kubeflow.org/creator": "alice@x.io"})
    sts = obj("apps/v1", "StatefulSet", "alice-nb", nb)
    pod = obj("v1", "Pod", "alice-nb-0", sts)
    res = resolve(pod, Store(nb, sts).lookup)
    assert res.suspendable and kinds(res) == ["Pod", "StatefulSet", "Notebook"]
    assert owner_of(res.objects, Settings()).email == "alice@x.io"


def test_plain_statefulset() -> None:
    sts = obj("apps/v1", "StatefulSet", "db")
    res = resolve(obj("v1", "Pod", "db-0", sts), Store(sts).lookup)
    assert res.suspendable and res.workload == WorkloadRef.of(sts)


def test_deployment_through_replicaset() -> None:
    dep = obj("apps/v1", "Deployment", "serve")
    rs = obj("apps/v1", "ReplicaSet", "serve-7d9", dep)
    res = resolve(obj("v1", "Pod", "serve-7d9-q", rs), Store(dep, rs).lookup)
    assert res.suspendable and kinds(res) == ["Pod", "ReplicaSet", "Deployment"]


def test_replicaset_without_deployment_is_notify_only() -> None:
    rs = obj("apps/v1", "ReplicaSet", "lonely")
    res = resolve(obj("v1", "Pod", "lonely-q", rs), Store(rs).lookup)
    assert not res.suspendable and "ReplicaSet" in res.reason


def test_pytorchjob_owns_pods_directly() -> None:
    pj = obj("kubeflow.org/v1", "PyTorchJob", "bert")
    res = resolve(obj("v1", "Pod", "bert-master-0", pj), Store(pj).lookup)
    assert res.suspendable and res.workload == WorkloadRef.of(pj)


def test_raycluster_and_rayjob() -> None:
    rc = obj("ray.io/v1", "RayCluster", "solo")
    res = resolve(obj("v1", "Pod", "solo-head", rc), Store(rc).lookup)
    assert res.suspendable and res.workload == WorkloadRef.of(rc)

    rj = obj("ray.io/v1", "RayJob", "tune")
    rc2 = obj("ray.io/v1", "RayCluster", "tune-raycluster-x", rj)
    submitter = obj("batch/v1", "Job", "tune", rj)
    store = Store(rj, rc2, submitter)
    worker = resolve(obj("v1", "Pod", "tune-worker", rc2), store.lookup)
    assert worker.suspendable and kinds(worker) == ["Pod", "RayCluster", "RayJob"]
    sub = resolve(obj("v1", "Pod", "tune-submit", submitter), store.lookup)
    assert sub.suspendable and kinds(sub) == ["Pod", "Job", "RayJob"]


def test_bare_pod_is_notify_only() -> None:
    res = resolve(obj("v1", "Pod", "lonely"), Store().lookup)
    assert not res.suspendable and res.workload is None and "bare pod" in res.reason
    assert kinds(res) == ["Pod"]


def test_non_controller_owner_reference_is_ignored() -> None:
    job = obj("batch/v1", "Job", "train")
    res = resolve(obj("v1", "Pod", "p", job, controller=False), Store(job).lookup)
    assert not res.suspendable and "bare pod" in res.reason


def test_unknown_controller_is_notify_only() -> None:
    ds = obj("apps/v1", "DaemonSet", "agent")
    res = resolve(obj("v1", "Pod", "agent-x", ds), Store(ds).lookup)
    assert not res.suspendable and "DaemonSet" in res.reason


def test_job_owned_by_unknown_controller_is_not_fought_over() -> None:
    wf = obj("argoproj.io/v1alpha1", "Workflow", "wf")
    job = obj("batch/v1", "Job", "step", wf)
    res = resolve(obj("v1", "Pod", "step-x", job), Store(wf, job).lookup)
    assert not res.suspendable and "Workflow/wf" in res.reason
    assert res.workload == WorkloadRef.of(job)  # still named, for the notice


def test_missing_owner_and_replaced_owner() -> None:
    job = obj("batch/v1", "Job", "gone")
    pod = obj("v1", "Pod", "gone-x", job)
    assert "not found" in resolve(pod, Store().lookup).reason
    replaced = obj("batch/v1", "Job", "gone")
    replaced["metadata"]["uid"] = "another"
    res = resolve(pod, Store(replaced).lookup)
    assert not res.suspendable and "uid" in res.reason


def test_owner_reference_cycle_stops() -> None:
    a = obj("batch/v1", "Job", "a")
    b = obj("jobset.x-k8s.io/v1alpha2", "JobSet", "b")
    # A JobSet controlled by a Job is nonsense, but must not loop or crash.
    b["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": "a",
                                         "uid": a["metadata"]["uid"], "controller": True}]
    a["metadata"]["ownerReferences"] = [{"apiVersion": b["apiVersion"], "kind": "JobSet", "name": "b",
                                         "uid": b["metadata"]["uid"], "controller": True}]
    res = resolve(obj("v1", "Pod", "p", a), Store(a, b).lookup)
    assert not res.suspendable


@pytest.mark.parametrize("version", ["kueue.x-k8s.io/v1beta2", "kueue.x-k8s.io/v1beta1"])
def test_kueue_job_targets_its_workload(version: str) -> None:
    job = obj("batch/v1", "Job", "q", labels={"kueue.x-k8s.io/queue-name": "team-a"})
    wl = obj(version, "Workload", "job-q-1a2b3", job)
    pod = obj("v1", "Pod", "q-x", job)
    store = Store(job, wl)
    res = resolve(pod, store.lookup, store.owned)
    assert res.suspendable and res.kueue_managed
    assert res.workload == WorkloadRef.of(job)
    assert res.target == WorkloadRef.of(wl)
    assert kinds(res) == ["Pod", "Job", "Workload"]


def test_kueue_workload_found_by_pod_annotation_without_listing() -> None:
    js = obj("jobset.x-k8s.io/v1alpha2", "JobSet", "big", labels={"kueue.x-k8s.io/queue-name": "q"})
    job = obj("batch/v1", "Job", "big-w-0", js)
    wl = obj("kueue.x-k8s.io/v1beta2", "Workload", "jobset-big-9f", js)
    pod = obj("v1", "Pod", "big-w-0-0", job, annotations={"kueue.x-k8s.io/workload": "jobset-big-9f"})
    res = resolve(pod, Store(js, job, wl).lookup, owned=None)
    assert res.suspendable and res.target == WorkloadRef.of(wl)


def test_kueue_without_its_workload_is_not_suspendable() -> None:
    job = obj("batch/v1", "Job", "q", labels={"kueue.x-k8s.io/queue-name": "team-a"})
    other = obj("batch/v1", "Job", "other")
    stray = obj("kueue.x-k8s.io/v1beta2", "Workload", "job-other", other)  # owned by another Job
    store = Store(job, other, stray)
    res = resolve(obj("v1", "Pod", "q-x", job), store.lookup, store.owned)
    assert not res.suspendable and res.target is None and "Kueue" in res.reason


def test_owner_from_workload_first_then_pod() -> None:
    settings = Settings()
    job = obj("batch/v1", "Job", "t", labels={"team": "vision"}, annotations={"gpusteward.dev/owner": "bob"})
    pod = obj("v1", "Pod", "t-x", job, labels={"gpusteward.dev/owner": "mallory", "gpusteward.dev/team": "x"},
              annotations={"gpusteward.dev/owner-email": "bob@corp.io"})
    res = resolve(pod, Store(job).lookup)
    owner = owner_of(res.objects, settings)
    assert owner.name == "bob"  # the workload's own key wins over the pod's
    assert owner.team == "vision"
    assert owner.email == "bob@corp.io"  # not on the workload: falls back to the pod


def test_owner_keys_are_configurable_and_may_be_absent() -> None:
    job = obj("batch/v1", "Job", "t", labels={"corp/user": "carol"})
    res = resolve(obj("v1", "Pod", "t-x", job), Store(job).lookup)
    assert owner_of(res.objects, Settings()).name is None
    owner = owner_of(res.objects, Settings(owner_keys=("corp/user",)))
    assert owner.name == "carol" and owner.email is None and owner.team is None


# --- the kinds of the upstream controllers ---------------------------------------------------------

def test_trainjob_owns_its_jobset_and_jobs() -> None:
    tj = obj("trainer.kubeflow.org/v1alpha1", "TrainJob", "llm")
    js = obj("jobset.x-k8s.io/v1alpha2", "JobSet", "llm", tj)
    job = obj("batch/v1", "Job", "llm-node-0", js)
    pod = obj("v1", "Pod", "llm-node-0-0", job)
    res = resolve(pod, Store(tj, js, job).lookup)
    assert res.suspendable and kinds(res) == ["Pod", "Job", "JobSet", "TrainJob"]
    assert res.target is not None and res.target.kind == "TrainJob"


@pytest.mark.parametrize("kind", ["TFJob", "MPIJob", "XGBoostJob", "PaddleJob", "JAXJob"])
def test_training_operator_kinds_own_pods_directly(kind: str) -> None:
    job = obj("kubeflow.org/v1", kind, "t")
    pod = obj("v1", "Pod", "t-worker-0", job)
    res = resolve(pod, Store(job).lookup)
    assert res.suspendable and kinds(res) == ["Pod", kind]


def _lws_group() -> tuple[dict[str, Any], ...]:
    lws = obj("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", "serve")
    leader_sts = obj("apps/v1", "StatefulSet", "serve", lws)
    leader = obj("v1", "Pod", "serve-0", leader_sts)
    worker_sts = obj("apps/v1", "StatefulSet", "serve-0", leader)
    worker = obj("v1", "Pod", "serve-0-1", worker_sts)
    return lws, leader_sts, leader, worker_sts, worker


def test_leaderworkerset_leader_and_worker_pods_resolve_to_the_lws() -> None:
    lws, leader_sts, leader, worker_sts, worker = _lws_group()
    store = Store(lws, leader_sts, leader, worker_sts)
    lead = resolve(leader, store.lookup)
    assert lead.suspendable and kinds(lead) == ["Pod", "StatefulSet", "LeaderWorkerSet"]
    work = resolve(worker, store.lookup)
    assert work.suspendable and kinds(work) == ["Pod", "StatefulSet", "Pod", "StatefulSet", "LeaderWorkerSet"]
    assert work.workload == lead.workload


def test_a_statefulset_owned_by_a_pod_outside_a_leaderworkerset_is_notify_only() -> None:
    top = obj("apps/v1", "StatefulSet", "top")
    owner_pod = obj("v1", "Pod", "top-0", top)
    sts = obj("apps/v1", "StatefulSet", "side", owner_pod)
    pod = obj("v1", "Pod", "side-0", sts)
    res = resolve(pod, Store(top, owner_pod, sts).lookup)
    assert not res.suspendable and "LeaderWorkerSet" in res.reason


@pytest.mark.parametrize("api_version,kind", [("trainer.kubeflow.org/v1alpha1", "TrainJob"),
                                              ("kubeflow.org/v1", "TFJob")])
def test_kueue_managed_trainjob_and_tfjob_target_their_workload(api_version: str, kind: str) -> None:
    job = obj(api_version, kind, "t", labels={"kueue.x-k8s.io/queue-name": "team"})
    wl = obj("kueue.x-k8s.io/v1beta2", "Workload", f"{kind.lower()}-t-1", job)
    pod = obj("v1", "Pod", "t-0", job)
    store = Store(job, wl)
    res = resolve(pod, store.lookup, store.owned)
    assert res.suspendable and res.target is not None and res.target.kind == "Workload"
    assert res.workload is not None and res.workload.kind == kind


def test_a_missing_owner_or_kueue_workload_is_not_a_final_answer() -> None:
    job = obj("batch/v1", "Job", "train", labels={"kueue.x-k8s.io/queue-name": "team"})
    pod = obj("v1", "Pod", "train-0", job)
    assert resolve(pod, Store().lookup).final is False  # the Job is not there (yet)
    store = Store(job)
    assert resolve(pod, store.lookup, store.owned).final is False  # Kueue has not made its Workload yet
    assert resolve(obj("v1", "Pod", "bare"), Store().lookup).final is True
    plain = obj("batch/v1", "Job", "plain")
    assert resolve(obj("v1", "Pod", "plain-0", plain), Store(plain).lookup).final is True
