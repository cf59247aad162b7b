"""The agents' NetworkPolicy and the Prometheus trust material, read from `helm template`."""

from __future__ import annotations

from pathlib import Path

from helmtools import VALUES_FULL, by_kind, one, template

OPERATOR_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gpu-steward"}},
                 "podSelector": {"matchLabels": {"app.kubernetes.io/name": "gpu-steward",
                                                 "app.kubernetes.io/instance": "gpu-steward",
                                                 "app.kubernetes.io/component": "operator"}}}


def test_only_the_operator_and_prometheus_reach_the_agents_port(helm: Path) -> None:
    docs = template(helm)
    policy = one(docs, "NetworkPolicy", "-agent")
    agents = one(docs, "DaemonSet", "-agent")
    assert policy["spec"]["podSelector"]["matchLabels"] == agents["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 9400, "protocol": "TCP"}]
    assert rule["from"] == [OPERATOR_PEER, {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]
    # The operator peer matches the operator's pods.
    dep = one(docs, "Deployment", "-operator")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert OPERATOR_PEER["podSelector"]["matchLabels"].items() <= labels.items()


def test_operator_only_when_no_prometheus_selector(helm: Path) -> None:
    docs = template(helm, sets=["networkPolicy.prometheus.namespaceSelector=null",
                                "networkPolicy.prometheus.podSelector=null"])
    assert one(docs, "NetworkPolicy")["spec"]["ingress"][0]["from"] == [OPERATOR_PEER]


def test_network_policy_toggle(helm: Path) -> None:
    assert not by_kind(template(helm, sets=["networkPolicy.enabled=false"]), "NetworkPolicy")
    assert not by_kind(template(helm, sets=["agent.enabled=false"]), "NetworkPolicy")


def test_prometheus_ca_and_token_are_mounted_files(helm: Path) -> None:
    dep = one(template(helm, values_files=[VALUES_FULL]), "Deployment", "-operator-shard-0")["spec"]["template"]["spec"]
    container = dep["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GPU_STEWARD_PROMETHEUS_CA_FILE"] == "/etc/gpu-steward/prometheus-ca/ca.crt"
    assert env["GPU_STEWARD_PROMETHEUS_BEARER_TOKEN_FILE"] == "/etc/gpu-steward/prometheus-token/token"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["prometheus-ca"]["readOnly"] and mounts["prometheus-token"]["readOnly"]
    volumes = {v["name"]: v for v in dep["volumes"]}
    assert volumes["prometheus-ca"]["secret"]["secretName"] == "prometheus-ca"
    assert volumes["prometheus-token"]["secret"]["secretName"] == "prometheus-token"
    # Not set: nothing mounted, no variable (the system CAs verify).
    plain = one(template(helm), "Deployment", "-operator")["spec"]["template"]["spec"]
    assert not any("PROMETHEUS_CA" in e["name"] for e in plain["containers"][0]["env"])
