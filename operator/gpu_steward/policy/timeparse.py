"""RFC 3339 timestamps in and out, always timezone-aware UTC (pure).

Annotations such as ``gpusteward.dev/snooze-until`` are typed by people; a value without an offset
is ambiguous (whose local time?), so it is refused rather than guessed.
"""

from __future__ import annotations

from datetime import UTC, datetime


class TimeParseError(ValueError):
    """A timestamp that is not RFC 3339 with an offset."""


def parse_rfc3339(text: str) -> datetime:
    """Parse ``2026-01-02T03:04:05Z`` / ``...+02:00`` into an aware UTC datetime; raise TimeParseError."""
    raw = text.strip()
    if not raw:
        raise TimeParseError("empty timestamp")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise TimeParseError(f"{raw!r} is not an RFC 3339 timestamp") from exc
    if value.tzinfo is None or value.utcoffset() is None:
        raise TimeParseError(f"{raw!r} has no time zone offset (add Z or +hh:mm)")
    return value.astimezone(UTC)


def format_rfc3339(value: datetime) -> str:
    """Aware datetime to ``YYYY-MM-DDTHH:MM:SSZ`` (seconds precision, UTC)."""
    return as_utc(value).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_utc(value: datetime) -> datetime:
    """Normalise an aware datetime to UTC; a naive one is taken as UTC (the clock we inject is UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
