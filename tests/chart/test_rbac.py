"""The chart's RBAC, read from `helm template`: no wildcards, exactly the rules the code needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helmtools import VALUES_FULL, by_kind, one, template

Rule = tuple[str, str, str, str]  # (apiGroup, resource, verb, resourceName or "")

# What the operator does with each resource (see templates/_rbac.tpl for why). A change to the
# chart's rules must change this table too, so a widened role never slips in unreviewed.
READ = ("get", "list", "watch")
EXPECTED: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "pods"): (*READ, "patch"),
    ("", "nodes"): READ,
    ("", "namespaces"): READ,
    ("", "events"): ("create",),
    ("", "resourcequotas"): ("get", "create", "patch", "delete"),
    ("apps", "replicasets"): ("get",),
    ("apps", "daemonsets"): ("get",),
    ("apps", "deployments"): (*READ, "patch"),
    ("apps", "statefulsets"): (*READ, "patch"),
    ("batch", "jobs"): (*READ, "patch"),
    ("kubeflow.org", "notebooks"): (*READ, "patch"),
    ("kubeflow.org", "pytorchjobs"): (*READ, "patch"),
    ("kubeflow.org", "tfjobs"): (*READ, "patch"),
    ("kubeflow.org", "mpijobs"): (*READ, "patch"),
    ("kubeflow.org", "xgboostjobs"): (*READ, "patch"),
    ("kubeflow.org", "paddlejobs"): (*READ, "patch"),
    ("kubeflow.org", "jaxjobs"): (*READ, "patch"),
    ("trainer.kubeflow.org", "trainjobs"): (*READ, "patch"),
    ("jobset.x-k8s.io", "jobsets"): (*READ, "patch"),
    ("ray.io", "rayjobs"): (*READ, "patch"),
    ("ray.io", "rayclusters"): (*READ, "patch"),
    ("leaderworkerset.x-k8s.io", "leaderworkersets"): (*READ, "patch"),
    ("kueue.x-k8s.io", "workloads"): (*READ, "patch"),
    ("kueue.x-k8s.io", "localqueues"): ("list",),
    ("kueue.x-k8s.io", "clusterqueues"): ("get", "patch"),
    ("gpusteward.dev", "gpubudgets"): (*READ, "patch"),
    ("gpusteward.dev", "experimentleases"): (*READ, "patch"),
    ("gpusteward.dev", "idlepolicies"): (*READ, "patch"),
    ("gpusteward.dev", "gpubudgets/status"): ("get", "patch"),
    ("gpusteward.dev", "experimentleases/status"): ("get", "patch"),
    ("gpusteward.dev", "idlepolicies/status"): ("get", "patch"),
    ("apiextensions.k8s.io", "customresourcedefinitions"): ("list", "watch"),
}
# Leader election: a Role in the release namespace, on the one Lease (create cannot be limited by name).
LEASE_RULES = {("coordination.k8s.io", "leases", "create", ""),
               ("coordination.k8s.io", "leases", "get", "gpu-steward-leader"),
               ("coordination.k8s.io", "leases", "update", "gpu-steward-leader")}
# The blast-radius ConfigMaps: the record (read and written) and the controls (read only), by name.
CONTROLS_RULES = {("", "configmaps", "create", ""),
                  ("", "configmaps", "get", "gpu-steward-blast-radius"),
                  ("", "configmaps", "update", "gpu-steward-blast-radius"),
                  ("", "configmaps", "get", "gpu-steward-controls"),
                  # the Slack buttons' used click ids (replays), written before a click acts
                  ("", "configmaps", "get", "gpu-steward-slack-clicks"),
                  ("", "configmaps", "update", "gpu-steward-slack-clicks"),
                  # certificates: operator (default): the webhook certificate's Secret, in this namespace only
                  ("", "secrets", "create", ""),
                  ("", "secrets", "get", "gpu-steward-webhook-tls"),
                  ("", "secrets", "update", "gpu-steward-webhook-tls")}


def flatten(role: dict[str, Any]) -> set[Rule]:
    out: set[Rule] = set()
    for rule in role["rules"]:
        assert not rule.get("nonResourceURLs"), rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames") or [""]:
                        out.add((group, resource, verb, name))
    return out


def all_roles(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return by_kind(docs, "ClusterRole") + by_kind(docs, "Role")


def operator_roles(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operator's roles (the roles for people, templates/user-roles.yaml, are checked below)."""
    return [r for r in all_roles(docs) if r["metadata"]["labels"].get("app.kubernetes.io/component") != "user-roles"]


@pytest.mark.parametrize("values", [[], [VALUES_FULL]], ids=["defaults", "full"])
def test_no_wildcards(helm: Path, values: list[Path]) -> None:
    roles = all_roles(template(helm, values_files=values))
    assert roles
    for role in roles:
        for group, resource, verb, _ in flatten(role):
            assert "*" not in (group, resource, verb), (role["metadata"]["name"], group, resource, verb)


def cluster_role(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in operator_roles(docs) if r["kind"] == "ClusterRole")


def test_default_rules_exactly(helm: Path) -> None:
    docs = template(helm)
    roles = operator_roles(docs)
    assert sorted(r["kind"] for r in roles) == ["ClusterRole", "Role", "Role", "Role"], \
        "one ClusterRole and Roles for the leader Lease, the records and the controls; the agent has none"
    # ConfigMaps only in the operator's own namespace: the records users must not write.
    records = one(docs, "Role", "-operator-records")
    assert records["metadata"]["namespace"] == "gpu-steward"
    assert flatten(records) == {("", "configmaps", v, "") for v in ("get", "list", "watch", "create", "patch")}
    got = flatten(cluster_role(docs))
    unnamed = {(g, r, v) for g, r, v, n in got if not n}
    expected = {(g, r, v) for (g, r), verbs in EXPECTED.items() for v in verbs}
    assert unnamed == expected
    named = {(g, r, v, n) for g, r, v, n in got if n}
    # By name by default: only the caBundle of the chart's own webhook configurations (certificates:
    # operator); no Secret anywhere cluster-wide (its certificate Secret is in the controls Role).
    assert named == {("admissionregistration.k8s.io", f"{kind}webhookconfigurations", v, "gpu-steward.gpusteward.dev")
                     for kind in ("validating", "mutating") for v in ("get", "patch")}
    assert not any(r == "secrets" for _, r, _, _ in got)
    # The Lease: only in the release namespace (a Role), bound to the operator's ServiceAccount.
    roles = {r["metadata"]["name"]: r for r in by_kind(docs, "Role")}
    assert set(roles) == {"gpu-steward-operator-leader", "gpu-steward-operator-controls",
                          "gpu-steward-operator-records"}
    bindings = {b["metadata"]["name"]: b for b in by_kind(docs, "RoleBinding")}
    expected = {"gpu-steward-operator-leader": LEASE_RULES, "gpu-steward-operator-controls": CONTROLS_RULES}
    for name, rules in expected.items():
        role = roles[name]
        assert role["metadata"]["namespace"] == "gpu-steward"
        assert flatten(role) == rules
        binding = bindings[name]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gpu-steward-operator",
                                        "namespace": "gpu-steward"}]


def test_no_lease_rules_without_leader_election(helm: Path) -> None:
    docs = template(helm, sets=["operator.leaderElection.enabled=false", "operator.replicas=1"])
    assert not [d for d in by_kind(docs, "Role") + by_kind(docs, "RoleBinding")
                if d["metadata"]["name"].endswith("-operator-leader")]


def test_secrets_only_by_name(helm: Path) -> None:
    got = flatten(cluster_role(template(helm, values_files=[VALUES_FULL])))
    secrets = {(v, n) for g, r, v, n in got if r == "secrets"}
    assert secrets == {("get", "gpu-budget-slack"), ("get", "team-slack-webhook")}


def test_kopf_managed_webhook_rules(helm: Path) -> None:
    got = flatten(cluster_role(template(helm, sets=["webhook.certificates=kopf", "operator.replicas=1"])))
    for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
        rules = {(v, n) for g, r, v, n in got if r == kind}
        assert rules == {("create", ""), ("get", "gpu-steward.gpusteward.dev"),
                         ("patch", "gpu-steward.gpusteward.dev")}
    # With the chart's or cert-manager's certificates the chart owns the configurations: no rights on them.
    for mode in ("helm", "certManager"):
        rules = flatten(cluster_role(template(helm, sets=[f"webhook.certificates={mode}"])))
        assert not any(r.endswith("webhookconfigurations") for _, r, _, _ in rules)
    # certificates: operator (default): it sets their caBundle — get and patch, by name only.
    got = flatten(cluster_role(template(helm)))
    for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
        assert {(v, n) for g, r, v, n in got if r == kind} == {("get", "gpu-steward.gpusteward.dev"),
                                                               ("patch", "gpu-steward.gpusteward.dev")}


def test_binding_targets_the_operator_only(helm: Path) -> None:
    docs = template(helm)
    binding = one(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gpu-steward-operator",
                                    "namespace": "gpu-steward"}]
    assert binding["roleRef"]["name"] == cluster_role(docs)["metadata"]["name"]
    for role_binding in by_kind(docs, "RoleBinding"):  # the leader Lease's and the records'
        assert role_binding["subjects"] == binding["subjects"]
    dep = one(docs, "Deployment")
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "gpu-steward-operator"


def test_rbac_can_be_left_to_the_platform(helm: Path) -> None:
    docs = template(helm, sets=["rbac.create=false"])
    assert not all_roles(docs) and not by_kind(docs, "ClusterRoleBinding")


# ---- roles for people (templates/user-roles.yaml) ---------------------------------------------------

OURS = ("gpubudgets", "experimentleases", "idlepolicies")
AGG = "rbac.authorization.k8s.io/aggregate-to-"


def test_user_roles_exactly(helm: Path) -> None:
    roles = {r["metadata"]["name"]: r for r in all_roles(template(helm)) if r not in operator_roles(template(helm))}
    assert set(roles) == {"gpu-steward-view", "gpu-steward-edit", "gpu-steward-platform"}
    expected = {
        "gpu-steward-view": {("gpusteward.dev", r, v, "") for r in OURS for v in READ},
        "gpu-steward-edit": {("gpusteward.dev", "experimentleases", v, "") for v in ("create", "update", "patch")},
        "gpu-steward-platform": {("gpusteward.dev", r, v, "") for r in OURS
                                 for v in (*READ, "create", "update", "patch", "delete", "deletecollection")},
    }
    for name, role in roles.items():
        assert flatten(role) == expected[name], name
        assert not any(r.endswith("/status") for _, r, _, _ in flatten(role)), name
    aggregated = {name: {k.removeprefix(AGG) for k, v in r["metadata"]["labels"].items()
                         if k.startswith(AGG) and v == "true"} for name, r in roles.items()}
    assert aggregated == {"gpu-steward-view": {"view", "edit", "admin"}, "gpu-steward-edit": {"edit", "admin"},
                          "gpu-steward-platform": set()}


def test_user_roles_can_be_left_out(helm: Path) -> None:
    docs = template(helm, sets=["rbac.userRoles=false"])
    assert [r["metadata"]["name"] for r in by_kind(docs, "ClusterRole")] == ["gpu-steward-operator"]
    assert all(r["metadata"]["labels"].get("app.kubernetes.io/component") != "user-roles" for r in all_roles(docs))
