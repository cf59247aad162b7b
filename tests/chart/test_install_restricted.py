"""`helm install` into a namespace that enforces Pod Security `restricted`, the operator under an arbitrary
uid, then `helm test`, on the local control plane.

What this proves there: the apiserver's Pod Security admission admits the operator's pods (created by its
ReplicaSet) and the `helm test` pod under `restricted` with an arbitrary uid, the scheduler places them,
and Helm's test hook runs and is judged by its pod's phase. What it cannot prove: KWOK nodes run no
containers, so nothing answers /healthz; the test pod's exit is played by setting its phase to Succeeded
as a kubelet would after the container's exit 0 (test_images_run.py runs the real image under an
arbitrary uid). The agent is off: it needs a hostPath socket, which `restricted` forbids (docs/install.md).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helmtools import CHART, IMAGE_VALUES, run_helm

from gpu_steward_testground.runner import FAKE_NODE_ANNOTATION

pytestmark = pytest.mark.cluster
NS, RELEASE, CPU_NODE = "gs-restricted", "gs-rs", "gs-rs-cpu"
UID = "1000650000"


@pytest.fixture(scope="module")
def kubectl(cluster: Any) -> Any:
    def run(*args: str, check: bool = True, input: str | None = None) -> str:
        proc = subprocess.run([str(Path(cluster.bin_dir) / "kubectl"), "--kubeconfig", str(cluster.kubeconfig),
                               *args], input=input, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
        return proc.stdout
    return run


@pytest.fixture(scope="module")
def installed(cluster: Any, helm: Path, kubectl: Any) -> Iterator[None]:
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": CPU_NODE, "annotations": {FAKE_NODE_ANNOTATION: "fake"},
                     "labels": {"kubernetes.io/hostname": CPU_NODE, "kubernetes.io/os": "linux", "type": "kwok"}},
        "status": {"capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                   "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"}}}))
    kubectl("create", "namespace", NS)
    kubectl("label", "namespace", NS, "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/enforce-version=latest")
    run_helm(helm, "install", RELEASE, str(CHART), "--namespace", NS, "--wait=false", "-f", str(IMAGE_VALUES),
             "--set", "agent.enabled=false", "--set", "operator.replicas=1",
             "--set", "operator.podSecurityContext.runAsUser=" + UID,
             "--set", "operator.podSecurityContext.runAsGroup=0",
             "--set", "operator.podSecurityContext.fsGroup=" + UID, kubeconfig=cluster.kubeconfig)
    try:
        yield
    finally:
        run_helm(helm, "uninstall", RELEASE, "--namespace", NS, kubeconfig=cluster.kubeconfig, check=False)
        kubectl("delete", "namespace", NS, "--wait=false", check=False)
        kubectl("delete", "node", CPU_NODE, "--ignore-not-found", check=False)


def _pods(kubectl: Any, selector: str) -> list[dict[str, Any]]:
    return json.loads(kubectl("get", "pods", "-n", NS, "-l", selector, "-o", "json"))["items"]


def test_operator_pods_are_admitted_under_restricted_with_an_arbitrary_uid(installed: None, kubectl: Any) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        pods = _pods(kubectl, f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator")
        if pods and pods[0]["status"].get("phase") == "Running":
            break
        time.sleep(1)
    assert pods and pods[0]["status"]["phase"] == "Running", kubectl("get", "events", "-n", NS)
    assert str(pods[0]["spec"]["securityContext"]["runAsUser"]) == UID
    rs_events = kubectl("get", "events", "-n", NS, "--field-selector", "reason=FailedCreate", "-o", "json")
    assert json.loads(rs_events)["items"] == []  # Pod Security refused nothing


def test_helm_test_passes(installed: None, cluster: Any, helm: Path, kubectl: Any) -> None:
    result: dict[str, Any] = {}

    def run() -> None:
        result["proc"] = run_helm(helm, "test", RELEASE, "--namespace", NS, "--timeout", "120s",
                                  kubeconfig=cluster.kubeconfig, check=False)

    t = threading.Thread(target=run)
    t.start()
    name = f"{RELEASE}-gpu-steward-test-health"
    deadline = time.monotonic() + 90
    pod: dict[str, Any] = {}
    while time.monotonic() < deadline:
        found = kubectl("get", "pod", name, "-n", NS, "-o", "json", "--ignore-not-found")
        pod = json.loads(found) if found.strip() else {}
        if pod.get("status", {}).get("phase") == "Running":
            break
        time.sleep(1)
    assert pod.get("status", {}).get("phase") == "Running", "the helm test pod was not admitted or scheduled"
    assert str(pod["spec"]["securityContext"]["runAsUser"]) == UID
    # KWOK runs no container: play the kubelet reporting the health check's exit 0.
    kubectl("patch", "pod", name, "-n", NS, "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"phase": "Succeeded"}}))
    t.join(150)
    proc = result["proc"]
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "Phase:          Succeeded" in proc.stdout or "Succeeded" in proc.stdout
