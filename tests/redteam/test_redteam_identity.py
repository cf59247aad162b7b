"""Attempts through the running operator's admission webhooks, as other users on the real apiserver
(``kubectl --as USER --as-group GROUP``, issue 12): grow an active fast-lane lease without approval,
stack fast-lane leases, approve one's own lease under another owner name, forge who created a lease
or a workload, write a lease's status with a ``/status`` right."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import pytest

from fixtures.budget_cluster import (
    API,
    NODE,
    PLATFORM_NAMESPACE,
    REPO,
    apply,
    budget,
    create,
    get_lease,
    gpu_deployment,
    install_crds,
    kubectl,
    lease,
    new_namespace,
    wait_for,
    wait_quota,
)
from gpu_steward.kube import Kube
from gpu_steward.settings import Settings

pytestmark = pytest.mark.cluster

APPROVERS = "gpu-steward-approvers"
CREATED_BY = "gpusteward.dev/created-by"
A100 = "NVIDIA-A100-SXM4-80GB"
SETTINGS = Settings(gpu_hour_prices={A100: Decimal("4.10")}, default_gpu_hour_price=Decimal("2.50"))
STAMPED = SETTINGS.model_copy(update={"webhook_enabled": True})

RBAC = [
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "rt-lease-user"},
     "rules": [{"apiGroups": ["gpusteward.dev"], "resources": ["experimentleases"],
                "verbs": ["get", "list", "create", "update", "patch"]},
               {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "create", "patch"]},
               {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "create", "patch"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "rt-lease-user"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "rt-lease-user"},
     "subjects": [{"kind": "Group", "name": "dev", "apiGroup": "rbac.authorization.k8s.io"},
                  {"kind": "Group", "name": APPROVERS, "apiGroup": "rbac.authorization.k8s.io"}]},
    # Somebody who was (wrongly, or for tooling) given the status subresource of leases.
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "rt-lease-status"},
     "rules": [{"apiGroups": ["gpusteward.dev"], "resources": ["experimentleases/status"],
                "verbs": ["get", "update", "patch"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
     "metadata": {"name": "rt-lease-status"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "rt-lease-status"},
     "subjects": [{"kind": "Group", "name": "status-writers", "apiGroup": "rbac.authorization.k8s.io"}]},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_user(user: str, *groups: str) -> tuple[str, ...]:
    out: tuple[str, ...] = ("--as", user)
    for g in groups:
        out += ("--as-group", g)
    return out


@pytest.fixture(scope="module")
def kube(cluster) -> Kube:
    install_crds(cluster)
    cluster.add_gpu_node(NODE, gpus=64, product=A100)
    for obj in RBAC:
        apply(cluster, obj)
    return Kube(cluster.api_client())


@pytest.fixture(scope="module")
def operator(cluster, kube, tmp_path_factory):
    """The operator with its webhooks, reconciling the namespaces the tests create for it."""
    namespaces = [new_namespace(cluster, "rt-lease") for _ in range(8)]
    port = free_port()
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig),
           "GPU_STEWARD_WEBHOOK_ENABLED": "true", "GPU_STEWARD_WEBHOOK_LISTEN_ADDR": "127.0.0.1",
           "GPU_STEWARD_WEBHOOK_PORT": str(port), "GPU_STEWARD_NAMESPACES": json.dumps(namespaces),
           "GPU_STEWARD_EVALUATION_INTERVAL_SECONDS": "1", "GPU_STEWARD_PLATFORM_NAMESPACE": PLATFORM_NAMESPACE,
           "GPU_STEWARD_APPROVER_GROUPS": json.dumps([APPROVERS]), "GPU_STEWARD_LOG_FORMAT": "console"}
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gpu_steward.handlers.run"], env=env, cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT)

    def registered() -> bool:
        cfg = kube.get("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "gpusteward.dev")
        hooks = (cfg or {}).get("webhooks") or []
        return any(str(port) in (h.get("clientConfig") or {}).get("url", "") for h in hooks)

    try:
        wait_for(lambda: registered() or proc.poll() is not None, 60, what="webhook registration")
        assert proc.poll() is None, log.read_text()[-3000:]
        # The apiserver may need a moment before it reaches the webhook: wait for the first stamp.
        probe = namespaces[0]
        wait_for(lambda: _stamped_probe(cluster, kube, probe), 30, what="webhooks answering")
        yield namespaces, log
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            kubectl(cluster, "delete", kind, "gpusteward.dev", "--ignore-not-found", check=False)


def _stamped_probe(cluster, kube: Kube, ns: str) -> bool:
    """The lease webhook answers (it refuses a non-approver's approval)."""
    probe = lease(ns, f"probe-{int(time.time() * 1000)}", gpus=8, approved=True)
    out = create(cluster, probe, *as_user("probe", "dev"), check=False)
    return out.returncode != 0 and "approver group" in out.stderr


def phase(kube: Kube, ns: str, name: str) -> str | None:
    return (get_lease(kube, ns, name).get("status") or {}).get("phase")


def condition(kube: Kube, ns: str, name: str, ctype: str) -> dict[str, Any]:
    conds = (get_lease(kube, ns, name).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == ctype), {})


def patch_lease(cluster, ns: str, name: str, spec: dict[str, Any], *who: str) -> subprocess.CompletedProcess:
    return kubectl(cluster, "-n", ns, "patch", "experimentlease", name, "--type=merge",
                   "-p", json.dumps({"spec": spec}), *who, check=False)


def stays(check, seconds: float = 4.0) -> bool:
    """``check`` holds for ``seconds`` (the operator reconciles every second)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not check():
            return False
        time.sleep(0.5)
    return True


@pytest.mark.redteam("leases")
def test_growing_an_active_fast_lane_lease_waits_for_approval_and_the_quota_does_not_follow(cluster, kube, operator):
    ns = operator[0][0]
    apply(cluster, budget(ns, quota=2))
    assert create(cluster, lease(ns, "small"), *as_user("alice", "dev")).returncode == 0
    wait_for(lambda: phase(kube, ns, "small") == "Active", 30, what="Active")
    wait_quota(kube, ns, "main", 3)

    # The owner edits the active 1-GPU fast-lane lease to 4096 GPUs and 30 days.
    out = patch_lease(cluster, ns, "small", {"gpus": 4096, "duration": "720h"}, *as_user("alice", "dev"))
    assert out.returncode == 0, out.stderr
    wait_for(lambda: condition(kube, ns, "small", "Approved").get("reason") == "ChangePendingApproval", 30,
             what="change pending approval")
    assert stays(lambda: phase(kube, ns, "small") == "Active"
                 and (get_lease(kube, ns, "small")["status"].get("grantedGpus") == 1))
    wait_quota(kube, ns, "main", 3)  # still gpuQuota + the granted 1

    # An approver approves a reasonable change: exactly those terms are granted.
    assert patch_lease(cluster, ns, "small", {"gpus": 3, "duration": "1h"}, *as_user("alice", "dev")).returncode == 0
    ok = patch_lease(cluster, ns, "small", {"approved": True}, *as_user("bob", APPROVERS))
    assert ok.returncode == 0, ok.stderr
    wait_quota(kube, ns, "main", 5)
    # The owner edits again: the approval is withdrawn at admission and the quota stays on the grant.
    assert patch_lease(cluster, ns, "small", {"gpus": 64}, *as_user("alice", "dev")).returncode == 0
    obj = get_lease(kube, ns, "small")
    assert obj["spec"]["approved"] is False
    assert "gpusteward.dev/approved-by" not in (obj["metadata"].get("annotations") or {})
    assert stays(lambda: get_lease(kube, ns, "small")["status"].get("grantedGpus") == 3)
    wait_quota(kube, ns, "main", 5)


@pytest.mark.redteam("leases")
def test_fast_lane_caps_active_leases_per_owner_and_per_namespace(cluster, kube, operator):
    ns = operator[0][1]
    apply(cluster, budget(ns, quota=4, maxActivePerNamespace=2))
    assert create(cluster, lease(ns, "a1"), *as_user("alice", "dev")).returncode == 0
    wait_for(lambda: phase(kube, ns, "a1") == "Active", 30, what="Active")
    # A second fast-lane lease of the same creator (whatever owner it names) waits.
    assert create(cluster, lease(ns, "a2", owner="alice-again"), *as_user("alice", "dev")).returncode == 0
    wait_for(lambda: phase(kube, ns, "a2") == "PendingApproval", 30, what="PendingApproval")
    assert "maxActivePerOwner" in condition(kube, ns, "a2", "Approved").get("message", "")
    assert create(cluster, lease(ns, "c1", owner="carol"), *as_user("carol", "dev")).returncode == 0
    wait_for(lambda: phase(kube, ns, "c1") == "Active", 30, what="Active")
    # The namespace holds 2: a third creator waits too.
    assert create(cluster, lease(ns, "d1", owner="dave"), *as_user("dave", "dev")).returncode == 0
    wait_for(lambda: phase(kube, ns, "d1") == "PendingApproval", 30, what="PendingApproval")
    assert "maxActivePerNamespace" in condition(kube, ns, "d1", "Approved").get("message", "")
    wait_quota(kube, ns, "main", 6)


# ---- 2. faked approvals ---------------------------------------------------------------------------


@pytest.mark.redteam("identity")
def test_an_approver_cannot_approve_their_own_lease_under_another_owner_name(cluster, kube, operator):
    ns = operator[0][2]
    apply(cluster, budget(ns, quota=2))
    # Created already approved, for a made-up owner.
    out = create(cluster, lease(ns, "mine", owner="alice2", gpus=8, approved=True), *as_user("bob", APPROVERS),
                 check=False)
    assert out.returncode != 0 and "owns this lease" in out.stderr
    # Created plainly, then approved by its creator.
    assert create(cluster, lease(ns, "mine", owner="alice2", gpus=8), *as_user("bob", APPROVERS)).returncode == 0
    assert get_lease(kube, ns, "mine")["metadata"]["annotations"][CREATED_BY] == "bob"
    out = patch_lease(cluster, ns, "mine", {"approved": True}, *as_user("bob", APPROVERS))
    assert out.returncode != 0 and "owns this lease" in out.stderr
    # Forging the creator: neither at creation nor later.
    forged = lease(ns, "forged", owner="carol", gpus=8)
    forged["metadata"]["annotations"] = {CREATED_BY: "carol"}
    out = create(cluster, forged, *as_user("bob", APPROVERS), check=False)
    assert out.returncode != 0 and CREATED_BY in out.stderr
    out = kubectl(cluster, "-n", ns, "annotate", "experimentlease", "mine", f"{CREATED_BY}=carol", "--overwrite",
                  *as_user("bob", APPROVERS), check=False)
    assert out.returncode != 0 and "cannot be changed" in out.stderr
    # Another approver may approve it.
    assert patch_lease(cluster, ns, "mine", {"approved": True}, *as_user("erin", APPROVERS)).returncode == 0
    wait_for(lambda: phase(kube, ns, "mine") == "Active", 30, what="Active")
    assert get_lease(kube, ns, "mine")["status"]["approvedBy"] == "erin"


@pytest.mark.redteam("forgery")
def test_a_status_written_by_a_user_is_not_trusted(cluster, kube, operator):
    ns = operator[0][3]
    apply(cluster, budget(ns, quota=2))
    assert create(cluster, lease(ns, "big", gpus=8, duration="2h"), *as_user("mallory", "dev")).returncode == 0
    wait_for(lambda: phase(kube, ns, "big") == "PendingApproval", 30, what="PendingApproval")
    fake = {"status": {"phase": "Active", "expiresAt": "2099-01-01T00:00:00Z"}}
    out = kubectl(cluster, "-n", ns, "patch", "experimentlease", "big", "--subresource=status", "--type=merge",
                  "-p", json.dumps(fake), *as_user("mallory", "dev", "status-writers"), check=False)
    assert out.returncode == 0, out.stderr
    # The operator goes by its own record: status is put back, the quota never grows.
    wait_for(lambda: phase(kube, ns, "big") == "PendingApproval", 30, what="status restored")
    assert stays(lambda: phase(kube, ns, "big") == "PendingApproval")
    wait_quota(kube, ns, "main", 2)


@pytest.mark.redteam("identity")
def test_the_creator_of_workloads_is_stamped_and_cannot_be_rewritten(cluster, kube, operator):
    ns = operator[0][3]
    dep = gpu_deployment(ns, "bobs", 1)
    dep["metadata"]["annotations"] = {CREATED_BY: "alice"}  # claims to be alice's
    out = create(cluster, dep, *as_user("bob", "dev"))
    assert out.returncode == 0, out.stderr
    got = kube.get("apps/v1", "Deployment", "bobs", ns)
    assert got["metadata"]["annotations"][CREATED_BY] == "bob"
    out = kubectl(cluster, "-n", ns, "annotate", "deployment", "bobs", f"{CREATED_BY}=alice", "--overwrite",
                  *as_user("bob", "dev"), check=False)
    assert out.returncode != 0 and "cannot be changed" in out.stderr


# ---- more forged approvals and identities -----------------------------------------------------------

OPERATOR_SA = f"system:serviceaccount:{PLATFORM_NAMESPACE}:gpu-steward"


@pytest.mark.redteam("identity")
def test_a_non_approver_can_neither_approve_nor_reject(cluster, kube, operator):
    ns = operator[0][4]
    apply(cluster, budget(ns, quota=2))
    assert create(cluster, lease(ns, "alices", gpus=8), *as_user("alice", "dev")).returncode == 0
    # Mallory (not an approver) approves alice's lease, then tries to reject it (to cancel her work).
    out = patch_lease(cluster, ns, "alices", {"approved": True}, *as_user("mallory", "dev"))
    assert out.returncode != 0 and "approver group" in out.stderr
    out = kubectl(cluster, "-n", ns, "annotate", "experimentlease", "alices", "gpusteward.dev/rejected=nope",
                  *as_user("mallory", "dev"), check=False)
    assert out.returncode != 0 and "approver group" in out.stderr
    wait_for(lambda: phase(kube, ns, "alices") == "PendingApproval", 30, what="PendingApproval")
    assert stays(lambda: phase(kube, ns, "alices") == "PendingApproval")


@pytest.mark.redteam("identity")
def test_approval_stamps_forged_at_creation_are_refused(cluster, kube, operator):
    from gpu_steward.policy.lease import terms_digest

    ns = operator[0][4]
    forged = lease(ns, "stamped", gpus=8)
    forged["metadata"]["annotations"] = {"gpusteward.dev/approved-by": "erin",
                                         "gpusteward.dev/approved-terms": terms_digest(forged["spec"])}
    for who in (as_user("mallory", "dev"), as_user("mallory", APPROVERS)):
        out = create(cluster, forged, *who, check=False)
        assert out.returncode != 0, out.stdout
    assert kube.get(API, "ExperimentLease", "stamped", ns) is None


@pytest.mark.redteam("identity")
def test_restamping_an_approval_onto_grown_terms_is_refused(cluster, kube, operator):
    from gpu_steward.policy.lease import terms_digest

    ns = operator[0][5]
    apply(cluster, budget(ns, quota=2))
    assert create(cluster, lease(ns, "grow", gpus=2), *as_user("alice", "dev")).returncode == 0
    assert patch_lease(cluster, ns, "grow", {"approved": True}, *as_user("erin", APPROVERS)).returncode == 0
    wait_for(lambda: phase(kube, ns, "grow") == "Active", 30, what="Active")
    # Alice grows the lease and writes the approver's stamps for the new terms in the same request.
    grown = {**get_lease(kube, ns, "grow")["spec"], "gpus": 64, "approved": True}
    body = {"metadata": {"annotations": {"gpusteward.dev/approved-by": "erin",
                                         "gpusteward.dev/approved-terms": terms_digest(grown)}},
            "spec": {"gpus": 64, "approved": True}}
    out = kubectl(cluster, "-n", ns, "patch", "experimentlease", "grow", "--type=merge", "-p", json.dumps(body),
                  *as_user("alice", "dev"), check=False)
    if out.returncode == 0:  # accepted only with the approval withdrawn
        obj = get_lease(kube, ns, "grow")
        assert obj["spec"]["approved"] is False
        assert "gpusteward.dev/approved-by" not in (obj["metadata"].get("annotations") or {})
    assert stays(lambda: get_lease(kube, ns, "grow")["status"].get("grantedGpus") == 2)
    wait_quota(kube, ns, "main", 4)


@pytest.mark.redteam("identity")
def test_naming_the_operator_as_owner_or_creator_grants_nothing(cluster, kube, operator):
    ns = operator[0][5]
    # Owned by the operator's ServiceAccount "name", created already approved: refused.
    out = create(cluster, lease(ns, "svc", owner=OPERATOR_SA, gpus=8, approved=True), *as_user("mallory", "dev"),
                 check=False)
    assert out.returncode != 0 and "approver group" in out.stderr
    # Claiming the operator as creator: refused; created plainly, the creator is the requester.
    forged = lease(ns, "svc", owner=OPERATOR_SA, gpus=8)
    forged["metadata"]["annotations"] = {CREATED_BY: OPERATOR_SA}
    out = create(cluster, forged, *as_user("mallory", "dev"), check=False)
    assert out.returncode != 0 and CREATED_BY in out.stderr
    assert create(cluster, lease(ns, "svc", owner=OPERATOR_SA, gpus=8), *as_user("mallory", "dev")).returncode == 0
    assert get_lease(kube, ns, "svc")["metadata"]["annotations"][CREATED_BY] == "mallory"
    wait_for(lambda: phase(kube, ns, "svc") == "PendingApproval", 30, what="PendingApproval")


@pytest.mark.redteam("identity")
def test_a_pod_cannot_claim_another_creator_and_its_stamp_cannot_be_removed(cluster, kube, operator):
    ns = operator[0][6]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns,
                                                          "annotations": {CREATED_BY: "alice"}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    assert create(cluster, pod, *as_user("bob", "dev")).returncode == 0
    assert kube.get("v1", "Pod", "p", ns)["metadata"]["annotations"][CREATED_BY] == "bob"
    for change in (f"{CREATED_BY}=alice", f"{CREATED_BY}-"):
        out = kubectl(cluster, "-n", ns, "annotate", "pod", "p", change, "--overwrite", *as_user("bob", "dev"),
                      check=False)
        assert out.returncode != 0 and "cannot be changed" in out.stderr, (change, out.stderr)
    assert kube.get("v1", "Pod", "p", ns)["metadata"]["annotations"][CREATED_BY] == "bob"
