"""IdlePolicy status counts from the decisions of one evaluation pass (pure).

GPU-hours: closed stretches are accumulated in each workload's state (``reclaimed_gpu_hours``,
``would_save_gpu_hours``); the open stretch (suspended / would-suspend since T) is added up to ``now``.
The totals therefore cover the workloads the policy still watches; a deleted workload's share leaves
with it (the cost engine's per-pod annotations are the durable record of money).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from gpu_steward.policy.idle_model import Decision, Hold, Phase
from gpu_steward.policy.timeparse import as_utc


@dataclass(frozen=True)
class IdleSummary:
    watched: int = 0
    active: int = 0
    unknown: int = 0
    idle: int = 0  # idle now (Idle + Warned + WouldSuspend)
    warned: int = 0  # warning given this episode (Warned + WouldSuspend)
    suspended: int = 0
    would_suspend: int = 0
    exempt: int = 0
    snoozed: int = 0
    reclaimed_gpu_hours: Decimal = Decimal(0)
    reclaimed_cost: Decimal = Decimal(0)
    would_save_gpu_hours: Decimal = Decimal(0)
    would_save_cost: Decimal = Decimal(0)
    idle_gpus: int = 0  # GPUs held by idle workloads right now (for the "GPUs idle" gauge)

    def as_status(self, dry_run: bool) -> dict[str, Any]:
        """The IdlePolicy ``status`` fields this summary fills (camelCase, Money as strings)."""
        return {
            "mode": "DryRun" if dry_run else "Enforcing",
            "watched": self.watched,
            "active": self.active,
            "unknown": self.unknown,
            "idle": self.idle,
            "warned": self.warned,
            "suspended": self.suspended,
            "reclaimedGPUHours": str(self.reclaimed_gpu_hours),
            "reclaimedCost": str(self.reclaimed_cost),
            "wouldSuspend": self.would_suspend,
            "wouldSaveGPUHours": str(self.would_save_gpu_hours),
            "wouldSaveCost": str(self.would_save_cost),
        }


_HOURS = Decimal("0.01")
_MONEY = Decimal("0.01")


def _q(value: Decimal, step: Decimal) -> Decimal:
    return value.quantize(step, rounding=ROUND_HALF_UP)


def _gpu_hours(gpus: int, since: datetime, now: datetime) -> Decimal:
    seconds = max((now - as_utc(since)).total_seconds(), 0.0)
    return Decimal(gpus) * Decimal(str(seconds)) / 3600


def summarize(decisions: Iterable[Decision], now: datetime, price_per_gpu_hour: Decimal) -> IdleSummary:
    """Counts and GPU-hour/money totals; a decision's own ``gpu_hour_price`` wins over the default."""
    now = as_utc(now)
    counts = dict.fromkeys(
        ("watched", "active", "unknown", "idle", "warned", "suspended", "would_suspend", "exempt", "snoozed"), 0
    )
    idle_gpus = 0
    reclaimed_h = reclaimed_c = would_h = would_c = Decimal(0)
    for d in decisions:
        st = d.state
        price = d.gpu_hour_price if d.gpu_hour_price is not None else price_per_gpu_hour
        counts["watched"] += 1
        if d.hold in (Hold.EXEMPT_SELECTOR, Hold.EXEMPT_UNTIL):
            counts["exempt"] += 1
        if d.hold is Hold.SNOOZED:
            counts["snoozed"] += 1
        phase = st.phase
        if phase is Phase.ACTIVE:
            counts["active"] += 1
        elif phase is Phase.UNKNOWN:
            counts["unknown"] += 1
        elif phase is Phase.SUSPENDED:
            counts["suspended"] += 1
        if phase in (Phase.IDLE, Phase.WARNED, Phase.WOULD_SUSPEND):
            counts["idle"] += 1
            idle_gpus += d.gpus
        if phase in (Phase.WARNED, Phase.WOULD_SUSPEND) and st.warn.done_at is not None:
            counts["warned"] += 1
        if phase is Phase.WOULD_SUSPEND:
            counts["would_suspend"] += 1
        r = Decimal(str(st.reclaimed_gpu_hours))
        if phase is Phase.SUSPENDED and st.suspend.done_at is not None:
            r += _gpu_hours(st.suspended_gpus, st.suspend.done_at, now)
        w = Decimal(str(st.would_save_gpu_hours))
        if st.would_suspend_at is not None:
            w += _gpu_hours(st.would_suspend_gpus, st.would_suspend_at, now)
        reclaimed_h += r
        reclaimed_c += r * price
        would_h += w
        would_c += w * price
    return IdleSummary(
        **counts,
        reclaimed_gpu_hours=_q(reclaimed_h, _HOURS),
        reclaimed_cost=_q(reclaimed_c, _MONEY),
        would_save_gpu_hours=_q(would_h, _HOURS),
        would_save_cost=_q(would_c, _MONEY),
        idle_gpus=idle_gpus,
    )
