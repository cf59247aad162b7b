"""The one interface every utilization source implements, and what it is asked about.

    class UtilizationSource(Protocol):
        async def fetch(self, pods: Sequence[PodRef], now: datetime, signals: Collection[str] = ()) -> dict[str, Usage]
        async def close(self) -> None

``fetch`` answers for every pod it is asked about, keyed by pod UID: a ``Usage`` with status ``ok`` and
numbers, or ``unknown`` with the reason (agent down, timeout, stale, not in the summary, Prometheus error).
It never raises for a data problem and never invents an idle reading (design invariant 1). ``signals`` names
the idle signals beyond GPUUtil (GraphicsActive, SMActive, TensorActive) that a policy asks for: a source
adds them to ``Usage.signals`` for the pods whose GPUs give them, and leaves them out elsewhere (the
caller then falls back to GPUUtil and says so). Callers pass ``signals`` only when it is not empty. A workload's
pods are combined with ``gpu_steward.policy.usage.merge_usages`` (any unknown pod → unknown workload).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gpu_steward.policy.usage import Usage, merge_usages

__all__ = ["PodRef", "Usage", "UtilizationSource", "merge_usages", "unknown_for"]


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str
    uid: str
    node: str | None = None  # spec.nodeName; decides which agent is asked


class UtilizationSource(Protocol):
    async def fetch(self, pods: Sequence[PodRef], now: datetime, signals: Collection[str] = ()) -> dict[str, Usage]: ...

    async def close(self) -> None: ...


def unknown_for(pods: Sequence[PodRef], reason: str) -> dict[str, Usage]:
    return {p.uid: Usage.unknown(reason) for p in pods}
