"""Sizes and durations as people write them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aglacier.units import GiB, KiB, MiB, format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8MiB", 8 * MiB),
        ("8 MiB", 8 * MiB),
        ("8mib", 8 * MiB),
        ("1GiB", GiB),
        ("1.5KiB", 1536),
        ("5MB", 5_000_000),
        ("0", 0),
        ("1048576", MiB),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_bare_number_uses_the_given_unit() -> None:
    assert parse_size("8", bare_unit=MiB) == 8 * MiB
    assert parse_size("8B", bare_unit=MiB) == 8


@pytest.mark.parametrize("text", ["", "eight", "8 parsecs", "-1MiB", "1e3"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text)[1:-1] or "size"):
        parse_size(text)


@given(st.integers(min_value=0, max_value=1 << 50))
def test_format_size_round_trips_at_its_precision(n: int) -> None:
    text = format_size(n)
    back = parse_size(text.replace(" ", ""))
    # One decimal: within 5 % (or exact below 1 KiB).
    assert abs(back - n) <= max(n * 0.05, 0 if n < KiB else KiB)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        ("0", timedelta(0)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "seven days", "7x", "d7", "7d junk"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=10**8))
def test_format_duration_round_trips_whole_minutes(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    back = parse_duration(format_duration(delta))
    precision = 1 if seconds < 3600 else 60
    assert abs((back - delta).total_seconds()) < precision
