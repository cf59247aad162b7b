"""Admission webhooks through the real apiserver: who may approve a lease, GPU pod ownership.

The operator runs as a subprocess (``python -m gpu_steward.handlers.run``) with its webhook server on
127.0.0.1 and a self-signed certificate; kopf registers the ValidatingWebhookConfiguration itself.
The test acts as other users through the apiserver's impersonation (``kubectl --as/--as-group``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from fixtures.budget_cluster import API, REPO, apply, create, install_crds, kubectl, new_namespace, wait_for
from gpu_steward.kube import Kube

pytestmark = pytest.mark.cluster

APPROVERS = "gpu-steward-approvers"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RBAC = [
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "lease-user"},
     "rules": [{"apiGroups": ["gpusteward.dev"], "resources": ["experimentleases"],
                "verbs": ["get", "list", "create", "update", "patch"]},
               {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "create"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "lease-user"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "lease-user"},
     "subjects": [{"kind": "Group", "name": "dev", "apiGroup": "rbac.authorization.k8s.io"},
                  {"kind": "Group", "name": APPROVERS, "apiGroup": "rbac.authorization.k8s.io"}]},
]


@pytest.fixture(scope="module")
def operator(cluster, tmp_path_factory):
    install_crds(cluster)
    for obj in RBAC:
        apply(cluster, obj)
    ns = new_namespace(cluster, "approvals")
    port = free_port()
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig),
           "GPU_STEWARD_WEBHOOK_ENABLED": "true", "GPU_STEWARD_WEBHOOK_LISTEN_ADDR": "127.0.0.1",
           "GPU_STEWARD_WEBHOOK_PORT": str(port), "GPU_STEWARD_NAMESPACES": json.dumps([ns]),
           "GPU_STEWARD_OWNERSHIP_ADMISSION": "enforce", "GPU_STEWARD_EVALUATION_INTERVAL_SECONDS": "1",
           "GPU_STEWARD_APPROVER_GROUPS": json.dumps([APPROVERS]), "GPU_STEWARD_LOG_FORMAT": "console",
           "GPU_STEWARD_METRICS_PORT": "0"}  # no fixed port: other operators may run beside this one
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gpu_steward.handlers.run"], env=env, cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT)
    kube = Kube(cluster.api_client())

    def registered():
        cfg = kube.get("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "gpusteward.dev")
        hooks = (cfg or {}).get("webhooks") or []
        return any(str(port) in (h.get("clientConfig") or {}).get("url", "") for h in hooks)

    try:
        wait_for(lambda: registered() or proc.poll() is not None, 60, what="webhook registration")
        assert proc.poll() is None, log.read_text()[-3000:]
        yield ns, kube, log
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        # The lease webhook is persistent (fails closed while the operator is down): remove it for other tests.
        kubectl(cluster, "delete", "validatingwebhookconfiguration", "gpusteward.dev", "--ignore-not-found",
                check=False)
        kubectl(cluster, "delete", "mutatingwebhookconfiguration", "gpusteward.dev", "--ignore-not-found",
                check=False)


def as_user(user, group):
    return ("--as", user, "--as-group", group)


def lease(ns, name, owner="alice", gpus=4):
    return {"apiVersion": API, "kind": "ExperimentLease", "metadata": {"name": name, "namespace": ns},
            "spec": {"owner": owner, "purpose": "sweep", "gpus": gpus, "duration": "2h"}}


def approve(cluster, ns, name, *who):
    return kubectl(cluster, "-n", ns, "patch", "experimentlease", name, "--type=merge",
                   "-p", '{"spec":{"approved":true}}', *who, check=False)


def test_only_an_approver_who_is_not_the_owner_can_approve(cluster, operator):
    ns, kube, _log = operator
    create(cluster, lease(ns, "sweep"), *as_user("alice", "dev"))
    # No budget governs the namespace, so there is no fast lane: the lease waits for approval.
    wait_for(lambda: ((kube.get(API, "ExperimentLease", "sweep", ns) or {}).get("status") or {}).get("phase")
             == "PendingApproval", 30, what="PendingApproval")

    # The webhook may need a moment after registration before the apiserver reaches it.
    out = wait_for(lambda: (lambda p: p if "approver group" in p.stderr else None)(
        approve(cluster, ns, "sweep", *as_user("mallory", "dev"))), 30, what="webhook denial")
    assert out.returncode != 0 and "mallory" in out.stderr and APPROVERS in out.stderr

    own = approve(cluster, ns, "sweep", *as_user("alice", APPROVERS))
    assert own.returncode != 0 and "owns this lease" in own.stderr
    assert not kube.get(API, "ExperimentLease", "sweep", ns)["spec"].get("approved")

    ok = approve(cluster, ns, "sweep", *as_user("bob", APPROVERS))
    assert ok.returncode == 0, ok.stderr
    obj = kube.get(API, "ExperimentLease", "sweep", ns)
    assert obj["metadata"]["annotations"]["gpusteward.dev/approved-by"] == "bob"
    status = wait_for(lambda: (lambda s: s if s.get("phase") == "Active" else None)(
        (kube.get(API, "ExperimentLease", "sweep", ns) or {}).get("status") or {}), 30, what="Active")
    assert status["approvedBy"] == "bob"

    # Nobody creates an already-approved lease unless they may approve.
    self_approved = {**lease(ns, "sneaky"), "spec": {**lease(ns, "sneaky")["spec"], "approved": True}}
    out = create(cluster, self_approved, *as_user("alice", "dev"), check=False)
    assert out.returncode != 0 and "approver group" in out.stderr
    # A forged approver stamp is refused too.
    out = kubectl(cluster, "-n", ns, "annotate", "experimentlease", "sweep", "gpusteward.dev/approved-by=carol",
                  "--overwrite", *as_user("alice", "dev"), check=False)
    assert out.returncode != 0


def test_gpu_pod_without_ownership_labels_is_rejected_with_the_labels_to_add(cluster, operator):
    ns, _kube, _ = operator
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nolabels", "namespace": ns},
           "spec": {"containers": [{"name": "m", "image": "busybox",
                                    "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}
    out = wait_for(lambda: (lambda p: p if p.returncode != 0 else None)(create(cluster, pod, check=False)), 20,
                   what="pod rejection")
    assert "gpusteward.dev/owner" in out.stderr and "gpusteward.dev/team" in out.stderr
    labelled = {**pod, "metadata": {**pod["metadata"], "name": "labelled",
                                    "labels": {"gpusteward.dev/owner": "alice", "gpusteward.dev/team": "vision"}}}
    assert create(cluster, labelled, check=False).returncode == 0
    cpu_only = {**pod, "metadata": {"name": "cpu", "namespace": ns},
                "spec": {"containers": [{"name": "m", "image": "busybox"}]}}
    assert create(cluster, cpu_only, check=False).returncode == 0

