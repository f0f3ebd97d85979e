"""Sizes and durations as people write them: ``8MiB``, ``1.5GB``, ``7d``, ``12h``."""

from __future__ import annotations

import re
from datetime import timedelta

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": KiB,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": MiB,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": GiB,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": TiB,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def parse_size(text: str, *, bare_unit: int = 1) -> int:
    """Parse ``"8MiB"``, ``"5 GB"`` or ``"1048576"`` into bytes.

    A bare number is multiplied by ``bare_unit`` (the original ``-b`` option
    counts MiB). Raises ``ValueError`` with a message fit for the user.
    """
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (examples: 8MiB, 64 MiB, 1GiB)")
    number, unit = match.groups()
    factor = bare_unit if unit == "" else _SIZE_UNITS.get(unit.lower())
    if factor is None:
        raise ValueError(f"{text!r}: unknown unit {unit!r} (use B, KiB, MiB, GiB, TiB, KB, MB, GB)")
    # "1.3GiB" is not a whole number of bytes: round rather than refuse.
    return round(float(number) * factor)


def format_size(n: int) -> str:
    """``1536`` → ``"1.5 KiB"``; exact powers print without decimals."""
    if n < KiB:
        return f"{n} B"
    for unit, factor in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= factor:
            value = n / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def parse_duration(text: str) -> timedelta:
    """Parse ``"7d"``, ``"12h"``, ``"1d12h"``, ``"90m"`` or ``"0"``."""
    compact = text.strip().lower().replace(" ", "")
    if compact in ("0", ""):
        if compact == "":
            raise ValueError("an empty duration (examples: 7d, 12h, 1d12h, 0)")
        return timedelta(0)
    pos = 0
    seconds = 0.0
    for match in _DURATION_RE.finditer(compact):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(compact):
        raise ValueError(f"{text!r} is not a duration (examples: 7d, 12h, 1d12h, 30m, 0)")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """``timedelta(days=1, hours=2)`` → ``"1d2h"`` (seconds dropped past an hour)."""
    total = int(delta.total_seconds())
    if total <= 0:
        return "0s"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m")]
    if total < 3600:
        parts.append((seconds, "s"))
    return "".join(f"{v}{u}" for v, u in parts if v) or "0s"
