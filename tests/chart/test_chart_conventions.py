"""Issue 17's chart conventions: what a platform engineer expects of any chart."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helmtools import CHART, IMAGE_VALUES, KUBE_VERSION, VALUES_FULL, one, run_helm, template


def _render(helm: Path, *args: str, kube_version: str = KUBE_VERSION) -> str:
    return run_helm(helm, "template", "gs", str(CHART), "--namespace", "gpu-steward", "--include-crds",
                    "--kube-version", kube_version, "-f", str(IMAGE_VALUES), *args).stdout


@pytest.mark.parametrize("args", [
    [],  # the defaults (certificates: operator): no key material is rendered
    ["--set", "webhook.certificates=certManager"],
    ["-f", str(VALUES_FULL)],
    ["--set", "webhook.certificates=kopf", "--set", "operator.replicas=1"],
    ["--set", "webhook.enabled=false"],
])
def test_two_renders_are_identical(helm: Path, args: list[str]) -> None:
    """GitOps (Argo CD, Flux render with `helm template`) sees no drift between two renders of the same values."""
    assert _render(helm, *args) == _render(helm, *args)


def test_helm_certificates_drift_only_in_the_certificate_material(helm: Path) -> None:
    """certificates=helm makes its keys at render time when no Secret exists yet (lookup finds nothing under
    `helm template`): only the Secret's data and the caBundle differ. docs/install.md says so; the default
    (operator) and certManager render none."""
    a, b = (_render(helm, "--set", "webhook.certificates=helm").splitlines() for _ in range(2))
    differing = [x.strip().split(":")[0] for x, y in zip(a, b, strict=True) if x != y]
    assert differing and set(differing) <= {"ca.crt", "tls.crt", "tls.key", "caBundle"}


def test_security_context_is_overridable_for_an_arbitrary_uid(helm: Path) -> None:
    docs = template(helm, sets=["operator.podSecurityContext.runAsUser=null",
                                "operator.podSecurityContext.runAsGroup=null",
                                "operator.podSecurityContext.fsGroup=null"])
    pod = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    test_pod = one(docs, "Pod", "-test-health")
    assert test_pod["spec"]["securityContext"] == pod["securityContext"]
    default = one(template(helm), "Deployment", "-operator")["spec"]["template"]["spec"]["securityContext"]
    assert default["runAsUser"] == 65532 and default["runAsNonRoot"] is True


def test_extra_env_takes_value_from(helm: Path) -> None:
    docs = template(helm, values_files=[VALUES_FULL])
    container = one(docs, "Deployment", "-operator-shard-0")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["HTTPS_PROXY"]["valueFrom"] == {"secretKeyRef": {"name": "corp-proxy", "key": "url"}}


def test_global_values_from_a_parent_chart(helm: Path) -> None:
    docs = template(helm, sets=["global.imageRegistry=mirror.example.com", "global.imagePullSecrets[0].name=regcred",
                                "global.somethingOnlyTheParentKnows=1"])
    pod = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"].startswith("mirror.example.com/registry.example.com/gpu-steward/operator:")
    assert {"name": "regcred"} in pod["imagePullSecrets"]


def test_helm_test_hook_calls_the_health_endpoint(helm: Path) -> None:
    docs = template(helm)
    pod = one(docs, "Pod", "-test-health")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["command"][-1]
    assert "gpu-steward-operator-metrics.gpu-steward.svc:8081/healthz" in script
    assert pod["spec"]["containers"][0]["image"] == \
        one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["image"]
    svc = one(docs, "Service", "-operator-metrics")
    assert {"name": "healthz", "port": 8081, "targetPort": "healthz"} in svc["spec"]["ports"]
    assert not [d for d in template(helm, sets=["tests.enabled=false"]) if d["kind"] == "Pod"]


def test_kube_version_matches_the_crds_cel_features(helm: Path) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == ">=1.28.0-0"
    crds = "".join(p.read_text() for p in (CHART / "crds").glob("*.yaml"))
    assert "fieldPath:" in crds and "reason:" in crds  # the 1.28 CEL fields that set the floor
    proc = run_helm(helm, "template", "gs", str(CHART), "--kube-version", "1.27.9", "-f", str(IMAGE_VALUES),
                    check=False)
    assert proc.returncode != 0 and "kubeVersion" in proc.stderr
    assert "helm template" in (CHART.parents[1] / "docs" / "install.md").read_text()


def test_notes_name_only_what_the_chart_ships(helm: Path) -> None:
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    for path in ("examples/", "docs/", ".md"):
        assert path not in notes


def test_by_default_no_key_material_is_rendered(helm: Path) -> None:
    """certificates: operator — the operator makes and rotates the pair in its Secret and sets the caBundle."""
    docs = [d for d in yaml.safe_load_all(_render(helm)) if d]
    assert not [d for d in docs if d["kind"] == "Secret"]
    hooks = [w for d in docs if d["kind"].endswith("WebhookConfiguration") for w in d["webhooks"]]
    assert hooks and all("caBundle" not in w["clientConfig"] for w in hooks)
    container = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GPU_STEWARD_WEBHOOK_CERT_SECRET"] == "gs-gpu-steward-webhook-tls"
    assert env["GPU_STEWARD_WEBHOOK_SERVICE"] == "gs-gpu-steward-webhook"
    assert "GPU_STEWARD_WEBHOOK_CERT_DIR" not in env
    assert not any(m["name"] == "webhook-tls" for m in container["volumeMounts"])
