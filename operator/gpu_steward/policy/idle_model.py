"""The idle engine's data: rules, facts, persisted state, actions, decisions (pure, no logic but codecs).

``IdleState`` is everything the engine remembers about one workload; it round-trips through the
``gpusteward.dev/idle-state`` annotation (``state_to_annotation`` / ``state_from_annotation``), which
is how the engine survives an operator restart (design invariant 4). The decision logic is in
``gpu_steward.policy.idle``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from gpu_steward.policy.requests import SuspensionRequest
from gpu_steward.policy.timeparse import TimeParseError, format_rfc3339, parse_rfc3339

STATE_VERSION = 1


class Phase(StrEnum):
    ACTIVE = "Active"  # recent data shows use, or nothing is being counted (grace, hold)
    UNKNOWN = "Unknown"  # no trustworthy data: never idle (invariant 1)
    IDLE = "Idle"  # continuously idle since ``idle_since``; no warning yet
    WARNED = "Warned"  # warning intended or sent for this episode
    WOULD_SUSPEND = "WouldSuspend"  # dry-run: it would have been suspended at ``would_suspend_at``
    SUSPENDED = "Suspended"  # suspended by us (``suspended_at``)


class Hold(StrEnum):
    """Why the engine is deliberately not counting this workload towards a suspension right now."""

    EXEMPT_SELECTOR = "ExemptBySelector"
    EXEMPT_UNTIL = "ExemptUntil"
    SNOOZED = "Snoozed"
    STARTUP_GRACE = "StartupGrace"
    OUTSIDE_WINDOW = "OutsideWindow"
    SUSPENDED_ELSEWHERE = "SuspendedElsewhere"


class ActionKind(StrEnum):
    WARN = "Warn"  # notice stage "warning"
    SUSPEND = "Suspend"  # call the workload adapter
    NOTIFY_SUSPENDED = "NotifySuspended"  # notice stage "suspended"
    RESUME = "Resume"  # call the workload adapter
    NOTIFY_RESUMED = "NotifyResumed"  # notice stage "resumed"


NOTICE_KINDS = frozenset({ActionKind.WARN, ActionKind.NOTIFY_SUSPENDED, ActionKind.NOTIFY_RESUMED})


@dataclass(frozen=True)
class IdleRules:
    """An IdlePolicy spec, already parsed (durations as timedelta). Built by the api layer."""

    util_threshold_percent: float
    idle_for: timedelta
    startup_grace: timedelta = timedelta(0)
    notice_before: timedelta = timedelta(minutes=30)
    max_snooze: timedelta = timedelta(hours=8)
    max_exemption: timedelta = timedelta(days=7)
    action: Literal["Suspend", "NotifyOnly"] = "Suspend"
    dry_run: bool = True
    channels: tuple[str, ...] = ("Slack", "Event")
    # A reading older than this is unknown (settings.sample_max_age_seconds).
    max_sample_age: timedelta = timedelta(seconds=180)
    # Two idle readings whose covered spans are further apart than this are not one idle stretch.
    max_gap: timedelta = timedelta(seconds=120)
    # Opt-in write batching: how far the idle clock may run ahead of the persisted state before it is
    # written again (``needs_persist``); a state decoded from the annotation then gets this much extra gap
    # tolerance. 0 (default): every change is written and a restored state gets no extra tolerance.
    # An orchestrator that keeps states in memory and writes with needs_persist sets e.g. 10 minutes.
    checkpoint_every: timedelta = timedelta(0)
    # Which policy these rules come from ("namespace/name"): a warning counts only for the policy that gave it.
    policy: str = ""


@dataclass(frozen=True)
class WorkloadFacts:
    """What the orchestrator observed about the workload (labels/annotations/pods), this evaluation.

    ``exempt_until`` / ``snooze_until`` are the raw annotation texts: the engine parses them so a bad
    value becomes a note, not a crash. ``suspended`` is the adapter's view (True: the workload is
    suspended right now; False: it is running; None: cannot tell).
    """

    started_at: datetime | None = None  # latest start of the workload's GPU pods
    gpus: int = 0
    in_window: bool = True
    exempt_by_selector: bool = False
    exempt_until: str | None = None
    snooze_until: str | None = None
    resume_requested: bool = False
    suspended: bool | None = None
    gpu_hour_price: Decimal | None = None
    # A budget's or a lease's request to suspend this workload (``policy.requests``), or None. With one,
    # the engine runs the request's notice cycle instead of the policy's (``policy.idle.request_rules``).
    request: SuspensionRequest | None = None


@dataclass(frozen=True)
class Mark:
    """Two-step record of a notice or an action: intended (persisted first), then done (confirmed)."""

    intended_at: datetime | None = None
    done_at: datetime | None = None
    dry_run: bool = False

    @property
    def pending(self) -> bool:
        return self.intended_at is not None and self.done_at is None


NO_MARK = Mark()


@dataclass(frozen=True)
class OptOut:
    """An owner-set snooze or exemption as first seen: the raw value and when we first saw it."""

    value: str
    seen_at: datetime


@dataclass(frozen=True)
class IdleState:
    version: int = STATE_VERSION
    phase: Phase = Phase.ACTIVE
    episode: int = 0  # increments each time a new idle stretch (or a restarted notice cycle) begins
    idle_since: datetime | None = None
    idle_covered_to: datetime | None = None  # end of the latest idle reading (continuity check)
    warn: Mark = NO_MARK
    # What the warning said: the suspension time it stated (None: it stated none, e.g. NotifyOnly) and
    # the policy that gave it. Nothing is suspended before that time, nor on another policy's warning.
    warn_suspend_at: datetime | None = None
    warn_policy: str | None = None
    suspend: Mark = NO_MARK
    suspended_notice: Mark = NO_MARK
    resume: Mark = NO_MARK
    resumed_notice: Mark = NO_MARK
    suspended_gpus: int = 0
    would_suspend_at: datetime | None = None
    would_suspend_gpus: int = 0
    resumed_at: datetime | None = None
    reclaimed_gpu_hours: float = 0.0  # closed suspended stretches, accumulated
    would_save_gpu_hours: float = 0.0  # closed dry-run would-suspend stretches, accumulated
    snooze: OptOut | None = None
    exemption: OptOut | None = None
    # An exemption by the policy's ``spec.exemptions.selectors`` (workload labels, which users write): when
    # the operator first saw the workload match one; it ends at that + ``max_exemption`` (invariant 5).
    selector_exemption: OptOut | None = None
    # Not persisted, not compared (states equal whether or not they came from the annotation):
    # True on a state decoded from the annotation (a restart, or a pass that re-read it).
    restored: bool = field(default=False, compare=False)

    @property
    def warned_at(self) -> datetime | None:
        return self.warn.done_at

    @property
    def suspended_at(self) -> datetime | None:
        return self.suspend.done_at


@dataclass(frozen=True)
class Action:
    """One thing the orchestrator should do. ``would_only``: dry-run, report it, touch nothing."""

    kind: ActionKind
    episode: int
    would_only: bool
    reason: str
    idle_since: datetime | None = None
    suspend_at: datetime | None = None  # WARN: when the suspension is due (sent + notice_before)
    resend: bool = False  # a notice whose send was never confirmed (crash between send and confirm)

    @property
    def is_notice(self) -> bool:
        return self.kind in NOTICE_KINDS

    @property
    def stage(self) -> str:
        """Notice stage name for message builders: warning | suspended | resumed (SUSPEND → suspended)."""
        return {
            ActionKind.WARN: "warning",
            ActionKind.SUSPEND: "suspended",
            ActionKind.NOTIFY_SUSPENDED: "suspended",
            ActionKind.RESUME: "resumed",
            ActionKind.NOTIFY_RESUMED: "resumed",
        }[self.kind]


@dataclass(frozen=True)
class Decision:
    state: IdleState
    actions: tuple[Action, ...]
    reason: str
    hold: Hold | None = None
    # Invalid or cut snooze/exemption annotations: tell the owner / record an Event. Each is reported once
    # per annotation value (the engine remembers the value it saw), so an Event per note is not a storm.
    notes: tuple[str, ...] = ()
    gpus: int = 0
    gpu_hour_price: Decimal | None = None
    snooze_until: datetime | None = None  # effective (already cut) end of an active snooze
    snooze_cut: bool = False  # True on the evaluation where a snooze was first seen and cut
    exempt_until: datetime | None = None  # effective (already cut) end of an active exemption
    exemption_cut: bool = False
    clear_resume_request: bool = False  # remove the gpusteward.dev/resume annotation

    @property
    def would_suspend(self) -> bool:
        return self.state.phase is Phase.WOULD_SUSPEND


# --------------------------------------------------------------------------- annotation codec

_MARK_FIELDS = ("warn", "suspend", "suspended_notice", "resume", "resumed_notice")
_TIME_FIELDS = ("idle_since", "idle_covered_to", "warn_suspend_at", "would_suspend_at", "resumed_at")
_OPT_FIELDS = ("snooze", "exemption", "selector_exemption")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def _t(value: datetime | None) -> str | None:
    return None if value is None else format_rfc3339(value) if value.microsecond == 0 else value.isoformat()


def state_to_annotation(state: IdleState) -> str:
    """Compact JSON for ``gpusteward.dev/idle-state`` (now a read-only mirror, see ``gpu_steward.store``)."""
    return json.dumps(state_to_dict(state), separators=(",", ":"), sort_keys=True)


def state_to_dict(state: IdleState) -> dict[str, Any]:
    """The state as plain JSON values; defaults are left out to keep it small (the store's entry codec)."""
    out: dict[str, Any] = {"v": state.version, "phase": state.phase.value, "episode": state.episode}
    for name in _TIME_FIELDS:
        value = getattr(state, name)
        if value is not None:
            out[_camel(name)] = _t(value)
    for name in _MARK_FIELDS:
        mark: Mark = getattr(state, name)
        if mark != NO_MARK:
            m: dict[str, Any] = {}
            if mark.intended_at is not None:
                m["intended"] = _t(mark.intended_at)
            if mark.done_at is not None:
                m["done"] = _t(mark.done_at)
            if mark.dry_run:
                m["dryRun"] = True
            out[_camel(name)] = m
    for name in ("suspended_gpus", "would_suspend_gpus"):
        if getattr(state, name):
            out[_camel(name)] = getattr(state, name)
    if state.warn_policy is not None:
        out["warnPolicy"] = state.warn_policy
    for name in ("reclaimed_gpu_hours", "would_save_gpu_hours"):
        if getattr(state, name):
            out[_camel(name)] = round(getattr(state, name), 6)
    for name in _OPT_FIELDS:
        opt: OptOut | None = getattr(state, name)
        if opt is not None:
            out[_camel(name)] = {"value": opt.value, "seen": _t(opt.seen_at)}
    return out


def _parse_time(raw: Any, where: str) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValueError(f"{where}: expected a timestamp string")
    try:
        return parse_rfc3339(raw)
    except TimeParseError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def _parse_mark(raw: Any, where: str) -> Mark:
    if raw is None:
        return NO_MARK
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected an object")
    return Mark(
        intended_at=_parse_time(raw.get("intended"), f"{where}.intended"),
        done_at=_parse_time(raw.get("done"), f"{where}.done"),
        dry_run=bool(raw.get("dryRun", False)),
    )


def _non_negative(raw: Any, where: str, kind: type) -> Any:
    if raw is None:
        return kind(0)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise ValueError(f"{where}: expected a non-negative number")
    return kind(raw)


def state_from_annotation(text: str | None) -> tuple[IdleState, str | None]:
    """Decode the annotation. Never raises: garbage gives a fresh ``IdleState()`` and the reason.

    A fresh state is the safe direction: the idle clock starts over and any warning is re-given
    before anything can be suspended (a suspended workload stays suspended: the adapter's own
    ``gpusteward.dev/suspended-state`` annotation still says so, and resume still works).
    """
    if text is None or not text.strip():
        return IdleState(), None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        return IdleState(), f"gpusteward.dev/idle-state ignored ({exc}); starting fresh"
    state, problem = state_from_dict(raw)
    return state, None if problem is None else f"gpusteward.dev/idle-state ignored ({problem}); starting fresh"


def state_from_dict(raw: Any) -> tuple[IdleState, str | None]:
    """Decode ``state_to_dict``'s output. Never raises: garbage gives a fresh ``IdleState()`` and the reason."""
    try:
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        version = raw.get("v")
        if version != STATE_VERSION:
            raise ValueError(f"unsupported state version {version!r}")
        try:
            phase = Phase(raw.get("phase", Phase.ACTIVE.value))
        except ValueError as exc:
            raise ValueError(f"unknown phase {raw.get('phase')!r}") from exc
        values: dict[str, Any] = {
            "phase": phase,
            "episode": _non_negative(raw.get("episode"), "episode", int),
            "suspended_gpus": _non_negative(raw.get("suspendedGpus"), "suspendedGpus", int),
            "would_suspend_gpus": _non_negative(raw.get("wouldSuspendGpus"), "wouldSuspendGpus", int),
            "reclaimed_gpu_hours": _non_negative(raw.get("reclaimedGpuHours"), "reclaimedGpuHours", float),
            "would_save_gpu_hours": _non_negative(raw.get("wouldSaveGpuHours"), "wouldSaveGpuHours", float),
        }
        for name in _TIME_FIELDS:
            values[name] = _parse_time(raw.get(_camel(name)), _camel(name))
        warn_policy = raw.get("warnPolicy")
        if warn_policy is not None and not isinstance(warn_policy, str):
            raise ValueError("warnPolicy: expected a string")
        values["warn_policy"] = warn_policy
        for name in _MARK_FIELDS:
            values[name] = _parse_mark(raw.get(_camel(name)), _camel(name))
        for name in _OPT_FIELDS:
            opt = raw.get(_camel(name))
            if opt is None:
                values[name] = None
                continue
            if not isinstance(opt, dict) or not isinstance(opt.get("value"), str):
                raise ValueError(f"{name}: expected {{value, seen}}")
            seen = _parse_time(opt.get("seen"), f"{name}.seen")
            if seen is None:
                raise ValueError(f"{name}.seen missing")
            values[name] = OptOut(value=opt["value"], seen_at=seen)
        known = {f.name for f in fields(IdleState)}
        values["restored"] = True
        return replace(IdleState(), **{k: v for k, v in values.items() if k in known}), None
    except (ValueError, TypeError) as exc:
        return IdleState(), str(exc)


__all__ = [
    "NOTICE_KINDS",
    "NO_MARK",
    "Action",
    "ActionKind",
    "Decision",
    "Hold",
    "IdleRules",
    "IdleState",
    "Mark",
    "OptOut",
    "Phase",
    "WorkloadFacts",
    "state_from_annotation",
    "state_from_dict",
    "state_to_annotation",
    "state_to_dict",
]
