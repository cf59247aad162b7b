"""ExperimentLease state machine and approval rules with a fixed clock."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from gpu_steward.policy import lease as L

T0 = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
LANE = L.FastLane(max_gpus=4, max_duration=8 * H, max_spend=Decimal(100), max_renewals=2)
PRICE = Decimal("2.5")


def terms(**kw):
    base = {"owner": "alice", "gpus": 2, "created": T0, "duration": 2 * H, "grace": dt.timedelta(minutes=15)}
    base.update(kw)
    return L.LeaseTerms(**base)


NO_USAGE = L.LeaseUsage()


def run(t, state, now, usage=NO_USAGE, lane=LANE):
    d = L.step(t, state, lane, usage, PRICE, now)
    return d, L.LeaseState(d.phase, d.expires_at, d.renewals_granted)


def test_inside_fast_lane_is_active_at_once_and_counts_for_quota():
    d, _ = run(terms(), L.LeaseState(), T0)
    assert d.phase == "Active" and d.expires_at == T0 + 2 * H and d.counts_for_quota
    assert [n.reason for n in d.notices] == ["LeaseActive"]


def test_beyond_fast_lane_waits_for_approval_then_activates_from_approval_time():
    t = terms(gpus=8)
    d, s = run(t, L.LeaseState(), T0)
    assert d.phase == "PendingApproval" and not d.counts_for_quota
    assert "maxGPUs" in d.conditions["Approved"][2]
    d, s = run(t, s, T0 + H)
    assert d.phase == "PendingApproval" and d.notices == []  # the pending notice went out once
    d, s = run(terms(gpus=8, approved=True), s, T0 + 2 * H)
    assert d.phase == "Active" and d.expires_at == T0 + 4 * H


def test_estimated_spend_and_no_lane_need_approval():
    assert "maxSpend" in L.fast_lane_excess(terms(gpus=4, duration=8 * H), LANE, Decimal(10))[0]
    assert L.fast_lane_excess(terms(gpus=4, duration=8 * H, max_spend=Decimal(50)), LANE, Decimal(10)) == []
    assert L.fast_lane_excess(terms(), None, PRICE)


def test_rejected_is_terminal():
    d, s = run(terms(gpus=8, approved=False), L.LeaseState("PendingApproval"), T0)
    assert d.phase == "Rejected"
    d, _ = run(terms(gpus=8, approved=True), s, T0 + H)
    assert d.phase == "Rejected" and not d.counts_for_quota


def test_expiry_notice_grace_before_end_once_then_expired_suspends_then_released():
    t = terms()
    _, s = run(t, L.LeaseState(), T0)
    d, s = run(t, s, T0 + H + dt.timedelta(minutes=44))
    assert d.phase == "Active" and d.notices == []
    d, s = run(t, s, T0 + H + dt.timedelta(minutes=45))
    assert d.phase == "Expiring" and [n.reason for n in d.notices] == ["LeaseExpiring"] and d.counts_for_quota
    d, s = run(t, s, T0 + H + dt.timedelta(minutes=50))
    assert d.phase == "Expiring" and d.notices == []
    d, s = run(t, s, T0 + 2 * H, L.LeaseUsage(pods_holding_gpus=1))
    assert d.phase == "Expired" and d.suspend_workloads and not d.counts_for_quota
    assert [n.reason for n in d.notices] == ["LeaseExpired"]
    d, s = run(t, s, T0 + 2 * H + dt.timedelta(minutes=1), L.LeaseUsage(pods_holding_gpus=1))
    assert d.phase == "Expired" and d.notices == [] and d.suspend_workloads
    d, s = run(t, s, T0 + 2 * H + dt.timedelta(minutes=2), L.LeaseUsage(pods_holding_gpus=0))
    assert d.phase == "Released"


def test_on_expiry_notify_does_not_suspend():
    t = terms(on_expiry="Notify")
    _, s = run(t, L.LeaseState(), T0)
    d, _ = run(t, s, T0 + 3 * H, L.LeaseUsage(pods_holding_gpus=1))
    assert d.phase == "Expired" and not d.suspend_workloads


def test_max_spend_ends_the_lease_early():
    t = terms(max_spend=Decimal(5))
    _, s = run(t, L.LeaseState(), T0)
    d, _ = run(t, s, T0 + H, L.LeaseUsage(spend=Decimal(5), pods_holding_gpus=1))
    assert d.phase == "Expired" and "maxSpend" in d.notices[0].message


def test_renewals_extend_up_to_the_bound_and_beyond_is_refused_with_reason():
    _, s = run(terms(), L.LeaseState(), T0)
    _, s = run(terms(), s, T0 + H + dt.timedelta(minutes=50))
    assert s.phase == "Expiring"
    d, s = run(terms(renewals=1), s, T0 + H + dt.timedelta(minutes=55))
    assert d.phase == "Active" and d.expires_at == T0 + 4 * H and d.renewals_granted == 1
    assert d.conditions["RenewalRefused"][0] == "False"
    d, s = run(terms(renewals=3), s, T0 + 2 * H)
    assert d.renewals_granted == 2 and d.expires_at == T0 + 6 * H
    status, reason, message = d.conditions["RenewalRefused"]
    assert status == "True" and reason == "RenewalLimit" and "at most 2" in message and "renewal 3" in message


def test_expires_at_leases_renew_by_their_length():
    t = terms(duration=None, expires_at=T0 + 3 * H, renewals=1)
    d, _ = run(t, L.LeaseState(), T0)
    assert d.expires_at == T0 + 6 * H


def test_approval_rules():
    approvers = ["gpu-steward-approvers"]
    old = {"metadata": {}, "spec": {"owner": "alice", "gpus": 8}}
    new = {"metadata": {}, "spec": {"owner": "alice", "gpus": 8, "approved": True}}
    assert "not a member" in L.approval_denial(old, new, "mallory", ["dev"], approvers)
    assert "owns this lease" in L.approval_denial(old, new, "alice", approvers, approvers)
    assert L.approval_denial(old, new, "bob", ["dev", "gpu-steward-approvers"], approvers) is None
    # Other edits need nobody special; creating an already-approved lease does.
    assert L.approval_denial(old, {"spec": {"owner": "alice", "gpus": 9}}, "alice", [], approvers) is None
    assert L.approval_denial(None, {"spec": {"owner": "alice"}}, "alice", [], approvers) is None
    assert L.approval_denial(None, new, "alice", [], approvers) is not None
    forged = {"metadata": {"annotations": {L.APPROVED_BY_ANNOTATION: "bob"}}, "spec": old["spec"]}
    assert L.approval_denial(old, forged, "alice", [], approvers) is not None
    assert "must name" in L.approval_denial(old, forged, "carol", approvers, approvers)
