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
    return d, d.state


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


def test_an_active_lease_runs_on_its_grant_and_edits_beyond_the_lane_wait():
    d, s = run(terms(gpus=1), L.LeaseState(), T0)
    assert d.quota_gpus == 1 and s.grant is not None and s.grant.grounds == "FastLane"
    d, s = run(terms(gpus=4096), s, T0 + H)  # edited after activation, no approval
    assert d.phase == "Active" and d.quota_gpus == 1 and d.expires_at == T0 + 2 * H
    assert d.conditions["Approved"][1] == "ChangePendingApproval"
    d, s = run(terms(gpus=4096, approved=True), s, T0 + H, lane=LANE)  # approved for exactly these terms
    assert d.quota_gpus == 4096 and s.grant.grounds == "Approved"
    d, s = run(terms(gpus=2), s, T0 + H)  # narrower: granted at once
    assert d.quota_gpus == 2


def test_a_longer_edit_does_not_move_the_end_without_a_grant():
    _, s = run(terms(), L.LeaseState(), T0)
    d, _ = run(terms(duration=400 * H), s, T0 + H)
    assert d.expires_at == T0 + 2 * H and d.quota_gpus == 2


def test_the_fast_lane_closes_at_its_caps_and_without_webhooks_nothing_is_approved():
    d = L.step(terms(), L.LeaseState(), LANE, NO_USAGE, PRICE, T0, lane_closed="maxActivePerOwner reached")
    assert d.phase == "PendingApproval" and "maxActivePerOwner" in d.conditions["Approved"][2]
    d = L.step(terms(gpus=8, approved=True), L.LeaseState(), LANE, NO_USAGE, PRICE, T0, approvals_possible=False)
    assert d.phase == "PendingApproval" and d.conditions["Approved"][1] == "ApprovalUnavailable"


def test_the_creator_stamp_decides_who_may_approve():
    approvers = ["gpu-steward-approvers"]
    created = {"metadata": {"annotations": {L.CREATED_BY_ANNOTATION: "bob"}}, "spec": {"owner": "alice2", "gpus": 8}}
    approved = {**created, "spec": {**created["spec"], "approved": True}}
    assert "owns this lease" in L.approval_denial(created, approved, "bob", approvers, approvers)
    assert L.approval_denial(created, approved, "erin", approvers, approvers) is None
    # The creator stamp: set by the webhook on CREATE, never written or changed by a user.
    assert L.creator_denial(None, created, "mallory") is not None
    assert L.creator_denial(None, created, "bob") is None
    assert L.creator_denial(created, {"metadata": {}, "spec": {}}, "bob") is not None
    # An approval stamps the digest of the terms; a non-approver's edit of the terms withdraws it.
    patch = L.lease_admission_patch(created, approved, "erin", approvers, approvers)
    assert patch["metadata"]["annotations"][L.APPROVED_TERMS_ANNOTATION] == L.terms_digest(approved["spec"])
    stamped = {"metadata": {"annotations": {**created["metadata"]["annotations"], **patch["metadata"]["annotations"]}},
               "spec": approved["spec"]}
    grown = {**stamped, "spec": {**stamped["spec"], "gpus": 64}}
    withdraw = L.lease_admission_patch(stamped, grown, "bob", ["dev"], approvers)
    assert withdraw["spec"] == {"approved": False}
    assert withdraw["metadata"]["annotations"][L.APPROVED_BY_ANNOTATION] is None
