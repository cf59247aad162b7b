"""Shared builders for the idle-engine tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gpu_steward.policy.idle import IdleRules, Usage, WorkloadFacts

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def rules(**kw: object) -> IdleRules:
    base: dict[str, object] = {
        "util_threshold_percent": 5.0,
        "idle_for": timedelta(minutes=30),
        "startup_grace": timedelta(minutes=10),
        "notice_before": timedelta(minutes=15),
        "max_snooze": timedelta(hours=4),
        "max_exemption": timedelta(days=3),
        "dry_run": False,
    }
    base.update(kw)
    return IdleRules(**base)  # type: ignore[arg-type]


def idle(now: datetime, util: float = 0.5, window: float = 60.0) -> Usage:
    return Usage.ok(util_mean=util, util_max=util, samples=12, last_sample_at=now, window_seconds=window)


def busy(now: datetime) -> Usage:
    return Usage.ok(util_mean=60.0, util_max=95.0, samples=12, last_sample_at=now, window_seconds=60.0)


def facts(**kw: object) -> WorkloadFacts:
    base: dict[str, object] = {"started_at": T0 - timedelta(hours=1), "gpus": 4, "suspended": False}
    base.update(kw)
    return WorkloadFacts(**base)  # type: ignore[arg-type]
