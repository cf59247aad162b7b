"""kopf itself, run with the chart's ServiceAccount token, standalone (the leader Lease, not kopf
peering, decides which replica acts) with liveness as the chart configures it: it discovers resources,
handles a GPUBudget (finalizer, progress annotations, a status patch, an Event) and watches pods,
without a single 403."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest
from chart_rbac import OperatorIdentity, http_ok, operator_kubeconfig
from helmtools import CHART

from gpu_steward_testground import processes

pytestmark = pytest.mark.cluster

NS = "gs-kopf-test"
RELEASE = "gs-kopf"
TEAM_NS = "gs-kopf-team"


class ForbiddenLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]!r}"
        # 403 as a status, not inside a port number or timestamp.
        if re.search(r"(?<![\d:])403(?!\d)|[Ff]orbidden|RBAC|permission", text):
            self.records.append(text)


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    return processes.wait_for(probe, timeout, 0.5, what)


@pytest.fixture(scope="module")
def identity(cluster: Any, helm: Path, kubectl: Callable[..., str],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorIdentity]:
    kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    for ns in (NS, TEAM_NS):
        kubectl("create", "namespace", ns, check=False)
    ident = operator_kubeconfig(helm=helm, kubectl=kubectl_path(cluster), admin_kubeconfig=cluster.kubeconfig,
                                namespace=NS, out=tmp_path_factory.mktemp("kopf") / "operator.kubeconfig",
                                release=RELEASE)
    yield ident
    ident.remove()


def kubectl_path(cluster: Any) -> Path:
    return Path(cluster.bin_dir) / "kubectl"


def test_kopf_runs_with_the_chart_rbac(identity: OperatorIdentity, kubectl: Callable[..., str],
                                       monkeypatch: pytest.MonkeyPatch, unused_tcp_port: int) -> None:
    monkeypatch.setenv("KUBECONFIG", str(identity.kubeconfig))
    registry = kopf.OperatorRegistry()
    seen_pods: list[str] = []

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # As the operator configures kopf: its bookkeeping under gpusteward.dev/ keys.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="gpusteward.dev")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="gpusteward.dev", key="last-handled-configuration")
        settings.persistence.finalizer = "gpusteward.dev/kopf-finalizer"
        settings.watching.server_timeout = 10

    @kopf.on.create("gpusteward.dev", "v1alpha1", "gpubudgets", registry=registry)
    def budget_created(body: Any, patch: kopf.Patch, logger: Any, **_: Any) -> None:
        patch.status["spend"] = "0"
        kopf.info(body, reason="Tested", message="handled under the chart's RBAC")

    @kopf.on.delete("gpusteward.dev", "v1alpha1", "gpubudgets", registry=registry)
    def budget_deleted(**_: Any) -> None:
        """Makes kopf put its finalizer on budgets, and remove it on deletion (two more patches)."""

    @kopf.on.event("", "v1", "pods", registry=registry)
    def pod_event(name: str, namespace: str, **_: Any) -> None:
        seen_pods.append(f"{namespace}/{name}")

    forbidden = ForbiddenLog()
    logging.getLogger("kopf").addHandler(forbidden)
    stop, ready = threading.Event(), threading.Event()
    liveness = f"http://127.0.0.1:{unused_tcp_port}/healthz"

    def run() -> None:
        asyncio.run(kopf.operator(registry=registry, clusterwide=True, standalone=True,
                                  liveness_endpoint=liveness, stop_flag=stop, ready_flag=ready))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert ready.wait(60), "kopf did not start"
        wait_for("liveness", lambda: http_ok(liveness))

        name = f"b-{uuid.uuid4().hex[:8]}"  # a fresh object (and fresh Events) on every run
        kubectl("apply", "-n", TEAM_NS, "-f", "-", stdin=json.dumps({
            "apiVersion": "gpusteward.dev/v1alpha1", "kind": "GPUBudget",
            "metadata": {"name": name, "namespace": TEAM_NS},
            "spec": {"gpuQuota": 4, "spend": {"limit": "100", "currency": "USD", "period": "Monthly"}}}))
        budget = wait_for("the budget handled", lambda: _handled(kubectl("get", "gpubudget", name, "-n", TEAM_NS,
                                                                         "-o", "json")))
        assert "gpusteward.dev/kopf-finalizer" in budget["metadata"]["finalizers"]
        assert "gpusteward.dev/last-handled-configuration" in budget["metadata"]["annotations"]
        uid = budget["metadata"]["uid"]
        wait_for("kopf's Event", lambda: any(
            e["reason"] == "Tested" and e["involvedObject"].get("uid") == uid
            for e in json.loads(kubectl("get", "events", "-n", TEAM_NS, "-o", "json"))["items"]))

        kubectl("run", name, "-n", TEAM_NS, "--image=example.invalid/x", "--restart=Never")
        wait_for("the pod event", lambda: f"{TEAM_NS}/{name}" in seen_pods)

        # Deleting the budget: kopf removes its finalizer (another patch) and the object goes.
        kubectl("delete", "gpubudget", name, "-n", TEAM_NS, "--wait=false")
        wait_for("the budget deleted", lambda: not kubectl("get", "gpubudget", name, "-n", TEAM_NS,
                                                           "--ignore-not-found").strip())
    finally:
        stop.set()
        thread.join(30)
        logging.getLogger("kopf").removeHandler(forbidden)
        kubectl("delete", "pods", "--all", "-n", TEAM_NS, "--ignore-not-found", "--wait=false", check=False)
    assert forbidden.records == []


def _handled(text: str) -> dict[str, Any] | None:
    obj: dict[str, Any] = json.loads(text)
    return obj if (obj.get("status") or {}).get("spend") == "0" else None
