"""What a feed asks of its pollers: the shortest interval (RSS ttl, sy:updatePeriod/Frequency) and the hours
and days to skip (RSS skipHours/skipDays). Pure: values and bytes in, values out."""

from __future__ import annotations

import re

UPDATE_PERIODS = {"hourly": 3600, "daily": 86400, "weekly": 604800, "monthly": 2592000, "yearly": 31536000}
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SKIP_HOURS = re.compile(rb"<skipHours\b[^>]*>(.*?)</skipHours\s*>", re.S | re.I)
_SKIP_DAYS = re.compile(rb"<skipDays\b[^>]*>(.*?)</skipDays\s*>", re.S | re.I)
_HOUR = re.compile(rb"<hour\b[^>]*>\s*(\d{1,2})\s*</hour", re.I)
_DAY = re.compile(rb"<day\b[^>]*>\s*([A-Za-z]+)\s*</day", re.I)


def ttl(minutes, update_period, update_frequency) -> int | None:
    """The shortest poll interval, in seconds, the feed asks for: its ttl (minutes) or its update period
    divided by its frequency; None when it asks for none."""
    asks = []
    try:
        if minutes:
            asks.append(int(float(minutes)) * 60)
    except (TypeError, ValueError):
        pass
    period = UPDATE_PERIODS.get(str(update_period or "").strip().lower())
    if period:
        try:
            frequency = max(1, int(update_frequency or 1))
        except (TypeError, ValueError):
            frequency = 1
        asks.append(period // frequency)
    return max(asks) if asks else None


def skips(body: bytes) -> dict:
    """RSS 2.0 skipHours/skipDays, read from the bytes: feedparser keeps only the last <hour> of them."""
    hours = _SKIP_HOURS.search(body)
    days = _SKIP_DAYS.search(body)
    return {
        "skip_hours": frozenset(int(h) for h in _HOUR.findall(hours.group(1)) if int(h) < 24) if hours else frozenset(),
        "skip_days": frozenset(d.decode().lower() for d in _DAY.findall(days.group(1))
                               if d.decode().lower() in DAY_NAMES) if days else frozenset(),
    }
