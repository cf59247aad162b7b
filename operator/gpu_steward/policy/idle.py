"""The idle engine: one pure step per workload per evaluation (no I/O, no clock; ``now`` is passed in).

    decide(state, usage, facts, rules, now) -> Decision       # what to do now, and the new state
    confirm(state, action, at) -> IdleState                   # record that an action/notice was done

Phases: Active/Unknown → Idle (since T) → Warned (notice intended → sent at W) → Suspended (at S)
→ (resume) → Active. Dry-run replaces Suspended by WouldSuspend and never touches the workload.

How the orchestrator drives it (this protocol is what makes the invariants hold across restarts):

    state, problem = state_from_annotation(annotations.get("gpusteward.dev/idle-state"))
    d = decide(state, usage, facts, rules, now)
    persist(state_to_annotation(d.state))          # 1. intent first (skip if unchanged)
    for a in d.actions:
        if a.would_only: report(a); continue        # dry-run: status/metrics/log (optionally a dry-run notice)
        ok = perform(a)                             # 2. send the notice / call the adapter (idempotent)
        if ok: persist(state := confirm(state_after_step_1, a, clock()))   # 3. confirm

"persist" may skip writes that only move the idle clock (``idle_covered_to``): either keep that lag
under ``max_gap / 2`` (what the controller does), or opt in to ``rules.checkpoint_every`` and write
when ``needs_persist(stored, state, rules.checkpoint_every)`` says so — a state decoded from the
annotation then tolerates one checkpoint of lag. Every other change must be written before acting.

A crash between 1 and 3 leaves the intent persisted but unconfirmed: the next ``decide`` emits the
same action again — a notice may be sent twice at worst, never skipped — and the suspension clock
only starts at a *confirmed* warning. The follow-up notices (``NotifySuspended``/``NotifyResumed``)
are emitted by the ``decide`` after the adapter action was confirmed (call ``decide`` again at once,
or on the next tick).

Invariants (design doc, "Idle, notices and actions"):
1. No data is not idle: unusable ``Usage`` (unknown, no samples, stale) gives phase Unknown and resets
   the idle start; the idle clock only runs over continuous ok-idle readings (gaps > ``max_gap`` restart it),
   and after an Unknown reading it starts at the next reading's latest sample (never backdated into the gap).
2. No SUSPEND unless this episode's warning was confirmed delivered ≥ ``notice_before`` earlier, not before
   the suspension time that warning stated (``warn_suspend_at``), by the same policy (``rules.policy``), and
   the episode was not reset since (activity, unknown data, snooze, exemption, grace, window close, mode
   switch). A warning that stated no suspension time (NotifyOnly) is not a suspension notice; a warning of
   another policy does not count: either starts a new notice cycle (same idle start).
3. One notice per stage per episode: the intent/done marks live in the state, so a re-run of ``decide``
   on the persisted state (restart) does not repeat a confirmed notice.
4. Restart-safe: ``IdleState`` round-trips through the annotation.
5. Snoozes are cut to ``seen + max_snooze``, exemptions to ``seen + max_exemption`` (``seen``: the first
   evaluation that saw that annotation value); an exemption without a valid end is ignored (a note says why).
   An exemption by the policy's exemption selectors (workload labels) also ends at ``seen + max_exemption``
   (``seen``: the first evaluation that saw the workload match one).
6. Dry-run: WARN and SUSPEND come back ``would_only``; the state advances as if done (WouldSuspend).
   RESUME is never would-only: giving back what we took is always allowed.

Suspension requests (``facts.request``, from budgets and leases; ``policy.requests``): the same protocol
runs for them with ``request_rules(rules, request)``: the warning belongs to the request (its ``id`` is the
"policy" a warning counts for), states ``max(now + request.notice, request.not_before)``, and nothing is
suspended before it. A *demand* (lease expiry / maxSpend) skips utilization, snoozes, exemptions, startup
grace and windows; an *idle-only* request (budget SuspendIdleFirst) is the idle protocol with no
``idle_for`` wait and no schedule windows — activity, unknown data, snoozes, exemptions and grace apply.
Resume requests and the suspended phase work the same whoever asked for the suspension.

Schedule windows: outside a window the idle clock keeps running, but no warning or suspension starts;
a warning already intended or sent when the window closes is withdrawn (a new episode begins, the idle
start is kept) so the next window gives a fresh warning with the full notice period.
Snoozes, exemptions and startup grace reset the idle start: after they end a full ``idle_for`` is needed.
A resume request (``gpusteward.dev/resume``) on a running workload counts as activity.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta

from gpu_steward.policy.idle_model import (
    NO_MARK,
    Action,
    ActionKind,
    Decision,
    Hold,
    IdleRules,
    IdleState,
    Mark,
    OptOut,
    Phase,
    WorkloadFacts,
    state_from_annotation,
    state_to_annotation,
)
from gpu_steward.policy.requests import SuspensionRequest
from gpu_steward.policy.timeparse import TimeParseError, as_utc, format_rfc3339, parse_rfc3339
from gpu_steward.policy.usage import Usage

__all__ = [
    "Action",
    "ActionKind",
    "Decision",
    "Hold",
    "IdleRules",
    "IdleState",
    "Phase",
    "Usage",
    "WorkloadFacts",
    "confirm",
    "decide",
    "needs_persist",
    "request_rules",
    "state_from_annotation",
    "state_to_annotation",
]


def _hours(delta: timedelta) -> float:
    return max(delta.total_seconds(), 0.0) / 3600.0


def _fmt_delta(delta: timedelta) -> str:
    secs = int(delta.total_seconds())
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _reset(s: IdleState, now: datetime, phase: Phase) -> IdleState:
    """End the idle stretch: no idle start, no warning, no pending suspension (the episode is over)."""
    would = s.would_save_gpu_hours
    if s.would_suspend_at is not None:
        would += s.would_suspend_gpus * _hours(now - s.would_suspend_at)
    return replace(
        s,
        phase=phase,
        idle_since=None,
        idle_covered_to=None,
        warn=NO_MARK,
        warn_suspend_at=None,
        warn_policy=None,
        suspend=NO_MARK,
        would_suspend_at=None,
        would_suspend_gpus=0,
        would_save_gpu_hours=would,
    )


def _new_episode(s: IdleState, now: datetime, idle_since: datetime | None) -> IdleState:
    """Start a fresh notice cycle (episode + 1) over an idle stretch beginning at ``idle_since``."""
    closed = _reset(s, now, Phase.IDLE)
    return replace(
        closed,
        episode=s.episode + 1,
        idle_since=idle_since,
        idle_covered_to=s.idle_covered_to if idle_since == s.idle_since else None,
        # Notices of past events still owed are kept (they are never lost); settled ones are dropped.
        suspended_notice=s.suspended_notice if s.suspended_notice.pending else NO_MARK,
        resumed_notice=s.resumed_notice if s.resumed_notice.pending else NO_MARK,
    )


def _suspended(s: IdleState, at: datetime) -> IdleState:
    return replace(
        s,
        phase=Phase.SUSPENDED,
        suspend=replace(s.suspend, done_at=at),
        suspended_notice=Mark(intended_at=at),
        resume=NO_MARK,
        resumed_notice=NO_MARK,
    )


def _resumed(s: IdleState, at: datetime) -> IdleState:
    reclaimed = s.reclaimed_gpu_hours
    if s.suspend.done_at is not None:
        reclaimed += s.suspended_gpus * _hours(at - s.suspend.done_at)
    return replace(
        s,
        phase=Phase.ACTIVE,
        idle_since=None,
        idle_covered_to=None,
        warn=NO_MARK,
        warn_suspend_at=None,
        warn_policy=None,
        suspend=NO_MARK,
        suspended_gpus=0,
        resume=Mark(intended_at=s.resume.intended_at or at, done_at=at),
        resumed_notice=Mark(intended_at=at),
        resumed_at=at,
        reclaimed_gpu_hours=reclaimed,
    )


def _track_opt_out(
    stored: OptOut | None, raw: str | None, limit: timedelta, now: datetime, label: str, notes: list[str]
) -> tuple[OptOut | None, datetime | None, bool]:
    """Returns (what to store, effective end if active now, whether it was cut on first sight).

    The bound counts from ``seen``, the first evaluation that saw this value, as the operator recorded it
    (the state lives in the operator's store; nothing read back from the workload sets it). A removed
    annotation is remembered until its bound has passed, so deleting and re-adding the same value does not
    start the bound again; a *new* value is a new opt-out, bounded from now. Long values are kept as a
    digest: the state's size never depends on what a user wrote.
    """
    if raw is None:
        keep = stored is not None and stored.seen_at + limit > now
        return (stored if keep else None), None, False
    value = opt_out_value(raw)
    first_sight = stored is None or stored.value != value
    opt = OptOut(value=value, seen_at=now) if first_sight or stored is None else stored
    try:
        asked = parse_rfc3339(raw)
    except TimeParseError as exc:
        if first_sight:  # reported once per value (the value is remembered in the state), not every pass
            notes.append(f"gpusteward.dev/{label} ignored: {exc}; it must be an RFC 3339 end time")
        return opt, None, False
    bound = opt.seen_at + limit
    end = min(asked, bound)
    cut = first_sight and asked > bound
    if cut:
        notes.append(f"gpusteward.dev/{label} {raw} cut to {format_rfc3339(end)} (policy maximum {_fmt_delta(limit)})")
    return opt, (end if end > now else None), cut


SELECTOR_EXEMPTION = "selector"


def _track_selector_exemption(
    stored: OptOut | None, matched: bool, limit: timedelta, now: datetime
) -> tuple[OptOut | None, datetime | None]:
    """Returns (what to store, end if the exemption holds now) for ``spec.exemptions.selectors``.

    The labels that match are the workload's, which anyone with ``edit`` in its namespace writes, so the
    exemption is an opt-out like ``exempt-until`` (invariant 5): it counts from the first evaluation that saw
    the workload match, as the operator recorded it, and ends ``limit`` later. One record whatever selector
    or policy matched (switching labels or policies does not start it again); a label removed and added
    again within the bound does not start it again either. After the bound a workload that still matches is
    governed like any other; a platform that wants a workload never governed scopes the policy
    (``spec.selector``: namespaces, namespace labels, kinds), see docs/idle.md.
    """
    if not matched:
        keep = stored is not None and stored.seen_at + limit > now
        return (stored if keep else None), None
    opt = stored if stored is not None else OptOut(value=SELECTOR_EXEMPTION, seen_at=now)
    end = opt.seen_at + limit
    return opt, (end if end > now else None)


OPT_OUT_VALUE_MAX = 64


def opt_out_value(raw: str) -> str:
    """What the state keeps of an opt-out annotation's value: itself when short (an RFC 3339 time is), else
    a digest — enough to tell a changed value, and bounded whatever the owner wrote."""
    if len(raw) <= OPT_OUT_VALUE_MAX:
        return raw
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()[:40]


class _Out:
    """Accumulates the decision while ``decide`` walks through its steps."""

    def __init__(self, rules: IdleRules) -> None:
        self.rules = rules
        self.actions: list[Action] = []
        self.reason = ""
        self.hold: Hold | None = None

    def act(self, s: IdleState, kind: ActionKind, why: str, would: bool, suspend_at: datetime | None = None,
            resend: bool = False) -> None:
        self.actions.append(Action(kind, s.episode, would, why, s.idle_since, suspend_at, resend))


def request_rules(rules: IdleRules, request: SuspensionRequest) -> IdleRules:
    """The rules a suspension request runs under: its own notice cycle (a warning counts only for the
    request that gave it) and notice period; an idle-only request waits for no ``idle_for``. Everything
    else (threshold, grace, opt-out bounds, channels, dry-run, NotifyOnly for what cannot be suspended)
    comes from ``rules``, which the orchestrator built for the workload."""
    return replace(rules, policy=request.id, notice_before=request.notice,
                   idle_for=timedelta(0) if request.idle_only else rules.idle_for)


def decide(state: IdleState, usage: Usage, facts: WorkloadFacts, rules: IdleRules, now: datetime) -> Decision:
    """One evaluation step for one workload. Pure and total: never raises on odd inputs."""
    now = as_utc(now)
    if facts.request is not None:
        rules = request_rules(rules, facts.request)
        facts = replace(facts, in_window=True)  # windows say when a policy enforces, not a budget or lease
    notes: list[str] = []
    out = _Out(rules)
    exemption, exempt_until, exemption_cut = _track_opt_out(
        state.exemption, facts.exempt_until, rules.max_exemption, now, "exempt-until", notes
    )
    snooze, snooze_until, snooze_cut = _track_opt_out(
        state.snooze, facts.snooze_until, rules.max_snooze, now, "snooze-until", notes
    )
    selector_exemption, selector_exempt_until = _track_selector_exemption(
        state.selector_exemption, facts.exempt_by_selector, rules.max_exemption, now
    )
    s = replace(state, exemption=exemption, snooze=snooze, selector_exemption=selector_exemption, restored=False)
    if facts.request is None:  # a previous release's warning was an idle policy's, never a request's
        s = _adopt_legacy_warning(s, rules)
    # A restored state's idle_covered_to may lag by up to one checkpoint (see needs_persist).
    gap = rules.max_gap + (rules.checkpoint_every if state.restored else timedelta(0))
    s, clear_resume = _step(s, usage, facts, rules, now, out, exempt_until, snooze_until, gap, selector_exempt_until)
    # Notices for things that already happened go first, whatever else holds (they report the past).
    pending: list[Action] = []
    if s.suspended_notice.pending:
        pending.append(Action(ActionKind.NOTIFY_SUSPENDED, s.episode, False, "workload suspended", s.idle_since))
    if s.resumed_notice.pending:
        pending.append(Action(ActionKind.NOTIFY_RESUMED, s.episode, False, "workload resumed", None))
    return Decision(
        state=s,
        actions=tuple(pending + out.actions),
        reason=out.reason,
        hold=out.hold,
        notes=tuple(notes),
        gpus=facts.gpus,
        gpu_hour_price=facts.gpu_hour_price,
        snooze_until=snooze_until,
        snooze_cut=snooze_cut,
        exempt_until=exempt_until,
        exemption_cut=exemption_cut,
        clear_resume_request=clear_resume,
    )


def _step(
    s: IdleState,
    usage: Usage,
    facts: WorkloadFacts,
    rules: IdleRules,
    now: datetime,
    out: _Out,
    exempt_until: datetime | None,
    snooze_until: datetime | None,
    gap: timedelta,
    selector_exempt_until: datetime | None = None,
) -> tuple[IdleState, bool]:
    # In-flight adapter actions whose confirmation was lost: the adapter's view settles them.
    if s.suspend.pending and facts.suspended is True:
        s = _suspended(s, s.suspend.intended_at or now)
    if s.resume.pending and facts.suspended is False:
        s = _resumed(s, now)

    if s.resume.pending:
        out.act(s, ActionKind.RESUME, "resume requested (repeat: not confirmed yet)", False)
        out.reason = "resuming"
        return s, facts.resume_requested

    if s.phase is Phase.SUSPENDED:
        if facts.resume_requested:
            s = replace(s, resume=Mark(intended_at=now))
            out.act(s, ActionKind.RESUME, "resume requested by gpusteward.dev/resume", False)
            out.reason = "resume requested"
            return s, True
        if facts.suspended is False:
            s = _resumed(s, now)
            out.reason = "resumed outside GPU Steward"
            return s, False
        out.reason = f"suspended since {format_rfc3339(s.suspend.done_at or now)}"
        return s, False

    if facts.resume_requested:
        if facts.suspended is True:  # suspended but our state was lost: still give it back
            s = replace(s, resume=Mark(intended_at=now))
            out.act(s, ActionKind.RESUME, "resume requested by gpusteward.dev/resume", False)
            out.reason = "resume requested"
            return s, True
        s = _reset(s, now, Phase.ACTIVE)
        out.reason = "resume requested on a running workload: counted as activity"
        return s, True

    if s.suspend.pending and facts.suspended is None:
        # We may already have suspended it; the adapter is idempotent, so finish the job.
        out.act(s, ActionKind.SUSPEND, "suspension in progress (repeat: not confirmed yet)", False)
        out.reason = "suspending"
        return s, False

    if facts.suspended is True and not s.suspend.pending:
        out.hold, out.reason = Hold.SUSPENDED_ELSEWHERE, "suspended outside GPU Steward"
        return _reset(s, now, Phase.ACTIVE), False

    if facts.request is not None and not facts.request.idle_only:
        # A demand (lease expiry, maxSpend): no opt-out, no grace, no utilization postpones it.
        if s.warn.intended_at is None:
            s = _new_episode(s, now, None)
        return _notice_cycle(s, facts, rules, now, out, facts.request.reason), False

    grace_end: datetime | None = None
    starts = [t for t in (facts.started_at, s.resumed_at) if t is not None]
    if starts:
        grace_end = max(as_utc(t) for t in starts) + rules.startup_grace
    holds: list[tuple[bool, Hold, str]] = [
        (selector_exempt_until is not None, Hold.EXEMPT_SELECTOR,
         f"exempt by policy selector until {_maybe(selector_exempt_until)}"),
        (exempt_until is not None, Hold.EXEMPT_UNTIL, f"exempt until {_maybe(exempt_until)}"),
        (snooze_until is not None, Hold.SNOOZED, f"snoozed until {_maybe(snooze_until)}"),
        (grace_end is not None and now < grace_end, Hold.STARTUP_GRACE, f"startup grace until {_maybe(grace_end)}"),
    ]
    for active, hold, why in holds:
        if active:
            out.hold, out.reason = hold, why
            return _reset(s, now, Phase.ACTIVE), False

    problem = usage.usable(now, rules.max_sample_age)
    if problem is not None:
        out.reason = f"utilization unknown: {problem}"
        return _reset(s, now, Phase.UNKNOWN), False
    assert usage.last_sample_at is not None and usage.util_mean is not None
    busy = usage.util_mean >= rules.util_threshold_percent or (
        usage.util_max is not None and usage.util_max >= rules.util_threshold_percent
    )
    if busy:
        out.reason = f"active: {usage.util_mean:.1f}% mean, {_maybe_pct(usage.util_max)} max"
        return _reset(s, now, Phase.ACTIVE), False
    return _idle_step(s, usage, facts, rules, now, out, grace_end, gap), False


def _idle_step(
    s: IdleState,
    usage: Usage,
    facts: WorkloadFacts,
    rules: IdleRules,
    now: datetime,
    out: _Out,
    grace: datetime | None,
    gap: timedelta,
) -> IdleState:
    assert usage.last_sample_at is not None
    covered_to = as_utc(usage.last_sample_at)
    covered_from = covered_to - timedelta(seconds=max(usage.window_seconds, 0.0))
    if grace is not None and covered_from < grace:
        covered_from = grace
    if s.phase is Phase.UNKNOWN:
        # The previous reading had no usable data: which of this reading's samples came after it cannot
        # be told, so idle time starts at its latest sample — never backdated into the gap (invariant 1).
        covered_from = covered_to
    continuous = (
        s.phase in (Phase.IDLE, Phase.WARNED, Phase.WOULD_SUSPEND)
        and s.idle_since is not None
        and s.idle_covered_to is not None
        and covered_from <= s.idle_covered_to + gap
    )
    if not continuous:
        s = _new_episode(s, now, min(covered_from, covered_to))
    s = replace(s, idle_covered_to=max(covered_to, s.idle_covered_to or covered_to))
    assert s.idle_since is not None and s.idle_covered_to is not None
    idle_for = s.idle_covered_to - s.idle_since
    if s.phase is Phase.IDLE and idle_for < rules.idle_for:
        out.reason = f"idle for {_fmt_delta(idle_for)} of {_fmt_delta(rules.idle_for)}"
        return s

    if not facts.in_window:
        if s.warn != NO_MARK or s.phase is not Phase.IDLE:
            s = _new_episode(s, now, s.idle_since)
            out.reason = "outside the schedule window: pending warning withdrawn"
        else:
            out.reason = "outside the schedule window: no warning starts"
        out.hold = Hold.OUTSIDE_WINDOW
        return s

    return _notice_cycle(s, facts, rules, now, out,
                         f"idle for {_fmt_delta(idle_for)} (below {rules.util_threshold_percent:g}% GPU)")


def _notice_cycle(s: IdleState, facts: WorkloadFacts, rules: IdleRules, now: datetime, out: _Out,
                  why: str) -> IdleState:
    """Warn (stating the suspension time), wait for that time, suspend — one notice per stage."""
    restart = _warning_void(s, rules)
    if restart:
        # That warning does not count for what the policy would do now: a new notice cycle, same idle start.
        s = _new_episode(s, now, s.idle_since)
    suspend_due = None
    if rules.action == "Suspend":
        suspend_due = now + rules.notice_before
        if facts.request is not None and facts.request.not_before is not None:
            suspend_due = max(suspend_due, as_utc(facts.request.not_before))
    if s.warn.intended_at is None or (s.warn.pending and rules.dry_run):
        if restart:
            why += f"; new warning: {restart}"
        if rules.dry_run:
            s = replace(s, phase=Phase.WARNED, warn=Mark(intended_at=now, done_at=now, dry_run=True),
                        warn_suspend_at=suspend_due, warn_policy=rules.policy)
        else:
            s = replace(s, phase=Phase.WARNED, warn=Mark(intended_at=now), warn_policy=rules.policy)
        out.act(s, ActionKind.WARN, why, rules.dry_run, suspend_due)
        out.reason = "warning owner"
        return s
    if s.warn.pending:
        # Intended but never confirmed sent (send failed or we crashed): send it again.
        out.act(s, ActionKind.WARN, "warning not confirmed sent yet", False, suspend_due, resend=True)
        out.reason = "warning owner (repeat)"
        return s
    assert s.warn.done_at is not None
    if rules.action == "NotifyOnly":
        out.reason = f"idle; owner warned at {format_rfc3339(s.warn.done_at)}; policy action is NotifyOnly"
        return s
    # The notice period counts from the delivered warning, and never ends before the time it stated.
    assert s.warn_suspend_at is not None  # _warning_void restarted the cycle otherwise
    due = max(s.warn.done_at + rules.notice_before, s.warn_suspend_at)
    if now < due:
        out.reason = f"warned; suspension due at {format_rfc3339(due)}"
        return s
    if rules.dry_run:
        if s.phase is not Phase.WOULD_SUSPEND:
            s = replace(s, phase=Phase.WOULD_SUSPEND, would_suspend_at=now, would_suspend_gpus=facts.gpus)
            out.act(s, ActionKind.SUSPEND, _suspend_why(s, facts), True)
        out.reason = "dry-run: would suspend"
        return s
    if s.suspend.intended_at is None:
        s = replace(s, suspend=Mark(intended_at=now), suspended_gpus=facts.gpus)
    out.act(s, ActionKind.SUSPEND, _suspend_why(s, facts), False)
    out.reason = "suspending"
    return s


def _suspend_why(s: IdleState, facts: WorkloadFacts) -> str:
    if facts.request is not None and not facts.request.idle_only:
        return f"{facts.request.reason}; notice given"
    return f"idle since {_maybe(s.idle_since)}, notice given"


def _adopt_legacy_warning(s: IdleState, rules: IdleRules) -> IdleState:
    """A warning recorded by the previous release (git commit 4bdc1a1), which kept neither the policy
    that gave it nor the suspension time it stated, counts as the governing policy's warning: the upgrade
    neither repeats it (one notice per stage) nor voids it. That release suspended at delivery +
    ``notice.before`` and its warning stated intent + ``notice.before`` (no later), so the suspension time
    it stands for is delivery + the policy's ``notice.before``. This release always records the policy with
    the warning (possibly ""), so a warning mark without one can only come from the previous release.
    A warning it never confirmed delivered is sent again, with this release's terms, as after any crash.
    """
    if s.warn.intended_at is None or s.warn_policy is not None:
        return s
    stated = s.warn.done_at + rules.notice_before if s.warn.done_at is not None and rules.action == "Suspend" \
        else None
    return replace(s, warn_policy=rules.policy, warn_suspend_at=stated)


def _warning_void(s: IdleState, rules: IdleRules) -> str | None:
    """Why this episode's warning (intended or given) cannot lead to what the policy would do now, or None.

    A warning belongs to the policy that gave it; a dry-run warning was never given; a warning that stated
    no suspension time (NotifyOnly) is not a suspension notice. A warning only intended (not yet delivered)
    is re-sent with the current terms anyway, so only its policy matters.
    """
    if s.warn.intended_at is None:
        return None
    if s.warn_policy != rules.policy:
        return f"policy {rules.policy or '?'} replaces {s.warn_policy or 'an earlier policy'}"
    if s.warn.done_at is None:
        return None
    if s.warn.dry_run and not rules.dry_run:
        return "the dry-run warning was never given"
    if rules.action == "Suspend" and s.warn_suspend_at is None:
        return "the earlier warning stated no suspension"
    return None


def needs_persist(persisted: IdleState | None, current: IdleState, checkpoint_every: timedelta) -> bool:
    """Whether ``current`` must be written to the annotation, given what is stored (None: nothing stored).

    Every change that matters (phase, episode, idle start, any intent/done mark, opt-outs, counters) is
    written at once — that is what makes intents survive a crash. Only the idle clock's progress
    (``idle_covered_to``) is batched: written when it ran ``checkpoint_every`` ahead of the stored value,
    so an idle workload costs one patch per checkpoint, not one per pass. A restored state tolerates that
    lag (``IdleRules.checkpoint_every`` must be the same value). A workload with nothing to remember
    (fresh, and active or without data yet) needs no annotation at all: a busy or not-yet-measured
    workload is never written to.
    """
    if persisted is None and replace(current, phase=Phase.ACTIVE, restored=False) == IdleState():
        return False
    base = persisted if persisted is not None else IdleState()
    if replace(base, idle_covered_to=None, restored=False) != replace(current, idle_covered_to=None, restored=False):
        return True
    if current.idle_covered_to is None:
        return False
    if base.idle_covered_to is None:
        return True
    return current.idle_covered_to - base.idle_covered_to >= checkpoint_every


def confirm(state: IdleState, action: Action, at: datetime) -> IdleState:
    """Record that ``action`` was carried out (notice sent / adapter succeeded) at ``at``.

    A confirmation that no longer matches the state (another episode, nothing pending, a would-only
    action) is ignored and the state comes back unchanged — so confirming twice is harmless.
    """
    at = as_utc(at)
    if action.would_only:
        return state
    # Notices of past events have one slot each, so they need no episode check (one may be owed
    # across an episode boundary); a warning or a suspension belongs to exactly one episode.
    if action.kind is ActionKind.NOTIFY_SUSPENDED and state.suspended_notice.pending:
        return replace(state, suspended_notice=replace(state.suspended_notice, done_at=at))
    if action.kind is ActionKind.NOTIFY_RESUMED and state.resumed_notice.pending:
        return replace(state, resumed_notice=replace(state.resumed_notice, done_at=at))
    if action.kind is ActionKind.RESUME and state.resume.pending:
        return _resumed(state, at)
    if action.episode != state.episode:
        return state
    if action.kind is ActionKind.WARN and state.warn.pending:
        # The warning that was delivered is the one that counts: record the suspension time it stated.
        return replace(state, warn=replace(state.warn, done_at=at), warn_suspend_at=action.suspend_at)
    if action.kind is ActionKind.SUSPEND and state.suspend.pending:
        return _suspended(state, at)
    return state


def _maybe(value: datetime | None) -> str:
    return format_rfc3339(value) if value is not None else "?"


def _maybe_pct(value: float | None) -> str:
    return f"{value:.1f}%" if value is not None else "n/a"
