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


def test_coverage_is_the_span_the_samples_cover_not_the_window() -> None:
    w: Window[str] = Window(300)
    w.add("g", 1000, 0.0, 1)  # the agent just started: one sample in a 300 s window
    s = w.stats("g", 1000, max_gap=3)
    assert s is not None and s.covered_from == 1000 and s.covered_seconds == 0.0
    for ts in (1001, 1002, 1003):
        w.add("g", ts, 0.0, 1)
    s = w.stats("g", 1003, max_gap=3)
    assert s is not None and s.covered_seconds == 3.0


def test_a_sample_without_utilization_or_a_pause_breaks_the_coverage() -> None:
    w: Window[str] = Window(300)
    for ts, util in [(1000, 0.0), (1001, 0.0), (1002, None), (1003, 0.0), (1004, 0.0)]:
        w.add("g", ts, util, 1)
    s = w.stats("g", 1004, max_gap=3)
    assert s is not None and (s.covered_from, s.covered_seconds) == (1003, 1.0)
    w.add("g", 1100, 0.0, 1)  # sampling paused for 96 s (agent stalled)
    s = w.stats("g", 1100, max_gap=3)
    assert s is not None and (s.covered_from, s.covered_seconds) == (1100, 0.0)
    w.add("g", 1101, None, 1)
    s = w.stats("g", 1101, max_gap=3)
    assert s is not None and s.covered_from is None and s.covered_seconds == 0.0
