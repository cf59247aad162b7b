"""Budget and lease suspensions go through the idle notice protocol (design invariant 2, issue 11).

Budgets and leases publish suspension requests (``policy.requests``); the real IdleController carries
them out over the in-memory cluster of ``idle_world``: a delivered warning that states the time, nothing
suspended before it, one warning across restarts, the label with the intent, resume, dry-run, blast radius.
"""

from __future__ import annotations

import datetime as dt

from idle_world import NS, T0, FakeSlack, World, gpu_pod, job, policy

from gpu_steward.budgets import requests as book_requests
from gpu_steward.budgets.records import RecordStore
from gpu_steward.policy import idle as engine
from gpu_steward.policy.idle_model import ActionKind, IdleRules, IdleState, WorkloadFacts
from gpu_steward.policy.requests import Published, SuspensionRequest, choose, from_json, to_json
from gpu_steward.policy.timeparse import format_rfc3339
from gpu_steward.policy.usage import Usage
from gpu_steward.settings import Settings
from gpu_steward.workloads.model import RESUME_ANNOTATION, SNOOZE_ANNOTATION

LABEL = "gpusteward.dev/suspended"
API = "gpusteward.dev/v1alpha1"


def lease_request(*names: str, end: dt.datetime = T0 + dt.timedelta(minutes=30),
                  grace: dt.timedelta = dt.timedelta(minutes=10), name: str = "exp1") -> Published:
    req = SuspensionRequest(source=f"ExperimentLease {NS}/{name}", cycle=format_rfc3339(end),
                            reason=f"its ExperimentLease {NS}/{name} ends at {format_rfc3339(end)}",
                            notice=grace, not_before=end)
    return Published(NS, req, frozenset(("batch", "Job", n) for n in names))


def budget_request(notice: dt.timedelta = dt.timedelta(minutes=15)) -> Published:
    req = SuspensionRequest(source=f"GPUBudget {NS}/main", cycle="2026-03-01T00:00:00Z",
                            reason=f"GPUBudget {NS}/main is over its monthly spend limit", notice=notice,
                            idle_only=True)
    return Published(NS, req)


def events(w: World, name: str, reason: str) -> list[dict]:
    return [e for e in w.kube.events if e["name"] == name and e["reason"] == reason]


def run_until_suspended(w: World, obj: dict, minutes: int = 120) -> dt.datetime | None:
    w.passes(minutes, until=lambda: w.suspended(obj))
    return w.now if w.suspended(obj) else None


# ---- the pure engine --------------------------------------------------------------------------------------


def test_engine_a_demand_ignores_use_and_snoozes_and_states_no_time_before_not_before():
    req = lease_request("train").request
    rules = IdleRules(util_threshold_percent=5, idle_for=dt.timedelta(hours=1), dry_run=False)
    facts = WorkloadFacts(started_at=T0, snooze_until=format_rfc3339(T0 + dt.timedelta(hours=1)),
                          gpus=1, request=req, suspended=False)
    busy = Usage.ok(95.0, 95.0, 12, T0, 60.0)
    d = engine.decide(IdleState(), busy, facts, rules, T0)
    (warn,) = d.actions
    assert warn.kind is ActionKind.WARN and warn.suspend_at == T0 + dt.timedelta(minutes=30)
    state = engine.confirm(d.state, warn, T0)
    assert state.warn_policy == req.id
    for minutes in (10, 29):  # the notice (10 min) has passed, but not the stated time
        d = engine.decide(state, busy, facts, rules, T0 + dt.timedelta(minutes=minutes))
        assert not d.actions
    d = engine.decide(state, busy, facts, rules, T0 + dt.timedelta(minutes=30))
    assert [a.kind for a in d.actions] == [ActionKind.SUSPEND]


def test_engine_a_renewed_lease_voids_the_old_warning():
    rules = IdleRules(util_threshold_percent=5, idle_for=dt.timedelta(0), dry_run=False)
    old = lease_request("train", end=T0 + dt.timedelta(minutes=10)).request
    d = engine.decide(IdleState(), Usage.unknown("x"), WorkloadFacts(request=old, suspended=False), rules, T0)
    state = engine.confirm(d.state, d.actions[0], T0)
    new = lease_request("train", end=T0 + dt.timedelta(hours=2)).request
    later = T0 + dt.timedelta(minutes=20)
    d = engine.decide(state, Usage.unknown("x"), WorkloadFacts(request=new, suspended=False), rules, later)
    (warn,) = d.actions
    assert warn.kind is ActionKind.WARN and warn.suspend_at == T0 + dt.timedelta(hours=2)


def test_requests_codec_and_choice():
    lease, budget = lease_request("a"), budget_request()
    assert from_json(to_json(lease)) == lease and from_json(to_json(budget)) == budget
    assert from_json({"source": "x"}) is None
    assert choose([budget.request, lease.request]) == lease.request  # a demand governs
    assert lease.covers("batch", "Job", NS, "a") and not lease.covers("batch", "Job", NS, "b")
    assert budget.covers("apps", "Deployment", NS, "anything") and not budget.covers("", "Pod", "other", "p")


# ---- leases ------------------------------------------------------------------------------------------------


def test_an_expired_lease_warns_the_owner_and_suspends_not_before_the_stated_time():
    w = World(None)  # no IdlePolicy governs it: the lease alone asks
    train = w.run(job("train"))
    w.source.util = 95.0  # busy: a lease's end is not about idleness
    w.kube.obj("batch/v1", "Job", "train")["metadata"]["annotations"] = {
        SNOOZE_ANNOTATION: format_rfc3339(T0 + dt.timedelta(hours=3))}  # a snooze does not postpone it
    w.requests = [lease_request("train")]
    w.passes(1)
    (warning,) = events(w, "train", "IdleWarning")
    assert "will be suspended at 2026-03-02T09:30:00Z" in warning["message"]
    assert f"ExperimentLease {NS}/exp1" in warning["message"] and "Snooze" not in warning["message"]
    w.passes(28)
    assert not w.suspended(train)
    at = run_until_suspended(w, train)
    assert at is not None and at >= T0 + dt.timedelta(minutes=30)
    assert len(events(w, "train", "IdleWarning")) == 1
    assert w.current(train)["metadata"]["labels"][LABEL] == "true"
    w.passes(1)
    (done,) = events(w, "train", "IdleSuspended")
    assert f"ExperimentLease {NS}/exp1" in done["message"] and "gpu-steward resume" in done["message"]


def test_a_restart_between_warning_and_suspension_sends_no_second_warning():
    w = World(None)
    train = w.run(job("train"))
    w.requests = [lease_request("train")]
    w.passes(10)
    assert len(events(w, "train", "IdleWarning")) == 1
    w.restart()  # a new operator process: only what is in the cluster survives
    at = run_until_suspended(w, train)
    assert at is not None and at >= T0 + dt.timedelta(minutes=30)
    assert len(events(w, "train", "IdleWarning")) == 1


def test_a_slack_failure_is_no_notice_and_nothing_is_suspended():
    slack = FakeSlack(configured=True, ok=False)
    w = World(policy(["Slack"]), slack=slack)  # the governing policy names Slack only
    train = w.run(job("train"))
    w.requests = [lease_request("train")]
    w.passes(90)
    assert not w.suspended(train) and slack.sent == []
    slack.ok = True
    w.passes(30, until=lambda: bool(slack.sent))
    delivered = w.now
    assert "ExperimentLease" in slack.sent[0]["text"]
    assert "cannot be snoozed" in str(slack.sent[0]["blocks"])
    at = run_until_suspended(w, train)
    assert at is not None and at - delivered >= dt.timedelta(minutes=10)  # the grace period, from delivery


def test_the_resume_annotation_resumes_a_lease_expiry_suspension_after_the_lease_is_gone():
    w = World(None)
    train = w.run(job("train"))
    w.requests = [lease_request("train")]
    assert run_until_suspended(w, train) is not None
    w.stop_pods(train)
    w.requests = []  # the lease is released once its pods are gone: no request any more
    w.passes(2)
    w.kube.obj("batch/v1", "Job", "train")["metadata"].setdefault("annotations", {})[RESUME_ANNOTATION] = "true"
    w.passes(1)
    assert not w.suspended(train)
    w.registry.pod_event("ADDED", gpu_pod(train))  # the Job controller starts its pod again
    w.passes(1)
    meta = w.current(train)["metadata"]
    assert LABEL not in (meta.get("labels") or {}) and RESUME_ANNOTATION not in meta["annotations"]
    assert len(events(w, "train", "IdleResumed")) == 1


def test_global_dry_run_touches_nothing():
    w = World(None, dry_run=True)
    train = w.run(job("train"))
    w.requests = [lease_request("train"), budget_request()]
    w.passes(90)
    assert w.kube.workload_patches() == [] and w.kube.events == []
    assert not w.suspended(train) and w.state(train) is None
    # The dry-run clocks live in the operator's store (its own ConfigMaps), apart from enforcing state.
    (entry,) = w.controller.store.entries().values()
    assert entry.state is None and entry.dry is not None
    assert entry.dry.phase.value == "WouldSuspend"


def test_the_blast_radius_switch_holds_lease_suspensions_back():
    w = World(None)
    train = w.run(job("train"))
    w.kube.add({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": w.settings.controls_configmap, "namespace": w.settings.platform_namespace},
                "data": {"paused": "true", "reason": "driver rollout"}})
    w.requests = [lease_request("train")]
    w.passes(60)
    assert not w.suspended(train) and len(events(w, "train", "IdleWarning")) == 1
    del w.kube.objects[("v1", "ConfigMap", w.settings.platform_namespace, w.settings.controls_configmap)]
    assert run_until_suspended(w, train, 3) is not None
    assert len(events(w, "train", "IdleWarning")) == 1


# ---- budgets -----------------------------------------------------------------------------------------------


def test_suspend_idle_first_warns_then_suspends_only_idle_work_and_honours_snoozes():
    w = World(None)
    idle, busy, snoozed = w.run(job("idle")), w.run(job("busy")), w.run(job("snoozed"))
    w.source.per_uid["pod-busy"] = 95.0
    w.kube.obj("batch/v1", "Job", "snoozed")["metadata"]["annotations"] = {
        SNOOZE_ANNOTATION: format_rfc3339(T0 + dt.timedelta(hours=2))}
    w.requests = [budget_request()]
    w.passes(1)
    (warning,) = events(w, "idle", "IdleWarning")
    assert "GPUBudget" in warning["message"] and "Snooze" in warning["message"]
    assert not events(w, "busy", "IdleWarning") and not events(w, "snoozed", "IdleWarning")
    at = run_until_suspended(w, idle)
    assert at is not None and at >= T0 + dt.timedelta(minutes=15)
    w.passes(30)
    assert not w.suspended(busy) and not w.suspended(snoozed)
    assert not events(w, "busy", "IdleWarning")


def test_an_idle_workload_that_gets_busy_after_the_budget_warning_is_not_suspended():
    w = World(None)
    train = w.run(job("train"))
    w.requests = [budget_request()]
    w.passes(5)
    assert len(events(w, "train", "IdleWarning")) == 1
    w.source.util = 80.0
    w.passes(60)
    assert not w.suspended(train)


# ---- where the requests live -------------------------------------------------------------------------------


def test_requests_are_read_from_records_of_live_budgets_and_leases_only():
    w = World(None)
    settings = Settings(metrics_port=0, platform_namespace="gpu-steward")
    lease = {"apiVersion": API, "kind": "ExperimentLease", "metadata": {"name": "exp1", "namespace": NS}}
    gone = {"apiVersion": API, "kind": "ExperimentLease", "metadata": {"name": "gone", "namespace": NS,
                                                                        "uid": "uid-gone"}}
    w.kube.add(lease)
    store = RecordStore(w.kube, settings.platform_namespace, "lease")  # type: ignore[arg-type]
    for obj, pub in ((lease, lease_request("a")), (gone, lease_request("b", name="gone"))):
        store.put(obj, {"phase": "Expiring", book_requests.RECORD_KEY: book_requests.encode([pub])},
                  previous=None, dry_run=False)
    found = book_requests.load(w.kube, settings)  # type: ignore[arg-type]
    assert [p.request.source for p in found] == [f"ExperimentLease {NS}/exp1"]
    # Under the global dry-run nothing is recorded: the in-memory book is read instead.
    book = book_requests.RequestBook()
    book.put(lease["metadata"]["uid"], book_requests.encode([budget_request()]))
    dry = settings.model_copy(update={"dry_run": True})
    assert [p.request.idle_only for p in book_requests.load(w.kube, dry, book)] == [True]  # type: ignore[arg-type]
