"""Attempts on ExperimentLeases that need hours to pass (issue 12), through in-process reconciles
with an injected clock on the real apiserver: an approval without the webhook's stamp, a lease's
expiry suspending somebody else's work, erasing the spend ledger. The created-by annotations set
here stand for the admission webhook's stamp (test_redteam_identity.py shows it written and guarded)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from fixtures.budget_cluster import (
    API,
    NODE,
    apply,
    gpu_deployment,
    gpu_pod,
    install_crds,
    kubectl,
    new_namespace,
    running_pod,
    wait_for,
    wait_quota,
)
from gpu_steward.budgets.budget import reconcile_budget
from gpu_steward.budgets.lease import reconcile_lease
from gpu_steward.budgets.notifier import RecordingNotifier
from gpu_steward.kube import Kube
from gpu_steward.settings import Settings

pytestmark = pytest.mark.cluster

CREATED_BY = "gpusteward.dev/created-by"
A100 = "NVIDIA-A100-SXM4-80GB"
SETTINGS = Settings(gpu_hour_prices={A100: Decimal("4.10")}, default_gpu_hour_price=Decimal("2.50"))
STAMPED = SETTINGS.model_copy(update={"webhook_enabled": True})  # as with the admission webhooks on


@pytest.fixture(scope="module")
def kube(cluster) -> Kube:
    install_crds(cluster)
    cluster.add_gpu_node(NODE, gpus=64, product=A100)
    return Kube(cluster.api_client())


def budget(ns: str, quota: int = 2, **lane: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "GPUBudget", "metadata": {"name": "main", "namespace": ns},
            "spec": {"gpuQuota": quota, "spend": {"limit": "100000", "currency": "USD"},
                     "fastLane": {"maxGPUs": 1, "maxDuration": "2h", **lane}}}


def lease(ns: str, name: str, owner: str = "alice", gpus: int = 1, duration: str = "1h",
          **extra: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "ExperimentLease", "metadata": {"name": name, "namespace": ns},
            "spec": {"owner": owner, "purpose": "sweep", "gpus": gpus, "duration": duration, **extra}}


def get_lease(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    obj = kube.get(API, "ExperimentLease", name, ns)
    assert obj is not None
    return obj


def test_spec_approved_without_the_webhooks_stamp_is_not_an_approval(cluster, kube):
    ns = new_namespace(cluster, "rt-nostamp")
    apply(cluster, budget(ns, quota=2))
    apply(cluster, lease(ns, "self", gpus=8, approved=True))
    now = dt.datetime.now(dt.UTC)
    for settings, reason in ((SETTINGS, "ApprovalUnavailable"), (STAMPED, "BeyondFastLane")):
        res = reconcile_lease(kube, settings, get_lease(kube, ns, "self"), now, RecordingNotifier())
        assert res.phase == "PendingApproval"
        assert next(c for c in res.status["conditions"] if c["type"] == "Approved")["reason"] == reason
    # A hand-written approver annotation (as anyone could, with the webhooks off) changes nothing.
    kubectl(cluster, "-n", ns, "annotate", "experimentlease", "self", "gpusteward.dev/approved-by=bob",
            f"{CREATED_BY}=alice")
    res = reconcile_lease(kube, STAMPED, get_lease(kube, ns, "self"), now, RecordingNotifier())
    assert res.phase == "PendingApproval"
    reconcile_budget(kube, SETTINGS, kube.get(API, "GPUBudget", "main", ns), now, RecordingNotifier())
    wait_quota(kube, ns, "main", 2)


# ---- 3/4. who created it, and what expiry suspends ------------------------------------------------


def test_expiry_suspends_only_workloads_its_creator_created(cluster, kube):
    ns = new_namespace(cluster, "rt-expiry")
    apply(cluster, budget(ns, quota=4))
    mine = lease(ns, "mallory-exp")
    mine["metadata"]["annotations"] = {CREATED_BY: "mallory"}
    apply(cluster, mine)
    t0 = dt.datetime.now(dt.UTC)
    assert reconcile_lease(kube, STAMPED, get_lease(kube, ns, "mallory-exp"), t0, RecordingNotifier()).phase == "Active"
    # Mallory labels bob's running training into her lease; she has one of her own too.
    for name, creator in (("bobs-training", "bob"), ("mallorys", "mallory")):
        dep = gpu_deployment(ns, name, 1, {"gpusteward.dev/lease": "mallory-exp"})
        dep["metadata"]["annotations"] = {CREATED_BY: creator}
        kube.create(dep, dry_run=False)
        running_pod(kube, ns, selector=f"app={name}")
    res = reconcile_lease(kube, STAMPED, get_lease(kube, ns, "mallory-exp"), t0 + dt.timedelta(hours=2),
                          RecordingNotifier())
    assert res.phase == "Expired"
    # Expiry requests the suspension (carried out by the idle pass after a warning, issue 11) of her
    # workload only; bob's is not in the request.
    (request,) = res.requested
    assert request.workloads == frozenset({("apps", "Deployment", "mallorys")})
    assert kube.get("apps/v1", "Deployment", "bobs-training", ns)["spec"]["replicas"] == 1
    status = get_lease(kube, ns, "mallory-exp")["status"]
    assert status["foreignWorkloads"] == 1
    assert status["workloads"] == [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "mallorys"}]
    assert any("Deployment/bobs-training" in a and "left alone" in a for a in res.actions), res.actions


# ---- 5. the spend ledger ----------------------------------------------------------------------------


def test_erasing_the_spend_ledger_does_not_lower_counted_spend(cluster, kube):
    ns = new_namespace(cluster, "rt-ledger")
    apply(cluster, budget(ns, quota=4))
    exp = lease(ns, "exp", maxSpend="1000")
    exp["metadata"]["annotations"] = {CREATED_BY: "alice"}
    apply(cluster, exp)
    t0 = dt.datetime.now(dt.UTC)
    reconcile_lease(kube, STAMPED, get_lease(kube, ns, "exp"), t0, RecordingNotifier())
    pod = gpu_pod(ns, "short", 1, {"gpusteward.dev/lease": "exp"})
    pod["metadata"]["annotations"] = {CREATED_BY: "alice"}
    kube.create(pod, dry_run=False)
    running_pod(kube, ns, "short")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)
    res = reconcile_lease(kube, STAMPED, get_lease(kube, ns, "exp"), later, RecordingNotifier())
    spent = Decimal(res.status["spend"])
    b = reconcile_budget(kube, SETTINGS, kube.get(API, "GPUBudget", "main", ns), later, RecordingNotifier())
    budget_spent = Decimal(b.status["spend"])
    assert spent > 0 and budget_spent > 0
    kube.delete("v1", "Pod", "short", ns, dry_run=False)
    wait_for(lambda: kube.get("v1", "Pod", "short", ns) is None, 60, what="pod gone")
    # The pod is gone: its cost is settled. Now the user writes a zero ledger, or deletes it.
    zero = json.dumps({"period": "lease", "settled": "0", "live": {}})
    kubectl(cluster, "-n", ns, "annotate", "experimentlease", "exp", f"gpusteward.dev/spend-ledger={zero}",
            "gpusteward.dev/gpu-hours-ledger-", "--overwrite")
    kubectl(cluster, "-n", ns, "annotate", "gpubudget", "main", "gpusteward.dev/spend-ledger-", "--overwrite")
    res = reconcile_lease(kube, STAMPED, get_lease(kube, ns, "exp"), later, RecordingNotifier())
    assert Decimal(res.status["spend"]) >= spent
    b = reconcile_budget(kube, SETTINGS, kube.get(API, "GPUBudget", "main", ns), later, RecordingNotifier())
    assert Decimal(b.status["spend"]) >= budget_spent
