"""Adapters: suspend -> resume restores the exact object; suspend is idempotent; records are checked."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpu_steward.workloads import adapters
from gpu_steward.workloads.adapters import (
    ADAPTERS,
    CannotResume,
    InvalidRecord,
    UnsupportedKind,
    apply_merge_patch,
    is_suspended,
    resume_patch,
    suspend_patch,
)
from gpu_steward.workloads.model import SUSPENDED_STATE_ANNOTATION

NOW = dt.datetime(2026, 11, 26, 21, 0, 5, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(hours=3)


def make(api_version: str, kind: str, spec: dict[str, Any] | None = None,
         annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "w", "namespace": "ml", "uid": "u1", "labels": {"team": "a"}}
    if annotations is not None:
        meta["annotations"] = annotations
    out: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": meta}
    if spec is not None:
        out["spec"] = spec
    return out


def apiserver_view(obj: dict[str, Any]) -> dict[str, Any]:
    """The apiserver omits an empty annotations map (omitempty); so do we when comparing."""
    out = copy.deepcopy(obj)
    if out["metadata"].get("annotations") == {}:
        del out["metadata"]["annotations"]
    return out


def round_trip(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(suspended object, resumed object, record) — going through the patches only."""
    patch, record = suspend_patch(obj, NOW)
    assert patch and record is not None
    suspended = apply_merge_patch(obj, patch)
    assert is_suspended(suspended)
    # the record travels in the annotation: resume reads it from there, as after an operator restart
    assert json.loads(suspended["metadata"]["annotations"][SUSPENDED_STATE_ANNOTATION]) == record
    resumed = apiserver_view(apply_merge_patch(suspended, resume_patch(suspended)))
    return suspended, resumed, record


# --- per kind ------------------------------------------------------------------------------------

def test_job_suspend_and_resume() -> None:
    job = make("batch/v1", "Job", {"suspend": False, "parallelism": 2})
    patch, record = suspend_patch(job, NOW)
    assert patch["spec"] == {"suspend": True}
    assert record is not None and record["previous"] is False and record["present"] is True
    suspended, resumed, _ = round_trip(job)
    assert suspended["spec"]["suspend"] is True
    assert resumed == job


def test_notebook_gets_and_loses_the_stopped_annotation() -> None:
    nb = make("kubeflow.org/v1", "Notebook", {"template": {"spec": {}}}, annotations={"keep": "me"})
    suspended, resumed, _ = round_trip(nb)
    assert suspended["metadata"]["annotations"]["kubeflow-resource-stopped"] == "2026-11-26T21:00:05Z"
    assert resumed == nb
    patch = resume_patch(suspended)
    assert patch == {"metadata": {"annotations": {"kubeflow-resource-stopped": None,
                                                  SUSPENDED_STATE_ANNOTATION: None}}}


@pytest.mark.parametrize("kind", ["StatefulSet", "Deployment"])
def test_replicas_scale_to_zero_and_back(kind: str) -> None:
    w = make("apps/v1", kind, {"replicas": 3, "selector": {}})
    patch, record = suspend_patch(w, NOW)
    assert patch["spec"] == {"replicas": 0} and record is not None and record["previous"] == 3
    _, resumed, _ = round_trip(w)
    assert resumed["spec"]["replicas"] == 3 and resumed == w


def test_jobset_unset_suspend_is_unset_again() -> None:
    js = make("jobset.x-k8s.io/v1alpha2", "JobSet", {"replicatedJobs": []})
    suspended, resumed, record = round_trip(js)
    assert suspended["spec"]["suspend"] is True and record["present"] is False
    assert "suspend" not in resumed["spec"] and resumed == js


def test_pytorchjob_run_policy_suspend() -> None:
    pj = make("kubeflow.org/v1", "PyTorchJob", {"runPolicy": {"cleanPodPolicy": "None"}, "pytorchReplicaSpecs": {}})
    patch, _ = suspend_patch(pj, NOW)
    assert patch["spec"] == {"runPolicy": {"suspend": True}}
    _, resumed, _ = round_trip(pj)
    assert resumed == pj


@pytest.mark.parametrize("kind", ["RayJob", "RayCluster"])
def test_ray_suspend(kind: str) -> None:
    r = make("ray.io/v1", kind, {"suspend": False, "shutdownAfterJobFinishes": True})
    suspended, resumed, _ = round_trip(r)
    assert suspended["spec"]["suspend"] is True and resumed == r


@pytest.mark.parametrize("version", ["kueue.x-k8s.io/v1beta1", "kueue.x-k8s.io/v1beta2"])
def test_kueue_workload_active(version: str) -> None:
    wl = make(version, "Workload", {"active": True, "queueName": "q", "podSets": []})
    patch, _ = suspend_patch(wl, NOW)
    assert patch["spec"] == {"active": False}
    suspended, resumed, _ = round_trip(wl)
    assert suspended["spec"]["active"] is False and resumed == wl


def test_every_registered_adapter_round_trips() -> None:
    versions = {"batch": "batch/v1", "apps": "apps/v1"}
    for (group, kind), adapter in ADAPTERS.items():
        spec: dict[str, Any] = {"replicas": 2} if adapter.path[-1] == "replicas" else {}
        if kind == "RayJob":
            spec["shutdownAfterJobFinishes"] = True  # the only RayJobs KubeRay lets be suspended
        w = make(versions.get(group, f"{group}/v1"), kind, spec)
        _, resumed, _ = round_trip(w)
        assert resumed == w, kind


# --- idempotency ---------------------------------------------------------------------------------

@pytest.mark.parametrize("obj", [
    make("apps/v1", "StatefulSet", {"replicas": 3}),
    make("batch/v1", "Job", {"suspend": False}),
    make("kubeflow.org/v1", "Notebook", {}),
    make("kueue.x-k8s.io/v1beta2", "Workload", {"active": True}),
], ids=lambda o: o["kind"])
def test_suspending_twice_keeps_the_first_record(obj: dict[str, Any]) -> None:
    patch1, record1 = suspend_patch(obj, NOW)
    suspended = apply_merge_patch(obj, patch1)
    patch2, record2 = suspend_patch(suspended, LATER)
    assert patch2 == {}
    assert record2 == record1  # not a record of the suspended state (0 replicas, suspend: true)
    resumed = apiserver_view(apply_merge_patch(suspended, resume_patch(suspended)))
    assert resumed == obj


def test_already_suspended_by_someone_else_is_left_alone() -> None:
    job = make("batch/v1", "Job", {"suspend": True})
    assert suspend_patch(job, NOW) == ({}, None)
    # resume without a record: the unambiguous inverse for a flag
    assert resume_patch(job) == {"spec": {"suspend": False}}


def test_scaled_to_zero_without_record_cannot_be_resumed() -> None:
    sts = make("apps/v1", "StatefulSet", {"replicas": 0})
    with pytest.raises(CannotResume, match=r"spec\.replicas"):
        resume_patch(sts)


def test_resume_of_running_workload_only_drops_a_stale_record() -> None:
    sts = make("apps/v1", "StatefulSet", {"replicas": 3})
    assert resume_patch(sts) == {}
    patch, _ = suspend_patch(sts, NOW)
    suspended = apply_merge_patch(sts, patch)
    suspended["spec"]["replicas"] = 5  # the owner scaled it back by hand meanwhile
    out = resume_patch(suspended)
    assert out == {"metadata": {"annotations": {SUSPENDED_STATE_ANNOTATION: None}}}


def test_resume_twice_is_empty_the_second_time() -> None:
    job = make("batch/v1", "Job", {"suspend": False})
    _, resumed, _ = round_trip(job)
    assert resume_patch(resumed) == {}


def test_other_annotations_and_prior_values_survive() -> None:
    sts = make("apps/v1", "StatefulSet", {"replicas": 4},
               annotations={"a": "1", "gpusteward.dev/owner": "bob"})
    original = copy.deepcopy(sts)
    _, resumed, _ = round_trip(sts)
    assert resumed == original and sts == original  # builders never mutate their input


# --- bad input -----------------------------------------------------------------------------------

def test_unsupported_kind() -> None:
    with pytest.raises(UnsupportedKind, match="DaemonSet"):
        suspend_patch(make("apps/v1", "DaemonSet", {}), NOW)
    with pytest.raises(UnsupportedKind):
        suspend_patch(make("v1", "Pod", {}), NOW)


@pytest.mark.parametrize("raw, match", [
    ("not json", "not JSON"),
    ("[1]", "JSON object"),
    (json.dumps({"kind": "Job", "path": ["spec", "suspend"], "present": True, "previous": False}), "does not fit"),
    (json.dumps({"kind": "StatefulSet", "path": ["spec", "replicas"], "present": True, "previous": -2}), ">= 0"),
    (json.dumps({"kind": "StatefulSet", "path": ["spec", "replicas"], "present": True, "previous": "3"}), ">= 0"),
    (json.dumps({"kind": "StatefulSet", "path": ["spec", "replicas"]}), "required"),
])
def test_garbage_record_is_refused_with_the_annotation_named(raw: str, match: str) -> None:
    sts = make("apps/v1", "StatefulSet", {"replicas": 0}, annotations={SUSPENDED_STATE_ANNOTATION: raw})
    with pytest.raises(InvalidRecord, match=match) as info:
        resume_patch(sts)
    assert SUSPENDED_STATE_ANNOTATION in str(info.value)


def test_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        suspend_patch(make("kubeflow.org/v1", "Notebook", {}), dt.datetime(2026, 1, 1))


def test_describe_says_old_and_new() -> None:
    sts = make("apps/v1", "StatefulSet", {"replicas": 3})
    patch, _ = suspend_patch(sts, NOW)
    lines = adapters.describe(sts, patch)
    assert "spec.replicas: 3 -> 0" in lines
    assert any(line.startswith(f"metadata.annotations.{SUSPENDED_STATE_ANNOTATION}: <unset> -> ") for line in lines)


# --- properties ----------------------------------------------------------------------------------

annotation_values = st.dictionaries(st.sampled_from(["a", "b", "x/y", "kubeflow.org/z"]), st.text(max_size=8),
                                    max_size=3)


@given(replicas=st.integers(min_value=1, max_value=10_000), kind=st.sampled_from(["StatefulSet", "Deployment"]),
       annotations=annotation_values, times=st.integers(min_value=1, max_value=4))
def test_property_replicas_round_trip_exactly(replicas: int, kind: str, annotations: dict[str, str],
                                              times: int) -> None:
    w = make("apps/v1", kind, {"replicas": replicas, "selector": {"matchLabels": {"a": "b"}}},
             annotations=annotations or None)
    cur = w
    for i in range(times):  # suspending repeatedly must not lose the count
        patch, record = suspend_patch(cur, NOW + dt.timedelta(minutes=i))
        cur = apply_merge_patch(cur, patch)
        assert record is not None and record["previous"] == replicas
    assert cur["spec"]["replicas"] == 0
    assert apiserver_view(apply_merge_patch(cur, resume_patch(cur))) == w


flag_specs = st.sampled_from([
    ("batch/v1", "Job", ("spec", "suspend")),
    ("jobset.x-k8s.io/v1alpha2", "JobSet", ("spec", "suspend")),
    ("kubeflow.org/v1", "PyTorchJob", ("spec", "runPolicy", "suspend")),
    ("ray.io/v1", "RayJob", ("spec", "suspend")),
    ("ray.io/v1", "RayCluster", ("spec", "suspend")),
])


@given(which=flag_specs, prior=st.sampled_from([False, None, "absent"]), annotations=annotation_values)
def test_property_prior_suspend_value_is_restored(which: tuple[str, str, tuple[str, ...]], prior: Any,
                                                  annotations: dict[str, str]) -> None:
    api_version, kind, path = which
    spec: dict[str, Any] = {"other": 1}
    if kind == "RayJob":
        spec["shutdownAfterJobFinishes"] = True  # the only RayJobs KubeRay lets be suspended
    if prior != "absent":
        holder = spec
        for part in path[1:-1]:
            holder = holder.setdefault(part, {})
        holder[path[-1]] = prior
    w = make(api_version, kind, spec, annotations=annotations or None)
    _, resumed, record = round_trip(w)
    expected = copy.deepcopy(w)
    if prior is None:
        # merge patch cannot write an explicit null: an explicit null comes back as "unset",
        # which the apiserver reads the same way
        holder = expected["spec"]
        for part in path[1:-1]:
            holder = holder[part]
        del holder[path[-1]]
    assert resumed == expected
    assert record["present"] is (prior != "absent")


def test_parent_created_by_suspend_is_kept_when_it_gained_other_fields() -> None:
    pj = make("kubeflow.org/v1", "PyTorchJob", {"pytorchReplicaSpecs": {}})
    patch, record = suspend_patch(pj, NOW)
    assert record is not None and record["absentFrom"] == 1
    suspended = apply_merge_patch(pj, patch)
    assert resume_patch(suspended)["spec"] == {"runPolicy": None}
    suspended["spec"]["runPolicy"]["backoffLimit"] = 3  # someone added a field meanwhile
    assert resume_patch(suspended)["spec"] == {"runPolicy": {"suspend": None}}


def test_a_statefulset_that_deletes_its_volumes_when_scaled_is_never_scaled_to_zero():
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "ml"},
           "spec": {"replicas": 2, "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete",
                                                                            "whenDeleted": "Retain"}}}
    assert "whenScaled: Delete" in (adapters.data_loss_reason(sts) or "")
    with pytest.raises(adapters.WouldLoseData):
        adapters.suspend_patch(sts, NOW)
    sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] = "Retain"
    assert adapters.data_loss_reason(sts) is None
    patch, _ = adapters.suspend_patch(sts, NOW)
    assert patch["spec"]["replicas"] == 0


# --- the kinds of the upstream controllers (Trainer, training operator, LeaderWorkerSet) ----------

def test_trainjob_suspend_is_its_own_spec_suspend() -> None:
    tj = make("trainer.kubeflow.org/v1alpha1", "TrainJob", {"runtimeRef": {"name": "torch-distributed"}})
    patch, _ = suspend_patch(tj, NOW)
    assert patch["spec"] == {"suspend": True}
    _, resumed, _ = round_trip(tj)
    assert "suspend" not in resumed["spec"] and resumed == tj


@pytest.mark.parametrize("kind", ["PyTorchJob", "TFJob", "MPIJob", "XGBoostJob", "PaddleJob", "JAXJob"])
def test_every_training_operator_kind_uses_run_policy_suspend(kind: str) -> None:
    job = make("kubeflow.org/v1", kind, {"runPolicy": {"cleanPodPolicy": "Running"}})
    patch, _ = suspend_patch(job, NOW)
    assert patch["spec"] == {"runPolicy": {"suspend": True}}
    _, resumed, _ = round_trip(job)
    assert resumed == job


def test_mpijob_of_the_mpi_operator_v2beta1_is_suspended_the_same_way() -> None:
    job = make("kubeflow.org/v2beta1", "MPIJob", {"runPolicy": {"suspend": False}})
    suspended, resumed, _ = round_trip(job)
    assert suspended["spec"]["runPolicy"]["suspend"] is True and resumed == job


def test_leaderworkerset_goes_to_zero_groups_and_back_to_its_count() -> None:
    lws = make("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", {"replicas": 3, "leaderWorkerTemplate": {"size": 4}})
    suspended, resumed, record = round_trip(lws)
    assert suspended["spec"]["replicas"] == 0 and record["previous"] == 3
    assert resumed == lws


@pytest.mark.parametrize("policy", [{"whenScaled": "Delete"}, {"whenDeleted": "Delete"},
                                    {"whenScaled": "Retain", "whenDeleted": "Delete"}])
def test_leaderworkerset_whose_volumes_would_go_is_notify_only(policy: dict[str, str]) -> None:
    lws = make("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", {"replicas": 2, "leaderWorkerTemplate": {
        "size": 2, "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
        "persistentVolumeClaimRetentionPolicy": policy}})
    assert "would delete its volumes" in (adapters.data_loss_reason(lws) or "")
    with pytest.raises(adapters.WouldLoseData):
        suspend_patch(lws, NOW)


def test_leaderworkerset_with_retained_or_no_volumes_may_be_scaled_to_zero() -> None:
    retained = make("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", {"replicas": 2, "leaderWorkerTemplate": {
        "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}})  # default retention: Retain/Retain
    deleting_but_no_volumes = make("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", {"replicas": 2,
        "leaderWorkerTemplate": {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"}}})
    for lws in (retained, deleting_but_no_volumes):
        assert adapters.data_loss_reason(lws) is None
        assert suspend_patch(lws, NOW)[0]["spec"]["replicas"] == 0


def test_policy_kinds_the_kind_list_and_the_adapters_agree() -> None:
    from typing import get_args

    from gpu_steward.api.idlepolicy import WorkloadKind
    from gpu_steward.workloads.model import SUSPENDABLE_KINDS, group_of

    listed = {k.kind for k in SUSPENDABLE_KINDS}
    assert set(get_args(WorkloadKind)) == listed | {"Pod"}  # `kinds:` in an IdlePolicy can name each
    adapted = {(group_of(v), k.kind) for k in SUSPENDABLE_KINDS for v in k.api_versions}
    assert adapted == {key for key in ADAPTERS if key[1] != "Workload"}  # Kueue's Workload is only a target


def test_a_rayjob_kuberay_would_fail_when_suspended_is_notify_only() -> None:
    # KubeRay marks such a RayJob ValidationFailed for good and leaves its RayCluster running
    keeps_cluster = make("ray.io/v1", "RayJob", {"entrypoint": "python x.py"})  # shutdownAfterJobFinishes unset
    on_existing = make("ray.io/v1", "RayJob", {"shutdownAfterJobFinishes": True,
                                               "clusterSelector": {"ray.io/cluster": "c"}})
    for rj, why in ((keeps_cluster, "shutdownAfterJobFinishes"), (on_existing, "clusterSelector")):
        assert why in (adapters.unsuspendable_reason(rj) or "")
        with pytest.raises(adapters.ControllerRefuses):
            suspend_patch(rj, NOW)
    fine = make("ray.io/v1", "RayJob", {"shutdownAfterJobFinishes": True})
    assert adapters.unsuspendable_reason(fine) is None and suspend_patch(fine, NOW)[0]["spec"]["suspend"] is True
