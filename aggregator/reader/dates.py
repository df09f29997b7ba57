"""An item's dates: feedparser's parsed values, read again where it misreads a form real feeds write.

feedparser reads `2020/1/10 14:33:00` (year/month/day with slashes, as some
CMSs write pubDate) as 1 December 2020 at midnight, whatever the day and time.
Such a text is read here instead (with AM/PM if it has one): UTC unless it
names a zone as Z, GMT, UTC or an offset; missing when it names no real day,
or a zone otherwise (EST). Every other text keeps feedparser's reading.
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import datetime, timedelta, timezone

EARLIEST_TRUSTED = datetime(1990, 1, 1, tzinfo=timezone.utc)
FUTURE_SLACK = timedelta(days=1)

_SLASHED = re.compile(r"\s*(\d{4})/(\d{1,2})/(\d{1,2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AP]M)?)?"
                      r"\s*(Z|GMT|UTC|[+-]\d{2}:?\d{2})?\s*$", re.I)
_SLASHED_START = re.compile(r"\s*\d{4}/\d{1,2}/\d{1,2}")


def parsed_time(node: dict, key: str) -> time.struct_time | None:
    """node[key], a feedparser `*_parsed` value (UTC), or the text it came from read again when slashed."""
    text = dict.get(node, key.removesuffix("_parsed"))  # dict.get: feedparser answers one key with another
    if isinstance(text, str) and "/" in text and _SLASHED_START.match(text):
        match = _SLASHED.match(text)
        return _slashed(match) if match else None  # a zone named otherwise: missing, not 1 December
    return dict.get(node, key)


def trusted_date(node: dict, keys: tuple[str, ...], now: datetime) -> datetime | None:
    """The first of the keys' dates that is trustworthy: not before 1990, not more than a day ahead."""
    for key in keys:
        parsed = parsed_time(node, key)
        if not parsed:
            continue
        try:
            when = datetime.fromtimestamp(calendar.timegm(parsed), tz=timezone.utc)
        except (OverflowError, ValueError, OSError):
            continue
        if EARLIEST_TRUSTED <= when <= now + FUTURE_SLACK:
            return when
    return None


def _slashed(match: re.Match) -> time.struct_time | None:
    year, month, day, hour, minute, second, half, zone = match.groups()
    hour = int(hour or 0)
    if half and not 1 <= hour <= 12:
        return None
    if half:
        hour = hour % 12 + (12 if half.upper() == "PM" else 0)
    try:
        when = datetime(int(year), int(month), int(day), hour, int(minute or 0), int(second or 0),
                        tzinfo=timezone.utc)
    except ValueError:  # no such day or time
        return None
    if zone and zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        when -= offset if zone[0] == "+" else -offset
    return when.timetuple()
