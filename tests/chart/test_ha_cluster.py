"""High availability as the chart configures it: two operator processes with the chart's environment
(leader election on, webhooks on) and the chart's ServiceAccount token, on the real control plane.

One acts: a new GPUBudget gets its ResourceQuota promptly, only the leader runs idle passes, only the
leader's pod carries gpusteward.dev/leader=true and its gpusteward_leader gauge reads 1; both are ready
and both answer admission reviews. Then the leader is SIGKILLed and the standby takes over when the
Lease expires: a budget created after the kill gets its quota. The failover time is printed (no timed
assertion: it is the Lease duration plus a retry period on a quiet machine)."""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from chart_rbac import OperatorIdentity, http_ok, operator_kubeconfig
from helmtools import CHART, REPO, operator_env
from test_operator_under_chart_rbac import free_port

pytestmark = pytest.mark.cluster

RELEASE = "gs-ha"
NS = "gs-ha"
TEAM = "gs-ha-team"
FULLNAME = f"{RELEASE}-gpu-steward"
LEADS = "leading: this replica acts"


@dataclass
class Replica:
    name: str  # also the (placeholder) pod whose label it writes
    proc: subprocess.Popen[bytes]
    log: Path
    liveness: str
    webhook_port: int
    metrics_port: int
    cert_dir: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def idle_passes(self) -> int:
        return len(re.findall(r"idle pass(?! skipped)", self.text()))

    def leads(self) -> bool:
        return LEADS in self.text()


def wait_for(what: str, probe: Callable[[], Any], timeout: float, replicas: list[Replica]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.25)
    logs = "\n".join(f"--- {r.name} (exit {r.proc.poll()}):\n{r.text()[-3000:]}" for r in replicas)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")


@pytest.fixture(scope="module")
def identity(cluster: Any, helm: Path, kubectl: Callable[..., str],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorIdentity]:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    for ns in (NS, TEAM):
        kubectl("create", "namespace", ns, check=False)
    ident = operator_kubeconfig(helm=helm, kubectl=Path(cluster.bin_dir) / "kubectl",
                                admin_kubeconfig=cluster.kubeconfig, namespace=NS, release=RELEASE,
                                out=tmp_path_factory.mktemp("ha") / "operator.kubeconfig")
    yield ident
    ident.remove()


@pytest.fixture(scope="module")
def replicas(identity: OperatorIdentity, helm: Path, kubectl: Callable[..., str],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Replica]]:
    env = operator_env(helm, release=RELEASE, namespace=NS)
    # The chart's defaults: election on, two replicas, webhooks on with the operator's certificate (both
    # replicas start together and must agree on the one pair in the Secret).
    assert env["GPU_STEWARD_LEADER_ELECTION_LEASE_NAME"] == f"{FULLNAME}-leader"
    assert env["GPU_STEWARD_LEADER_ELECTION_NAMESPACE"] == NS
    assert env["GPU_STEWARD_WEBHOOK_ENABLED"] == "true"
    assert env["GPU_STEWARD_WEBHOOK_CERT_SECRET"] == f"{FULLNAME}-webhook-tls"
    kubectl("delete", "secret", f"{FULLNAME}-webhook-tls", "-n", NS, "--ignore-not-found")
    cert_dir = tmp_path_factory.mktemp("tls")  # the client's copy of the CA, once the replicas made it
    out: list[Replica] = []
    for name in ("gs-ha-operator-a", "gs-ha-operator-b"):
        # Placeholder pods standing for the Deployment's: the leader label goes on them.
        kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"nodeSelector": {"gpusteward.dev/nowhere": "true"},
                     "containers": [{"name": "operator", "image": "example.invalid/operator"}]}}))
        liveness, webhook, metrics = free_port(), free_port(), free_port()
        # Only what a pod has and a test process does not (loopback ports, the downward API); everything
        # else is the chart's.
        penv = dict(env)
        penv.update({
            "GPU_STEWARD_LIVENESS_ENDPOINT": f"http://127.0.0.1:{liveness}/healthz",
            "GPU_STEWARD_WEBHOOK_LISTEN_ADDR": "127.0.0.1",
            "GPU_STEWARD_WEBHOOK_HOST": "127.0.0.1",
            "GPU_STEWARD_WEBHOOK_PORT": str(webhook),
            "GPU_STEWARD_METRICS_PORT": str(metrics),
            "GPU_STEWARD_EVALUATION_INTERVAL_SECONDS": "2",
            "GPU_STEWARD_LOG_FORMAT": "console",
            "GPU_STEWARD_POD_NAME": name,
            "GPU_STEWARD_POD_NAMESPACE": NS,
        })
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_STEWARD_")}
        full_env.update(penv, KUBECONFIG=str(identity.kubeconfig))
        log = tmp_path_factory.mktemp("oplog") / f"{name}.log"
        with open(log, "wb") as f:
            proc = subprocess.Popen([sys.executable, "-m", "gpu_steward.handlers.run"], env=full_env, cwd=REPO,
                                    stdout=f, stderr=subprocess.STDOUT)
        out.append(Replica(name, proc, log, penv["GPU_STEWARD_LIVENESS_ENDPOINT"], webhook, metrics, cert_dir))
    try:
        yield out
    finally:
        for r in out:
            if r.proc.poll() is None:
                r.proc.terminate()
        for r in out:
            try:
                r.proc.wait(30)
            except subprocess.TimeoutExpired:
                r.proc.kill()
        for r in out:
            kubectl("delete", "pod", r.name, "-n", NS, "--ignore-not-found", "--wait=false", check=False)
        kubectl("delete", "lease", f"{FULLNAME}-leader", "-n", NS, "--ignore-not-found", check=False)


def budget(kubectl: Callable[..., str], name: str, quota: int) -> None:
    kubectl("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "gpusteward.dev/v1alpha1", "kind": "GPUBudget", "metadata": {"name": name, "namespace": TEAM},
        "spec": {"gpuQuota": quota, "spend": {"limit": "1000", "currency": "USD", "period": "Monthly"}}}))


def quota_of(kubectl: Callable[..., str], name: str) -> str | None:
    out = kubectl("get", "resourcequota", f"gpusteward-{name}", "-n", TEAM, "-o", "json", "--ignore-not-found")
    return json.loads(out)["spec"]["hard"].get("requests.nvidia.com/gpu") if out.strip() else None


def leader_label(kubectl: Callable[..., str], pod: str) -> str | None:
    meta = json.loads(kubectl("get", "pod", pod, "-n", NS, "-o", "json"))["metadata"]
    return (meta.get("labels") or {}).get("gpusteward.dev/leader")


def leader_gauge(r: Replica) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{r.metrics_port}/metrics", timeout=2) as rsp:
            text = rsp.read().decode()
    except OSError:
        return None
    m = re.search(r"^gpusteward_leader (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def admission_review(r: Replica, cafile: Path) -> dict[str, Any]:
    """An ExperimentLease approved by someone outside the approver groups, sent to this replica."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.check_hostname = False  # the certificate names the Service; we call the process on loopback
    lease = {"apiVersion": "gpusteward.dev/v1alpha1", "kind": "ExperimentLease",
             "metadata": {"name": "x", "namespace": TEAM},
             "spec": {"owner": "mallory", "purpose": "p", "gpus": 1, "duration": "1h", "approved": True}}
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "kind": {"group": "gpusteward.dev", "version": "v1alpha1", "kind": "ExperimentLease"},
        "resource": {"group": "gpusteward.dev", "version": "v1alpha1", "resource": "experimentleases"},
        "namespace": TEAM, "name": "x", "operation": "CREATE", "userInfo": {"username": "mallory", "groups": []},
        "object": lease, "oldObject": None, "dryRun": False}}
    req = urllib.request.Request(f"https://127.0.0.1:{r.webhook_port}/lease-approval", data=json.dumps(review).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10, context=ctx) as rsp:
        return json.loads(rsp.read())["response"]  # type: ignore[no-any-return]


def test_one_replica_acts_and_the_standby_takes_over_after_a_sigkill(
        replicas: list[Replica], kubectl: Callable[..., str]) -> None:
    for r in replicas:  # ready = can serve webhooks, on both
        wait_for(f"{r.name} ready", lambda r=r: http_ok(r.liveness), 90, replicas)
    leader = wait_for("a leader", lambda: next((r for r in replicas if r.leads()), None), 60, replicas)
    standby = next(r for r in replicas if r is not leader)

    t0 = time.monotonic()
    budget(kubectl, "before", 4)
    wait_for("the first budget's quota", lambda: quota_of(kubectl, "before") == "4", 30, replicas)
    print(f"\nquota for a new GPUBudget after {time.monotonic() - t0:.1f}s")

    # Several evaluation intervals (2 s): the leader's loops run, the standby's never start.
    wait_for("idle passes on the leader", lambda: leader.idle_passes() >= 3, 30, replicas)
    assert standby.idle_passes() == 0 and not standby.leads(), standby.text()[-3000:]
    assert "idle loop" not in standby.text() and "cost pass" not in standby.text()
    wait_for("leader label", lambda: leader_label(kubectl, leader.name) == "true", 15, replicas)
    assert leader_label(kubectl, standby.name) == "false"
    wait_for("leader gauge", lambda: leader_gauge(leader) == 1.0 and leader_gauge(standby) == 0.0, 15, replicas)

    # Admission webhooks answer on both replicas (and deny an approval from a non-approver), both with the
    # pair in the operator's Secret (the client trusts only its CA).
    secret = json.loads(kubectl("get", "secret", f"{FULLNAME}-webhook-tls", "-n", NS, "-o", "json"))
    (replicas[0].cert_dir / "ca.crt").write_bytes(base64.b64decode(secret["data"]["ca.crt"]))
    for r in replicas:
        response = admission_review(r, r.cert_dir / "ca.crt")
        assert response["allowed"] is False and response["status"]["code"] == 403, response

    # A crash: SIGKILL, no clean-up, no Lease release.
    killed_at = time.monotonic()
    leader.proc.kill()
    leader.proc.wait(10)
    budget(kubectl, "after", 6)
    wait_for("the standby leading", standby.leads, 90, [standby])
    took_over = time.monotonic() - killed_at
    wait_for("the second budget's quota", lambda: quota_of(kubectl, "after") == "6", 60, [standby])
    quota_after = time.monotonic() - killed_at
    print(f"failover: standby acting {took_over:.1f}s after the SIGKILL, quota for a budget created "
          f"after the kill {quota_after:.1f}s after it (lease duration 15s)")
    passes = standby.idle_passes()
    wait_for("idle passes on the new leader", lambda: standby.idle_passes() >= passes + 2, 30, [standby])
    wait_for("new leader label", lambda: leader_label(kubectl, standby.name) == "true", 15, [standby])
    assert standby.proc.poll() is None
    denied = [line for line in standby.text().splitlines() if re.search(r"(?<![\d:])403(?!\d)|[Ff]orbidden", line)]
    assert denied == [], "\n".join(denied[:20])

