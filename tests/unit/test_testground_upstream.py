"""The test ground's wiring of upstream controllers: webhook configurations rewritten to loopback URLs,
conversion webhooks, the version pins, and the notebook controller stand-in's contract."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from gpu_steward_testground import build
from gpu_steward_testground.notebookcontroller import desired_statefulset
from gpu_steward_testground.upstream import (
    NOWHERE,
    SPECS,
    conversion_crds,
    loopback_webhooks,
    namespace_label,
    with_conversion_webhook,
)

CA = b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"
SHIPPED = [
    {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
     "metadata": {"name": "mutating-webhook-configuration"},
     "webhooks": [{"name": "mjob.kb.io", "failurePolicy": "Fail",
                   "clientConfig": {"service": {"name": "webhook-service", "namespace": "system",
                                                "path": "/mutate-batch-v1-job"}},
                   "namespaceSelector": {"matchExpressions": [
                       {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]}}]},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "webhook-service"}},
]


def test_webhooks_are_called_on_loopback_only_for_namespaces_that_ask_for_the_controller() -> None:
    [doc] = loopback_webhooks(SHIPPED, "kueue", 9443, CA)
    assert doc["metadata"] == {"name": "testground-kueue-mutating-webhook-configuration"}
    [hook] = doc["webhooks"]
    assert hook["clientConfig"] == {"url": "https://127.0.0.1:9443/mutate-batch-v1-job",
                                    "caBundle": base64.b64encode(CA).decode()}
    assert hook["failurePolicy"] == "Fail"
    # the shipped selector is kept, ours is added
    assert hook["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]},
        {"key": namespace_label("kueue"), "operator": "Exists"}]
    assert "objectSelector" not in hook
    assert SHIPPED[0]["webhooks"][0]["clientConfig"]["service"]["path"] == "/mutate-batch-v1-job"  # not mutated


def test_a_controller_with_its_own_certificate_keeps_the_name_it_looks_up_and_is_called_for_nothing() -> None:
    [doc] = loopback_webhooks(SHIPPED, "trainer", 9443, CA, own_certificate="validator.trainer.kubeflow.org")
    assert doc["metadata"]["name"] == "validator.trainer.kubeflow.org"
    [hook] = doc["webhooks"]
    assert NOWHERE in hook["namespaceSelector"]["matchExpressions"]
    assert hook["objectSelector"] == {"matchExpressions": [NOWHERE]}  # cluster-scoped objects too


def test_conversion_webhooks_follow_the_modules_kustomization(tmp_path: Path) -> None:
    (tmp_path / "crd" / "patches").mkdir(parents=True)
    (tmp_path / "crd" / "kustomization.yaml").write_text(
        "resources: [bases/a.yaml]\npatches:\n- path: patches/webhook_in_workloads.yaml\n"
        "#- path: patches/webhook_in_flavors.yaml\n")
    (tmp_path / "crd" / "patches" / "webhook_in_workloads.yaml").write_text(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n"
        "  name: workloads.kueue.x-k8s.io\nspec:\n  conversion:\n    strategy: Webhook\n")
    assert conversion_crds(tmp_path, "crd/kustomization.yaml") == {"workloads.kueue.x-k8s.io"}
    crd = {"metadata": {"name": "workloads.kueue.x-k8s.io"}, "spec": {"group": "kueue.x-k8s.io"}}
    out = with_conversion_webhook(crd, 9443, CA)
    assert out["spec"]["group"] == "kueue.x-k8s.io"
    assert out["spec"]["conversion"]["webhook"]["clientConfig"]["url"] == "https://127.0.0.1:9443/convert"
    assert "conversion" not in crd["spec"]


def test_every_runnable_controller_is_a_pinned_build() -> None:
    assert set(SPECS) == {c.name for c in build.CONTROLLERS}
    kueue = build.controller("kueue")
    assert kueue.binary().module_text.splitlines()[-1] == "require sigs.k8s.io/kueue v0.17.0"
    assert kueue.import_path == "sigs.k8s.io/kueue/cmd/kueue"
    assert build.controller("jobset").import_path == "sigs.k8s.io/jobset"
    # a version bump gets a new folder, so a stale binary is never reused
    assert build.controllers_dir(kueue).name == "kueue-v0.17.0"


def _notebook(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "kubeflow.org/v1", "kind": "Notebook",
            "metadata": {"name": "lab", "namespace": "ml", "uid": "u1", "annotations": annotations or {}},
            "spec": {"template": {"spec": {"containers": [{"name": "lab", "image": "jupyter"}]}}}}


def test_notebook_stand_in_runs_the_notebook_as_its_statefulset_and_stops_it_by_annotation() -> None:
    sts = desired_statefulset(_notebook())
    assert sts["spec"]["replicas"] == 1
    assert sts["metadata"]["ownerReferences"][0] == {
        "apiVersion": "kubeflow.org/v1", "kind": "Notebook", "name": "lab", "uid": "u1", "controller": True,
        "blockOwnerDeletion": True}
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == "jupyter"
    assert sts["spec"]["template"]["metadata"]["labels"] == {"statefulset": "lab", "notebook-name": "lab"}
    stopped = _notebook({"kubeflow-resource-stopped": "2026-11-27T10:00:00Z"})
    assert desired_statefulset(stopped)["spec"]["replicas"] == 0
