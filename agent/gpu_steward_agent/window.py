"""Sliding-window statistics per series (a GPU or a pod container): mean/max utilization, memory, counts.

Timestamps are passed in (seconds since the epoch), never read from a clock here, so window maths is
tested with explicit times.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Stats:
    samples: int
    util_samples: int  # samples that carried a utilization figure
    util_mean: float | None
    util_max: float | None
    mem_last: int | None  # bytes held at the most recent sample that knew it
    mem_max: int | None
    first_at: float
    last_at: float
    # Start of the unbroken run of utilization samples that ends at the latest sample (None: the latest
    # sample carried no utilization). A sample without utilization, or a pause in sampling longer than
    # ``max_gap``, breaks the run: the time before it is not covered by data.
    covered_from: float | None = None

    @property
    def covered_seconds(self) -> float:
        return 0.0 if self.covered_from is None else max(self.last_at - self.covered_from, 0.0)


class Window(Generic[K]):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._series: dict[K, deque[tuple[float, float | None, int | None]]] = {}

    def add(self, key: K, ts: float, util: float | None, mem: int | None) -> None:
        self._series.setdefault(key, deque()).append((ts, util, mem))

    def prune(self, now: float) -> list[K]:
        """Drop samples older than the window; returns the keys that have no samples left (and drops them)."""
        cutoff = now - self.seconds
        gone = []
        for key, series in self._series.items():
            while series and series[0][0] < cutoff:
                series.popleft()
            if not series:
                gone.append(key)
        for key in gone:
            del self._series[key]
        return gone

    def has(self, key: K) -> bool:
        return key in self._series

    def keys(self) -> list[K]:
        return list(self._series)

    def stats(self, key: K, now: float, max_gap: float | None = None) -> Stats | None:
        cutoff = now - self.seconds
        series = [s for s in self._series.get(key, ()) if cutoff <= s[0] <= now]
        if not series:
            return None
        utils = [u for _, u, _ in series if u is not None]
        mems = [m for _, _, m in series if m is not None]
        covered_from: float | None = None
        previous: float | None = None
        for ts, util, _ in series:
            if util is None or (previous is not None and max_gap is not None and ts - previous > max_gap):
                covered_from = None
            if util is not None and covered_from is None:
                covered_from = ts
            previous = ts
        return Stats(
            samples=len(series),
            util_samples=len(utils),
            util_mean=sum(utils) / len(utils) if utils else None,
            util_max=max(utils) if utils else None,
            mem_last=mems[-1] if mems else None,
            mem_max=max(mems) if mems else None,
            first_at=series[0][0],
            last_at=series[-1][0],
            covered_from=covered_from,
        )
