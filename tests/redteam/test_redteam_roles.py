"""Attempt: a namespace user (bound to the built-in ``edit`` or ``admin`` role, as most teams are) writes
a GPUBudget or an IdlePolicy of their own namespace (raising their quota, switching the policy to
dry-run) or the ``/status`` of any GPU Steward object (spend already counted, a lease's phase).

On the real apiserver, with the chart's roles for people applied and every request made as the user
(``kubectl --as``): edit may create and renew ExperimentLeases and read the rest; budgets and policies
are the platform role's; no user role writes a status."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from helmtools import template

from fixtures.budget_cluster import API, install_crds, kubectl, new_namespace
from gpu_steward_testground.processes import wait_for

pytestmark = pytest.mark.cluster

RELEASE = "gpu-steward"


def as_user(cluster: Any, user: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return kubectl(cluster, "--as", user, *args, stdin=stdin, check=False)


def forbidden(proc: subprocess.CompletedProcess) -> bool:
    return proc.returncode != 0 and "forbidden" in proc.stderr.lower()


def budget(ns: str, quota: int = 2) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "GPUBudget", "metadata": {"name": "main", "namespace": ns},
            "spec": {"gpuQuota": quota, "notify": {"owners": ["lead@example.com"]}}}


def policy(ns: str) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "IdlePolicy", "metadata": {"name": "idle", "namespace": ns},
            "spec": {"idle": {"gpuUtilPercent": 5, "for": "1h"}, "notice": {"before": "10m", "maxSnooze": "1h"},
                     "dryRun": False}}


def lease(ns: str, name: str = "exp") -> dict[str, Any]:
    return {"apiVersion": API, "kind": "ExperimentLease", "metadata": {"name": name, "namespace": ns},
            "spec": {"owner": "alice", "ownerEmail": "alice@example.com", "purpose": "sweep", "gpus": 1,
                     "duration": "1h", "gracePeriod": "10m", "renewals": 0}}


@pytest.fixture(scope="module")
def roles(cluster, helm: Path):
    install_crds(cluster)
    kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump_all(
        template(helm, release=RELEASE, namespace="gpu-steward", extra=["--show-only", "templates/user-roles.yaml"])))
    # The built-in roles pick ours up through the clusterrole-aggregation controller.
    wait_for(lambda: "experimentleases" in kubectl(cluster, "get", "clusterrole", "edit", "-o", "json").stdout,
             60, what="edit aggregates the chart's lease rule")
    yield


def bound(cluster, role: str, kind: str = "ClusterRole") -> tuple[str, str]:
    ns = new_namespace(cluster, "rt-roles")
    user = f"rt-{role}-{uuid.uuid4().hex[:6]}"
    kubectl(cluster, "-n", ns, "create", "rolebinding", f"{user}", f"--clusterrole={role}", f"--user={user}")
    wait_for(lambda: as_user(cluster, user, "-n", ns, "get", "gpubudgets").returncode == 0, 30, what="binding active")
    return ns, user


@pytest.mark.parametrize("role", ["edit", "admin"])
@pytest.mark.redteam("quota")
def test_namespace_user_creates_leases_but_no_budgets_policies_or_status(cluster, roles, role):
    ns, user = bound(cluster, role)
    # Allowed: create and renew a lease; read budgets and policies.
    made = as_user(cluster, user, "create", "-f", "-", stdin=yaml.safe_dump(lease(ns)))
    assert made.returncode == 0, made.stderr
    renew = as_user(cluster, user, "-n", ns, "patch", "experimentlease", "exp", "--type=merge",
                    "-p", json.dumps({"spec": {"renewals": 1}}))
    assert renew.returncode == 0, renew.stderr

    # Refused: a budget or a policy of one's own.
    assert forbidden(as_user(cluster, user, "create", "-f", "-", stdin=yaml.safe_dump(budget(ns, 64))))
    assert forbidden(as_user(cluster, user, "create", "-f", "-", stdin=yaml.safe_dump(policy(ns))))

    # The platform's budget and policy in the namespace: readable, not writable.
    kubectl(cluster, "create", "-f", "-", stdin=yaml.safe_dump_all([budget(ns), policy(ns)]))
    assert as_user(cluster, user, "-n", ns, "get", "gpubudget", "main").returncode == 0
    assert as_user(cluster, user, "-n", ns, "get", "idlepolicy", "idle").returncode == 0
    assert forbidden(as_user(cluster, user, "-n", ns, "patch", "gpubudget", "main", "--type=merge",
                             "-p", json.dumps({"spec": {"gpuQuota": 64}})))
    assert forbidden(as_user(cluster, user, "-n", ns, "patch", "idlepolicy", "idle", "--type=merge",
                             "-p", json.dumps({"spec": {"dryRun": True}})))
    assert forbidden(as_user(cluster, user, "-n", ns, "delete", "idlepolicy", "idle"))
    assert forbidden(as_user(cluster, user, "-n", ns, "delete", "gpubudget", "main"))
    # A lease ends by expiring (with its notice), not by being deleted.
    assert forbidden(as_user(cluster, user, "-n", ns, "delete", "experimentlease", "exp"))

    # No status, of any kind.
    for kind, name, status in (("gpubudget", "main", {"spend": "0", "effectiveQuota": 64}),
                               ("experimentlease", "exp", {"phase": "Active"}),
                               ("idlepolicy", "idle", {"mode": "DryRun"})):
        proc = as_user(cluster, user, "-n", ns, "patch", kind, name, "--subresource=status", "--type=merge",
                       "-p", json.dumps({"status": status}))
        assert forbidden(proc), (kind, proc.stderr)


@pytest.mark.redteam("leases")
def test_view_user_only_reads(cluster, roles):
    ns, user = bound(cluster, "view")
    assert as_user(cluster, user, "-n", ns, "get", "experimentleases,gpubudgets,idlepolicies").returncode == 0
    assert forbidden(as_user(cluster, user, "create", "-f", "-", stdin=yaml.safe_dump(lease(ns))))


@pytest.mark.redteam("forgery")
def test_platform_role_writes_budgets_and_policies_but_no_status(cluster, roles):
    ns, user = bound(cluster, f"{RELEASE}-platform")
    made = as_user(cluster, user, "create", "-f", "-", stdin=yaml.safe_dump_all([budget(ns), policy(ns)]))
    assert made.returncode == 0, made.stderr
    assert forbidden(as_user(cluster, user, "-n", ns, "patch", "gpubudget", "main", "--subresource=status",
                             "--type=merge", "-p", json.dumps({"status": {"spend": "0"}})))


@pytest.mark.redteam("scope")
def test_a_teams_platform_role_reaches_neither_other_namespaces_nor_the_platform_one(cluster, roles):
    # A team lead given the platform role in team-b only (RoleBinding) tries to govern team-a and to
    # pass for the platform: a policy in team-a or in the operator's namespace, or relabelling team-b
    # as the operator's namespace (the name label the apiserver sets).
    ns, user = bound(cluster, f"{RELEASE}-platform")
    other = new_namespace(cluster, "rt-other")
    for target in (other, "gpu-steward"):
        hijack = policy(target)
        hijack["metadata"]["name"] = "safety-net"
        assert forbidden(as_user(cluster, user, "create", "-f", "-", stdin=yaml.safe_dump(hijack))), target
    assert forbidden(as_user(cluster, user, "label", "namespace", ns, "kubernetes.io/metadata.name=gpu-steward",
                             "--overwrite"))
    # Even an administrator cannot: the apiserver keeps the name label equal to the name.
    kubectl(cluster, "label", "namespace", ns, "kubernetes.io/metadata.name=gpu-steward", "--overwrite", check=False)
    labels = json.loads(kubectl(cluster, "get", "namespace", ns, "-o", "json").stdout)["metadata"]["labels"]
    assert labels["kubernetes.io/metadata.name"] == ns
