"""`helm install` into the real control plane (every object validated by the apiserver), then
`helm uninstall` leaves nothing behind but what the chart documents as kept: the CRDs."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helmtools import CHART, IMAGE_VALUES, run_helm

from gpu_steward_testground.runner import FAKE_NODE_ANNOTATION

pytestmark = pytest.mark.cluster

NS = "gs-install-test"
RELEASE = "gs-it"
INSTANCE = f"app.kubernetes.io/instance={RELEASE}"
KEPT_CRDS = {"gpubudgets.gpusteward.dev", "experimentleases.gpusteward.dev", "idlepolicies.gpusteward.dev"}


@pytest.fixture(scope="module")
def kubectl(cluster: Any) -> Any:
    binary = Path(cluster.bin_dir) / "kubectl"

    def run(*args: str, check: bool = True, input: str | None = None) -> str:
        proc = subprocess.run([str(binary), "--kubeconfig", str(cluster.kubeconfig), *args], input=input,
                              capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
        return proc.stdout

    return run


def labelled_objects(kubectl: Any) -> set[str]:
    """Every object of every listable type that carries this release's instance label."""
    types = [t for t in kubectl("api-resources", "--verbs=list", "-o", "name").split()
             if t not in ("events", "events.events.k8s.io")]
    out = kubectl("get", ",".join(types), "-A", "-l", INSTANCE, "-o", "json", "--ignore-not-found")
    items = json.loads(out)["items"] if out.strip() else []
    return {f"{i['kind']}/{i['metadata'].get('namespace', '')}/{i['metadata']['name']}" for i in items}


GPU_NODE, CPU_NODE = "gs-it-gpu", "gs-it-cpu"


@pytest.fixture(scope="module")
def nodes(cluster: Any, kubectl: Any) -> Iterator[None]:
    """A tainted GPU node (as GPU pools usually are) and a plain CPU node, both KWOK."""
    cluster.add_gpu_node(GPU_NODE, gpus=4, taint=True)
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": CPU_NODE, "annotations": {FAKE_NODE_ANNOTATION: "fake"},
                     "labels": {"kubernetes.io/hostname": CPU_NODE, "kubernetes.io/os": "linux", "type": "kwok"}},
        "status": {"capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                   "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"}}}))
    kubectl("wait", "--for=condition=Ready", f"node/{CPU_NODE}", "--timeout=60s")
    yield
    kubectl("delete", "node", GPU_NODE, CPU_NODE, "--ignore-not-found")


@pytest.fixture(scope="module")
def installed(cluster: Any, helm: Path, kubectl: Any, nodes: None) -> Iterator[str]:
    assert labelled_objects(kubectl) == set()
    proc = run_helm(helm, "install", RELEASE, str(CHART), "--namespace", NS, "--create-namespace", "--wait=false",
                    "-f", str(IMAGE_VALUES), "--set", "rbac.budgetSecretNames={team-slack}",
                    kubeconfig=cluster.kubeconfig)
    try:
        yield proc.stdout
    finally:
        # Always uninstall: a leftover webhook configuration would block other tests' leases.
        run_helm(helm, "uninstall", RELEASE, "--namespace", NS, kubeconfig=cluster.kubeconfig, check=False)


def test_every_object_is_created(installed: str, kubectl: Any) -> None:
    names = labelled_objects(kubectl)
    fullname = f"{RELEASE}-gpu-steward"
    for expected in [
        f"Deployment/{NS}/{fullname}-operator",
        f"DaemonSet/{NS}/{fullname}-agent",
        f"ServiceAccount/{NS}/{fullname}-operator",
        f"ServiceAccount/{NS}/{fullname}-agent",
        f"ClusterRole//{fullname}-operator",
        f"ClusterRoleBinding//{fullname}-operator",
        f"ClusterRole//{fullname}-view",
        f"ClusterRole//{fullname}-edit",
        f"ClusterRole//{fullname}-platform",
        f"Service/{NS}/{fullname}-operator-metrics",
        f"Service/{NS}/{fullname}-agent-metrics",
        f"Service/{NS}/{fullname}-webhook",
        f"ValidatingWebhookConfiguration//{fullname}.gpusteward.dev",
        f"MutatingWebhookConfiguration//{fullname}.gpusteward.dev",
        f"PodDisruptionBudget/{NS}/{fullname}-operator",
        f"ConfigMap/{NS}/{fullname}-dashboard",
        f"Role/{NS}/{fullname}-operator-leader",
        f"RoleBinding/{NS}/{fullname}-operator-leader",
        f"Role/{NS}/{fullname}-operator-controls",
        f"RoleBinding/{NS}/{fullname}-operator-controls",
        f"IdlePolicy/{NS}/idle-gpus",
    ]:
        assert expected in names, f"{expected} missing; have {sorted(names)}"
    crds = set(kubectl("get", "crd", "-o", "name").split())
    assert {f"customresourcedefinition.apiextensions.k8s.io/{c}" for c in KEPT_CRDS} <= crds


def test_agents_run_on_gpu_nodes_only(installed: str, kubectl: Any) -> None:
    """Node affinity and the nvidia.com/gpu toleration, as the scheduler applies them."""
    def agent_nodes() -> dict[str, str]:
        pods = json.loads(kubectl("get", "pods", "-n", NS, "-l", f"{INSTANCE},app.kubernetes.io/component=agent",
                                  "-o", "json"))["items"]
        return {p["spec"].get("nodeName") or "": p["status"].get("phase", "") for p in pods}

    deadline = time.monotonic() + 90
    while agent_nodes().get(GPU_NODE) != "Running" and time.monotonic() < deadline:
        time.sleep(1)
    placed = agent_nodes()
    assert placed.get(GPU_NODE) == "Running", placed  # tainted GPU node: tolerated
    assert CPU_NODE not in placed
    gpu_nodes = {n["metadata"]["name"] for n in json.loads(kubectl(
        "get", "nodes", "-l", "nvidia.com/gpu.present=true", "-o", "json"))["items"]}
    assert set(placed) - {""} <= gpu_nodes


def test_policy_stored_in_dry_run(installed: str, kubectl: Any) -> None:
    policy = json.loads(kubectl("get", "idlepolicy", "idle-gpus", "-n", NS, "-o", "json"))
    assert policy["spec"]["dryRun"] is True
    assert policy["spec"]["idle"] == {"gpuUtilPercent": 5, "for": "1h", "startupGrace": "30m"}


def test_notes_tell_the_next_step(installed: str) -> None:
    notes = installed.split("NOTES:", 1)[1]
    assert f"kubectl -n {NS} get idlepolicies" in notes
    assert "dry-run" in notes
    assert "slack.existingSecret" in notes  # Slack is not configured yet: say how


def test_the_operators_certificate_survives_an_upgrade(installed: str, cluster: Any, helm: Path,
                                                       kubectl: Any) -> None:
    """certificates: operator (default): what each operator replica does before serving admission (KWOK
    runs no container, so the test does it with the operator's own code): make the Secret, set the
    caBundle. Then `helm upgrade` keeps both (the chart renders neither; Helm's three-way merge leaves the
    caBundle alone) and a second replica reuses the pair."""
    import datetime as dt

    from gpu_steward.kube import Kube
    from gpu_steward.tls import usable
    from gpu_steward.webhook_certs import prepare

    fullname = f"{RELEASE}-gpu-steward"
    env = {e["name"]: e.get("value") for e in json.loads(kubectl(
        "get", "deployment", f"{fullname}-operator", "-n", NS, "-o", "json"))["spec"]["template"]["spec"][
        "containers"][0]["env"]}
    kube = Kube(cluster.api_client())
    now = dt.datetime.now(dt.UTC)
    secret, service = env["GPU_STEWARD_WEBHOOK_CERT_SECRET"], env["GPU_STEWARD_WEBHOOK_SERVICE"]
    configuration = env["GPU_STEWARD_WEBHOOK_CONFIGURATION_NAME"]
    assert env["GPU_STEWARD_PLATFORM_NAMESPACE"] == NS
    first = prepare(kube, namespace=NS, secret=secret, service=service, configuration=configuration, now=now)
    before = json.loads(kubectl("get", "secret", secret, "-n", NS, "-o", "json"))["data"]
    assert usable({k: base64.b64decode(v) for k, v in before.items()},
                  [f"{fullname}-webhook.{NS}.svc"], now)

    def bundles() -> set[str]:
        out = set()
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            cfg = json.loads(kubectl("get", kind, f"{fullname}.gpusteward.dev", "-o", "json"))
            out |= {w["clientConfig"].get("caBundle", "") for w in cfg["webhooks"]}
        return out

    assert bundles() == {before["ca.crt"]}
    run_helm(helm, "upgrade", RELEASE, str(CHART), "--namespace", NS, "--reuse-values", "--wait=false",
             "--set", "operator.logLevel=DEBUG", kubeconfig=cluster.kubeconfig)
    assert bundles() == {before["ca.crt"]}
    # Another replica (or a restart) finds the pair usable and serves the same files.
    second = prepare(kube, namespace=NS, secret=secret, service=service, configuration=configuration, now=now)
    assert (second / "tls.crt").read_bytes() == (first / "tls.crt").read_bytes()
    assert json.loads(kubectl("get", "secret", secret, "-n", NS, "-o", "json"))["data"] == before
    env = json.loads(kubectl("get", "deployment", f"{fullname}-operator", "-n", NS, "-o", "json"))[
        "spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "GPU_STEWARD_LOG_LEVEL", "value": "DEBUG"} in env


def test_shards_upgrade_and_back(installed: str, cluster: Any, helm: Path, kubectl: Any) -> None:
    """operator.shards: 3 on the running release: the apiserver takes a Deployment and a PodDisruptionBudget
    per shard and the Role on each shard's Lease; each Deployment's selector finds its own pods only. Back
    to one shard, the single Deployment returns."""
    fullname = f"{RELEASE}-gpu-steward"
    operator = f"{INSTANCE},app.kubernetes.io/component=operator"

    def names(kind: str) -> list[str]:
        items = json.loads(kubectl("get", kind, "-n", NS, "-l", operator, "-o", "json"))["items"]
        return sorted(i["metadata"]["name"] for i in items)

    out = run_helm(helm, "upgrade", RELEASE, str(CHART), "--namespace", NS, "--reuse-values", "--wait=false",
                   "--set", "operator.shards=3", kubeconfig=cluster.kubeconfig).stdout
    assert "The operator runs as 3 shards" in out.split("NOTES:", 1)[1]
    shards = [f"{fullname}-operator-shard-{i}" for i in range(3)]
    assert names("deployments") == shards
    assert names("poddisruptionbudgets") == shards
    role = json.loads(kubectl("get", "role", f"{fullname}-operator-leader", "-n", NS, "-o", "json"))
    assert [r.get("resourceNames") for r in role["rules"]] == [
        None, [f"{fullname}-leader-shard-{i}" for i in range(3)]]
    for i, name in enumerate(shards):
        selector = json.loads(kubectl("get", "deployment", name, "-n", NS, "-o", "json"))["spec"]["selector"]
        query = ",".join(f"{k}={v}" for k, v in selector["matchLabels"].items())
        deadline = time.monotonic() + 60
        while True:
            pods = json.loads(kubectl("get", "pods", "-n", NS, "-l", query, "-o", "json"))["items"]
            if len(pods) == 2 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert len(pods) == 2, f"shard {i}: {[p['metadata']['name'] for p in pods]}"
        # Created by this Deployment's ReplicaSet (named <deployment>-<hash>), none by another shard's.
        owners = {o["name"].rsplit("-", 1)[0] for p in pods for o in p["metadata"]["ownerReferences"]}
        assert owners == {name}
    run_helm(helm, "upgrade", RELEASE, str(CHART), "--namespace", NS, "--reuse-values", "--wait=false",
             "--set", "operator.shards=1", kubeconfig=cluster.kubeconfig)
    assert names("deployments") == [f"{fullname}-operator"]
    assert names("poddisruptionbudgets") == [f"{fullname}-operator"]


def test_uninstall_leaves_only_the_crds(installed: str, cluster: Any, helm: Path, kubectl: Any) -> None:
    run_helm(helm, "uninstall", RELEASE, "--namespace", NS, "--wait", kubeconfig=cluster.kubeconfig)
    # Pods, ReplicaSets, ControllerRevisions and EndpointSlices go with their owners (garbage collector).
    deadline = time.monotonic() + 90
    left = labelled_objects(kubectl)
    while left and time.monotonic() < deadline:
        time.sleep(1)
        left = labelled_objects(kubectl)
    assert left == set()
    crds = set(kubectl("get", "crd", "-o", "name").split())
    assert {f"customresourcedefinition.apiextensions.k8s.io/{c}" for c in KEPT_CRDS} <= crds
