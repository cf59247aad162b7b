"""Scenario tests of the idle engine: one behaviour per test, driven through decide()/confirm()."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from idle_helpers import MIN, T0, busy, facts, idle, rules

from gpu_steward.policy.idle import (
    ActionKind,
    Hold,
    IdleState,
    Phase,
    Usage,
    confirm,
    decide,
    needs_persist,
    state_from_annotation,
    state_to_annotation,
)
from gpu_steward.policy.idle_summary import summarize


def run_idle(state, start, minutes, r, f=None, step=1):
    """Feed idle readings every `step` minutes; return (state, list of (time, decision))."""
    seen = []
    f = f or facts()
    for i in range(0, minutes + 1, step):
        now = start + i * MIN
        d = decide(state, idle(now), f, r, now)
        state = d.state
        seen.append((now, d))
    return state, seen


def kinds(decisions):
    return [(t, a.kind) for t, d in decisions for a in d.actions]


def test_idle_workload_is_warned_then_suspended_then_notified_once():
    r = rules()
    s, seen = run_idle(IdleState(), T0, 40, r)
    warns = [(t, d) for t, d in seen if any(a.kind is ActionKind.WARN for a in d.actions)]
    # Readings cover 60 s back, so 30 idle minutes are covered at minute 29; the warning keeps being asked
    # for while unconfirmed (the orchestrator never confirmed here).
    assert warns[0][0] == T0 + 29 * MIN
    assert all(a.kind is not ActionKind.SUSPEND for _, d in seen for a in d.actions)
    assert s.phase is Phase.WARNED and s.warn.pending

    # Confirm the warning at minute 41; suspension is due 15 minutes later, not before.
    warn = warns[-1][1].actions[0]
    s = confirm(s, warn, T0 + 41 * MIN)
    assert s.warned_at == T0 + 41 * MIN
    s, seen = run_idle(s, T0 + 42 * MIN, 12, r)  # readings every minute up to minute 54
    assert kinds(seen) == []
    d = decide(s, idle(T0 + 55 * MIN), facts(), r, T0 + 55 * MIN)
    assert [a.kind for a in d.actions] == []
    assert "suspension due at" in d.reason
    d = decide(d.state, idle(T0 + 56 * MIN), facts(), r, T0 + 56 * MIN)
    assert [a.kind for a in d.actions] == [ActionKind.SUSPEND]
    assert d.actions[0].would_only is False
    s = confirm(d.state, d.actions[0], T0 + 56 * MIN)
    assert s.phase is Phase.SUSPENDED and s.suspended_at == T0 + 56 * MIN

    # Next evaluations: the suspended notice is owed until confirmed, then never again.
    gone = Usage.unknown("no pods")
    d = decide(s, gone, facts(suspended=True), r, T0 + 57 * MIN)
    assert [a.kind for a in d.actions] == [ActionKind.NOTIFY_SUSPENDED]
    s = confirm(d.state, d.actions[0], T0 + 57 * MIN)
    for m in range(58, 120):
        d = decide(s, gone, facts(suspended=True), r, T0 + m * MIN)
        assert d.actions == ()
        s = d.state


def test_resume_request_resumes_and_notifies_and_counts_reclaimed_hours():
    r = rules()
    s = IdleState(
        phase=Phase.SUSPENDED,
        episode=3,
        suspend=replace(IdleState().suspend, intended_at=T0, done_at=T0),
        suspended_gpus=4,
    )
    d = decide(s, Usage.unknown("no pods"), facts(suspended=True, resume_requested=True), r, T0 + 2 * 60 * MIN)
    assert [a.kind for a in d.actions] == [ActionKind.RESUME]
    assert d.clear_resume_request
    s = confirm(d.state, d.actions[0], T0 + 120 * MIN)
    assert s.phase is Phase.ACTIVE and s.resumed_at == T0 + 120 * MIN
    assert abs(s.reclaimed_gpu_hours - 8.0) < 1e-9
    d = decide(s, Usage.unknown("starting"), facts(suspended=False), r, T0 + 121 * MIN)
    assert [a.kind for a in d.actions] == [ActionKind.NOTIFY_RESUMED]
    s = confirm(d.state, d.actions[0], T0 + 121 * MIN)
    d = decide(s, Usage.unknown("starting"), facts(suspended=False), r, T0 + 122 * MIN)
    assert d.actions == ()


def test_unknown_data_is_never_idle():
    r = rules()
    s = IdleState()
    for m in range(0, 600, 5):
        now = T0 + m * MIN
        d = decide(s, Usage.unknown("agent timeout"), facts(), r, now)
        s = d.state
        assert d.actions == () and s.phase is Phase.UNKNOWN and s.idle_since is None


def test_stale_or_sampleless_ok_reading_is_unknown():
    r = rules()
    now = T0 + 60 * MIN
    stale = Usage.ok(0.0, 0.0, 10, now - timedelta(minutes=10), 60)
    d = decide(IdleState(), stale, facts(), r, now)
    assert d.state.phase is Phase.UNKNOWN and "stale" in d.reason
    empty = Usage(status="ok", util_mean=0.0, samples=0, last_sample_at=now, window_seconds=60)
    assert decide(IdleState(), empty, facts(), r, now).state.phase is Phase.UNKNOWN


def test_an_unknown_reading_restarts_the_idle_clock():
    r = rules()
    s, _ = run_idle(IdleState(), T0, 20, r)
    assert s.idle_since is not None
    s = decide(s, Usage.unknown("agent down"), facts(), r, T0 + 21 * MIN).state
    s, seen = run_idle(s, T0 + 22 * MIN, 25, r)
    # Which samples of the first reading came after the unknown one cannot be told: the idle clock starts at
    # its latest sample (it used to start a whole window back, at the unknown reading itself or before it).
    assert s.idle_since == T0 + 22 * MIN
    assert not any(k is ActionKind.WARN for _, k in kinds(seen))


def test_idle_time_is_never_backdated_into_an_unknown_gap():
    r = rules()
    s = decide(IdleState(), idle(T0), facts(), r, T0).state
    s = decide(s, Usage.unknown("agent down"), facts(), r, T0 + 5 * MIN).state
    assert s.phase is Phase.UNKNOWN
    # The agent comes back: one 0 % reading whose window reaches back ten minutes, over the outage.
    back = T0 + 6 * MIN
    s = decide(s, idle(back, util=0.0, window=600.0), facts(), r, back).state
    assert s.phase is Phase.IDLE
    assert s.idle_since is not None and s.idle_since >= T0 + 5 * MIN
    assert s.idle_since == back


def test_a_gap_between_readings_restarts_the_idle_clock():
    r = rules(max_gap=timedelta(minutes=2))
    s, _ = run_idle(IdleState(), T0, 20, r)
    first = s.idle_since
    later = T0 + 30 * MIN  # ten minutes without any reading (operator down)
    s = decide(s, idle(later), facts(), r, later).state
    assert s.idle_since == later - MIN and s.idle_since != first
    assert s.episode == 2


def test_activity_after_a_warning_resets_the_episode_and_the_next_idle_needs_a_new_warning():
    r = rules()
    s, seen = run_idle(IdleState(), T0, 30, r)
    warn = next(a for _, d in seen for a in d.actions if a.kind is ActionKind.WARN)
    s = confirm(s, warn, T0 + 30 * MIN)
    s = decide(s, busy(T0 + 40 * MIN), facts(), r, T0 + 40 * MIN).state
    assert s.phase is Phase.ACTIVE and s.warned_at is None
    s, seen = run_idle(s, T0 + 41 * MIN, 40, r)
    ks = kinds(seen)
    assert ActionKind.SUSPEND not in [k for _, k in ks]
    new_warn = next(a for _, d in seen for a in d.actions if a.kind is ActionKind.WARN)
    assert new_warn.episode == warn.episode + 1


def test_a_late_confirmation_of_an_old_warning_is_ignored():
    r = rules()
    s, seen = run_idle(IdleState(), T0, 30, r)
    warn = next(a for _, d in seen for a in d.actions if a.kind is ActionKind.WARN)
    s = decide(s, busy(T0 + 31 * MIN), facts(), r, T0 + 31 * MIN).state
    s, _ = run_idle(s, T0 + 32 * MIN, 31, r)
    assert confirm(s, warn, T0 + 64 * MIN) == s


def test_spike_above_threshold_counts_as_activity():
    r = rules()
    spiky = Usage.ok(util_mean=1.0, util_max=40.0, samples=12, last_sample_at=T0, window_seconds=60)
    assert decide(IdleState(), spiky, facts(), r, T0).state.phase is Phase.ACTIVE


def test_startup_grace_holds_and_the_idle_clock_starts_after_it():
    r = rules(startup_grace=timedelta(minutes=10))
    f = facts(started_at=T0)
    d = decide(IdleState(), idle(T0 + 5 * MIN), f, r, T0 + 5 * MIN)
    assert d.hold is Hold.STARTUP_GRACE and d.state.idle_since is None
    s = decide(d.state, idle(T0 + 10 * MIN + timedelta(seconds=30)), f, r, T0 + 10 * MIN + timedelta(seconds=30)).state
    assert s.idle_since == T0 + 10 * MIN


def test_no_warning_outside_the_window_and_a_pending_warning_is_withdrawn_when_it_closes():
    r = rules()
    s, seen = run_idle(IdleState(), T0, 40, r, f=facts(in_window=False))
    assert kinds(seen) == []
    assert seen[-1][1].hold is Hold.OUTSIDE_WINDOW
    # Window opens: warning at once (the idle clock kept running).
    d = decide(s, idle(T0 + 41 * MIN), facts(), r, T0 + 41 * MIN)
    assert [a.kind for a in d.actions] == [ActionKind.WARN]
    episode = d.state.episode
    s = confirm(d.state, d.actions[0], T0 + 41 * MIN)
    # Window closes before the suspension is due: no suspension, the warning is withdrawn.
    d = decide(s, idle(T0 + 50 * MIN), facts(in_window=False), r, T0 + 50 * MIN)
    assert d.actions == () and d.state.warned_at is None and d.state.episode == episode + 1
    s, seen = run_idle(d.state, T0 + 51 * MIN, 148, r, f=facts(in_window=False))
    assert kinds(seen) == []
    # Next window: a fresh warning, and the suspension only after a full notice period from it.
    d = decide(s, idle(T0 + 200 * MIN), facts(), r, T0 + 200 * MIN)
    assert [a.kind for a in d.actions] == [ActionKind.WARN]
    s = confirm(d.state, d.actions[0], T0 + 200 * MIN)
    s, seen = run_idle(s, T0 + 201 * MIN, 13, r)
    assert kinds(seen) == []
    assert [a.kind for a in decide(s, idle(T0 + 215 * MIN), facts(), r, T0 + 215 * MIN).actions] == [ActionKind.SUSPEND]


def test_notify_only_warns_once_and_never_suspends():
    r = rules(action="NotifyOnly")
    s, seen = run_idle(IdleState(), T0, 30, r)
    warn = next(a for _, d in seen for a in d.actions if a.kind is ActionKind.WARN)
    assert warn.suspend_at is None
    s = confirm(s, warn, T0 + 30 * MIN)
    s, seen = run_idle(s, T0 + 31 * MIN, 300, r)
    assert kinds(seen) == [] and s.phase is Phase.WARNED


def test_dry_run_returns_would_only_actions_and_counts_savings():
    r = rules(dry_run=True)
    s, seen = run_idle(IdleState(), T0, 60, r)
    acts = [a for _, d in seen for a in d.actions]
    assert [a.kind for a in acts] == [ActionKind.WARN, ActionKind.SUSPEND]
    assert all(a.would_only for a in acts)
    assert s.phase is Phase.WOULD_SUSPEND and s.would_suspend_at == T0 + 44 * MIN
    s, seen = run_idle(s, T0 + 61 * MIN, 42, r)
    assert kinds(seen) == []  # one would-suspend per episode
    d = decide(s, idle(T0 + 104 * MIN), facts(), r, T0 + 104 * MIN)
    summary = summarize([d], T0 + 104 * MIN, Decimal("2.50"))
    assert summary.would_suspend == 1 and summary.suspended == 0
    assert summary.would_save_gpu_hours == Decimal("4.00")  # 4 GPUs for one hour
    assert summary.would_save_cost == Decimal("10.00")
    # Activity closes the stretch; the hours stay counted.
    s = decide(d.state, busy(T0 + 134 * MIN), facts(), r, T0 + 134 * MIN).state
    later = decide(s, busy(T0 + 200 * MIN), facts(), r, T0 + 200 * MIN)
    assert summarize([later], T0, Decimal(1)).would_save_gpu_hours == Decimal("6.00")


def test_switching_from_dry_run_to_enforcing_requires_a_real_warning():
    s, _ = run_idle(IdleState(), T0, 60, rules(dry_run=True))
    assert s.phase is Phase.WOULD_SUSPEND
    r = rules(dry_run=False)
    d = decide(s, idle(T0 + 61 * MIN), facts(), r, T0 + 61 * MIN)
    assert [(a.kind, a.would_only) for a in d.actions] == [(ActionKind.WARN, False)]
    assert d.state.episode == s.episode + 1


def test_exemption_by_selector_holds_and_is_counted():
    d = decide(IdleState(), idle(T0), facts(exempt_by_selector=True), rules(), T0)
    assert d.hold is Hold.EXEMPT_SELECTOR and d.actions == ()
    assert summarize([d], T0, Decimal(1)).exempt == 1


def test_exemption_by_selector_ends_at_first_sight_plus_max_exemption_and_relabelling_does_not_restart_it():
    # The matching labels are the workload's (anyone with edit writes them): the exemption is bounded like
    # exempt-until, from when the operator first saw the workload match (recorded in its state).
    r = rules(max_exemption=timedelta(days=3))
    exempt, plain = facts(exempt_by_selector=True), facts()
    d = decide(IdleState(), idle(T0), exempt, r, T0)
    assert d.hold is Hold.EXEMPT_SELECTOR and d.state.selector_exemption.seen_at == T0
    assert "until 2026-03-05T09:00:00Z" in d.reason
    s, _ = state_from_annotation(state_to_annotation(d.state))  # survives the store's codec
    assert s.selector_exemption == d.state.selector_exemption
    # Label removed for a while, then put back: the same exemption, not a new one.
    d = decide(s, idle(T0 + timedelta(days=1)), plain, r, T0 + timedelta(days=1))
    assert d.hold is None and d.state.selector_exemption.seen_at == T0
    d = decide(d.state, idle(T0 + timedelta(days=2)), exempt, r, T0 + timedelta(days=2))
    assert d.hold is Hold.EXEMPT_SELECTOR and d.state.selector_exemption.seen_at == T0
    # At the bound the workload is governed like any other although it still matches.
    later = T0 + timedelta(days=3)
    s, seen = run_idle(d.state, later, 60, r, f=exempt)
    assert all(d.hold is None for _, d in seen)
    assert (later + 30 * MIN, ActionKind.WARN) in kinds(seen)
    assert s.selector_exemption.seen_at == T0  # still remembered while the workload matches


def test_exempt_until_is_cut_to_max_exemption_from_first_sight_and_ends():
    r = rules(max_exemption=timedelta(days=3))
    f = facts(exempt_until="2030-01-01T00:00:00Z")
    d = decide(IdleState(), idle(T0), f, r, T0)
    assert d.hold is Hold.EXEMPT_UNTIL and d.exemption_cut and d.exempt_until == T0 + timedelta(days=3)
    assert any("cut to" in n for n in d.notes)
    s = d.state
    # Seen again later: still bounded by the first sight, and the cut is not reported again.
    d = decide(s, idle(T0 + timedelta(days=2)), f, r, T0 + timedelta(days=2))
    assert d.exempt_until == T0 + timedelta(days=3) and not d.exemption_cut and d.notes == ()
    later = T0 + timedelta(days=3, minutes=1)
    d = decide(d.state, idle(later), f, r, later)
    assert d.hold is None and d.exempt_until is None


def test_exemption_without_a_valid_end_is_ignored_with_a_reason_once():
    for raw in ("true", "forever", "", "2026-03-05T00:00:00"):
        d = decide(IdleState(), idle(T0), facts(exempt_until=raw), rules(), T0)
        assert d.hold is None, raw
        assert any("exempt-until ignored" in n for n in d.notes), raw
        again = decide(d.state, idle(T0 + MIN), facts(exempt_until=raw), rules(), T0 + MIN)
        assert again.hold is None and again.notes == (), raw


def test_snooze_is_bounded_reported_once_and_restarts_the_idle_clock():
    r = rules(max_snooze=timedelta(hours=4))
    s, seen = run_idle(IdleState(), T0, 30, r)
    warn = next(a for _, d in seen for a in d.actions if a.kind is ActionKind.WARN)
    s = confirm(s, warn, T0 + 30 * MIN)
    f = facts(snooze_until="2026-03-03T09:00:00+00:00")
    d = decide(s, idle(T0 + 35 * MIN), f, r, T0 + 35 * MIN)
    assert d.hold is Hold.SNOOZED and d.snooze_cut and d.snooze_until == T0 + 35 * MIN + timedelta(hours=4)
    assert d.state.warned_at is None
    s = d.state
    for m in range(36, 275, 10):
        d = decide(s, idle(T0 + m * MIN), f, r, T0 + m * MIN)
        assert d.hold is Hold.SNOOZED and not d.snooze_cut and d.actions == ()
        s = d.state
    end = T0 + 35 * MIN + timedelta(hours=4)
    s, seen = run_idle(s, end + MIN, 40, r, f=f)
    assert seen[0][1].hold is None
    first_warn = next(t for t, k in kinds(seen) if k is ActionKind.WARN)
    assert first_warn - (end + MIN) >= timedelta(minutes=29)


def test_a_confirmation_lost_in_a_crash_is_settled_from_the_adapter_view():
    r = rules()
    s, seen = run_idle(IdleState(), T0, 30, r)
    warn = next(a for _, d in seen for a in d.actions if a.kind is ActionKind.WARN)
    s = confirm(s, warn, T0 + 30 * MIN)
    s, _ = run_idle(s, T0 + 31 * MIN, 13, r)
    d = decide(s, idle(T0 + 45 * MIN), facts(), r, T0 + 45 * MIN)
    assert [a.kind for a in d.actions] == [ActionKind.SUSPEND]
    persisted = state_to_annotation(d.state)  # intent persisted, adapter ran, crash before confirm
    s, problem = state_from_annotation(persisted)
    assert problem is None
    d = decide(s, Usage.unknown("no pods"), facts(suspended=True), r, T0 + 47 * MIN)
    assert d.state.phase is Phase.SUSPENDED and d.state.suspended_at == T0 + 45 * MIN
    assert [a.kind for a in d.actions] == [ActionKind.NOTIFY_SUSPENDED]
    # Adapter cannot tell: repeat the (idempotent) suspension rather than forget it.
    d = decide(s, Usage.unknown("no pods"), facts(suspended=None), r, T0 + 47 * MIN)
    assert [a.kind for a in d.actions] == [ActionKind.SUSPEND]


def test_resumed_outside_gpu_steward_is_noticed_once():
    r = rules()
    s = IdleState(phase=Phase.SUSPENDED, episode=1, suspend=replace(IdleState().suspend, intended_at=T0, done_at=T0))
    d = decide(s, Usage.unknown("starting"), facts(suspended=False), r, T0 + 10 * MIN)
    assert d.state.phase is Phase.ACTIVE and [a.kind for a in d.actions] == [ActionKind.NOTIFY_RESUMED]


def test_resume_request_with_lost_state_still_resumes_a_suspended_workload():
    d = decide(IdleState(), Usage.unknown("no pods"), facts(suspended=True, resume_requested=True), rules(), T0)
    assert [a.kind for a in d.actions] == [ActionKind.RESUME] and d.clear_resume_request


def test_resume_request_on_a_running_workload_counts_as_activity():
    s, _ = run_idle(IdleState(), T0, 20, rules())
    d = decide(s, idle(T0 + 21 * MIN), facts(resume_requested=True), rules(), T0 + 21 * MIN)
    assert d.state.idle_since is None and d.clear_resume_request and d.actions == ()


def test_suspended_elsewhere_is_left_alone():
    d = decide(IdleState(), idle(T0), facts(suspended=True), rules(), T0)
    assert d.hold is Hold.SUSPENDED_ELSEWHERE and d.actions == ()


def test_summary_counts_phases():
    r = rules()
    s_idle, _ = run_idle(IdleState(), T0, 10, r)
    s_susp = IdleState(
        phase=Phase.SUSPENDED, suspend=replace(IdleState().suspend, intended_at=T0, done_at=T0), suspended_gpus=2
    )
    ds = [
        decide(s_idle, idle(T0 + 11 * MIN), facts(), r, T0 + 11 * MIN),
        decide(s_susp, Usage.unknown("no pods"), facts(suspended=True, gpu_hour_price=Decimal("4")), r, T0),
        decide(IdleState(), busy(T0), facts(), r, T0),
        decide(IdleState(), Usage.unknown("x"), facts(), r, T0),
    ]
    sm = summarize(ds, T0 + 180 * MIN, Decimal("2"))
    assert (sm.watched, sm.idle, sm.suspended, sm.active, sm.unknown) == (4, 1, 1, 1, 1)
    assert sm.reclaimed_gpu_hours == Decimal("6.00") and sm.reclaimed_cost == Decimal("24.00")
    status = sm.as_status(dry_run=False)
    assert status["mode"] == "Enforcing" and status["reclaimedCost"] == "24.00"


def test_needs_persist_writes_meaningful_changes_at_once_and_the_idle_clock_per_checkpoint():
    r = rules(checkpoint_every=timedelta(minutes=10))
    every = r.checkpoint_every
    active = decide(IdleState(), busy(T0), facts(), r, T0).state
    assert not needs_persist(None, active, every)  # nothing to remember: no annotation at all
    s1 = decide(active, idle(T0 + MIN), facts(), r, T0 + MIN).state
    assert needs_persist(None, s1, every)  # idle start
    stored = s1
    s, _ = run_idle(s1, T0 + 2 * MIN, 8, r)  # covered to T0+10m: 9 minutes of progress
    assert not needs_persist(stored, s, every)
    s, _ = run_idle(s, T0 + 11 * MIN, 0, r)
    assert needs_persist(stored, s, every)  # 10 minutes: checkpoint
    s, seen = run_idle(s, T0 + 12 * MIN, 20, r)
    assert any(a.kind is ActionKind.WARN for _, d in seen for a in d.actions)
    assert needs_persist(s1, s, every)  # warning intent: at once


def test_a_workload_without_data_is_not_annotated_until_it_has_something_to_remember():
    r = rules()
    unknown = decide(IdleState(), Usage.unknown("no sample yet"), facts(), r, T0).state
    assert unknown.phase is Phase.UNKNOWN
    assert not needs_persist(None, unknown, r.checkpoint_every)  # first sight, no data: no write
    idle_now = decide(unknown, idle(T0 + MIN), facts(), r, T0 + MIN).state
    assert needs_persist(None, idle_now, r.checkpoint_every)  # an idle start is worth remembering
    lost = decide(idle_now, Usage.unknown("agent gone"), facts(), r, T0 + 2 * MIN).state
    assert lost.phase is Phase.UNKNOWN and lost.idle_since is None  # no data ends the idle stretch
    assert needs_persist(idle_now, lost, r.checkpoint_every)  # ...and that is written at once


def test_without_checkpoints_every_idle_reading_is_written():
    r = rules()
    s1, _ = run_idle(IdleState(), T0, 3, r)
    s2, _ = run_idle(s1, T0 + 4 * MIN, 0, r)
    assert needs_persist(s1, s2, r.checkpoint_every)
    restored, _ = state_from_annotation(state_to_annotation(s2))
    later = T0 + 8 * MIN  # a 4-minute gap: more than max_gap, and no checkpoint tolerance by default
    assert decide(restored, idle(later), facts(), r, later).state.idle_since == later - MIN


def test_a_restored_state_tolerates_one_checkpoint_of_lag_but_no_more():
    r = rules(checkpoint_every=timedelta(minutes=10))
    s, _ = run_idle(IdleState(), T0, 20, r)
    text = state_to_annotation(s)  # checkpoint at T0+20m; the operator runs on, then dies unpersisted
    restored, _ = state_from_annotation(text)
    assert restored.restored and restored == s  # the flag is not part of equality
    later = T0 + 28 * MIN  # 8 minutes after the checkpoint (< checkpoint_every + max_gap)
    d = decide(restored, idle(later), facts(), r, later)
    assert d.state.idle_since == s.idle_since and not d.state.restored
    much_later = T0 + 40 * MIN  # 20 minutes: longer than a checkpoint could explain
    d = decide(restored, idle(much_later), facts(), r, much_later)
    assert d.state.idle_since == much_later - MIN
    # In memory (not restored) the plain max_gap applies.
    d = decide(s, idle(later), facts(), r, later)
    assert d.state.idle_since == later - MIN
