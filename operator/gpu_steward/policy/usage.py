"""What a utilization source reports for one workload over one window (pure data).

Sources (``gpu_steward.sources``) produce ``Usage``; the idle engine consumes it. ``status`` is
``"ok"`` only when there is at least one real, fresh sample; everything else — no agent answer,
a timeout, a Prometheus error, a pod the agent does not know — is ``"unknown"`` with a reason.
Invariant 1 of the design ("no data is not idle") starts here: there is no way to say "idle"
without numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from gpu_steward.policy.timeparse import as_utc

UsageStatus = Literal["ok", "unknown"]


@dataclass(frozen=True)
class Usage:
    """GPU utilization (percent, 0..100) of a workload over ``window_seconds`` ending at ``last_sample_at``."""

    status: UsageStatus
    util_mean: float | None = None
    util_max: float | None = None
    samples: int = 0
    last_sample_at: datetime | None = None
    window_seconds: float = 0.0
    reason: str = ""
    # The same workload measured on other idle signals (GraphicsActive, SMActive, TensorActive: percent),
    # where its GPUs give them; the figures above are GPUUtil. See select_signal.
    signals: tuple[tuple[str, Usage], ...] = ()

    @classmethod
    def unknown(cls, reason: str) -> Usage:
        return cls(status="unknown", reason=reason)

    @classmethod
    def ok(
        cls,
        util_mean: float,
        util_max: float | None,
        samples: int,
        last_sample_at: datetime,
        window_seconds: float,
    ) -> Usage:
        return cls("ok", util_mean, util_max, samples, last_sample_at, window_seconds)

    def usable(self, now: datetime, max_age: timedelta) -> str | None:
        """None when the numbers can be trusted at ``now``; otherwise why not (the unknown reason)."""
        if self.status != "ok":
            return self.reason or "utilization unknown"
        if self.util_mean is None or self.samples <= 0 or self.last_sample_at is None:
            return "no samples"
        if not all(math.isfinite(v) and 0 <= v <= 100 for v in (self.util_mean, self.util_max) if v is not None):
            # A negative, NaN or infinite "utilization" is no reading (a negative one would look idle).
            return f"impossible utilization reading {self.util_mean!r}"
        last, now = as_utc(self.last_sample_at), as_utc(now)
        if last > now + timedelta(seconds=5):
            return "sample is from the future (clock skew)"
        if now - last > max_age:
            return f"stale: last sample {int((now - last).total_seconds())}s old"
        return None


GPU_UTIL = "GPUUtil"


def with_signals(usage: Usage, signals: dict[str, Usage]) -> Usage:
    return replace(usage, signals=tuple(sorted(signals.items()))) if signals else usage


def select_signal(usage: Usage, signal: str) -> tuple[Usage, bool]:
    """The usage measured on ``signal``, and whether it fell back to GPUUtil because the GPUs cannot give it.

    A signal the source reports (even as unknown: stale, an error) is used as it is — never replaced by
    GPUUtil, which could read idle where the chosen signal has no data. Only an absent signal falls back.
    """
    if signal == GPU_UTIL:
        return usage, False
    for name, measured in usage.signals:
        if name == signal:
            return measured, False
    return usage, True


def merge_usages(parts: list[Usage]) -> Usage:
    """Combine the usages of a workload's pods: any unknown pod makes the workload unknown.

    A multi-pod workload is idle only if every pod is idle, so the mean is GPU-sample weighted and
    the max is the max; the window ends at the oldest pod's last sample (so staleness is honest).
    """
    if not parts:
        return Usage.unknown("no GPU pods")
    unknown = [p for p in parts if p.status != "ok" or p.util_mean is None or p.last_sample_at is None]
    if unknown:
        return Usage.unknown(unknown[0].reason or "utilization unknown")
    if len(parts) == 1:
        return parts[0]
    total = sum(max(p.samples, 1) for p in parts)
    mean = sum((p.util_mean or 0.0) * max(p.samples, 1) for p in parts) / total
    maxes = [p.util_max for p in parts if p.util_max is not None]
    last = min(p.last_sample_at for p in parts if p.last_sample_at is not None)
    return Usage.ok(
        util_mean=mean,
        util_max=max(maxes) if maxes else None,
        samples=sum(p.samples for p in parts),
        last_sample_at=last,
        window_seconds=min(p.window_seconds for p in parts),
    )
