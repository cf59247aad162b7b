from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gpu_steward.policy.schedule import Window, current_window, in_window, next_window_start, validate_schedule

NIGHTS = [Window("0 20 * * 1-5", timedelta(hours=11))]  # weekdays 20:00 → 07:00 next morning


def test_no_windows_means_always():
    assert in_window([], None, datetime(2026, 1, 1, tzinfo=UTC))


def test_window_in_a_time_zone():
    # Monday 2 March 2026; Berlin is UTC+1 in winter.
    assert not in_window(NIGHTS, "Europe/Berlin", datetime(2026, 3, 2, 18, 59, tzinfo=UTC))  # 19:59 Berlin
    assert in_window(NIGHTS, "Europe/Berlin", datetime(2026, 3, 2, 19, 0, tzinfo=UTC))  # 20:00 Berlin: opens
    assert in_window(NIGHTS, "Europe/Berlin", datetime(2026, 3, 3, 5, 59, tzinfo=UTC))  # 06:59 Berlin Tuesday
    assert not in_window(NIGHTS, "Europe/Berlin", datetime(2026, 3, 3, 6, 0, tzinfo=UTC))  # 07:00: closed
    # The same instant read in UTC is a different answer: the zone matters.
    assert not in_window(NIGHTS, "UTC", datetime(2026, 3, 2, 19, 30, tzinfo=UTC))


def test_window_follows_daylight_saving():
    # Berlin switches to UTC+2 on 29 March 2026: 20:00 local is then 18:00 UTC.
    assert in_window(NIGHTS, "Europe/Berlin", datetime(2026, 3, 30, 18, 0, tzinfo=UTC))
    assert not in_window(NIGHTS, "Europe/Berlin", datetime(2026, 3, 30, 17, 59, tzinfo=UTC))


def test_weekend_window_spanning_days_and_current_window_bounds():
    weekend = [Window("0 0 * * 6", timedelta(days=2))]
    sunday = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    assert current_window(weekend, None, sunday) == (
        datetime(2026, 3, 7, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 9, 0, 0, tzinfo=UTC),
    )
    assert not in_window(weekend, None, datetime(2026, 3, 9, 0, 0, tzinfo=UTC))
    assert next_window_start(weekend, None, datetime(2026, 3, 9, tzinfo=UTC)) == datetime(2026, 3, 14, tzinfo=UTC)


def test_validation_names_the_field():
    errors = validate_schedule(
        "Mars/Olympus", [Window("0 20 * * 1-5", timedelta(hours=1)), Window("61 * * * *", timedelta(0))]
    )
    assert any(e.startswith("spec.schedule.timeZone:") for e in errors)
    assert any(e.startswith("spec.schedule.windows[1].cron:") for e in errors)
    assert any(e.startswith("spec.schedule.windows[1].duration:") for e in errors)
    assert not any("windows[0]" in e for e in errors)
    assert validate_schedule("Europe/Berlin", NIGHTS) == []
    assert validate_schedule(None, [Window("* * * * * *", timedelta(hours=1))])  # 6 fields refused


def test_invalid_schedule_never_opens_a_window():
    assert not in_window([Window("not a cron", timedelta(hours=1))], None, datetime(2026, 1, 1, tzinfo=UTC))
    assert not in_window(NIGHTS, "Mars/Olympus", datetime(2026, 3, 2, 21, 0, tzinfo=UTC))
