"""The real operator (`python -m gpu_steward.handlers.run`), configured by exactly the environment
the chart renders and authenticated with the chart's ServiceAccount token, reconciles a GPUBudget
and an ExperimentLease and holds the leader Lease, without one 403 in its log — with the chart's default
certificates (helm: a mounted certificate, the chart owns the webhook configurations, the operator
has no rights on them) and with certificates=kopf (the operator registers its own webhooks, which
the apiserver then calls for the lease). The chart's RBAC checked against the code, not a list."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from chart_rbac import OperatorIdentity, http_ok, operator_kubeconfig
from helmtools import CHART, REPO, one, operator_env, template

pytestmark = pytest.mark.cluster

NS = "gs-op-test"
MODES = {
    # kopf manages the webhook configurations itself: the chart's RBAC must let it.
    "kopf": ["webhook.certificates=kopf", "operator.replicas=1"],
    "helm": ["webhook.certificates=helm"],  # a mounted certificate rendered by the chart
    "operator": [],  # the chart's defaults: the operator makes its certificate Secret
    # Only some namespaces watched: still the one leader Lease in the release namespace.
    "namespaced": ["config.namespaces={gs-op-team-namespaced}"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, probe: Callable[[], Any], timeout: float, proc: subprocess.Popen[bytes], log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"operator exited:\n{log.read_text()[-4000:]}"
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; operator log:\n{log.read_text()[-4000:]}")


@dataclass(frozen=True)
class Case:
    mode: str

    @property
    def release(self) -> str:
        return f"gs-op-{self.mode}"

    @property
    def fullname(self) -> str:
        return f"{self.release}-gpu-steward"

    @property
    def team_ns(self) -> str:
        return f"gs-op-team-{self.mode}"

    @property
    def sets(self) -> list[str]:
        return MODES[self.mode]


@pytest.fixture(scope="module", params=sorted(MODES))
def case(request: pytest.FixtureRequest) -> Case:
    return Case(request.param)


@pytest.fixture(scope="module")
def identity(case: Case, cluster: Any, helm: Path, kubectl: Callable[..., str],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorIdentity]:
    # What `helm install` would put in place besides RBAC: the CRDs.
    kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    for ns in (NS, case.team_ns):
        kubectl("create", "namespace", ns, check=False)
    ident = operator_kubeconfig(helm=helm, kubectl=Path(cluster.bin_dir) / "kubectl",
                                admin_kubeconfig=cluster.kubeconfig, namespace=NS, release=case.release,
                                sets=case.sets, out=tmp_path_factory.mktemp("op") / "operator.kubeconfig")
    yield ident
    ident.remove()
    kubectl("delete", "lease", f"{case.fullname}-leader", "-n", NS, "--ignore-not-found")


@pytest.fixture(scope="module")
def operator(case: Case, identity: OperatorIdentity, helm: Path, kubectl: Callable[..., str],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], Path, str]]:
    env = operator_env(helm, release=case.release, namespace=NS, sets=case.sets)
    liveness, webhook = free_port(), free_port()
    # Only what a pod has and a test process does not: the apiserver reaches this webhook on
    # loopback, and ports must not clash with other tests. Everything else is the chart's.
    env.update({
        "GPU_STEWARD_LIVENESS_ENDPOINT": f"http://127.0.0.1:{liveness}/healthz",
        "GPU_STEWARD_WEBHOOK_LISTEN_ADDR": "127.0.0.1",
        "GPU_STEWARD_WEBHOOK_HOST": "127.0.0.1",
        "GPU_STEWARD_WEBHOOK_PORT": str(webhook),
        "GPU_STEWARD_METRICS_PORT": str(free_port()),
        "GPU_STEWARD_EVALUATION_INTERVAL_SECONDS": "2",
        "GPU_STEWARD_LOG_FORMAT": "console",
    })
    assert env["GPU_STEWARD_LEADER_ELECTION_LEASE_NAME"] == f"{case.fullname}-leader"
    assert env["GPU_STEWARD_WEBHOOK_MANAGE_CONFIGURATION"] == ("true" if case.mode == "kopf" else "false")
    if case.mode == "helm":
        # The files the pod gets from the chart's Secret (mounted at GPU_STEWARD_WEBHOOK_CERT_DIR).
        secret = one(template(helm, release=case.release, namespace=NS, sets=case.sets,
                              extra=["--show-only", "templates/webhook.yaml"]), "Secret")
        cert_dir = tmp_path_factory.mktemp("tls")
        for key, value in secret["data"].items():
            (cert_dir / key).write_bytes(base64.b64decode(value))
        env["GPU_STEWARD_WEBHOOK_CERT_DIR"] = str(cert_dir)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_STEWARD_")}
    full_env.update(env, KUBECONFIG=str(identity.kubeconfig))
    log = tmp_path_factory.mktemp("oplog") / "operator.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gpu_steward.handlers.run"], env=full_env, cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc, log, env["GPU_STEWARD_LIVENESS_ENDPOINT"]
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        # kopf leaves its (emptied) webhook configurations behind; so would a real uninstall in this
        # mode (docs/install.md says to delete them).
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            kubectl("delete", kind, f"{case.fullname}.gpusteward.dev", "--ignore-not-found", check=False)


def test_operator_works_with_the_chart_rbac(case: Case, operator: tuple[subprocess.Popen[bytes], Path, str],
                                            kubectl: Callable[..., str]) -> None:
    proc, log, liveness = operator
    team_ns, fullname = case.team_ns, case.fullname

    def get(*args: str) -> dict[str, Any] | None:
        out = kubectl("get", *args, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    wait_for("liveness", lambda: http_ok(liveness), 90, proc, log)
    wait_for("the leader Lease", lambda: ((get("lease", f"{fullname}-leader", "-n", NS) or {}).get("spec") or {})
             .get("holderIdentity"), 60, proc, log)
    if case.mode == "operator":
        # It made its webhook certificate Secret itself, with the chart's RBAC (the chart renders none).
        secret = wait_for("the webhook certificate Secret", lambda: get("secret", f"{fullname}-webhook-tls", "-n", NS),
                          60, proc, log)
        assert set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    if case.mode == "kopf":
        # The operator created its webhook configurations under the chart's name.
        vwc = wait_for("webhook registration", lambda: (get("validatingwebhookconfiguration",
                                                            f"{fullname}.gpusteward.dev") or {}).get("webhooks"),
                       60, proc, log)
        assert any("lease-approval" in w["name"] for w in vwc)

    kubectl("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "gpusteward.dev/v1alpha1", "kind": "GPUBudget",
        "metadata": {"name": "team", "namespace": team_ns},
        "spec": {"gpuQuota": 8, "spend": {"limit": "1000", "currency": "USD", "period": "Monthly"},
                 "fastLane": {"maxGPUs": 2, "maxDuration": "1d", "maxSpend": "100"}}}))
    budget = wait_for("budget status", lambda: (get("gpubudget", "team", "-n", team_ns) or {}).get("status", {})
                      .get("effectiveQuota") is not None and get("gpubudget", "team", "-n", team_ns), 60, proc, log)
    assert budget["status"]["effectiveQuota"] == 8
    quotas = json.loads(kubectl("get", "resourcequotas", "-n", team_ns, "-o", "json"))["items"]
    assert any(q["spec"]["hard"].get("requests.nvidia.com/gpu") == "8" for q in quotas), quotas

    # Through the operator's own admission webhooks (the apiserver calls them) and then its handlers.
    kubectl("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "gpusteward.dev/v1alpha1", "kind": "ExperimentLease",
        "metadata": {"name": "sweep", "namespace": team_ns},
        "spec": {"owner": "alice", "purpose": "chart RBAC test", "gpus": 1, "duration": "2h"}}))
    lease = wait_for("lease phase", lambda: (get("experimentlease", "sweep", "-n", team_ns) or {}).get("status", {})
                     .get("phase"), 60, proc, log)
    assert lease == "Active"

    # The idle engine: a dry-run IdlePolicy gets its status; a GPU Job's pod is indexed and its owner
    # chain read (the engine lists the suspendable kinds cluster-wide on every pass).
    kubectl("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "gpusteward.dev/v1alpha1", "kind": "IdlePolicy",
        "metadata": {"name": "idle", "namespace": team_ns},
        "spec": {"selector": {"namespaces": [team_ns]}, "idle": {"gpuUtilPercent": 5, "for": "10m"},
                 "notice": {"before": "5m", "maxSnooze": "1h"}, "dryRun": True}}))
    kubectl("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "train", "namespace": team_ns},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "t", "image": "example.invalid/train",
            "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}}))
    mode = wait_for("policy status", lambda: (get("idlepolicy", "idle", "-n", team_ns) or {}).get("status", {})
                    .get("mode"), 60, proc, log)
    assert mode == "DryRun"

    time.sleep(3)  # a few evaluation rounds more (interval 2s) before reading the log
    if case.mode != "kopf":
        # The chart owns the webhook configurations in this mode: the operator created none.
        assert get("validatingwebhookconfiguration", f"{fullname}.gpusteward.dev") is None
    text = log.read_text()
    denied = [line for line in text.splitlines() if re.search(r"(?<![\d:])403(?!\d)|[Ff]orbidden", line)]
    assert denied == [], "\n".join(denied[:20])
