"""Parses human durations such as 90s, 30m, 2h, 1d or 1h30m."""

from __future__ import annotations

import re
from datetime import timedelta

from .errors import BadInput

_PART = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned or _PART.sub("", cleaned):
        raise BadInput(f"{text!r} is not a duration like 90s, 30m, 2h, 1d or 1h30m")
    total = timedelta()
    try:
        for amount, unit in _PART.findall(cleaned):
            total += timedelta(**{_UNITS[unit]: int(amount)})
    except (OverflowError, ValueError) as e:  # past timedelta's range, or int()'s digit limit
        raise BadInput(f"{text[:40]!r} is far too long a duration") from e
    if total <= timedelta(0):
        raise BadInput(f"{text!r}: a duration must be positive")
    return total
