"""The notice a warning gave is the notice that counts: policy edits never shorten or replace it.

Each test drives the pure engine with fixed times: a warning is delivered (confirmed) under one set of
rules, then the policy changes, and the suspension must still honour what the warning said.
"""

from __future__ import annotations

from datetime import timedelta

from idle_helpers import MIN, T0, facts, idle, rules

from gpu_steward.policy.idle import (
    ActionKind,
    IdleState,
    Phase,
    confirm,
    decide,
    state_from_annotation,
    state_to_annotation,
)


def _warned(r, start=T0):
    """Idle from ``start`` until the warning is asked for; deliver it at once. Returns (state, warned at)."""
    s = IdleState()
    for i in range(0, 120):
        now = start + i * MIN
        d = decide(s, idle(now), facts(), r, now)
        s = d.state
        warns = [a for a in d.actions if a.kind is ActionKind.WARN]
        if warns:
            return confirm(s, warns[0], now), now
    raise AssertionError("never warned")


def _idle_until(s, r, start, end, deliver=True):
    """Idle readings each minute from ``start`` to ``end``; asserts nothing is suspended meanwhile."""
    at, s = _first_suspend(s, r, start, int((end - start) / MIN), deliver)
    assert at is None
    return s


def _first_suspend(s, r, start, minutes, deliver=True):
    """Feed idle readings each minute; deliver every warning; return (time of the first SUSPEND or None, state)."""
    for i in range(0, minutes + 1):
        now = start + i * MIN
        d = decide(s, idle(now), facts(), r, now)
        s = d.state
        for a in d.actions:
            if a.kind is ActionKind.SUSPEND:
                return now, s
            if a.kind is ActionKind.WARN and deliver:
                s = confirm(s, a, now)
    return None, s


def test_a_notify_only_warning_is_not_a_suspension_notice():
    notify = rules(action="NotifyOnly", policy="ml/p")
    s, warned = _warned(notify)
    assert s.warn_suspend_at is None  # it stated no suspension
    s = _idle_until(s, notify, warned + MIN, warned + 20 * MIN)  # long past warned + notice_before (15 min)
    enforce = rules(action="Suspend", policy="ml/p")  # the platform team switches the action
    start = warned + 21 * MIN
    d = decide(s, idle(start), facts(), enforce, start)
    assert [a.kind for a in d.actions] == [ActionKind.WARN]  # a real suspension warning first
    assert d.actions[0].suspend_at == start + enforce.notice_before
    s = confirm(d.state, d.actions[0], start)
    at, _ = _first_suspend(s, enforce, start + MIN, 30)
    assert at == start + enforce.notice_before


def test_shortening_the_notice_never_suspends_before_the_time_the_warning_stated():
    long = rules(notice_before=timedelta(hours=1), policy="ml/p")
    s, warned = _warned(long)
    assert s.warn_suspend_at == warned + timedelta(hours=1)
    short = rules(notice_before=timedelta(minutes=15), policy="ml/p")
    at, _ = _first_suspend(s, short, warned + MIN, 90)
    assert at == warned + timedelta(hours=1)


def test_a_different_policy_does_not_inherit_the_warning():
    a = rules(policy="ml/a")
    s, warned = _warned(a)
    s = _idle_until(s, a, warned + MIN, warned + 10 * MIN)
    b = rules(policy="team/b")  # another policy now fits the workload best
    later = warned + 20 * MIN  # past a's suspension time
    s = _idle_until(s, b, warned + 11 * MIN, later - MIN, deliver=False)
    d = decide(s, idle(later), facts(), b, later)
    assert [x.kind for x in d.actions] == [ActionKind.WARN]
    assert d.state.warn.pending and d.state.warn_policy == "team/b"
    s = confirm(d.state, d.actions[0], later)
    at, _ = _first_suspend(s, b, later + MIN, 30)
    assert at == later + b.notice_before


def test_the_stated_time_and_policy_survive_the_annotation():
    r = rules(policy="ml/p")
    s, warned = _warned(r)
    back, problem = state_from_annotation(state_to_annotation(s))
    assert problem is None
    assert back.warn_suspend_at == warned + r.notice_before and back.warn_policy == "ml/p"


def test_an_undelivered_warning_starts_no_notice_period():
    r = rules(policy="ml/p")
    at, s = _first_suspend(IdleState(), r, T0, 200, deliver=False)
    assert at is None and s.phase is Phase.WARNED and s.warn.pending
    # Delivered at last, hours after it was first intended: the period counts from delivery.
    delivered = T0 + 201 * MIN
    d = decide(s, idle(delivered), facts(), r, delivered)
    warn = next(a for a in d.actions if a.kind is ActionKind.WARN)
    assert warn.suspend_at == delivered + r.notice_before
    s = confirm(d.state, warn, delivered)
    at, _ = _first_suspend(s, r, delivered + MIN, 30)
    assert at == delivered + r.notice_before
