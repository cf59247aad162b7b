from __future__ import annotations

import pytest

from gpu_steward_agent.window import Window


def test_mean_max_and_memory_over_the_window() -> None:
    w: Window[str] = Window(60)
    for ts, util, mem in [(1000, 10.0, 100), (1010, 30.0, 300), (1020, None, None), (1030, 50.0, 200)]:
        w.add("g", ts, util, mem)
    s = w.stats("g", 1030)
    assert s is not None
    assert (s.samples, s.util_samples) == (4, 3)
    assert s.util_mean == pytest.approx(30.0)
    assert s.util_max == 50.0
    assert (s.mem_last, s.mem_max) == (200, 300)
    assert (s.first_at, s.last_at) == (1000, 1030)


def test_old_samples_leave_the_window() -> None:
    w: Window[str] = Window(60)
    w.add("g", 1000, 90.0, 1)
    w.add("g", 1050, 10.0, 1)
    s = w.stats("g", 1070)  # 1000 is older than 1070 - 60
    assert s is not None and (s.samples, s.util_max) == (1, 10.0)
    assert w.prune(1070) == []
    assert w.prune(1200) == ["g"]
    assert w.stats("g", 1200) is None
    assert w.keys() == []


def test_unknown_only_series_has_no_utilization() -> None:
    w: Window[str] = Window(60)
    w.add("g", 1, None, None)
    s = w.stats("g", 1)
    assert s is not None and s.util_mean is None and s.util_max is None and s.samples == 1
