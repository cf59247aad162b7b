"""The blast-radius decision (policy/blast.py): caps, circuit breaker and switch, at fixed times."""

from __future__ import annotations

import datetime as dt

from gpu_steward.policy.blast import (
    Candidate,
    Controls,
    Deferral,
    Limits,
    Record,
    controls_from_data,
    gate,
    new_suspension,
    record_from_data,
    record_to_data,
    refuse,
    withhold,
)
from gpu_steward.policy.idle_model import Action, ActionKind, Decision, IdleState, Mark, Phase

T = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
LIMITS = Limits(per_pass=3, per_hour=5, per_namespace_per_hour=2, breaker_percent=30, breaker_minimum=4)


def cands(n: int, ns: str = "a", start: int = 0) -> list[Candidate]:
    return [Candidate(f"{ns}/w{i}", ns, T - (n - i) * MIN) for i in range(start, start + n)]


def test_under_every_cap_all_go_and_are_recorded_at_now():
    v = gate(cands(2, "a"), 100, Record(), LIMITS, Controls(), T)
    assert v.allowed == ("a/w0", "a/w1") and not v.deferred
    assert v.record.suspensions == ((T, "a"), (T, "a")) and v.suspended_last_hour == 2
    assert not v.breaker.open


def test_per_pass_cap_lets_the_oldest_due_go_first():
    c = cands(2, "a") + cands(2, "b") + cands(1, "c")
    v = gate(c, 100, Record(), LIMITS, Controls(), T)
    assert len(v.allowed) == 3
    assert {c.id for c in sorted(c, key=lambda x: x.due)[:3]} == set(v.allowed)
    assert list(v.deferred.values()) == [Deferral.PER_PASS] * 2


def test_namespace_cap_counts_the_last_hour_and_other_namespaces_still_go():
    record = Record(((T - 30 * MIN, "a"),))
    v = gate(cands(2, "a") + cands(1, "b"), 100, record, LIMITS, Controls(), T)
    assert v.allowed == ("a/w0", "b/w0")
    assert v.deferred == {"a/w1": Deferral.NAMESPACE_PER_HOUR}


def test_hourly_cap_is_rolling_an_hour_later_it_refills():
    full = Record(tuple((T - m * MIN, ns) for m, ns in ((50, "x"), (40, "y"), (30, "z"), (20, "u"), (10, "v"))))
    v = gate(cands(1, "a"), 100, full, LIMITS, Controls(), T)
    assert v.allowed == () and v.deferred == {"a/w0": Deferral.PER_HOUR}
    later = T + 11 * MIN  # the entry of T-50m is more than an hour old by now
    v = gate(cands(1, "a"), 100, full, LIMITS, Controls(), later)
    assert v.allowed == ("a/w0",)
    assert len(v.record.suspensions) == 5 and (T - 50 * MIN, "x") not in v.record.suspensions


def test_breaker_opens_above_the_share_and_at_least_the_minimum():
    v = gate(cands(10, "a"), 12, Record(), LIMITS, Controls(), T)
    assert v.allowed == () and set(v.deferred.values()) == {Deferral.BREAKER}
    assert v.breaker.open and v.breaker.since == T and v.record.breaker_open_since == T
    assert "10 of 12" in v.breaker.message() and "30%" in v.breaker.message()
    assert v.record.suspensions == ()  # nothing counted: nothing suspended


def test_breaker_stays_closed_under_the_minimum_or_under_the_share():
    assert not gate(cands(3, "a"), 3, Record(), LIMITS, Controls(), T).breaker.open  # 100 %, but 3 < 4
    v = gate(cands(2, "a") + cands(2, "b"), 20, Record(), LIMITS, Controls(), T)  # 4 of 20 = 20 %
    assert not v.breaker.open and len(v.allowed) == 3  # the per-pass cap still applies


def test_breaker_keeps_its_opening_time_and_closes_on_a_pass_under_the_threshold():
    opened = Record(breaker_open_since=T - 5 * MIN)
    v = gate(cands(10, "a"), 12, opened, LIMITS, Controls(), T)
    assert v.breaker.since == T - 5 * MIN
    v = gate(cands(1, "a"), 12, opened, LIMITS, Controls(), T)
    assert not v.breaker.open and v.record.breaker_open_since is None and v.allowed == ("a/w0",)


def test_an_acknowledgement_lets_that_opening_through_within_the_caps_and_not_a_later_one():
    opened = Record(breaker_open_since=T - 5 * MIN)
    ack = Controls(breaker_acknowledged_at=T - 1 * MIN)
    v = gate(cands(10, "a"), 12, opened, LIMITS, ack, T)
    assert v.breaker.open and v.breaker.acknowledged and "acknowledged" in v.breaker.message()
    assert len(v.allowed) == 2 and set(v.deferred.values()) == {Deferral.NAMESPACE_PER_HOUR}
    reopened = Record(breaker_open_since=T)  # closed meanwhile, opened again after the acknowledgement
    v = gate(cands(10, "b"), 12, reopened, LIMITS, ack, T + MIN)
    assert v.allowed == () and not v.breaker.acknowledged


def test_the_switch_stops_all_and_still_reports_the_breaker():
    v = gate(cands(10, "a"), 12, Record(), LIMITS, Controls(paused=True, reason="incident 42"), T)
    assert v.allowed == () and set(v.deferred.values()) == {Deferral.PAUSED}
    assert v.paused and v.paused_reason == "incident 42" and v.breaker.open
    v = gate(cands(1, "a"), 100, Record(), LIMITS, Controls(paused=True), T)
    assert v.allowed == () and v.record.suspensions == ()


def test_refuse_keeps_nothing_allowed():
    v = refuse(gate(cands(2, "a"), 100, Record(), LIMITS, Controls(), T), Deferral.RECORD_UNAVAILABLE)
    assert v.allowed == () and set(v.deferred.values()) == {Deferral.RECORD_UNAVAILABLE}


def test_record_round_trips_and_garbage_counts_as_a_spent_hour():
    rec = Record(((T - MIN, "a"), (T, "b")), breaker_open_since=T - 2 * MIN)
    back, problem = record_from_data(record_to_data(rec), LIMITS, T)
    assert problem is None and back == rec
    assert record_from_data(None, LIMITS, T) == (Record(), None)
    spent, problem = record_from_data({"suspensions": "{not json"}, LIMITS, T)
    assert problem and "spent" in problem
    assert gate(cands(1, "a"), 100, spent, LIMITS, Controls(), T).deferred == {"a/w0": Deferral.PER_HOUR}


def test_controls_from_the_configmap():
    assert controls_from_data(None, paused_by_setting=False) == Controls()
    c = controls_from_data({"paused": "True", "reason": "GPU driver rollout"}, paused_by_setting=False)
    assert c.paused and c.reason == "GPU driver rollout"
    assert controls_from_data({}, paused_by_setting=True).paused
    assert not controls_from_data({"paused": "false"}, paused_by_setting=False).paused
    c = controls_from_data({"breakerAcknowledgedAt": "2026-03-02T09:00:00Z"}, paused_by_setting=False)
    assert c.breaker_acknowledged_at == T
    c = controls_from_data({"breakerAcknowledgedAt": "yesterday"}, paused_by_setting=False)
    assert c.breaker_acknowledged_at is None and c.problems


def _suspending(intended: dt.datetime) -> Decision:
    state = IdleState(phase=Phase.WARNED, episode=1, warn=Mark(T - 20 * MIN, T - 20 * MIN),
                      warn_suspend_at=T - 5 * MIN, suspend=Mark(intended_at=intended), suspended_gpus=2)
    return Decision(state, (Action(ActionKind.SUSPEND, 1, False, "idle"),), "suspending")


def test_only_a_suspension_intended_now_is_new_and_withholding_it_drops_the_intent():
    assert new_suspension(_suspending(T), T)
    assert not new_suspension(_suspending(T - MIN), T)  # a repeat: counted when it was intended
    d = withhold(_suspending(T), IdleState(phase=Phase.WARNED), "HourlyLimit")
    assert d.actions == () and d.state.suspend == Mark() and d.state.suspended_gpus == 0
    assert d.state.warn.done_at == T - 20 * MIN and "HourlyLimit" in d.reason  # the warning stands
