"""The one written format of each unit GPU Steward reads or writes, and the one parser of each.

- Duration: ``"90s"``, ``"15m"``, ``"2h"``, ``"1h30m"``, ``"7d"`` — days, hours, minutes, seconds in that order,
  each part optional but at least one present. No fractions, no weeks, no negative values.
- Money: a non-negative decimal string with at most four decimals, ``"1500"``, ``"12.50"``; the currency is
  carried beside it (ISO 4217 code, ``"USD"``), never inside the string.
- Quantity (GPU-hours and other non-negative amounts): the same decimal format as money.
- Time: RFC 3339 with a zone (``"2026-11-26T21:00:00Z"``); written back in UTC with a ``Z``.

The CRD schemas validate these with the patterns below; code parses them only through these functions, so
the schema and the code cannot disagree about what a value means. Every parser raises ``ValueError`` (never
anything else) with a message that quotes the bad value.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

# Go's RE2 (the apiserver) and Python's re both accept these; no look-arounds.
DURATION_PATTERN = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
MONEY_PATTERN = r"^[0-9]+(\.[0-9]{1,4})?$"
QUANTITY_PATTERN = MONEY_PATTERN
CURRENCY_PATTERN = r"^[A-Z]{3}$"
# The longest accepted duration string; keeps CEL cost estimates small and numbers sane.
DURATION_MAX_LENGTH = 32
MONEY_MAX_LENGTH = 24

_DURATION_RE = re.compile(DURATION_PATTERN)
_MONEY_RE = re.compile(MONEY_PATTERN)
_MONEY_QUANTUM = Decimal("0.0001")
_UNIT_SECONDS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
# timedelta's limit is 999999999 days; anything near it is a typo, not an intent.
MAX_DURATION = timedelta(days=36500)


def parse_duration(text: str) -> timedelta:
    """``"1h30m"`` -> ``timedelta(hours=1, minutes=30)``."""
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string like '15m' or '1h30m', got {text!r}")
    match = _DURATION_RE.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"invalid duration {text!r}: use days/hours/minutes/seconds like '90s', '15m', '1h30m', '7d'")
    seconds = 0
    for group, (_, unit_seconds) in zip(match.groups(), _UNIT_SECONDS, strict=True):
        if group:
            seconds += int(group[:-1]) * unit_seconds
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {text!r} is longer than {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The canonical string of a duration: largest units first, zero parts left out, ``"0s"`` for zero.

    Sub-second parts are truncated: the format has no fractions.
    """
    total = int(value.total_seconds())
    if total < 0:
        raise ValueError(f"duration must not be negative, got {value!r}")
    if total == 0:
        return "0s"
    parts: list[str] = []
    for unit, unit_seconds in _UNIT_SECONDS:
        count, total = divmod(total, unit_seconds)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_money(text: str) -> Decimal:
    """``"12.50"`` -> ``Decimal("12.50")``."""
    if not isinstance(text, str) or _MONEY_RE.fullmatch(text) is None:
        raise ValueError(f"invalid amount {text!r}: use a non-negative decimal with at most 4 decimals, like '12.50'")
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # unreachable after the pattern, kept so nothing else escapes
        raise ValueError(f"invalid amount {text!r}") from exc


def format_money(value: Decimal | int) -> str:
    """The canonical string of an amount: rounded half-even to 4 decimals, at least 2 shown (``"12.50"``)."""
    amount = Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"amount must be a finite non-negative number, got {value!r}")
    amount = amount.quantize(_MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)
    text = f"{amount:f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"{whole}.{frac}"


def parse_quantity(text: str) -> Decimal:
    """A non-negative amount such as GPU-hours, ``"12.5"``; same format as money."""
    return parse_money(text)


def format_quantity(value: Decimal | int | float) -> str:
    """The canonical string of a quantity: up to 4 decimals, trailing zeros dropped (``"12.5"``, ``"3"``)."""
    amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"quantity must be a finite non-negative number, got {value!r}")
    text = f"{amount.quantize(_MONEY_QUANTUM, rounding=ROUND_HALF_EVEN):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


_TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})$")


def parse_time(text: str) -> datetime:
    """An RFC 3339 timestamp with a zone -> an aware ``datetime`` in UTC.

    Accepts what the apiserver's ``date-time`` format accepts for zoned times, including nanosecond fractions
    (cut to microseconds) and ``+0100`` offsets. A timestamp without a zone is rejected: its meaning would
    depend on where the operator runs.
    """
    if not isinstance(text, str):
        raise ValueError(f"timestamp must be a string, got {text!r}")
    match = _TIME_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid timestamp {text!r}: use RFC 3339 with a zone, like '2026-11-26T21:00:00Z'")
    year, month, day, hour, minute, second, frac, zone = match.groups()
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    if zone in ("Z", "z"):
        offset = timedelta(0)
    else:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    try:
        local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=UTC)
        return local - offset
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"invalid timestamp {text!r}: {exc}") from exc


def format_time(value: datetime) -> str:
    """An aware ``datetime`` -> RFC 3339 in UTC with second precision, ``"2026-11-26T21:00:00Z"``."""
    if value.tzinfo is None:
        raise ValueError(f"timestamp must carry a time zone, got naive {value!r}")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
