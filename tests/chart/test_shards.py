"""Sharded mode in the chart (operator.shards): one operator Deployment per shard, read from `helm template`."""

from __future__ import annotations

from itertools import permutations
from pathlib import Path
from typing import Any

import pytest
from helmtools import CHART, IMAGE_VALUES, KUBE_VERSION, by_kind, one, operator_deployments, run_helm, template

from gpu_steward.policy.shards import Shard

SHARDS = ["operator.shards=3"]
COMMON = {"app.kubernetes.io/name": "gpu-steward", "app.kubernetes.io/instance": "gpu-steward",
          "app.kubernetes.io/component": "operator"}
# Slack buttons on: the interactions Service renders.
SLACK = ["slack.existingSecret=gpu-steward-slack", "slack.signingSecretKey=signing-secret",
         "slack.botTokenKey=bot-token"]


def pod_labels(dep: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = dep["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def env(dep: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in e}


@pytest.fixture(scope="module")
def sharded(helm: Path) -> list[dict[str, Any]]:
    return template(helm, sets=[*SHARDS, *SLACK])


def test_one_deployment_per_shard(sharded: list[dict[str, Any]]) -> None:
    deps = operator_deployments(sharded)
    assert [d["metadata"]["name"] for d in deps] == [f"gpu-steward-operator-shard-{i}" for i in range(3)]
    assert [d["metadata"]["name"] for d in by_kind(sharded, "Deployment")] == [d["metadata"]["name"] for d in deps]
    for i, dep in enumerate(deps):
        assert dep["spec"]["replicas"] == 2  # operator.replicas is per shard
        assert env(dep)["GPU_STEWARD_SHARD_COUNT"] == "3"
        assert env(dep)["GPU_STEWARD_SHARD_INDEX"] == str(i)
        # The same base names in every shard: the operator appends -shard-<i> itself.
        assert env(dep)["GPU_STEWARD_LEADER_ELECTION_LEASE_NAME"] == "gpu-steward-leader"
        assert env(dep)["GPU_STEWARD_BLAST_RECORD_CONFIGMAP"] == "gpu-steward-blast-radius"
        selector = dep["spec"]["selector"]["matchLabels"]
        assert selector == {**COMMON, "gpusteward.dev/shard": str(i)}
        assert selects(selector, pod_labels(dep))
        assert dep["metadata"]["labels"]["gpusteward.dev/shard"] == str(i)
        # A shard's replicas spread over nodes; the term names that shard's pods.
        term = dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        assert term["labelSelector"]["matchLabels"] == selector


def test_shard_selectors_do_not_overlap(sharded: list[dict[str, Any]]) -> None:
    """No Deployment's selector matches another Deployment's pods (each would fight over the other's)."""
    for a, b in permutations(operator_deployments(sharded), 2):
        assert not selects(a["spec"]["selector"]["matchLabels"], pod_labels(b)), (a["metadata"]["name"],
                                                                                   b["metadata"]["name"])


def test_a_disruption_budget_per_shard(sharded: list[dict[str, Any]], helm: Path) -> None:
    budgets = by_kind(sharded, "PodDisruptionBudget")
    assert [p["metadata"]["name"] for p in budgets] == [f"gpu-steward-operator-shard-{i}" for i in range(3)]
    for budget, dep in zip(budgets, operator_deployments(sharded), strict=True):
        assert budget["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
        assert budget["spec"]["minAvailable"] == 1
    # One replica per shard: no budget (it would block every drain).
    assert not by_kind(template(helm, sets=[*SHARDS, "operator.replicas=1"]), "PodDisruptionBudget")


def test_one_shard_renders_the_deployment_as_before(helm: Path) -> None:
    """shards: 1 (the default) keeps the Deployment's name and selector: an upgrade changes nothing but two
    variables (a Deployment's selector cannot change in place)."""
    default = template(helm)
    assert template(helm, sets=["operator.shards=1"]) == default
    dep = one(default, "Deployment")
    assert dep["metadata"]["name"] == "gpu-steward-operator"
    assert dep["spec"]["selector"]["matchLabels"] == COMMON
    assert not [k for k in pod_labels(dep) if k.startswith("gpusteward.dev/")]
    assert (env(dep)["GPU_STEWARD_SHARD_COUNT"], env(dep)["GPU_STEWARD_SHARD_INDEX"]) == ("1", "0")
    assert one(default, "PodDisruptionBudget")["metadata"]["name"] == "gpu-steward-operator"


def test_services_and_network_policy_select_every_shard(sharded: list[dict[str, Any]]) -> None:
    deps = operator_deployments(sharded)
    webhook = one(sharded, "Service", "-webhook")["spec"]["selector"]
    metrics = one(sharded, "Service", "-operator-metrics")["spec"]["selector"]
    slack = one(sharded, "Service", "-slack-interactions")["spec"]["selector"]
    assert slack.pop("gpusteward.dev/leader") == "true"  # each shard's leader labels its own pod
    peer = one(sharded, "NetworkPolicy", "-agent")["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    for selector in (webhook, metrics, slack, peer):
        assert all(selects(selector, pod_labels(d)) for d in deps), selector


def flatten(role: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    """(apiGroup, resource, verb, resourceName or "") of each rule (as test_rbac.py reads roles)."""
    return {(g, r, v, n) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
            for v in rule["verbs"] for n in rule.get("resourceNames") or [""]}


def shard_names(base: str, count: int) -> set[str]:
    """What the operator calls its object ``base`` in each shard (gpu_steward.policy.shards)."""
    return {Shard(i, count).name(base) for i in range(count)}


@pytest.mark.parametrize("sets, lease", [([], "gpu-steward-leader"),
                                         (["operator.leaderElection.leaseName=gs-lease"], "gs-lease")])
def test_rbac_names_each_shards_lease_and_record(helm: Path, sets: list[str], lease: str) -> None:
    docs = template(helm, sets=[*SHARDS, *sets])
    leader = flatten(one(docs, "Role", "-operator-leader"))
    assert leader == {("coordination.k8s.io", "leases", "create", "")} | {
        ("coordination.k8s.io", "leases", verb, name) for verb in ("get", "update") for name in shard_names(lease, 3)}
    controls = flatten(one(docs, "Role", "-operator-controls"))
    record = {n for g, r, v, n in controls if r == "configmaps" and v == "update" and "blast" in n}
    assert record == shard_names("gpu-steward-blast-radius", 3)
    assert lease not in {n for *_, n in leader}  # the unsharded Lease is no shard's
    # Shared by every shard: the controls (read), the Slack click ids and the webhook certificate.
    for name in ("gpu-steward-controls", "gpu-steward-slack-clicks", "gpu-steward-webhook-tls"):
        assert ("get", name) in {(v, n) for g, r, v, n in controls}


def test_schema_bounds_the_shards(helm: Path, tmp_path: Path) -> None:
    def render(value: str, extra: str = "") -> Any:
        f = tmp_path / "values.yaml"
        f.write_text(f"operator:\n  shards: {value}\n{extra}")
        return run_helm(helm, "template", "gs", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(IMAGE_VALUES),
                        "-f", str(f), check=False)

    for bad in ("0", "two", "65", "1.5"):
        proc = render(bad)
        assert proc.returncode != 0, bad
        assert "shards" in proc.stderr, proc.stderr
    assert render("64", "config:\n  blastRadius: {perPass: 64}\n").returncode == 0


@pytest.mark.parametrize("cap", ["perPass", "perHour"])
def test_caps_the_shards_split_cover_every_shard(helm: Path, cap: str) -> None:
    """The shards split perPass and perHour: each must be 0 or give every shard at least one (as Settings says)."""
    def render(*sets: str) -> Any:
        return run_helm(helm, "template", "gs", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(IMAGE_VALUES),
                        *[a for s in sets for a in ("--set", s)], check=False)

    proc = render("operator.shards=4", f"config.blastRadius.{cap}=3")
    assert proc.returncode != 0
    assert f"config.blastRadius.{cap} (3) must be 0 or at least operator.shards (4)" in proc.stderr
    for value in (0, 4):
        assert render("operator.shards=4", f"config.blastRadius.{cap}={value}").returncode == 0


@pytest.mark.parametrize("sets", [["operator.replicas=1"], []])
def test_kopf_certificates_refuse_shards(helm: Path, sets: list[str]) -> None:
    proc = run_helm(helm, "template", "gs", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(IMAGE_VALUES),
                    *[a for s in ["webhook.certificates=kopf", "operator.shards=2", *sets] for a in ("--set", s)],
                    check=False)
    assert proc.returncode != 0
    assert "webhook.certificates=kopf" in proc.stderr and "operator.shards: 1" in proc.stderr
