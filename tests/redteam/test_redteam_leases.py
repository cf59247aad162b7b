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
    budget,
    get_lease,
    gpu_deployment,
    gpu_pod,
    install_crds,
    kubectl,
    lease,
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


@pytest.mark.redteam("identity")
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


@pytest.mark.redteam("labels")
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


@pytest.mark.redteam("forgery")
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


# ---- farming: renewals, deleting, namespaces without a budget ------------------------------------


ENDED = ("Expired", "Released")  # Released: expired with no covered pod holding GPUs


def _active(cluster, kube, ns: str, name: str, creator: str = "alice", **spec: Any) -> dt.datetime:
    obj = lease(ns, name, **spec)
    obj["metadata"]["annotations"] = {CREATED_BY: creator}
    apply(cluster, obj)
    t0 = dt.datetime.now(dt.UTC)
    assert reconcile_lease(kube, STAMPED, get_lease(kube, ns, name), t0, RecordingNotifier()).phase == "Active"
    return t0


def _patch_spec(cluster, ns: str, name: str, spec: dict[str, Any]) -> None:
    kubectl(cluster, "-n", ns, "patch", "experimentlease", name, "--type=merge", "-p", json.dumps({"spec": spec}))


@pytest.mark.redteam("leases")
def test_renewing_beyond_max_renewals_grants_no_more_time(cluster, kube):
    ns = new_namespace(cluster, "rt-renew")
    apply(cluster, budget(ns, quota=2, maxRenewals=2))
    t0 = _active(cluster, kube, ns, "exp")
    _patch_spec(cluster, ns, "exp", {"renewals": 50})
    res = reconcile_lease(kube, STAMPED, get_lease(kube, ns, "exp"), t0 + dt.timedelta(minutes=1), RecordingNotifier())
    assert res.status["renewalsGranted"] == 2
    assert next(c for c in res.status["conditions"] if c["type"] == "RenewalRefused")["status"] == "True"
    # Three lease lengths (the first plus two renewals), not fifty-one.
    res = reconcile_lease(kube, STAMPED, get_lease(kube, ns, "exp"), t0 + dt.timedelta(hours=3, minutes=1),
                          RecordingNotifier())
    assert res.phase in ENDED


@pytest.mark.redteam("leases")
def test_lowering_then_raising_renewals_does_not_renew_again(cluster, kube):
    ns = new_namespace(cluster, "rt-rerenew")
    apply(cluster, budget(ns, quota=2, maxRenewals=2))
    t0 = _active(cluster, kube, ns, "exp")
    at = t0 + dt.timedelta(minutes=1)
    _patch_spec(cluster, ns, "exp", {"renewals": 2})
    end = reconcile_lease(kube, STAMPED, get_lease(kube, ns, "exp"), at, RecordingNotifier()).status["expiresAt"]
    # "Reset" the counter to renew again: the apiserver refuses a lower count (CRD rule) ...
    out = kubectl(cluster, "-n", ns, "patch", "experimentlease", "exp", "--type=merge",
                  "-p", json.dumps({"spec": {"renewals": 0}}), check=False)
    assert out.returncode != 0 and "cannot decrease" in out.stderr
    # ... and asking for the same two again grants nothing more.
    _patch_spec(cluster, ns, "exp", {"renewals": 2})
    res = reconcile_lease(kube, STAMPED, get_lease(kube, ns, "exp"), at, RecordingNotifier())
    assert res.status["expiresAt"] == end and res.status["renewalsGranted"] == 2
    assert reconcile_lease(kube, STAMPED, get_lease(kube, ns, "exp"), t0 + dt.timedelta(hours=3, minutes=1),
                           RecordingNotifier()).phase in ENDED


@pytest.mark.redteam("leases")
def test_a_lease_in_a_namespace_without_a_budget_grants_nothing(cluster, kube):
    ns = new_namespace(cluster, "rt-nobudget")
    obj = lease(ns, "free", gpus=1)
    obj["metadata"]["annotations"] = {CREATED_BY: "alice"}
    apply(cluster, obj)
    res = reconcile_lease(kube, STAMPED, get_lease(kube, ns, "free"), dt.datetime.now(dt.UTC), RecordingNotifier())
    assert res.phase == "PendingApproval"
    assert "no GPUBudget" in next(c for c in res.status["conditions"] if c["type"] == "Approved")["message"]


@pytest.mark.redteam("leases")
def test_deleting_and_recreating_a_lease_keeps_the_namespaces_counted_spend(cluster, kube):
    # Users cannot delete leases (test_redteam_roles.py); a platform that does still loses no spend.
    ns = new_namespace(cluster, "rt-recreate")
    apply(cluster, budget(ns, quota=4))
    t0 = _active(cluster, kube, ns, "exp", maxSpend="1000")
    pod = gpu_pod(ns, "run", 1, {"gpusteward.dev/lease": "exp"})
    pod["metadata"]["annotations"] = {CREATED_BY: "alice"}
    kube.create(pod, dry_run=False)
    running_pod(kube, ns, "run")
    later = t0 + dt.timedelta(minutes=40)
    before = reconcile_budget(kube, SETTINGS, kube.get(API, "GPUBudget", "main", ns), later, RecordingNotifier())
    spent = Decimal(before.status["spend"])
    assert spent > 0
    kubectl(cluster, "-n", ns, "delete", "experimentlease", "exp")
    _active(cluster, kube, ns, "exp", maxSpend="1000")
    after = reconcile_budget(kube, SETTINGS, kube.get(API, "GPUBudget", "main", ns), later, RecordingNotifier())
    assert Decimal(after.status["spend"]) >= spent


# ---- forged ledgers and labels on leases -----------------------------------------------------------


@pytest.mark.redteam("forgery")
@pytest.mark.parametrize("settled", ["-100000", "-Infinity", "NaN"])
def test_a_ledger_forged_at_creation_does_not_lower_a_leases_spend(cluster, kube, settled):
    # A new lease has no record yet: the older versions' ledger annotation is read once. A user writes
    # one with a negative (or non-finite) settled spend so that maxSpend is never reached.
    ns = new_namespace(cluster, "rt-forgedledger")
    apply(cluster, budget(ns, quota=4))
    obj = lease(ns, "exp", maxSpend="1")
    forged = json.dumps({"period": "lease", "settled": settled, "live": {}})
    obj["metadata"]["annotations"] = {CREATED_BY: "alice", "gpusteward.dev/spend-ledger": forged,
                                      "gpusteward.dev/gpu-hours-ledger": forged}
    apply(cluster, obj)
    pod = gpu_pod(ns, "run", 1, {"gpusteward.dev/lease": "exp"})
    pod["metadata"]["annotations"] = {CREATED_BY: "alice"}
    kube.create(pod, dry_run=False)
    running_pod(kube, ns, "run")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)  # 0.5 GPU-hour at 4.10 > maxSpend 1
    res = reconcile_lease(kube, STAMPED, get_lease(kube, ns, "exp"), later, RecordingNotifier())
    assert Decimal(res.status["spend"]) >= Decimal("2")
    assert res.phase == "Expired"


@pytest.mark.redteam("forgery")
def test_a_forged_lease_status_does_not_move_its_end(cluster, kube):
    # Tooling granted leases' /status (no user role has it) writes a later end and an Active phase.
    ns = new_namespace(cluster, "rt-leasestatus")
    apply(cluster, budget(ns, quota=2))
    t0 = _active(cluster, kube, ns, "exp")
    kube.patch(API, "ExperimentLease", "exp", ns, {"status": {"phase": "Active", "expiresAt": "2099-01-01T00:00:00Z",
                                                              "renewalsGranted": 99}},
               subresource="status", dry_run=False)
    res = reconcile_lease(kube, STAMPED, get_lease(kube, ns, "exp"), t0 + dt.timedelta(hours=1, minutes=1),
                          RecordingNotifier())
    assert res.phase in ENDED and res.status["expiresAt"] != "2099-01-01T00:00:00Z"


@pytest.mark.redteam("labels")
def test_labelling_ones_pods_into_anothers_lease_does_not_spend_it(cluster, kube):
    # Mallory labels her pod with alice's lease to exhaust its maxSpend (and so end alice's work early).
    ns = new_namespace(cluster, "rt-burn")
    apply(cluster, budget(ns, quota=4))
    t0 = _active(cluster, kube, ns, "alices", maxSpend="1")
    pod = gpu_pod(ns, "mallorys", 1, {"gpusteward.dev/lease": "alices"})
    pod["metadata"]["annotations"] = {CREATED_BY: "mallory"}
    kube.create(pod, dry_run=False)
    running_pod(kube, ns, "mallorys")
    res = reconcile_lease(kube, STAMPED, get_lease(kube, ns, "alices"), t0 + dt.timedelta(minutes=30),
                          RecordingNotifier())
    assert res.phase == "Active" and Decimal(res.status["spend"]) == 0
    assert res.status["foreignWorkloads"] == 1


@pytest.mark.redteam("forgery")
def test_a_forged_budget_status_neither_lowers_spend_nor_raises_the_quota(cluster, kube):
    ns = new_namespace(cluster, "rt-budgetstatus")
    apply(cluster, budget(ns, quota=2))
    kube.create(gpu_pod(ns, "run", 1), dry_run=False)
    running_pod(kube, ns, "run")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    b = reconcile_budget(kube, SETTINGS, kube.get(API, "GPUBudget", "main", ns), later, RecordingNotifier())
    spent = Decimal(b.status["spend"])
    assert spent > 0
    kube.patch(API, "GPUBudget", "main", ns, {"status": {"spend": "0", "effectiveQuota": 64, "gpusInUse": 0,
                                                         "announcedThresholds": [50, 80, 100]}},
               subresource="status", dry_run=False)
    b = reconcile_budget(kube, SETTINGS, kube.get(API, "GPUBudget", "main", ns), later, RecordingNotifier())
    assert Decimal(b.status["spend"]) >= spent
    wait_quota(kube, ns, "main", 2)
