"""The operator's environment from the chart loads into gpu_steward.settings.Settings as intended."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from helmtools import VALUES_FULL, operator_deployments, template

from gpu_steward.policy.leadership import Timing
from gpu_steward.settings import Settings

# Settings fields the chart deliberately does not set: agent_url_override and agent_endpoints are
# for the local demo (agents on loopback);
# webhook_listen_addr is set, webhook_cert_dir only when the chart mounts a certificate.
NOT_FROM_CHART = {"agent_url_override", "agent_endpoints"}
SECRET_FIELDS = {"slack_webhook_url", "slack_bot_token", "slack_signing_secret"}


def operator_env(docs: list[dict[str, Any]], shard: int = 0) -> list[dict[str, Any]]:
    """The environment of the operator's Deployment (of one shard's, when sharded)."""
    dep = operator_deployments(docs)[shard]
    env: list[dict[str, Any]] = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    return env


def load_settings(env: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as the operator pod would build them; secretKeyRefs resolve to a marker value, the
    downward API (the pod's own name and namespace) to the field's path."""
    for e in env:
        if not e["name"].startswith("GPU_STEWARD_"):
            continue
        if "fieldRef" in e.get("valueFrom", {}):
            monkeypatch.setenv(e["name"], f"field:{e['valueFrom']['fieldRef']['fieldPath']}")
        elif "valueFrom" in e:
            ref = e["valueFrom"]["secretKeyRef"]
            monkeypatch.setenv(e["name"], f"secret:{ref['name']}/{ref['key']}")
        else:
            monkeypatch.setenv(e["name"], e["value"])
    return Settings()


def test_every_variable_is_a_settings_field(helm: Path) -> None:
    for values in ([], [VALUES_FULL]):
        names = [e["name"] for e in operator_env(template(helm, values_files=values))]
        fields = {n.removeprefix("GPU_STEWARD_").lower() for n in names if n.startswith("GPU_STEWARD_")}
        unknown = fields - set(Settings.model_fields)
        assert not unknown, f"chart sets env the operator does not read: {sorted(unknown)}"
        assert len(names) == len(set(names)), "an env var is set twice"


def test_every_settings_field_is_reachable_from_values(helm: Path) -> None:
    # values-full.yaml uses cert-manager's certificates; the default (operator) names the Secret instead.
    names = {e["name"] for e in operator_env(template(helm, values_files=[VALUES_FULL]))} | {
        e["name"] for e in operator_env(template(helm))}
    fields = {n.removeprefix("GPU_STEWARD_").lower() for n in names if n.startswith("GPU_STEWARD_")}
    missing = set(Settings.model_fields) - fields - NOT_FROM_CHART
    assert not missing, f"Settings fields with no Helm value: {sorted(missing)}"


def test_defaults_load(helm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(operator_env(template(helm)), monkeypatch)
    assert s.dry_run is False
    assert s.namespaces == ()
    assert s.gpu_hour_prices == {}
    assert s.default_gpu_hour_price == Decimal("2.50")
    assert s.agent_namespace == "gpu-steward"
    assert s.agent_label_selector == "app.kubernetes.io/component=agent,app.kubernetes.io/instance=gpu-steward"
    assert s.leader_election_lease_name == "gpu-steward-leader"
    assert s.leader_election_namespace == "gpu-steward"
    assert (s.pod_name, s.pod_namespace) == ("field:metadata.name", "field:metadata.namespace")
    assert s.leader_election_timing() == Timing(lease_duration=15, renew_deadline=10, retry_period=2)
    assert s.liveness_endpoint == "http://0.0.0.0:8081/healthz"
    assert s.webhook_enabled is True
    assert s.webhook_manage_configuration is False  # the chart renders the configurations
    assert s.webhook_cert_dir is None  # certificates: operator keeps the pair in its Secret
    assert (s.webhook_cert_secret, s.webhook_service) == ("gpu-steward-webhook-tls", "gpu-steward-webhook")
    assert s.webhook_host == "gpu-steward-webhook.gpu-steward.svc"
    assert s.webhook_configuration_name == "gpu-steward.gpusteward.dev"
    assert s.cost_idle_util_percent == 5.0
    assert s.slack_webhook_url is None
    assert (s.actions_paused, s.suspensions_per_pass, s.suspensions_per_hour) == (False, 20, 100)
    assert (s.suspensions_per_namespace_per_hour, s.breaker_percent, s.breaker_minimum) == (10, 30.0, 5)
    assert (s.controls_configmap, s.blast_record_configmap) == ("gpu-steward-controls", "gpu-steward-blast-radius")
    assert s.evaluation_interval_seconds == 30.0
    assert (s.shard_count, s.shard_index) == (1, 0) and not s.shard().sharded


def test_full_values_load(helm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = yaml.safe_load(VALUES_FULL.read_text())
    s = load_settings(operator_env(template(helm, values_files=[VALUES_FULL])), monkeypatch)
    assert s.actions_paused is True
    assert (s.suspensions_per_pass, s.suspensions_per_hour, s.suspensions_per_namespace_per_hour) == (5, 40, 4)
    assert (s.breaker_percent, s.breaker_minimum) == (25.0, 3)
    assert s.dry_run is True
    assert s.namespaces == ("ml-research", "ml-prod")
    assert s.utilization_source == "prometheus"
    assert s.prometheus_url == values["config"]["prometheusUrl"]
    assert s.agent_timeout_seconds == 3.5
    assert (s.prometheus_pod_label, s.prometheus_namespace_label) == ("exported_pod", "exported_namespace")
    assert s.agent_port == 19400
    assert s.currency == "EUR"
    assert s.default_gpu_hour_price == Decimal("2.10")
    assert s.gpu_hour_prices == {k: Decimal(v) for k, v in values["prices"]["perModel"].items()}
    assert s.price_override_label == "example.com/gpu-hour-price"
    assert s.owner_keys == ("example.com/owner",)
    assert s.approver_groups == ("ml-leads", "finops")
    assert s.ownership_admission == "warn"
    assert s.metrics_port == 18080
    assert s.log_format == "console" and s.log_level == "DEBUG"
    assert s.leader_election_lease_name == "gs-leader-lease"
    assert s.leader_election_timing() == Timing(lease_duration=20, renew_deadline=12, retry_period=3)
    assert s.liveness_endpoint == "http://0.0.0.0:18081/healthz"
    assert s.webhook_port == 10443
    assert s.cost_idle_util_percent == 2.5
    assert s.webhook_host == "gs-webhook.gpu-steward.svc"
    assert s.slack_default_channel == "#gpu-spend"
    assert s.slack_api_url == "https://slack.example.com/api/"
    # Secrets reach Settings from the Secret, never from values.
    assert s.slack_webhook_url is not None
    assert s.slack_webhook_url.get_secret_value() == "secret:gpu-steward-slack/webhook-url"
    assert s.slack_bot_token is not None and s.slack_signing_secret is not None
    assert s.redacted()["slack_bot_token"] == "<set>"
    assert (s.shard().index, s.shard().count) == (0, 2)  # values-full.yaml runs two shards


def test_no_secret_value_in_rendered_env(helm: Path) -> None:
    for values in ([], [VALUES_FULL]):
        for e in operator_env(template(helm, values_files=values)):
            field = e["name"].removeprefix("GPU_STEWARD_").lower()
            if field in SECRET_FIELDS:
                assert "value" not in e and "secretKeyRef" in e["valueFrom"], e


def test_each_shard_loads_as_its_shard(helm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """operator.shards: 3 — each Deployment's pods are their shard, under the same base names."""
    docs = template(helm, sets=["operator.shards=3"])
    for index in range(3):
        with monkeypatch.context() as m:
            s = load_settings(operator_env(docs, shard=index), m)
        assert (s.shard().index, s.shard().count) == (index, 3)
        assert s.shard().sharded
        assert s.shard().name(s.leader_election_lease_name or "") == f"gpu-steward-leader-shard-{index}"
        assert s.shard().name(s.blast_record_configmap) == f"gpu-steward-blast-radius-shard-{index}"
