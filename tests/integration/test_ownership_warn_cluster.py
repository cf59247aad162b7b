"""Ownership admission in warn mode: a GPU pod without owner/team labels is admitted with a warning
that the client shows (kubectl prints admission warnings on stderr)."""

from __future__ import annotations

import pytest

from fixtures.budget_cluster import (
    create,
    install_crds,
    kubectl,
    new_namespace,
    start_operator,
    stop_operator,
    wait_for,
)
from gpu_steward.kube import Kube
from gpu_steward_testground.processes import free_port

pytestmark = pytest.mark.cluster


def test_gpu_pod_without_labels_gets_a_warning_naming_them(cluster, tmp_path):
    install_crds(cluster)
    ns = new_namespace(cluster, "warn")
    port = free_port()
    name = "gpusteward.dev-warn"
    proc = start_operator(cluster, tmp_path / "operator.log", namespaces=f'["{ns}"]', webhook_enabled="true",
                          webhook_listen_addr="127.0.0.1", webhook_port=str(port), ownership_admission="warn",
                          webhook_configuration_name=name)
    kube = Kube(cluster.api_client())
    try:
        wait_for(lambda: any(str(port) in (h.get("clientConfig") or {}).get("url", "") for h in (
            (kube.get("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", name) or {})
            .get("webhooks") or [])), 60, what="webhook registration")
        n = 0

        def attempt():
            nonlocal n
            n += 1
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"w{n}", "namespace": ns,
                                                                   "labels": {"gpusteward.dev/owner": "alice"}},
                   "spec": {"containers": [{"name": "m", "image": "busybox",
                                            "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}
            out = create(cluster, pod, check=False)
            assert out.returncode == 0, out.stderr  # warn mode admits the pod
            return out if "Warning" in out.stderr else None

        out = wait_for(attempt, 30, interval=1, what="an admission warning")
        assert "gpusteward.dev/team" in out.stderr and "gpusteward.dev/owner," not in out.stderr
    finally:
        stop_operator(proc)
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            kubectl(cluster, "delete", kind, name, "--ignore-not-found", check=False)
