"""The CRD upgrade path (docs/install.md#upgrading): Helm installs `crds/` on the first install only and
never upgrades them, so an upgrade applies the chart's CRDs first (`kubectl apply --server-side
--force-conflicts`), then `helm upgrade`. Tested from the previous release's chart (commit 4bdc1a1, its
own CRDs) with objects of all three kinds: they stay valid and readable, and the new fields work."""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from helmtools import CHART, IMAGE_VALUES, REPO, run_helm

pytestmark = pytest.mark.cluster

PREVIOUS = "4bdc1a1"
NS, RELEASE, OBJECTS = "gs-crd-upgrade", "gs-crd-up", "gs-crd-objects"
API = "gpusteward.dev/v1alpha1"


def export_chart(commit: str, dest: Path) -> Path:
    """The chart as it was at ``commit`` (git archive: what a user of that release had)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "charts/gpu-steward"],
                             capture_output=True, check=True, timeout=60).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "charts" / "gpu-steward"


BUDGET = {"apiVersion": API, "kind": "GPUBudget", "metadata": {"name": "team"},
          "spec": {"gpuQuota": 4, "spend": {"limit": "100", "currency": "USD", "period": "Monthly"},
                   "fastLane": {"maxGPUs": 1, "maxDuration": "1h"}}}
LEASE = {"apiVersion": API, "kind": "ExperimentLease", "metadata": {"name": "sweep"},
         "spec": {"owner": "alice", "purpose": "sweep", "gpus": 1, "duration": "1h"}}
POLICY = {"apiVersion": API, "kind": "IdlePolicy", "metadata": {"name": "notebooks"},
          "spec": {"idle": {"gpuUtilPercent": 5, "for": "30m"}, "notice": {"before": "15m", "maxSnooze": "1h"},
                   "dryRun": True}}


@pytest.fixture(scope="module")
def kubectl(cluster: Any) -> Any:
    binary = Path(cluster.bin_dir) / "kubectl"

    def run(*args: str, check: bool = True, input: str | None = None, full: bool = False) -> Any:
        proc = subprocess.run([str(binary), "--kubeconfig", str(cluster.kubeconfig), *args], input=input,
                              capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
        return proc if full else proc.stdout

    return run


@pytest.fixture(scope="module")
def old_release(cluster: Any, helm: Path, kubectl: Any, tmp_path_factory: Any) -> Iterator[Path]:
    old = export_chart(PREVIOUS, tmp_path_factory.mktemp("previous-chart"))
    # The cluster as the previous release left it: its CRDs (the session may have newer ones already).
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(old / "crds"))
    kubectl("create", "namespace", OBJECTS)
    try:
        # Objects first (the lease webhook of the old chart would refuse writes while no operator serves).
        for obj in (BUDGET, LEASE, POLICY):
            kubectl("apply", "-n", OBJECTS, "-f", "-", input=yaml.safe_dump(obj))
        run_helm(helm, "install", RELEASE, str(old), "--namespace", NS, "--create-namespace", "--wait=false",
                 "-f", str(IMAGE_VALUES), "--set", "webhook.enabled=false", kubeconfig=cluster.kubeconfig)
        yield old
    finally:
        run_helm(helm, "uninstall", RELEASE, "--namespace", NS, kubeconfig=cluster.kubeconfig, check=False)
        kubectl("delete", "namespace", OBJECTS, NS, "--ignore-not-found", "--wait=false", check=False)
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"), check=False)


def test_crds_then_helm_upgrade_keeps_objects_and_serves_the_new_fields(old_release: Path, cluster: Any,
                                                                        helm: Path, kubectl: Any) -> None:
    # Before: the old CRDs do not know this chart's fields (strict field validation refuses them).
    signal = {**POLICY, "spec": {**POLICY["spec"], "idle": {**POLICY["spec"]["idle"], "signal": "SMActive"}}}
    refused = kubectl("apply", "-n", OBJECTS, "-f", "-", input=yaml.safe_dump(signal), check=False, full=True)
    assert refused.returncode != 0 and "signal" in refused.stderr

    # The documented upgrade: CRDs first, then the release.
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    for plural in ("gpubudgets", "experimentleases", "idlepolicies"):
        kubectl("wait", "--for=condition=Established", f"crd/{plural}.gpusteward.dev", "--timeout=60s")
    run_helm(helm, "upgrade", RELEASE, str(CHART), "--namespace", NS, "--wait=false", "-f", str(IMAGE_VALUES),
             "--set", "webhook.enabled=false", kubeconfig=cluster.kubeconfig)
    served = json.loads(kubectl("get", "crd", "idlepolicies.gpusteward.dev", "-o", "json"))
    props = served["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert "signal" in props["idle"]["properties"]

    # The old objects are still there and readable, with their printer columns.
    table = kubectl("get", "gpubudgets,experimentleases,idlepolicies", "-n", OBJECTS)
    for name in ("gpubudget.gpusteward.dev/team", "experimentlease.gpusteward.dev/sweep",
                 "idlepolicy.gpusteward.dev/notebooks"):
        assert name in table, table
    budget = json.loads(kubectl("get", "gpubudget", "team", "-n", OBJECTS, "-o", "json"))
    assert budget["spec"]["gpuQuota"] == 4
    assert budget["spec"]["fastLane"]["maxActivePerOwner"] == 1  # a new field's default, on an old object
    # They still validate: an unrelated edit of each is accepted by the new schema.
    for kind, name in (("gpubudget", "team"), ("experimentlease", "sweep"), ("idlepolicy", "notebooks")):
        kubectl("label", kind, name, "-n", OBJECTS, "upgraded=yes")
    # The new fields work.
    kubectl("apply", "-n", OBJECTS, "-f", "-", input=yaml.safe_dump(signal))
    policy = json.loads(kubectl("get", "idlepolicy", "notebooks", "-n", OBJECTS, "-o", "json"))
    assert policy["spec"]["idle"]["signal"] == "SMActive"
    kubectl("patch", "gpubudget", "team", "-n", OBJECTS, "--type=merge", "-p",
            '{"spec":{"fastLane":{"maxActivePerOwner":2}}}')
    assert json.loads(kubectl("get", "gpubudget", "team", "-n", OBJECTS, "-o", "json"))["spec"]["fastLane"][
        "maxActivePerOwner"] == 2
    status = run_helm(helm, "status", RELEASE, "--namespace", NS, "-o", "json", kubeconfig=cluster.kubeconfig)
    assert json.loads(status.stdout)["info"]["status"] == "deployed"
