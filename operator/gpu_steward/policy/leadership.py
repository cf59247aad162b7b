"""Leader election, the pure core: who may act, decided from a Lease record and the clock.

Invariant 8 ("One actor"): however many operator replicas run, one acts. The replicas compete for one
``coordination.k8s.io/v1`` Lease, the way client-go's leader election does; this module decides, from
the record the edge (``gpu_steward.leadership``) read and the time, what to write next. No I/O here.

Rules (client-go's, with its safety margins):

- No Lease, or one whose holder is empty (released on a clean shutdown): take it.
- Our own Lease: renew it (``renewTime = now``).
- Someone else's: take it only when it has not changed for ``leaseDurationSeconds`` *as this replica
  observed it* (``Observation.seen_at``, this replica's own clock). Comparing the record's
  ``renewTime`` with our clock would trust that the two nodes' clocks agree; comparing two readings
  of our own clock does not.
- Every take-over increments ``leaseTransitions``.

Stepping down cleanly: a leader acts only while ``still_leading``: until ``renew_deadline`` after the
start of its last successful write. Another replica can take the Lease no earlier than
``lease_duration`` after it saw that write, which came after the write started; with
``renew_deadline < lease_duration`` the old leader has stopped before the new one may start, even if
the old one cannot reach the API at all.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Literal


@dataclass(frozen=True)
class LeaseRecord:
    """The fields of a Lease's spec that the election reads and writes."""

    holder: str  # "" when released
    duration_seconds: float
    acquire_time: dt.datetime | None = None
    renew_time: dt.datetime | None = None
    transitions: int = 0

    def same_as(self, other: LeaseRecord) -> bool:
        """Whether nothing a holder writes changed (a renewal changes renew_time)."""
        return (self.holder, self.renew_time, self.transitions) == (other.holder, other.renew_time,
                                                                     other.transitions)


@dataclass(frozen=True)
class Observation:
    """The record this replica last read, and when (its own clock) it first read it unchanged."""

    record: LeaseRecord
    seen_at: dt.datetime


@dataclass(frozen=True)
class Timing:
    lease_duration: float = 15.0  # how long a Lease stays valid without renewal
    renew_deadline: float = 10.0  # a leader that could not renew for this long stops acting
    retry_period: float = 2.0  # how often every replica tries (renews or checks)

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("leader election needs 0 < retryPeriod < renewDeadline < leaseDuration, got "
                             f"{self.retry_period} / {self.renew_deadline} / {self.lease_duration}")


Verb = Literal["create", "acquire", "renew", "wait"]


@dataclass(frozen=True)
class Decision:
    verb: Verb
    record: LeaseRecord | None  # what to write (None: nothing)
    reason: str


def observe(previous: Observation | None, current: LeaseRecord | None, now: dt.datetime) -> Observation | None:
    """Remember when the record was first seen in its current form (unchanged: keep the old time)."""
    if current is None:
        return None
    if previous is not None and previous.record.same_as(current):
        return previous
    return Observation(current, now)


def decide(current: LeaseRecord | None, observed: Observation | None, me: str, now: dt.datetime,
           timing: Timing) -> Decision:
    """What this replica writes next. ``observed`` must come from ``observe(..., current, ...)``."""
    if current is None:
        return Decision("create", LeaseRecord(me, timing.lease_duration, now, now, 0), "no lease yet")
    if current.holder == me:
        return Decision("renew", replace(current, renew_time=now, duration_seconds=timing.lease_duration),
                        "we hold it")
    taken = LeaseRecord(me, timing.lease_duration, now, now, current.transitions + 1)
    if not current.holder:
        return Decision("acquire", taken, "released by its last holder")
    if observed is None or not observed.record.same_as(current):
        return Decision("wait", None, f"held by {current.holder} (just observed)")
    expires = observed.seen_at + dt.timedelta(seconds=current.duration_seconds)
    if now >= expires:
        return Decision("acquire", taken, f"{current.holder} did not renew for {current.duration_seconds:g}s")
    return Decision("wait", None, f"held by {current.holder} for at least {(expires - now).total_seconds():.1f}s")


def still_leading(last_write_started: dt.datetime | None, now: dt.datetime, timing: Timing) -> bool:
    """Whether a leader may still act: its last successful write started under ``renew_deadline`` ago."""
    if last_write_started is None:
        return False
    return now < last_write_started + dt.timedelta(seconds=timing.renew_deadline)


def released(record: LeaseRecord) -> LeaseRecord:
    """What a leader writes on a clean shutdown, so a standby takes over at once (not after expiry)."""
    return replace(record, holder="", duration_seconds=1.0)
