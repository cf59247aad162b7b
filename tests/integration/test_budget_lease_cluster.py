"""GPUBudget quota, ExperimentLease lifecycle, onExceeded and cost annotations on the real control plane.

The reconcile functions and the idle pass (which carries out budgets' and leases' suspension requests)
run in-process against the real apiserver with an injected clock (``now``), so hours of lease and budget
time pass in seconds; the apiserver, the ResourceQuota admission, the quota controller, the Deployment
controller and KWOK's fake GPU nodes are all real.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

import pytest
from kubernetes.client.exceptions import ApiException

from fixtures.budget_cluster import (
    API,
    NODE,
    PLATFORM_NAMESPACE,
    apply,
    event_reasons,
    events,
    gpu_deployment,
    gpu_pod,
    install_crds,
    new_namespace,
    running_pod,
    utc,
    wait_for,
    wait_quota,
)
from gpu_steward.budgets import requests
from gpu_steward.budgets.budget import reconcile_budget
from gpu_steward.budgets.costs import CostLedger, reconcile_pod_costs
from gpu_steward.budgets.history import CostHistory
from gpu_steward.budgets.lease import reconcile_lease
from gpu_steward.budgets.notifier import EventNotifier, FanOut, RecordingNotifier
from gpu_steward.idle.controller import IdleController
from gpu_steward.index import Registry
from gpu_steward.kube import Kube
from gpu_steward.policy import cost as c
from gpu_steward.policy.usage import Usage
from gpu_steward.settings import Settings
from gpu_steward.workloads.model import RESUME_ANNOTATION

pytestmark = pytest.mark.cluster

A100 = "NVIDIA-A100-SXM4-80GB"
SETTINGS = Settings(gpu_hour_prices={A100: Decimal("4.10")}, default_gpu_hour_price=Decimal("2.50"))
# As with the admission webhooks on: the created-by stamps below stand for the ones the mutating webhook
# writes (tests/redteam/test_redteam_leases.py shows the webhook writing and guarding them).
STAMPED = SETTINGS.model_copy(update={"webhook_enabled": True})
CREATED_BY = "gpusteward.dev/created-by"


@pytest.fixture(scope="module")
def kube(cluster):
    install_crds(cluster)
    cluster.add_gpu_node(NODE, gpus=64, product=A100)
    return Kube(cluster.api_client())


def budget_obj(ns, name="main", quota=2, limit="1000", on_exceeded="Notify", lane=None):
    spec = {"gpuQuota": quota, "spend": {"limit": limit, "currency": "USD", "period": "Monthly"},
            "onExceeded": on_exceeded, "notify": {"owners": ["lead@example.com"]}}
    if lane:
        spec["fastLane"] = lane
    return {"apiVersion": API, "kind": "GPUBudget", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def lease_obj(ns, name, gpus, duration="1h", grace="10m", renewals=0, owner="alice"):
    return {"apiVersion": API, "kind": "ExperimentLease", "metadata": {"name": name, "namespace": ns},
            "spec": {"owner": owner, "ownerEmail": f"{owner}@example.com", "purpose": "ablation", "gpus": gpus,
                     "duration": duration, "gracePeriod": grace, "renewals": renewals}}


def get(kube, kind, ns, name):
    return kube.get(API, kind, name, ns)


class Util:
    """Utilization by pod name (default idle), as the agents would report it."""

    def __init__(self, by_name=None):
        self.by_name = by_name or {}

    async def fetch(self, pods, now):
        return {p.uid: Usage.ok(u, u, 12, now, 60.0) for p in pods for u in [self.by_name.get(p.name, 0.0)]}

    async def close(self):
        return None


class IdlePass:
    """The operator's idle pass, in-process: its pod index fed from the namespace, its clock injected, the
    budgets' and leases' requests read from their records as the operator does."""

    def __init__(self, kube, settings, ns, util=None):
        self.kube, self.ns, self.now = kube, ns, None
        self.controller = IdleController(kube, settings, util or Util(), Registry(), slack=None,
                                         clock=lambda: self.now, requests=lambda: requests.load(kube, settings))

    def run(self, now):
        import asyncio

        self.now = now
        registry = Registry()
        for pod in self.kube.list("v1", "Pod", self.ns):
            if not pod["metadata"].get("deletionTimestamp"):
                registry.pod_event("ADDED", pod)
        self.controller.registry = registry
        return asyncio.run(self.controller.run_pass(now))


def create_pod_expect_quota_rejection(kube, pod):
    with pytest.raises(ApiException) as err:
        kube.create(pod, dry_run=False)
    assert err.value.status == 403 and "exceeded quota" in err.value.body


def test_quota_enforced_lease_raises_it_expiry_suspends_and_releases(cluster, kube):
    ns = new_namespace(cluster, "lease")
    notes = RecordingNotifier()
    notifier = FanOut([notes, EventNotifier(kube)])
    apply(cluster, budget_obj(ns, quota=2, lane={"maxGPUs": 2, "maxDuration": "2h", "maxRenewals": 1}))
    t0 = dt.datetime.now(dt.UTC)
    reconcile_budget(kube, SETTINGS, get(kube, "GPUBudget", ns, "main"), t0, notifier)
    wait_quota(kube, ns, "main", 2)

    # Over the quota: the apiserver itself rejects the pod.
    create_pod_expect_quota_rejection(kube, gpu_pod(ns, "too-big", 3))

    # A lease inside the fast lane is active at once and raises the quota by its GPUs.
    exp1 = lease_obj(ns, "exp1", gpus=2, duration="1h", grace="10m")
    exp1["metadata"]["annotations"] = {CREATED_BY: "alice"}
    apply(cluster, exp1)
    res = reconcile_lease(kube, STAMPED, get(kube, "ExperimentLease", ns, "exp1"), t0, notifier)
    assert res.phase == "Active"
    wait_quota(kube, ns, "main", 4)
    status = get(kube, "GPUBudget", ns, "main")["status"]
    assert status["effectiveQuota"] == 4

    train = gpu_deployment(ns, "train", 3, {"gpusteward.dev/lease": "exp1"})
    train["metadata"]["annotations"] = {CREATED_BY: "alice"}
    kube.create(train, dry_run=False)
    pod = running_pod(kube, ns, selector="gpusteward.dev/lease=exp1")
    lease = get(kube, "ExperimentLease", ns, "exp1")
    expires = utc(lease["status"]["expiresAt"])
    assert expires == t0.replace(microsecond=0) + dt.timedelta(hours=1) or \
        abs((expires - (t0 + dt.timedelta(hours=1))).total_seconds()) < 1

    # gracePeriod before the end: the owner hears about it, once.
    res = reconcile_lease(kube, STAMPED, get(kube, "ExperimentLease", ns, "exp1"), expires - dt.timedelta(minutes=9),
                          notifier)
    assert res.phase == "Expiring" and res.notices == ["LeaseExpiring"]
    expiring = [n for n in notes.sent if n.reason == "LeaseExpiring"]
    assert len(expiring) == 1 and "alice" in expiring[0].owners and "alice@example.com" in expiring[0].owners
    res = reconcile_lease(kube, STAMPED, get(kube, "ExperimentLease", ns, "exp1"), expires - dt.timedelta(minutes=8),
                          notifier)
    assert res.notices == []
    assert "LeaseExpiring" in wait_for(lambda: event_reasons(kube, ns, "exp1"), what="events")

    # One renewal is inside the bound and moves the end; a second one is refused with a reason.
    kube.patch(API, "ExperimentLease", "exp1", ns, {"spec": {"renewals": 1}}, dry_run=False)
    res = reconcile_lease(kube, STAMPED, get(kube, "ExperimentLease", ns, "exp1"), expires - dt.timedelta(minutes=7),
                          notifier)
    assert res.phase == "Active" and "LeaseRenewed" in res.notices
    new_end = utc(res.status["expiresAt"])
    assert new_end == expires + dt.timedelta(hours=1)
    kube.patch(API, "ExperimentLease", "exp1", ns, {"spec": {"renewals": 2}}, dry_run=False)
    res = reconcile_lease(kube, STAMPED, get(kube, "ExperimentLease", ns, "exp1"), expires, notifier)
    lease = get(kube, "ExperimentLease", ns, "exp1")
    refused = next(cnd for cnd in lease["status"]["conditions"] if cnd["type"] == "RenewalRefused")
    assert refused["status"] == "True" and refused["reason"] == "RenewalLimit"
    assert "at most 1 renewals" in refused["message"]
    assert lease["status"]["renewalsGranted"] == 1 and utc(lease["status"]["expiresAt"]) == new_end
    assert "LeaseRenewalRefused" in wait_for(lambda: event_reasons(kube, ns, "exp1"), what="events")

    # At expiry the quota is released and the lease *requests* the suspension of its workloads: it touches
    # none itself (before issue 11 it suspended at once, with no warning to the workload's owner).
    expired_at = new_end + dt.timedelta(seconds=1)
    res = reconcile_lease(kube, STAMPED, get(kube, "ExperimentLease", ns, "exp1"), expired_at, notifier)
    assert res.phase == "Expired" and any("suspension requested for Deployment/train" in a for a in res.actions), \
        res.actions
    assert kube.get("apps/v1", "Deployment", "train", ns)["spec"]["replicas"] == 1
    wait_quota(kube, ns, "main", 3)  # gpuQuota 2 again: what runs (3) keeps running, nothing new is admitted
    # The idle pass carries the request out: a warning on the workload that states the time (gracePeriod
    # 10m after it), nothing before that time, then the suspension with our label; one warning only,
    # also when a new operator process takes over in between.
    idle = IdlePass(kube, STAMPED, ns)
    idle.run(expired_at)
    warning = wait_for(lambda: [e for e in events(kube, ns, "train") if e.get("reason") == "IdleWarning"],
                       what="warning event")
    stated = expired_at.replace(microsecond=0) + dt.timedelta(minutes=10)
    assert f"will be suspended at {c.format_time(stated)}" in warning[0]["message"]
    assert f"ExperimentLease {ns}/exp1" in warning[0]["message"]
    idle.run(expired_at + dt.timedelta(minutes=5))
    idle = IdlePass(kube, STAMPED, ns)  # a restart
    idle.run(stated - dt.timedelta(seconds=30))
    assert kube.get("apps/v1", "Deployment", "train", ns)["spec"]["replicas"] == 1
    idle.run(stated + dt.timedelta(seconds=1))
    train = kube.get("apps/v1", "Deployment", "train", ns)
    assert train["spec"]["replicas"] == 0 and train["metadata"]["labels"]["gpusteward.dev/suspended"] == "true"
    assert len([e for e in events(kube, ns, "train") if e.get("reason") == "IdleWarning"]) == 1
    lease = get(kube, "ExperimentLease", ns, "exp1")
    assert lease["status"]["phase"] == "Expired"
    assert lease["status"]["workloads"] == [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "train"}]
    assert Decimal(lease["status"]["gpuHours"]) > 0 and Decimal(lease["status"]["spend"]) > 0
    # The suspended Deployment's pod goes away; then the lease is Released.
    wait_for(lambda: not [p for p in kube.list("v1", "Pod", ns, label_selector="gpusteward.dev/lease=exp1")
                          if not p["metadata"].get("deletionTimestamp")], 60, what="job pods gone")
    res = reconcile_lease(kube, STAMPED, get(kube, "ExperimentLease", ns, "exp1"), stated + dt.timedelta(minutes=1),
                          notifier)
    assert res.phase == "Released"
    reconcile_budget(kube, SETTINGS, get(kube, "GPUBudget", ns, "main"), stated + dt.timedelta(minutes=1), notifier)
    wait_quota(kube, ns, "main", 2)
    # The pod's cost is still in the lease's spend after the pod is gone (settled in the ledger).
    assert Decimal(res.status["spend"]) > 0
    assert pod["metadata"]["labels"]["gpusteward.dev/lease"] == "exp1"
    idle.run(stated + dt.timedelta(minutes=2))
    assert "IdleSuspended" in wait_for(lambda: event_reasons(kube, ns, "train"), what="events")
    # The owner resumes it with the annotation (what the CLI and the Slack button write): replicas restored.
    kube.patch("apps/v1", "Deployment", "train", ns, {"metadata": {"annotations": {RESUME_ANNOTATION: "true"}}},
               dry_run=False)
    idle.run(stated + dt.timedelta(minutes=3))
    train = kube.get("apps/v1", "Deployment", "train", ns)
    assert train["spec"]["replicas"] == 1 and "gpusteward.dev/suspended" not in (train["metadata"].get("labels") or {})


def test_lease_beyond_fast_lane_waits_for_approval(cluster, kube):
    ns = new_namespace(cluster, "pending")
    apply(cluster, budget_obj(ns, quota=4, lane={"maxGPUs": 1, "maxDuration": "1h"}))
    apply(cluster, lease_obj(ns, "big", gpus=4, duration="3h", grace="10m"))
    now = dt.datetime.now(dt.UTC)
    res = reconcile_lease(kube, STAMPED, get(kube, "ExperimentLease", ns, "big"), now, RecordingNotifier())
    assert res.phase == "PendingApproval"
    approved = next(cnd for cnd in res.status["conditions"] if cnd["type"] == "Approved")
    assert approved["reason"] == "BeyondFastLane" and "maxGPUs 1" in approved["message"]
    reconcile_budget(kube, SETTINGS, get(kube, "GPUBudget", ns, "main"), now, RecordingNotifier())
    assert get(kube, "GPUBudget", ns, "main")["status"]["effectiveQuota"] == 4  # pending leases add nothing


def test_cost_annotations_equal_gpus_times_time_times_price_and_are_rate_limited(cluster, kube):
    ns = new_namespace(cluster, "cost")
    kube.create(gpu_pod(ns, "p2", 2, {"gpusteward.dev/team": "vision"}), dry_run=False)
    pod = running_pod(kube, ns, "p2")
    start = utc(pod["status"]["startTime"])
    ledger = CostLedger(SETTINGS.cost_idle_util_percent)
    records_ns = new_namespace(cluster, "records")  # the operator's own namespace (its cost history)
    history = CostHistory(kube, records_ns)  # its last-seen point and ledger written every 5 min
    util = {"p2": 2.0}

    def one_pass(now):
        pods = [kube.get("v1", "Pod", "p2", ns)]
        return reconcile_pod_costs(kube, SETTINGS, now, ledger, lambda _ns, name: util.get(name), pods=pods,
                                   history=history)

    first = one_pass(start + dt.timedelta(hours=1))
    assert first.written == 1
    ann = kube.get("v1", "Pod", "p2", ns)["metadata"]["annotations"]
    assert Decimal(ann[c.ANN_COST]) == Decimal("8.2")  # 2 GPUs x 1 h x 4.10
    assert Decimal(ann[c.ANN_GPU_HOURS]) == 2 and Decimal(ann[c.ANN_HOURLY_RATE]) == Decimal("8.2")
    writes = kube.writes.count
    # A minute later the values changed, but the last write is too recent: no write.
    second = one_pass(start + dt.timedelta(hours=1, minutes=1))
    assert second.skipped_rate_limited == 1 and kube.writes.count == writes
    # After the interval: written, including the idle time sampled in between (util 2% < 5%).
    third = one_pass(start + dt.timedelta(hours=1, minutes=5))
    assert third.written == 1
    ann = kube.get("v1", "Pod", "p2", ns)["metadata"]["annotations"]
    expected = Decimal(2) * Decimal(65) / Decimal(60) * Decimal("4.10")
    assert abs(Decimal(ann[c.ANN_COST]) - expected) <= Decimal("0.0001")
    assert Decimal(ann[c.ANN_IDLE_GPU_HOURS]) == Decimal("0.1667")  # 2 GPUs x 5 min sampled idle
    assert Decimal(ann[c.ANN_UTIL_AVG]) == 2
    # A restarted operator (new ledger) keeps the idle hours: they live in its records (the cost-history
    # cursor in its namespace), not on the pod, whose annotations are a mirror anyone with edit can zero.
    kube.patch("v1", "Pod", "p2", ns, {"metadata": {"annotations": {c.ANN_IDLE_GPU_HOURS: "0",
                                                                    c.ANN_UTIL_AVG: "99"}}}, dry_run=False)
    ledger = CostLedger(SETTINGS.cost_idle_util_percent)
    history = CostHistory(kube, records_ns)  # its last-seen point and ledger written every 5 min
    util["p2"] = 90.0
    one_pass(start + dt.timedelta(hours=1, minutes=6))
    one_pass(start + dt.timedelta(hours=1, minutes=11))
    ann = kube.get("v1", "Pod", "p2", ns)["metadata"]["annotations"]
    assert Decimal(ann[c.ANN_IDLE_GPU_HOURS]) == Decimal("0.1667")
    assert Decimal(ann[c.ANN_UTIL_AVG]) == 46  # 5 min at 2 % (from the records) + 5 min at 90 %


def test_block_new_shrinks_quota_to_use_and_new_period_restores_it(cluster, kube):
    ns = new_namespace(cluster, "block")
    apply(cluster, budget_obj(ns, quota=8, limit="1", on_exceeded="BlockNew"))
    kube.create(gpu_pod(ns, "running", 2), dry_run=False)
    pod = running_pod(kube, ns, "running")
    start = utc(pod["status"]["startTime"])
    notes = RecordingNotifier()
    now = start + dt.timedelta(hours=1)  # 2 GPUs x 1 h x 4.10 = 8.20 > 1
    res = reconcile_budget(kube, SETTINGS, get(kube, "GPUBudget", ns, "main"), now, notes)
    assert res.status["spend"] == "8.20" and res.status["gpusInUse"] == 2
    assert [n.reason for n in notes.sent] == ["BudgetThreshold"] * 3 and res.announced == [50, 80, 100]
    wait_quota(kube, ns, "main", 2)
    create_pod_expect_quota_rejection(kube, gpu_pod(ns, "new", 1))
    exceeded = next(cnd for cnd in res.status["conditions"] if cnd["type"] == "Exceeded")
    assert exceeded["status"] == "True" and "BlockNew" in exceeded["message"]

    # Thresholds are announced once per period, also after a restart (state in status).
    again = RecordingNotifier()
    res = reconcile_budget(kube, SETTINGS, get(kube, "GPUBudget", ns, "main"), now + dt.timedelta(minutes=5), again)
    assert again.sent == [] and res.status["announcedThresholds"] == [50, 80, 100]

    # The next period starts from zero: quota restored, thresholds forgotten.
    _, period_end = c.period_bounds("Monthly", now)
    res = reconcile_budget(kube, SETTINGS, get(kube, "GPUBudget", ns, "main"), period_end + dt.timedelta(minutes=1),
                           again)
    assert res.status["announcedThresholds"] == [] and res.status["effectiveQuota"] == 8
    assert Decimal(res.status["spend"]) < 1
    wait_quota(kube, ns, "main", 8)
    kube.create(gpu_pod(ns, "new", 1), dry_run=False)


def test_suspend_idle_first_suspends_idle_workloads_only(cluster, kube):
    ns = new_namespace(cluster, "idlefirst")
    apply(cluster, budget_obj(ns, quota=8, limit="1", on_exceeded="SuspendIdleFirst"))
    kube.create(gpu_deployment(ns, "idle", 1), dry_run=False)
    kube.create(gpu_deployment(ns, "busy", 1), dry_run=False)
    idle = running_pod(kube, ns, selector="app=idle")
    busy = running_pod(kube, ns, selector="app=busy")
    util = {idle["metadata"]["name"]: 0.0, busy["metadata"]["name"]: 95.0}
    now = max(utc(idle["status"]["startTime"]), utc(busy["status"]["startTime"])) + dt.timedelta(hours=1)
    notes = RecordingNotifier()
    # The overrun requests the suspension of idle work; the budget suspends nothing itself (before issue 11
    # it suspended at once, with no warning to the workload's owner).
    res = reconcile_budget(kube, SETTINGS, get(kube, "GPUBudget", ns, "main"), now, notes)
    assert [p.request.idle_only for p in res.requested] == [True]
    assert kube.get("apps/v1", "Deployment", "idle", ns)["spec"]["replicas"] == 1
    assert res.status["effectiveQuota"] == 2  # blocked at what was in use
    # The idle pass warns the idle workload's owner, and suspends it 15 minutes later; the busy one is left.
    idle_pass = IdlePass(kube, SETTINGS, ns, Util(util))
    idle_pass.run(now)
    assert "IdleWarning" in wait_for(lambda: event_reasons(kube, ns, "idle"), what="warning")
    for minute in range(1, 15):  # a pass a minute: idle time counts only over continuous readings
        idle_pass.run(now + dt.timedelta(minutes=minute))
    assert kube.get("apps/v1", "Deployment", "idle", ns)["spec"]["replicas"] == 1
    idle_pass.run(now + dt.timedelta(minutes=15, seconds=1))
    assert kube.get("apps/v1", "Deployment", "idle", ns)["spec"]["replicas"] == 0
    assert kube.get("apps/v1", "Deployment", "busy", ns)["spec"]["replicas"] == 1
    assert "IdleWarning" not in event_reasons(kube, ns, "busy")
    assert event_reasons(kube, ns, "idle").count("IdleWarning") == 1


def test_report_and_focus_export_on_a_known_cluster_state(cluster, kube, capsys, monkeypatch):
    import csv
    import io
    import json

    from gpu_steward.cli import build_parser
    from gpu_steward.reports import cli as reports

    ns = new_namespace(cluster, "report")
    kube.create(gpu_pod(ns, "a", 2, {"gpusteward.dev/team": "vision", "gpusteward.dev/lease": "exp9",
                                      "gpusteward.dev/owner": "alice"}), dry_run=False)
    kube.create(gpu_pod(ns, "b", 1, {"gpusteward.dev/team": "nlp"}), dry_run=False)
    starts = {n: utc(running_pod(kube, ns, n)["status"]["startTime"]) for n in ("a", "b")}
    now = max(starts.values()) + dt.timedelta(hours=2)
    # What the operator measured of pod a: its utilization ledger in the pod's cost-history cursor (its records).
    pods = [kube.get("v1", "Pod", n, ns) for n in ("a", "b")]
    history = CostHistory(kube, PLATFORM_NAMESPACE, seen_flush=dt.timedelta(0))
    reconcile_pod_costs(kube, SETTINGS, now, CostLedger(), pods=pods, history=history)
    uid_a = pods[0]["metadata"]["uid"]
    history.cursors[uid_a] = replace(history.cursors[uid_a], idle_seen=Decimal("1.5"), util_hours=Decimal(3),
                                     util_sum=Decimal("112.5"))
    history.flush_cursors(now)
    # The pod's annotations are a mirror its users can rewrite: never read.
    kube.patch("v1", "Pod", "a", ns, {"metadata": {"annotations": {c.ANN_IDLE_GPU_HOURS: "0",
                                                                    c.ANN_UTIL_AVG: "99"}}}, dry_run=False)
    price = Decimal("4.10")
    hours = {n: Decimal(int((now - s).total_seconds())) / 3600 for n, s in starts.items()}
    expected_cost = {"a": 2 * hours["a"] * price, "b": 1 * hours["b"] * price}
    monkeypatch.setenv("GPU_STEWARD_GPU_HOUR_PRICES", json.dumps({A100: "4.10"}))
    start = c.format_time(min(starts.values()) - dt.timedelta(minutes=1))

    args = build_parser().parse_args(["report", "-n", ns, "--by", "team", "-o", "json", "--from", start])
    assert reports.run_report(args, now=now, kube=kube) == 0
    rows = {r["team"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"vision", "nlp"}
    assert Decimal(rows["vision"]["cost"]) == c.q_money(expected_cost["a"])
    assert Decimal(rows["vision"]["gpuHours"]) == c.q_hours(2 * hours["a"])
    assert Decimal(rows["vision"]["idleGpuHours"]) == Decimal("1.5")
    assert Decimal(rows["nlp"]["cost"]) == c.q_money(expected_cost["b"])

    args = build_parser().parse_args(["export", "--format", "focus", "-n", ns, "--from", start])
    assert reports.run_export(args, now=now, kube=kube) == 0
    focus = {r["ResourceName"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert set(focus) == {f"{ns}/a", f"{ns}/b"}
    a = focus[f"{ns}/a"]
    assert a["BilledCost"] == "0" and abs(Decimal(a["EffectiveCost"]) - expected_cost["a"]) < Decimal("0.000001")
    assert a["ListUnitPrice"] == "4.1" and a["ConsumedUnit"] == "GPU-Hours" and a["SubAccountName"] == ns
    assert json.loads(a["Tags"]) == {"owner": "alice", "team": "vision", "lease": "exp9", "namespace": ns,
                                     "gpu-model": A100, "workload": "Pod/a"}
    assert a["x_IdleGPUHours"] == "1.5" and a["x_GpuUtilAvg"] == "37.5"
    assert a["ChargePeriodStart"] == c.format_time(starts["a"]) and a["ChargePeriodEnd"] == c.format_time(now)
