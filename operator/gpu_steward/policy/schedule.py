"""Enforcement windows of an IdlePolicy: cron start + duration, in a time zone (pure).

``spec.schedule = {timeZone: "Europe/Berlin", windows: [{cron: "0 20 * * 1-5", duration: "11h"}]}``
means: enforce from 20:00 Berlin time on weekdays for 11 hours. The cron is evaluated in the policy's
time zone (``zoneinfo``), so a window follows daylight-saving shifts the way people read it.

- ``in_window(windows, tz, now)``: no windows = always enforce (no schedule). A window whose latest
  start is ≤ now < start + duration is open.
- ``current_window(...)`` gives the open window's (start, end) (latest end if several overlap).
- ``validate_schedule(tz, windows)`` returns errors naming the field (``spec.schedule.windows[1].cron``);
  the api parse layer calls it, the operator marks the policy Invalid with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from gpu_steward.policy.timeparse import as_utc


@dataclass(frozen=True)
class Window:
    cron: str
    duration: timedelta


def _zone(tz: str | None) -> ZoneInfo | None:
    """The zone, or None for UTC/absent. Raises ValueError for an unknown name."""
    if not tz or tz.upper() == "UTC":
        return None
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc


def validate_schedule(tz: str | None, windows: Sequence[Window], field: str = "spec.schedule") -> list[str]:
    """Every problem, each naming its field; empty when the schedule is usable."""
    errors: list[str] = []
    try:
        _zone(tz)
    except ValueError as exc:
        errors.append(f"{field}.timeZone: {exc}")
    for i, w in enumerate(windows):
        where = f"{field}.windows[{i}]"
        if not isinstance(w.cron, str) or not w.cron.strip():
            errors.append(f"{where}.cron: empty")
        elif len(w.cron.split()) != 5:
            errors.append(f"{where}.cron: {w.cron!r} must have 5 fields (minute hour day-of-month month day-of-week)")
        elif not croniter.is_valid(w.cron):
            errors.append(f"{where}.cron: {w.cron!r} is not a valid cron expression")
        if w.duration <= timedelta(0):
            errors.append(f"{where}.duration: must be positive")
    return errors


def _local(tz: str | None, now: datetime) -> datetime | None:
    """``now`` in the schedule's time zone (cron fields are local); None for an unknown zone."""
    try:
        zone = _zone(tz)
    except ValueError:
        return None
    return as_utc(now).astimezone(zone) if zone is not None else as_utc(now)


def current_window(windows: Sequence[Window], tz: str | None, now: datetime) -> tuple[datetime, datetime] | None:
    """(start, end) in UTC of the open window at ``now``, or None. Invalid entries are skipped."""
    local_now = _local(tz, now)
    if local_now is None:
        return None
    now = as_utc(now)
    best: tuple[datetime, datetime] | None = None
    for w in windows:
        if w.duration <= timedelta(0) or not croniter.is_valid(w.cron):
            continue
        # Start the search a second after now so that a window starting exactly now counts.
        it = croniter(w.cron, local_now + timedelta(seconds=1))
        start = as_utc(it.get_prev(datetime))
        end = start + w.duration
        if start <= now < end and (best is None or end > best[1]):
            best = (start, end)
    return best


def in_window(windows: Sequence[Window], tz: str | None, now: datetime) -> bool:
    """Whether the policy enforces at ``now``. No windows: always (a policy without a schedule)."""
    if not windows:
        return True
    return current_window(windows, tz, now) is not None


def next_window_start(windows: Sequence[Window], tz: str | None, now: datetime) -> datetime | None:
    """When the next window opens (UTC), for messages like "enforcement resumes at ..."."""
    local_now = _local(tz, now)
    if local_now is None:
        return None
    now = as_utc(now)
    starts = [
        as_utc(croniter(w.cron, local_now).get_next(datetime))
        for w in windows
        if w.duration > timedelta(0) and croniter.is_valid(w.cron)
    ]
    return min(starts) if starts else None


__all__ = ["Window", "current_window", "in_window", "next_window_start", "validate_schedule"]
