"""Property tests: the design's idle invariants hold for any sequence of readings, facts and crashes.

A small orchestrator runs the documented protocol (persist intent → perform → confirm) against a fake
world, persisting the state through the annotation string and crashing at random points. Independent
oracles, computed from the readings the test itself fed in, check the invariants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from idle_helpers import T0, facts, rules

from gpu_steward.policy.idle import (
    ActionKind,
    Phase,
    Usage,
    confirm,
    decide,
    needs_persist,
    state_from_annotation,
    state_to_annotation,
)

WINDOW = 60.0

step = st.fixed_dictionaries(
    {
        "dt": st.sampled_from([30] * 20 + [60] * 40 + [90, 300, 900]),
        "reading": st.sampled_from(["idle"] * 40 + ["busy", "unknown", "stale"]),
        "in_window": st.sampled_from([True] * 40 + [False]),
        "resume": st.sampled_from([False] * 20 + [True]),
        "crash": st.sampled_from(["none"] * 12 + ["before_send", "after_send", "restart"]),
    }
)


@dataclass
class World:
    annotation: str | None = None
    suspended: bool = False
    delivered: list[tuple[datetime, ActionKind, int]] = field(default_factory=list)
    suspensions: list[datetime] = field(default_factory=list)
    resumes: list[datetime] = field(default_factory=list)
    resends: dict[ActionKind, int] = field(default_factory=dict)
    last_reset: datetime = T0
    last_window_close: datetime = T0
    memory: Any = None  # the orchestrator's in-memory state; None after a crash/restart
    unsent_crashes: int = 0


def usage_for(kind: str, now: datetime, world: World) -> Usage:
    if world.suspended:
        return Usage.unknown("no pods")
    if kind == "idle":
        return Usage.ok(0.5, 1.0, 12, now, WINDOW)
    if kind == "busy":
        return Usage.ok(70.0, 99.0, 12, now, WINDOW)
    if kind == "stale":
        return Usage.ok(0.0, 0.0, 12, now - timedelta(hours=1), WINDOW)
    return Usage.unknown("agent timeout")


def persist(world: World, state, r) -> None:
    """Write the annotation only when needs_persist says so; keep the latest state in memory."""
    stored = state_from_annotation(world.annotation)[0] if world.annotation is not None else None
    if needs_persist(stored, state, r.checkpoint_every):
        world.annotation = state_to_annotation(state)
    world.memory = state


def evaluate(world: World, now: datetime, s: dict, r) -> None:
    if world.memory is None:  # (re)start: all we have is the annotation
        state, problem = state_from_annotation(world.annotation)
        assert problem is None
    else:
        state = world.memory
    resume = s["resume"] and world.suspended
    f = facts(in_window=s["in_window"], suspended=world.suspended, resume_requested=resume)
    usage = usage_for(s["reading"], now, world)
    # Oracle bookkeeping: anything that must restart the notice cycle.
    # Data that is not ok-idle (or a resume) restarts the idle clock; a closed window only voids warnings.
    if (not world.suspended and s["reading"] != "idle") or resume:
        world.last_reset = now
    if (not world.suspended and not s["in_window"]) or resume:
        world.last_window_close = now
    d = decide(state, usage, f, r, now)
    persist(world, d.state, r)  # 1. persist intent
    current = d.state
    if s["crash"] == "restart":
        world.memory = None
        return
    for a in d.actions:
        assert not a.would_only
        if s["crash"] == "before_send":
            world.unsent_crashes += 1
            world.memory = None
            return
        # 2. perform
        if a.kind is ActionKind.SUSPEND:
            check_suspension_allowed(world, a.episode, now, r)
            world.suspended = True
            world.suspensions.append(now)
        elif a.kind is ActionKind.RESUME:
            world.suspended = False
            world.resumes.append(now)
        else:
            world.delivered.append((now, a.kind, a.episode))
        if s["crash"] == "after_send":
            world.resends[a.kind] = world.resends.get(a.kind, 0) + 1
            world.memory = None
            return
        current = confirm(current, a, now)  # 3. confirm
        persist(world, current, r)


def check_suspension_allowed(world: World, episode: int, now: datetime, r) -> None:
    warnings = [t for t, k, e in world.delivered if k is ActionKind.WARN and e == episode]
    assert warnings, "suspension without any warning delivered for this episode"
    first = min(warnings)
    assert now - first >= r.notice_before, "suspension before the notice period ran out"
    assert first > max(world.last_reset, world.last_window_close), "warning older than the last reset"
    assert first - world.last_reset >= r.idle_for - timedelta(seconds=WINDOW), "warned before idle_for of idle data"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=10, max_size=200))
def test_invariants_hold_across_crashes_and_restarts(steps):
    r = rules(
        idle_for=timedelta(minutes=5),
        notice_before=timedelta(minutes=3),
        startup_grace=timedelta(0),
        checkpoint_every=timedelta(minutes=10),  # exercise batched writes + restored-state tolerance
    )
    world = World()
    now = T0
    for s in steps:
        now += timedelta(seconds=s["dt"])
        evaluate(world, now, s, r)
    # Settle: a few crash-free evaluations deliver whatever is still owed.
    for _ in range(3):
        now += timedelta(seconds=30)
        evaluate(world, now, {"reading": "busy", "in_window": True, "resume": False, "crash": "none"}, r)

    # (3) one notice per stage per episode, allowing one resend per crash between send and confirm.
    by_key: dict[tuple[ActionKind, int], int] = {}
    for _, kind, ep in world.delivered:
        if kind is ActionKind.WARN:
            by_key[(kind, ep)] = by_key.get((kind, ep), 0) + 1
    extra_warns = sum(n - 1 for n in by_key.values())
    assert extra_warns <= world.resends.get(ActionKind.WARN, 0)
    # Every suspension and every resume was announced exactly once (plus crash resends), none lost.
    n_susp = sum(1 for _, k, _ in world.delivered if k is ActionKind.NOTIFY_SUSPENDED)
    n_res = sum(1 for _, k, _ in world.delivered if k is ActionKind.NOTIFY_RESUMED)
    susp_resends = world.resends.get(ActionKind.NOTIFY_SUSPENDED, 0)
    assert len(world.suspensions) <= n_susp <= len(world.suspensions) + susp_resends
    assert len(world.resumes) <= n_res <= len(world.resumes) + world.resends.get(ActionKind.NOTIFY_RESUMED, 0)
    event(f"suspensions>0: {bool(world.suspensions)}")
    event(f"resumes>0: {bool(world.resumes)}")
    # (4) the persisted state is what the engine works from: decoding it is lossless.
    if world.annotation is not None:
        state, problem = state_from_annotation(world.annotation)
        assert problem is None and state_to_annotation(state) == world.annotation


@settings(max_examples=200, deadline=None)
@given(st.lists(step, min_size=1, max_size=120))
def test_dry_run_never_asks_for_a_real_action(steps):
    r = rules(dry_run=True, idle_for=timedelta(minutes=10), notice_before=timedelta(minutes=5))
    state, _ = state_from_annotation(None)
    now = T0
    for s in steps:
        now += timedelta(seconds=s["dt"])
        usage = Usage.ok(0.5, 1.0, 12, now, WINDOW) if s["reading"] == "idle" else Usage.unknown("x")
        d = decide(state, usage, facts(in_window=s["in_window"]), r, now)
        assert all(a.would_only for a in d.actions)
        assert d.state.phase is not Phase.SUSPENDED
        state = d.state


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_garbage_annotation_never_raises(text):
    state, problem = state_from_annotation(text)
    assert state.phase is Phase.ACTIVE or problem is None
    state_to_annotation(state)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["v", "phase", "episode", "idleSince", "warn", "suspend", "snooze", "reclaimedGpuHours"]),
        st.one_of(
            st.none(),
            st.integers(-5, 5),
            st.text(max_size=30),
            st.floats(allow_nan=True),
            st.booleans(),
            st.dictionaries(st.sampled_from(["intended", "done", "value", "seen"]), st.text(max_size=25)),
        ),
    )
)
def test_malformed_state_objects_give_a_fresh_state_and_a_reason(obj):
    import json

    state, problem = state_from_annotation(json.dumps(obj))
    if problem is not None:
        assert state == type(state)()
    assert state.episode >= 0
