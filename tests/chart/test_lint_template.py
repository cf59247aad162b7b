"""helm lint and helm template on the default values and on a values file that sets every option."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helmtools import CHART, IMAGE_VALUES, KUBE_VERSION, VALUES_FULL, by_kind, one, run_helm, template


def _keys(tree: Any, prefix: str = "") -> set[str]:
    """Dotted paths of every mapping key (lists are leaves)."""
    out: set[str] = set()
    if isinstance(tree, dict):
        for k, v in tree.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            out.add(path)
            out |= _keys(v, path)
    return out


@pytest.mark.parametrize("values", [None, VALUES_FULL], ids=["defaults", "full"])
def test_helm_lint_strict(helm: Path, values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART), "-f", str(IMAGE_VALUES)] + (["-f", str(values)] if values else [])
    proc = run_helm(helm, *args)
    assert "0 chart(s) failed" in proc.stdout


def test_values_full_sets_every_option() -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    full = yaml.safe_load(VALUES_FULL.read_text())
    missing = sorted(_keys(defaults) - _keys(full))
    # Maps of the user's own keys are shown with their own keys in the full file.
    assert missing == [], f"values-full.yaml does not set: {missing}"


def test_default_render(helm: Path) -> None:
    docs = template(helm)
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == sorted([
        "ClusterRole", "ClusterRoleBinding", "ConfigMap", "CustomResourceDefinition", "DaemonSet", "Deployment",
        "IdlePolicy", "MutatingWebhookConfiguration", "NetworkPolicy", "Pod", "PodDisruptionBudget", "Role",
        "RoleBinding",  # no Secret: certificates: operator renders no key material
        "Service", "ServiceAccount", "ValidatingWebhookConfiguration",
    ])
    dep = one(docs, "Deployment", "-operator")
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    # Leader election: one Lease in the release namespace; the pod knows its own name for the label.
    assert env["GPU_STEWARD_LEADER_ELECTION_LEASE_NAME"]["value"] == "gpu-steward-leader"
    assert env["GPU_STEWARD_LEADER_ELECTION_NAMESPACE"]["value"] == "gpu-steward"
    assert env["GPU_STEWARD_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["GPU_STEWARD_POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["GPU_STEWARD_LIVENESS_ENDPOINT"]["value"] == "http://0.0.0.0:8081/healthz"
    # Probes hit kopf's liveness endpoint on the port the env var names.
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "healthz": 8081, "webhook": 9443}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # No Slack secret configured: no Slack secret env at all.
    assert not [n for n in env if n.startswith("GPU_STEWARD_SLACK_") and n != "GPU_STEWARD_SLACK_API_URL"]
    crd_names = {d["metadata"]["name"] for d in by_kind(docs, "CustomResourceDefinition")}
    assert not [n for n in crd_names if n.endswith("kopf.dev")]  # no kopf peering: the Lease decides


def test_agent_daemonset_defaults(helm: Path) -> None:
    docs = template(helm)
    ds = one(docs, "DaemonSet", "-agent")
    pod = ds["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    container = pod["containers"][0]
    mount = [m for m in container["volumeMounts"] if m["name"] == "pod-resources"]
    assert mount and mount[0] == {"name": "pod-resources", "mountPath": "/var/lib/kubelet/pod-resources",
                                      "readOnly": True}
    vol = next(v for v in pod["volumes"] if v["name"] == "pod-resources")
    assert vol["hostPath"]["path"] == "/var/lib/kubelet/pod-resources"
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    # The agent's own settings (gpu_steward_agent/config.py: prefix GPU_STEWARD_AGENT_).
    assert env["GPU_STEWARD_AGENT_PORT"]["value"] == "9400"
    assert env["GPU_STEWARD_AGENT_POD_RESOURCES_SOCKET"]["value"] == "/var/lib/kubelet/pod-resources/kubelet.sock"
    assert env["GPU_STEWARD_AGENT_DCGM_METRICS"]["value"] == "true"  # agent.dcgmMetrics: false where dcgm-exporter runs
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in sc
    sa = [d for d in by_kind(docs, "ServiceAccount") if d["metadata"]["name"] == pod["serviceAccountName"]]
    assert sa and sa[0]["automountServiceAccountToken"] is False


def test_full_render(helm: Path) -> None:
    docs = template(helm, values_files=[VALUES_FULL])
    # Two shards (operator.shards: 2), each with operator.replicas.
    assert [d["metadata"]["name"] for d in by_kind(docs, "Deployment")] == ["gs-operator-shard-0",
                                                                           "gs-operator-shard-1"]
    dep = one(docs, "Deployment", "gs-operator-shard-0")
    assert dep["spec"]["replicas"] == 3
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == ("registry.example.com/gpu-steward/operator@sha256:"
                                  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    env = {e["name"]: e for e in container["env"]}
    assert env["GPU_STEWARD_SLACK_WEBHOOK_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "gpu-steward-slack", "key": "webhook-url"}}
    assert env["GPU_STEWARD_SLACK_BOT_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "bot-token"
    assert env["GPU_STEWARD_LEADER_ELECTION_LEASE_NAME"]["value"] == "gs-leader-lease"
    assert env["GPU_STEWARD_LEADER_ELECTION_LEASE_DURATION_SECONDS"]["value"] == "20"
    # A signing secret turns on Slack buttons: the endpoint's port, in the pod and behind a Service.
    assert env["GPU_STEWARD_SLACK_SIGNING_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == "signing-secret"
    assert env["GPU_STEWARD_SLACK_INTERACTIONS_PORT"]["value"] == "8181"
    assert {"name": "slack", "containerPort": 8181} in container["ports"]
    svc = one(docs, "Service", "-slack-interactions")
    assert svc["spec"]["ports"] == [{"name": "slack", "port": 8181, "targetPort": "slack"}]
    assert svc["spec"]["selector"]["gpusteward.dev/leader"] == "true"  # only the leader serves it
    assert env["PYTHONASYNCIODEBUG"]["value"] == "0"
    assert [p["spec"]["minAvailable"] for p in by_kind(docs, "PodDisruptionBudget")] == [2, 2]  # one per shard
    # cert-manager: a Certificate from the given ClusterIssuer, CA injected, no chart-made Secret.
    cert = one(docs, "Certificate")
    assert cert["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert not by_kind(docs, "Issuer") and not by_kind(docs, "Secret")
    vwc = one(docs, "ValidatingWebhookConfiguration")
    mwc = one(docs, "MutatingWebhookConfiguration")
    for conf in (vwc, mwc):
        assert conf["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "gpu-steward/gs-webhook"
    hooks = {w["name"].split(".")[0]: w for w in vwc["webhooks"] + mwc["webhooks"]}
    # Each webhook calls the path of its kopf handler id.
    creators = {f"created-by{g}-{r}": f"/created-by{g}-{r}" for g in ("", "-guard")
                for r in ("pods", "jobs", "deployments", "statefulsets")}
    assert {k: w["clientConfig"]["service"]["path"] for k, w in hooks.items()} == {
        "lease-approval": "/lease-approval", "lease-approved-by": "/lease-approved-by",
        "gpu-pod-ownership": "/gpu-pod-ownership", **creators}
    assert hooks["gpu-pod-ownership"]["failurePolicy"] == "Fail"
    assert hooks["created-by-deployments"]["rules"][0]["apiGroups"] == ["apps"]
    assert hooks["created-by-guard-pods"]["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert hooks["lease-approval"]["failurePolicy"] == "Ignore"
    assert all(w["clientConfig"]["service"]["port"] == 10443 for w in hooks.values())
    assert all("caBundle" not in w["clientConfig"] for w in hooks.values())  # cert-manager injects it
    monitors = by_kind(docs, "ServiceMonitor")
    assert len(monitors) == 2
    assert all(m["metadata"]["labels"]["release"] == "kube-prometheus-stack" for m in monitors)
    cm = one(docs, "ConfigMap", "-dashboard")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "GPU"}
    ds = one(docs, "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia" and pod["hostPID"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"][0]["matchExpressions"][0]["key"] == "nvidia.com/gpu.count"


def test_policies_rendered_dry_run_first(helm: Path) -> None:
    default = by_kind(template(helm), "IdlePolicy")
    assert [p["metadata"]["name"] for p in default] == ["idle-gpus"]
    assert default[0]["spec"]["dryRun"] is True
    assert default[0]["metadata"]["namespace"] == "gpu-steward"
    full = {p["metadata"]["name"]: p["spec"] for p in by_kind(template(helm, values_files=[VALUES_FULL]), "IdlePolicy")}
    assert full["idle-notebooks"]["dryRun"] is False  # explicitly turned on
    assert full["idle-training"]["dryRun"] is True  # not said: dry-run
    assert full["idle-notebooks"]["schedule"]["windows"] == [{"cron": "0 19 * * 1-5", "duration": "12h"}]


def test_no_policies(helm: Path) -> None:
    assert by_kind(template(helm, sets=["policies=null"]), "IdlePolicy") == []


def test_helm_certificates_form_a_chain(helm: Path, tmp_path: Path) -> None:
    """certificates=helm: the caBundle the apiserver trusts signed the serving certificate."""
    docs = template(helm, sets=["webhook.certificates=helm"])
    secret = one(docs, "Secret", "-webhook-tls")
    for key in ("ca.crt", "tls.crt"):
        (tmp_path / key).write_bytes(base64.b64decode(secret["data"][key]))
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"), str(tmp_path / "tls.crt")],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(tmp_path / "tls.crt")],
                          capture_output=True, text=True, check=True).stdout
    assert "DNS:gpu-steward-webhook.gpu-steward.svc" in text
    vwc = one(docs, "ValidatingWebhookConfiguration")
    mwc = one(docs, "MutatingWebhookConfiguration")
    assert all(w["clientConfig"]["caBundle"] == secret["data"]["ca.crt"] for w in vwc["webhooks"] + mwc["webhooks"])
    # ownershipAdmission is off by default: only the lease webhooks and the creator stamps.
    kinds = ("pods", "jobs", "deployments", "statefulsets")
    assert [w["name"] for w in vwc["webhooks"]] == ["lease-approval.gpu-steward.gpusteward.dev"] + [
        f"created-by-guard-{k}.gpu-steward.gpusteward.dev" for k in kinds]
    assert [w["name"] for w in mwc["webhooks"]] == ["lease-approved-by.gpu-steward.gpusteward.dev"] + [
        f"created-by-{k}.gpu-steward.gpusteward.dev" for k in kinds]
    # The operator gets the same files, ca.crt included.
    dep = one(docs, "Deployment")
    vol = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "webhook-tls")
    assert vol["secret"]["secretName"] == secret["metadata"]["name"] and "items" not in vol["secret"]


def test_kopf_managed_webhook(helm: Path) -> None:
    docs = template(helm, sets=["webhook.certificates=kopf", "operator.replicas=1"])
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "Secret"):
        assert not by_kind(docs, kind)
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GPU_STEWARD_WEBHOOK_MANAGE_CONFIGURATION"] == "true"
    assert env["GPU_STEWARD_WEBHOOK_HOST"] == "gpu-steward-webhook.gpu-steward.svc"
    assert "GPU_STEWARD_WEBHOOK_CERT_DIR" not in env  # the operator makes its own certificate


@pytest.mark.parametrize("sets, message", [
    (["webhook.certificates=kopf"], "operator.replicas: 1"),
    (["operator.leaderElection.enabled=false"], "needs operator.leaderElection.enabled"),
    (["operator.leaderElection.renewDeadlineSeconds=15"], "retryPeriodSeconds < renewDeadlineSeconds < leaseDuration"),
    (["config.utilizationSource=prometheus"], "needs config.prometheusUrl"),
    (["config.ownershipAdmission=enforce", "webhook.enabled=false"], "needs webhook.enabled"),
])
def test_inconsistent_values_fail_with_a_reason(helm: Path, sets: list[str], message: str) -> None:
    proc = run_helm(helm, "template", "gs", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(IMAGE_VALUES),
                    *[a for s in sets for a in ("--set", s)], check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_everything_optional_off(helm: Path) -> None:
    docs = template(helm, sets=["agent.enabled=false", "webhook.enabled=false", "metrics.service.enabled=false",
                                "dashboard.enabled=false", "operator.leaderElection.enabled=false",
                                "operator.replicas=1", "policies=null", "rbac.userRoles=false"])
    kinds = {d["kind"] for d in docs} - {"CustomResourceDefinition"}
    # Roles in the operator's namespace stay: its records and the blast-radius ConfigMaps are not optional.
    assert kinds == {"Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    dep = one(docs, "Deployment")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in dep["containers"][0]["env"]}
    assert "GPU_STEWARD_LEADER_ELECTION_LEASE_NAME" not in env  # one replica, no election
    assert env["GPU_STEWARD_WEBHOOK_ENABLED"] == "false"
    role = one(docs, "ClusterRole")
    assert not [r for r in role["rules"] if "coordination.k8s.io" in r["apiGroups"]]
    assert "affinity" not in dep  # no anti-affinity for a single replica
    assert [v["name"] for v in dep["volumes"]] == ["tmp"]


@pytest.mark.parametrize("component", ["operator", "agent"])
def test_no_image_no_install_and_the_message_says_how_to_build_one(helm: Path, component: str) -> None:
    """No public image exists: without a repository the chart stops with what to do, not an ImagePullBackOff."""
    other = "agent" if component == "operator" else "operator"
    proc = run_helm(helm, "template", "gs", str(CHART), "--kube-version", KUBE_VERSION,
                    "--set", f"{other}.image.repository=registry.example.com/{other}", check=False)
    assert proc.returncode != 0
    assert f"{component}.image.repository is required" in proc.stderr
    assert "make images" in proc.stderr and "docs/install.md" in proc.stderr
