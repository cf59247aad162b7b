"""The foundation: a real control plane with fake GPU nodes behaves like Kubernetes does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gpu_steward_testground import build
from gpu_steward_testground.processes import wait_for
from gpu_steward_testground.runner import ControlPlane

pytestmark = pytest.mark.cluster
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _pod(name: str, gpus: int, labels: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "containers": [{"name": "main", "image": "registry.example/trainer:1",
                            "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
            "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }


def test_apiserver_reports_pinned_version(cluster: ControlPlane) -> None:
    version = cluster.get_json("/version")
    assert version["gitVersion"] == build.KUBERNETES_VERSION


def test_gpu_pod_is_scheduled_on_fake_gpu_node_and_runs(cluster: ControlPlane) -> None:
    cluster.create_namespace("fnd-gpu")
    cluster.add_gpu_node("fnd-gpu-node", gpus=4, product="NVIDIA-H100-80GB-HBM3")
    pod = _pod("trainer", 1)
    # Other tests on this shared cluster leave GPU nodes too: the scheduler must fit it on this one.
    pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "fnd-gpu-node"}
    cluster.kubectl("apply", "-n", "fnd-gpu", "-f", "-", input=yaml.safe_dump(pod))

    def running() -> dict | None:  # type: ignore[type-arg]
        pod = json.loads(cluster.kubectl("get", "pod", "trainer", "-n", "fnd-gpu", "-o", "json").stdout)
        return pod if pod["status"].get("phase") == "Running" else None

    pod = wait_for(running, what="GPU pod Running")
    assert pod["spec"]["nodeName"] == "fnd-gpu-node"
    node = json.loads(cluster.kubectl("get", "node", "fnd-gpu-node", "-o", "json").stdout)
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4"
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"


def test_pod_asking_for_more_gpus_than_any_node_has_stays_pending(cluster: ControlPlane) -> None:
    cluster.create_namespace("fnd-big")
    cluster.add_gpu_node("fnd-big-node", gpus=2)
    cluster.kubectl("apply", "-n", "fnd-big", "-f", "-", input=yaml.safe_dump(_pod("huge", 64)))

    def unschedulable() -> bool:
        pod = json.loads(cluster.kubectl("get", "pod", "huge", "-n", "fnd-big", "-o", "json").stdout)
        conds = pod["status"].get("conditions", [])
        return any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable" for c in conds)

    wait_for(unschedulable, what="scheduler to report Unschedulable")


def test_job_controller_creates_the_jobs_pod(cluster: ControlPlane) -> None:
    cluster.create_namespace("fnd-job")
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "train"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "registry.example/trainer:1",
                            "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}},
    }
    cluster.kubectl("apply", "-n", "fnd-job", "-f", "-", input=yaml.safe_dump(job))

    def pods() -> list:  # type: ignore[type-arg]
        out = cluster.kubectl("get", "pods", "-n", "fnd-job", "-l", "job-name=train", "-o", "json").stdout
        return json.loads(out)["items"]

    items = wait_for(pods, what="the Job controller to create a pod")
    assert items[0]["metadata"]["ownerReferences"][0]["kind"] == "Job"


def test_resource_quota_on_gpus_rejects_over_quota_pod(cluster: ControlPlane) -> None:
    cluster.create_namespace("fnd-quota")
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "gpus"},
             "spec": {"hard": {"requests.nvidia.com/gpu": "1"}}}
    cluster.kubectl("apply", "-n", "fnd-quota", "-f", "-", input=yaml.safe_dump(quota))
    wait_for(lambda: json.loads(cluster.kubectl("get", "resourcequota", "gpus", "-n", "fnd-quota", "-o", "json")
                             .stdout).get("status", {}).get("hard"), what="quota status")
    res = cluster.kubectl("apply", "-n", "fnd-quota", "-f", "-", input=yaml.safe_dump(_pod("two", 2)), check=False)
    assert res.returncode != 0
    assert "forbidden" in res.stderr.lower() and "exceeded quota" in res.stderr
    ok = cluster.kubectl("apply", "-n", "fnd-quota", "-f", "-", input=yaml.safe_dump(_pod("one", 1)), check=False)
    assert ok.returncode == 0, ok.stderr


def test_upstream_crds_apply_and_accept_one_object_each(cluster: ControlPlane, upstream_crds: Path) -> None:
    names = cluster.apply_crds(*sorted(upstream_crds.glob("*.yaml")))
    assert sorted(names) == ["jobsets.jobset.x-k8s.io", "notebooks.kubeflow.org", "workloads.kueue.x-k8s.io"]
    cluster.create_namespace("fnd-crds")
    container = {"name": "main", "image": "registry.example/nb:1", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
    notebook = {"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "metadata": {"name": "nb"},
                "spec": {"template": {"spec": {"containers": [container]}}}}
    jobset = {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "metadata": {"name": "js"},
              "spec": {"replicatedJobs": [{"name": "workers", "replicas": 1, "template": {"spec": {
                  "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}}}]}}
    workload = {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "Workload", "metadata": {"name": "wl"},
                "spec": {"queueName": "team-a", "podSets": [{"name": "main", "count": 1,
                                                             "template": {"spec": {"containers": [container]}}}]}}
    for obj in (notebook, jobset, workload):
        cluster.kubectl("apply", "-n", "fnd-crds", "-f", "-", input=yaml.safe_dump(obj))
    for kind, name in (("notebook", "nb"), ("jobset", "js"), ("workload.kueue.x-k8s.io", "wl")):
        got = json.loads(cluster.kubectl("get", kind, name, "-n", "fnd-crds", "-o", "json").stdout)
        assert got["metadata"]["name"] == name


def test_helm_reports_pinned_version_and_lints_a_chart(cluster: ControlPlane) -> None:
    out = cluster.helm("version", "--short").stdout
    assert out.strip().startswith(build.HELM_VERSION)
    lint = cluster.helm("lint", str(FIXTURES / "minimal-chart"))
    assert "1 chart(s) linted, 0 chart(s) failed" in lint.stdout


def test_no_process_outlives_an_interrupted_control_plane(tmp_path: Path) -> None:
    """Start a control plane in a child, interrupt it like Ctrl-C, and check every process it started is gone."""
    pids_file = tmp_path / "pids"
    child = subprocess.Popen([sys.executable, "-m", "gpu_steward_testground.runner", "--gpu-nodes", "1",
                              "--pids-file", str(pids_file)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    assert "control plane ready" in line, line + child.stdout.read()
    pids = [int(p) for p in pids_file.read_text().split()]
    assert len(pids) == 5 and all(_alive(p) for p in pids)
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=60) == 0
    wait_for(lambda: not any(_alive(p) for p in pids), timeout=20, what="all control-plane processes to exit")


def test_no_process_outlives_a_killed_parent(tmp_path: Path) -> None:
    """Even SIGKILL of the parent (no clean-up code runs) leaves no control-plane process behind."""
    pids_file = tmp_path / "pids"
    child = subprocess.Popen([sys.executable, "-m", "gpu_steward_testground.runner", "--gpu-nodes", "0",
                              "--pids-file", str(pids_file)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    assert child.stdout is not None
    assert "control plane ready" in child.stdout.readline()
    pids = [int(p) for p in pids_file.read_text().split()]
    child.kill()
    child.wait(timeout=10)
    wait_for(lambda: not any(_alive(p) for p in pids), timeout=20, what="orphans to die with their parent")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
