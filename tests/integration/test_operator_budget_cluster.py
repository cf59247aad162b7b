"""The operator process end to end: kopf handlers reconcile a GPUBudget, the cost loop annotates pods,
and a killed and restarted operator sends no threshold notice twice (state lives in status)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from fixtures.budget_cluster import (
    API,
    NODE,
    apply,
    gpu_pod,
    install_crds,
    new_namespace,
    running_pod,
    start_operator,
    stop_operator,
    wait_for,
)
from gpu_steward.kube import Kube
from gpu_steward.policy import cost as c

pytestmark = pytest.mark.cluster
A100 = "NVIDIA-A100-SXM4-80GB"


def threshold_events(kube, ns):
    return [e for e in kube.list("v1", "Event", ns) if e.get("reason") == "BudgetThreshold"]


def test_operator_reconciles_budget_annotates_costs_and_survives_a_kill(cluster, tmp_path):
    install_crds(cluster)
    cluster.add_gpu_node(NODE, gpus=64, product=A100)
    kube = Kube(cluster.api_client())
    ns = new_namespace(cluster, "operator")
    kube.create(gpu_pod(ns, "train", 2, {"gpusteward.dev/team": "vision"}), dry_run=False)
    running_pod(kube, ns, "train")
    # 2 GPUs x 4.10/h: a limit of 0.0001 is crossed within a second, so all three thresholds fire.
    apply(cluster, {"apiVersion": API, "kind": "GPUBudget", "metadata": {"name": "main", "namespace": ns},
                    "spec": {"gpuQuota": 4, "spend": {"limit": "0.0001", "alertAt": [50, 80, 100]}}})
    env = {"namespaces": json.dumps([ns]), "evaluation_interval_seconds": "1",
           "cost_annotation_min_interval_seconds": "2", "gpu_hour_prices": json.dumps({A100: "4.10"})}
    log = tmp_path / "operator.log"
    proc = start_operator(cluster, log, **env)
    try:
        status = wait_for(lambda: (lambda s: s if s.get("announcedThresholds") == [50, 80, 100] else None)(
            (kube.get(API, "GPUBudget", "main", ns) or {}).get("status") or {}), 60, what="budget status")
        assert status["effectiveQuota"] == 4 and status["gpusInUse"] == 2 and status["currency"] == "USD"
        rq = kube.get("v1", "ResourceQuota", "gpusteward-main", ns)
        assert rq["spec"]["hard"]["requests.nvidia.com/gpu"] == "4"
        assert len(wait_for(lambda: (lambda ev: ev if len(ev) >= 3 else None)(threshold_events(kube, ns)), 30,
                            what="threshold events")) == 3
        ann = wait_for(lambda: (kube.get("v1", "Pod", "train", ns)["metadata"].get("annotations") or {})
                       .get(c.ANN_COST) and kube.get("v1", "Pod", "train", ns)["metadata"]["annotations"], 30,
                       what="cost annotation")
        assert ann[c.ANN_HOURLY_RATE] == "8.2" and Decimal(ann[c.ANN_GPU_HOURS]) >= 0
        spend_before = Decimal(status["spend"])

        # A real restart: SIGKILL, then a fresh process.
        stop_operator(proc, kill=True)
        proc = start_operator(cluster, log, **env)
        wait_for(lambda: Decimal(((kube.get(API, "GPUBudget", "main", ns) or {}).get("status") or {})
                                 .get("spend", "0")) > spend_before, 60, what="the new process updating spend")
        wait_for(lambda: Decimal(((kube.get(API, "GPUBudget", "main", ns) or {}).get("status") or {})
                                 .get("spend", "0")) > spend_before + Decimal("0.002"), 60, what="more passes")
        assert len(threshold_events(kube, ns)) == 3
        assert proc.alive(), log.read_text()[-3000:]
    finally:
        stop_operator(proc)
