"""Helpers for the budget/lease/cost integration tests on the real local control plane."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from gpu_steward.kube import Kube

REPO = Path(__file__).resolve().parents[2]
API = "gpusteward.dev/v1alpha1"


def wait_for(fn: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


def kubectl(cluster: Any, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(cluster.bin_dir) / "kubectl"
    proc = subprocess.run([str(exe), "--kubeconfig", str(cluster.kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
    return proc


def apply(cluster: Any, obj: dict[str, Any], *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    return kubectl(cluster, "apply", "-f", "-", *extra, stdin=yaml.safe_dump(obj), check=check)


def create(cluster: Any, obj: dict[str, Any], *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    return kubectl(cluster, "create", "-f", "-", *extra, stdin=yaml.safe_dump(obj), check=check)


def install_crds(cluster: Any) -> None:
    kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    for plural in ("gpubudgets", "experimentleases"):
        kubectl(cluster, "wait", "--for=condition=Established", f"crd/{plural}.gpusteward.dev", "--timeout=60s")


def new_namespace(cluster: Any, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl(cluster, "create", "namespace", name)
    # The namespace's default ServiceAccount must exist before pods can be created in it.
    wait_for(lambda: kubectl(cluster, "-n", name, "get", "serviceaccount", "default", check=False).returncode == 0,
             what="default service account")
    return name


def gpu_pod_spec(gpus: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"labels": labels or {}},
        "spec": {
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "main", "image": "busybox",
                            "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
        },
    }


def gpu_pod(ns: str, name: str, gpus: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    t = gpu_pod_spec(gpus, labels)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, **t["metadata"]},
            "spec": t["spec"]}


def gpu_job(ns: str, name: str, gpus: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns},
            "spec": {"backoffLimit": 0, "template": gpu_pod_spec(gpus, labels)}}


def running_pod(kube: Kube, ns: str, name: str | None = None, selector: str | None = None,
                timeout: float = 60) -> dict[str, Any]:
    def get() -> dict[str, Any] | None:
        pods = [kube.get("v1", "Pod", name, ns)] if name else kube.list("v1", "Pod", ns, label_selector=selector)
        for p in pods:
            if p and (p.get("status") or {}).get("phase") == "Running" and p["status"].get("startTime"):
                return p
        return None

    return wait_for(get, timeout, what=f"a running pod in {ns}")


def quota_hard(kube: Kube, ns: str, budget: str) -> tuple[str | None, str | None]:
    rq = kube.get("v1", "ResourceQuota", f"gpusteward-{budget}", ns)
    if rq is None:
        return None, None
    return (rq["spec"]["hard"].get("requests.nvidia.com/gpu"),
            ((rq.get("status") or {}).get("hard") or {}).get("requests.nvidia.com/gpu"))


def wait_quota(kube: Kube, ns: str, budget: str, value: int) -> None:
    """Until both the spec and the quota controller's status say ``value`` (admission uses the status)."""
    wait_for(lambda: quota_hard(kube, ns, budget) == (str(value), str(value)), 60, what=f"quota {value}")


def events(kube: Kube, ns: str, name: str) -> list[dict[str, Any]]:
    return [e for e in kube.list("v1", "Event", ns) if (e.get("involved_object") or e.get("involvedObject") or {})
            .get("name") == name]


def event_reasons(kube: Kube, ns: str, name: str) -> list[str]:
    return [e.get("reason") for e in events(kube, ns, name)]


def utc(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
