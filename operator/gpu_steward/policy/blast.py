"""The blast-radius limit on idle suspensions: pure, from counts, a record and ``now`` to a verdict.

One evaluation pass first decides every workload (``policy.idle.decide``); the suspensions that would
*start* in that pass are the candidates. ``gate`` then says which of them may go ahead:

- **Switch.** ``Controls.paused`` (the ``actions_paused`` setting, or ``paused: "true"`` in the
  controls ConfigMap in the operator's namespace): none. Warnings and reports go on.
- **Circuit breaker.** A pass whose candidates are at least ``breaker_minimum`` and more than
  ``breaker_percent`` of the watched workloads suspends none: the breaker opens. It closes on the first
  pass under that threshold. A platform engineer who judges the mass suspension right acknowledges it
  (``breakerAcknowledgedAt`` in the controls ConfigMap, a time at or after the breaker opened): the
  caps below still apply, and a breaker that opens again later needs a new acknowledgement.
- **Caps.** At most ``per_pass`` per pass, ``per_hour`` over the last hour cluster-wide and
  ``per_namespace_per_hour`` per namespace; the oldest due go first, the rest wait for a later pass.

The hourly counts live in a ``Record`` the orchestrator keeps in the cluster (a ConfigMap in the
operator's namespace) and writes *before* the suspensions it permits: a crash after the write
over-counts (the safe direction), a restart or failover never resets the hour.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from gpu_steward.policy.idle_model import NO_MARK, ActionKind, Decision, IdleState
from gpu_steward.policy.timeparse import TimeParseError, as_utc, format_rfc3339, parse_rfc3339

HOUR = timedelta(hours=1)
RECORD_KEY = "suspensions"  # ConfigMap data key of the record
BREAKER_KEY = "breakerOpenSince"


@dataclass(frozen=True)
class Limits:
    per_pass: int = 20
    per_hour: int = 100
    per_namespace_per_hour: int = 10
    breaker_percent: float = 30.0
    breaker_minimum: int = 5


@dataclass(frozen=True)
class Candidate:
    """A suspension that would start this pass."""

    id: str
    namespace: str
    due: datetime  # when it fell due (the warning's stated time): the oldest goes first


@dataclass(frozen=True)
class Record:
    """What must survive a restart: the suspensions of the last hour (time, namespace), and since when
    the breaker is open (an acknowledgement refers to it)."""

    suspensions: tuple[tuple[datetime, str], ...] = ()
    breaker_open_since: datetime | None = None


@dataclass(frozen=True)
class Controls:
    """The platform engineer's runtime switches (read each pass from the operator's namespace)."""

    paused: bool = False
    reason: str = ""
    breaker_acknowledged_at: datetime | None = None
    problems: tuple[str, ...] = ()  # values that could not be read (reported, never trusted)


class Deferral(StrEnum):
    PAUSED = "ActionsPaused"
    BREAKER = "CircuitBreakerOpen"
    PER_PASS = "PerPassLimit"
    PER_HOUR = "HourlyLimit"
    NAMESPACE_PER_HOUR = "NamespaceHourlyLimit"
    RECORD_UNAVAILABLE = "RecordUnavailable"  # the hourly record could not be read or written


@dataclass(frozen=True)
class Breaker:
    open: bool
    since: datetime | None
    would_suspend: int
    watched: int
    percent: float
    minimum: int
    acknowledged: bool = False

    def message(self) -> str:
        share = 100.0 * self.would_suspend / self.watched if self.watched else 0.0
        head = (f"circuit breaker open since {format_rfc3339(self.since)}: " if self.open and self.since
                else "circuit breaker closed: ")
        text = (f"this pass would suspend {self.would_suspend} of {self.watched} watched workloads "
                f"({share:.0f}%; it opens above {self.percent:g}% and at least {self.minimum})")
        if self.open:
            text += ("; acknowledged, suspensions go on within the caps" if self.acknowledged
                     else "; nothing is suspended until a pass stays under the threshold or a platform "
                          "engineer acknowledges it")
        return head + text


@dataclass(frozen=True)
class Verdict:
    allowed: tuple[str, ...]
    deferred: Mapping[str, Deferral]
    record: Record  # to write before acting (only when it differs from the one read)
    breaker: Breaker
    paused: bool
    suspended_last_hour: int  # including the ones allowed now
    by_reason: Mapping[Deferral, int] = field(default_factory=dict)
    paused_reason: str = ""


def tripped(would_suspend: int, watched: int, limits: Limits) -> bool:
    """More than ``breaker_percent`` of the watched workloads, and at least ``breaker_minimum``."""
    return would_suspend >= max(1, limits.breaker_minimum) and would_suspend * 100 > limits.breaker_percent * watched


def gate(candidates: Iterable[Candidate], watched: int, record: Record, limits: Limits, controls: Controls,
         now: datetime) -> Verdict:
    now = as_utc(now)
    cands = sorted(candidates, key=lambda c: (as_utc(c.due), c.id))
    recent = tuple(sorted((as_utc(t), ns) for t, ns in record.suspensions if as_utc(t) > now - HOUR))
    watched = max(watched, len(cands))
    is_open = tripped(len(cands), watched, limits)
    since = (record.breaker_open_since or now) if is_open else None
    ack = controls.breaker_acknowledged_at
    acknowledged = is_open and since is not None and ack is not None and as_utc(ack) >= since
    breaker = Breaker(is_open, since, len(cands), watched, limits.breaker_percent, limits.breaker_minimum,
                      acknowledged)
    deferred: dict[str, Deferral] = {}
    allowed: list[str] = []
    if controls.paused:
        deferred = dict.fromkeys((c.id for c in cands), Deferral.PAUSED)
    elif is_open and not acknowledged:
        deferred = dict.fromkeys((c.id for c in cands), Deferral.BREAKER)
    else:
        hour = len(recent)
        per_ns = Counter(ns for _, ns in recent)
        for c in cands:
            if len(allowed) >= limits.per_pass:
                deferred[c.id] = Deferral.PER_PASS
            elif hour >= limits.per_hour:
                deferred[c.id] = Deferral.PER_HOUR
            elif per_ns[c.namespace] >= limits.per_namespace_per_hour:
                deferred[c.id] = Deferral.NAMESPACE_PER_HOUR
            else:
                allowed.append(c.id)
                hour += 1
                per_ns[c.namespace] += 1
    by_id = {c.id: c for c in cands}
    recent += tuple((now, by_id[i].namespace) for i in allowed)
    return Verdict(tuple(allowed), deferred, Record(recent, since), breaker, controls.paused, len(recent),
                   dict(Counter(deferred.values())), controls.reason)


def refuse(verdict: Verdict, reason: Deferral) -> Verdict:
    """The same verdict with nothing allowed (the record of it could not be kept): all wait."""
    deferred = {**verdict.deferred, **dict.fromkeys(verdict.allowed, reason)}
    return replace(verdict, allowed=(), deferred=deferred, by_reason=dict(Counter(deferred.values())))


# ---- the edge between the engine's decision and the gate ----------------------------------------------

def new_suspension(decision: Decision, now: datetime) -> bool:
    """The decision starts a suspension this pass (not a dry-run one, not the repeat of one already
    intended: that one was counted when it was intended, and may already have happened)."""
    s = decision.state.suspend
    return (s.intended_at is not None and s.done_at is None and as_utc(s.intended_at) == as_utc(now)
            and any(a.kind is ActionKind.SUSPEND and not a.would_only for a in decision.actions))


def withhold(decision: Decision, prior: IdleState, why: str) -> Decision:
    """The decision without the suspension it would start: the warning stands, the intent is not
    recorded, and the next pass decides again (the workload is a candidate again)."""
    state = replace(decision.state, suspend=NO_MARK, suspended_gpus=prior.suspended_gpus)
    actions = tuple(a for a in decision.actions if a.kind is not ActionKind.SUSPEND)
    return replace(decision, state=state, actions=actions, reason=f"suspension deferred: {why}")


# ---- codecs (ConfigMap data) ---------------------------------------------------------------------------

def record_to_data(record: Record) -> dict[str, str]:
    data = {RECORD_KEY: json.dumps([[format_rfc3339(t), ns] for t, ns in record.suspensions],
                                   separators=(",", ":"))}
    data[BREAKER_KEY] = format_rfc3339(record.breaker_open_since) if record.breaker_open_since else ""
    return data


def record_from_data(data: Mapping[str, Any] | None, limits: Limits, now: datetime) -> tuple[Record, str | None]:
    """Decode the record. Never raises. One that cannot be read counts as a spent hourly budget (the
    safe direction: an unreadable record must not reset the hour) and says why."""
    if not data:
        return Record(), None
    try:
        raw = json.loads(data.get(RECORD_KEY) or "[]")
        if not isinstance(raw, list):
            raise ValueError("not a list")
        entries = []
        for item in raw:
            if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
                raise ValueError(f"bad entry {item!r}")
            entries.append((parse_rfc3339(item[0]), item[1]))
        opened = data.get(BREAKER_KEY) or ""
        return Record(tuple(entries), parse_rfc3339(opened) if opened else None), None
    except (ValueError, TypeError, TimeParseError) as exc:
        spent = tuple((as_utc(now), "") for _ in range(max(limits.per_hour, 0)))
        return Record(spent), f"blast-radius record unreadable ({exc}): the hourly budget counts as spent"


TRUE = ("true", "yes", "1", "on")


def controls_from_data(data: Mapping[str, Any] | None, *, paused_by_setting: bool) -> Controls:
    data = data or {}
    problems: list[str] = []
    paused = paused_by_setting or str(data.get("paused", "")).strip().lower() in TRUE
    reason = "actions_paused setting (config.pauseActions)" if paused_by_setting else ""
    if paused and not paused_by_setting:
        reason = str(data.get("reason") or "paused in the controls ConfigMap")[:200]
    ack = None
    raw = str(data.get("breakerAcknowledgedAt", "") or "").strip()
    if raw:
        try:
            ack = parse_rfc3339(raw)
        except TimeParseError as exc:
            problems.append(f"breakerAcknowledgedAt ignored: {exc}")
    return Controls(paused, reason, ack, tuple(problems))


__all__ = [
    "Breaker",
    "Candidate",
    "Controls",
    "Deferral",
    "Limits",
    "Record",
    "Verdict",
    "controls_from_data",
    "gate",
    "new_suspension",
    "record_from_data",
    "record_to_data",
    "refuse",
    "tripped",
    "withhold",
]
