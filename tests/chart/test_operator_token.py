"""The chart's ServiceAccount, with a real token, may do exactly what the operator needs."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chart_rbac import OperatorIdentity, can_i, operator_kubeconfig

pytestmark = pytest.mark.cluster

NS = "gs-token-test"
RELEASE = "gs-token"  # fullname gs-token-gpu-steward: no clash with other tests' objects


@pytest.fixture(scope="module")
def kubectl(cluster: Any) -> Path:
    return Path(cluster.bin_dir) / "kubectl"


@pytest.fixture(scope="module")
def identity(cluster: Any, helm: Path, kubectl: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        OperatorIdentity]:
    out = tmp_path_factory.mktemp("sa") / "operator.kubeconfig"
    ident = operator_kubeconfig(helm=helm, kubectl=kubectl, admin_kubeconfig=cluster.kubeconfig, namespace=NS,
                                out=out, release=RELEASE, sets=["rbac.budgetSecretNames={team-slack}"])
    yield ident
    ident.remove()


def test_token_authenticates_as_the_service_account(identity: OperatorIdentity, kubectl: Path) -> None:
    proc = subprocess.run([str(kubectl), "--kubeconfig", str(identity.kubeconfig), "auth", "whoami", "-o", "json"],
                          capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout)["status"]["userInfo"]["username"] == identity.username
    assert identity.username == f"system:serviceaccount:{NS}:{RELEASE}-gpu-steward-operator"


ALLOWED = [
    ("list", "pods", "-A"),
    ("watch", "pods", "-A"),
    ("patch", "pods", "-n", "team-a"),
    ("list", "nodes"),
    ("create", "events", "-n", "team-a"),
    ("create", "resourcequotas", "-n", "team-a"),
    ("patch", "resourcequotas", "-n", "team-a"),
    # A budget's own quota goes when Kueue comes to admit the namespace (budgets/kueue.py); the power to
    # patch any quota is no smaller, and the operator deletes only one labelled as its budget's.
    ("delete", "resourcequotas", "-n", "team-a"),
    ("get", "replicasets.apps", "-n", "team-a"),
    ("patch", "jobs.batch", "-n", "team-a"),
    ("patch", "deployments.apps", "-n", "team-a"),
    ("patch", "statefulsets.apps", "-n", "team-a"),
    ("patch", "notebooks.kubeflow.org", "-n", "team-a"),
    ("patch", "jobsets.jobset.x-k8s.io", "-n", "team-a"),
    ("patch", "workloads.kueue.x-k8s.io", "-n", "team-a"),
    ("patch", "rayjobs.ray.io", "-n", "team-a"),
    ("watch", "idlepolicies.gpusteward.dev", "-A"),
    ("patch", "gpubudgets.gpusteward.dev", "-n", "team-a", "--subresource=status"),
    ("patch", "experimentleases.gpusteward.dev", "-n", "team-a"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
    # Leader election: the one Lease in the release namespace; the leader labels its own pod.
    ("create", "leases.coordination.k8s.io", "-n", NS),
    ("get", f"leases.coordination.k8s.io/{RELEASE}-gpu-steward-leader", "-n", NS),
    ("update", f"leases.coordination.k8s.io/{RELEASE}-gpu-steward-leader", "-n", NS),
    ("patch", "pods", "-n", NS),
    ("get", "secrets/team-slack", "-n", "team-a"),
]
DENIED = [
    ("delete", "secrets", "-n", "team-a"),
    ("get", "secrets/other-secret", "-n", "team-a"),
    ("list", "secrets", "-n", "team-a"),
    ("create", "pods", "-n", "team-a"),
    ("delete", "pods", "-n", "team-a"),
    ("delete", "jobs.batch", "-n", "team-a"),
    ("patch", "nodes"),
    ("patch", "replicasets.apps", "-n", "team-a"),
    ("delete", "idlepolicies.gpusteward.dev", "-n", "team-a"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "validatingwebhookconfigurations.admissionregistration.k8s.io"),
    ("update", "leases.coordination.k8s.io/someone-else", "-n", NS),
    ("get", "leases.coordination.k8s.io/someone-else", "-n", NS),
    ("create", "leases.coordination.k8s.io", "-n", "team-a"),
    ("update", f"leases.coordination.k8s.io/{RELEASE}-gpu-steward-leader", "-n", "team-a"),
    ("delete", f"leases.coordination.k8s.io/{RELEASE}-gpu-steward-leader", "-n", NS),
    ("impersonate", "users"),
]


@pytest.mark.parametrize("check", ALLOWED, ids=lambda c: " ".join(c))
def test_allowed(identity: OperatorIdentity, kubectl: Path, check: tuple[str, ...]) -> None:
    assert can_i(kubectl, identity.kubeconfig, *check)


@pytest.mark.parametrize("check", DENIED, ids=lambda c: " ".join(c))
def test_denied(identity: OperatorIdentity, kubectl: Path, check: tuple[str, ...]) -> None:
    assert not can_i(kubectl, identity.kubeconfig, *check)


@pytest.mark.parametrize("args, answer", [
    (["list", "pods", "-A"], "yes"),
    (["patch", "jobs.batch", "-n", "team-a"], "yes"),
    (["delete", "secrets", "-n", "team-a"], "no"),
    (["get", "secrets", "-n", "team-a"], "no"),
])
def test_kubectl_auth_can_i(identity: OperatorIdentity, kubectl: Path, args: list[str], answer: str) -> None:
    """The plain CLI agrees (for API groups the server serves; can_i() above also covers the others)."""
    proc = subprocess.run([str(kubectl), "--kubeconfig", str(identity.kubeconfig), "auth", "can-i", *args],
                          capture_output=True, text=True)
    assert proc.stdout.strip() == answer
    assert proc.returncode == (0 if answer == "yes" else 1)


def test_remove_takes_the_rights_away(cluster: Any, helm: Path, kubectl: Path, tmp_path: Path) -> None:
    ident = operator_kubeconfig(helm=helm, kubectl=kubectl, admin_kubeconfig=cluster.kubeconfig, namespace=NS,
                                out=tmp_path / "k", release="gs-token-2")
    assert can_i(kubectl, ident.kubeconfig, "list", "pods", "-A")
    ident.remove()
    # The ServiceAccount and binding are gone: the token no longer gets anything (the apiserver's
    # informer caches may take a moment to notice).
    deadline = time.monotonic() + 30
    while can_i(kubectl, ident.kubeconfig, "list", "pods", "-A", check_auth=False) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not can_i(kubectl, ident.kubeconfig, "list", "pods", "-A", check_auth=False)
