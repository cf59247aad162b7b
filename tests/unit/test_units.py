"""The one format of durations, money, quantities and timestamps, and their parsers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpu_steward import units


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("7d", timedelta(days=7)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("0s", timedelta(0)),
        ("120m", timedelta(hours=2)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert units.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1.5h", "h", "30", "1m1h", "-5m", "1w", " 5m", "5m ", "1H", "100000d"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        units.parse_duration(text)


def test_parse_duration_rejects_non_strings() -> None:
    with pytest.raises(ValueError):
        units.parse_duration(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=7), "7d"),
        (timedelta(days=1, seconds=1), "1d1s"),
        (timedelta(seconds=59, microseconds=999999), "59s"),
    ],
)
def test_format_duration(value: timedelta, expected: str) -> None:
    assert units.format_duration(value) == expected


def test_format_duration_rejects_negative() -> None:
    with pytest.raises(ValueError):
        units.format_duration(timedelta(seconds=-1))


@given(st.integers(min_value=0, max_value=36500 * 86400))
def test_duration_round_trip(seconds: int) -> None:
    text = units.format_duration(timedelta(seconds=seconds))
    assert re.fullmatch(units.DURATION_PATTERN, text)
    assert units.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "expected"), [("1500", Decimal(1500)), ("12.50", Decimal("12.5")), ("0.0001", Decimal("0.0001"))]
)
def test_parse_money(text: str, expected: Decimal) -> None:
    assert units.parse_money(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "1.", ".5", "1.23456", "1e3", "12,50", "USD 5", "NaN", "1_000"])
def test_parse_money_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid amount"):
        units.parse_money(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal(1500), "1500.00"),
        (Decimal("12.5"), "12.50"),
        (Decimal("0.12345"), "0.1234"),
        (Decimal("0.12355"), "0.1236"),
        (3, "3.00"),
    ],
)
def test_format_money(value: Decimal, expected: str) -> None:
    assert units.format_money(value) == expected


@pytest.mark.parametrize("value", [Decimal(-1), Decimal("NaN"), Decimal("Infinity")])
def test_format_money_rejects(value: Decimal) -> None:
    with pytest.raises(ValueError):
        units.format_money(value)


@given(st.decimals(min_value=0, max_value=10**12, places=4, allow_nan=False, allow_infinity=False))
def test_money_round_trip(value: Decimal) -> None:
    text = units.format_money(value)
    assert re.fullmatch(units.MONEY_PATTERN, text)
    assert units.parse_money(text) == value


@pytest.mark.parametrize(
    ("value", "expected"), [(Decimal("12.50"), "12.5"), (3, "3"), (0.1, "0.1"), (Decimal("2.00005"), "2")]
)
def test_format_quantity(value: Decimal, expected: str) -> None:
    assert units.format_quantity(value) == expected
    assert re.fullmatch(units.QUANTITY_PATTERN, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T21:00:00Z", datetime(2026, 11, 26, 21, tzinfo=UTC)),
        ("2026-11-26T22:00:00+01:00", datetime(2026, 11, 26, 21, tzinfo=UTC)),
        ("2026-11-26T16:30:00-0430", datetime(2026, 11, 26, 21, tzinfo=UTC)),
        ("2026-11-26t21:00:00.123456789z", datetime(2026, 11, 26, 21, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    parsed = units.parse_time(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["2026-11-26T21:00:00", "2026-11-26", "2026-13-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "soon"]
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        units.parse_time(text)


def test_format_time() -> None:
    value = datetime(2026, 11, 26, 22, 0, 0, 500, tzinfo=timezone(timedelta(hours=1)))
    assert units.format_time(value) == "2026-11-26T21:00:00Z"
    with pytest.raises(ValueError):
        units.format_time(datetime(2026, 1, 1))
