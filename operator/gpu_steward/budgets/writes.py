"""Which pods' cost annotations are written this pass: a cluster-wide write budget, spent on the values
that changed most first (docs/budgets.md, "What the cost annotations promise").

Cost and GPU-hours grow every second a pod runs, so "the values differ" is true of every running pod on
every pass; writing on that would be one PATCH per pod per interval (at 40,000 pods, over 100 writes per
second). Instead each due pod gets a priority:

0. never annotated (or our annotations were removed);
1. a meaningful change — the hourly rate (price, GPUs), the utilization average by at least
   ``UTIL_STEP`` points, or the pod finished (its final values) — due once the last write is at least
   ``min_interval`` old;
2. values that only accrued — due once the last write is at least ``refresh`` old.

and the budget (``rate`` writes per second, on average, as a token bucket refilled by the time between
passes) goes to the lowest priority number first, the oldest write first within one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from gpu_steward.policy import cost as c

NEVER, CHANGED, ACCRUED = 0, 1, 2
UTIL_STEP = Decimal(10)  # utilization-average points that make a change meaningful


def _decimal(value: str | None) -> Decimal | None:
    try:
        return Decimal(value) if value is not None else None
    except InvalidOperation:
        return None


def priority(current: Mapping[str, str], desired: Mapping[str, str], finished: bool, now: dt.datetime,
             min_interval: dt.timedelta, refresh: dt.timedelta) -> int | None:
    """The pod's write priority, or None when nothing is due (equal values, or written too recently)."""
    if all(current.get(k) == v for k, v in desired.items()):
        return None
    last = c.parse_time(current.get(c.ANN_COST_UPDATED_AT))
    if last is None or c.ANN_COST not in current:
        return NEVER
    age = now - last
    old_util, new_util = _decimal(current.get(c.ANN_UTIL_AVG)), _decimal(desired.get(c.ANN_UTIL_AVG))
    util_moved = (old_util is None) != (new_util is None) or (
        old_util is not None and new_util is not None and abs(new_util - old_util) >= UTIL_STEP)
    meaningful = finished or util_moved or current.get(c.ANN_HOURLY_RATE) != desired.get(c.ANN_HOURLY_RATE)
    if meaningful and age >= min_interval:
        return CHANGED
    if age >= refresh:
        return ACCRUED
    return None


@dataclass
class WriteBudget:
    """A token bucket: ``rate`` writes per second on average, at most ``burst`` at once (it starts full)."""

    rate: float
    burst: float
    tokens: float = -1.0
    last: dt.datetime | None = None

    def take_all(self, now: dt.datetime) -> int:
        """The whole writes this pass may send (call once per pass, then ``spend`` what was sent)."""
        if self.tokens < 0:
            self.tokens = self.burst
        elif self.last is not None:
            self.tokens = min(self.burst, self.tokens + max((now - self.last).total_seconds(), 0.0) * self.rate)
        self.last = now
        return int(self.tokens)

    def spend(self, n: int) -> None:
        self.tokens = max(self.tokens - n, 0.0)
