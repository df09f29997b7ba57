"""When each source is polled next (SPEC §5.2): pure rules, no clock and no I/O of their own.

A successful poll schedules the next one at the interval the source deserves:
the configured `interval` is a target that adapts to how often the source
publishes, inside [interval/4, interval×8] clamped to [5m, 24h]; an interval
under 5m is used as written. Whatever the rule says, the feed's own `ttl`,
`sy:updatePeriod` or `Cache-Control: max-age` is a floor, and RSS
`skipHours`/`skipDays` move a poll out of the hours the feed asks us to skip.
A failed poll backs off exponentially up to a day; Retry-After wins when later.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from ..config import SourceConfig
from ..models import PublishingHistory, SourceState, SourceStatus

MIN_ADAPTIVE = 300.0  # under this a configured interval is used as written (tests, minute-by-minute feeds)
MAX_INTERVAL = 24 * 3600.0
MAX_BACKOFF = 24 * 3600.0
DAY = 24 * 3600.0
WEEK = 7 * DAY
SUCCESS_JITTER = 0.1  # ±10% so sources configured alike drift apart
FAILURE_JITTER = 0.2
RESUME_SPREAD = 5.0  # seconds over which overdue sources are spread after a start
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def interval_bounds(target: float) -> tuple[float, float]:
    """The range an adaptive interval stays in: [target/4, target×8] clamped to [5m, 24h]."""
    if target < MIN_ADAPTIVE:
        return target, target
    low = min(max(target / 4, MIN_ADAPTIVE), MAX_INTERVAL)
    high = max(min(target * 8, MAX_INTERVAL), MIN_ADAPTIVE)
    return low, high


def adaptive_interval(target: float, history: PublishingHistory, now: datetime) -> float:
    """The interval a source deserves from how often it publishes.

    Miniflux's weekly-count rule (one week divided by the entries of the last
    week) with one refinement: the entries are divided into the span they
    actually cover — the week, or the time since the source's oldest entry if
    shorter, but never under a day — so a new source whose feed shows only its
    last 20 hourly items is not mistaken for a slow one. No entries in the last
    week: the slowest allowed interval.
    """
    low, high = interval_bounds(target)
    if target < MIN_ADAPTIVE:
        return target
    if history.last_week <= 0:
        return high
    span = WEEK
    if history.oldest is not None:
        span = min(max((now - history.oldest).total_seconds(), DAY), WEEK)
    return min(max(span / history.last_week, low), high)


def feed_floor(state: SourceState, max_age: int | None) -> float:
    """The shortest interval the feed itself asks for (ttl, sy:updatePeriod, max-age), at most a day."""
    asked = max(state.min_interval or 0, max_age or 0)
    return min(float(asked), MAX_INTERVAL)


def next_poll_after_success(source: SourceConfig, state: SourceState, max_age: int | None,
                            history: PublishingHistory, now: datetime, rng=random) -> datetime:
    """Now plus the adaptive interval with jitter, the jitter kept inside the interval's bounds; never before
    the feed's floor, outside its skip hours."""
    floor = feed_floor(state, max_age)
    low, high = (max(bound, floor) for bound in interval_bounds(source.interval))
    interval = max(adaptive_interval(source.interval, history, now), floor)
    jittered = interval * rng.uniform(1 - SUCCESS_JITTER, 1 + SUCCESS_JITTER)
    delay = _mirrored(jittered, low, high) if low < high else max(jittered, floor)  # fixed: jitter above it
    return skip_forward(now + timedelta(seconds=delay), skip_hours(state), skip_days(state))


def _mirrored(value: float, low: float, high: float) -> float:
    """`value` folded back inside [low, high] at the bound it passed: jitter there stays spread, one way."""
    if value > high:
        value = 2 * high - value
    elif value < low:
        value = 2 * low - value
    return min(max(value, low), high)


def next_poll_after_failure(source: SourceConfig, state: SourceState, now: datetime, rng=random) -> datetime:
    """Exponential backoff with jitter from the configured interval, capped at a day; Retry-After wins when later.

    `state.errors` already counts this failure. A failing source is never given
    up on: only a 410 (handled by the caller) stops polling.
    """
    exponent = min(max(state.errors - 1, 0), 30)
    delay = min(source.interval * 2 ** exponent, MAX_BACKOFF)
    delay = min(delay * rng.uniform(1 - FAILURE_JITTER, 1 + FAILURE_JITTER), MAX_BACKOFF)
    when = now + timedelta(seconds=delay)
    if state.retry_after and state.retry_after > when:
        return state.retry_after
    return when


def resume_at(source: SourceConfig, state: SourceState | None, now: datetime, rng=random) -> datetime | None:
    """When a (re)started daemon first polls a source; None = not at all (disabled, or gone at this URL).

    A source keeps the next poll the store remembers, so a restart does not
    poll everything at once; overdue ones are spread over a few seconds. A
    new source, or one whose URL changed in the config, is polled now. A
    healthy source is not left waiting longer than its (possibly shortened)
    interval allows.
    """
    if not source.enabled:
        return None
    spread = timedelta(seconds=rng.uniform(0, min(source.interval / 2, RESUME_SPREAD)))
    if state is None or state.last_poll is None:
        return now + spread
    if state.configured_url is not None and state.configured_url != source.url:
        return now + spread
    if state.state == SourceStatus.GONE:
        return None
    due = state.next_poll or now
    if state.errors == 0:
        longest = max(interval_bounds(source.interval)[1], feed_floor(state, None)) * (1 + SUCCESS_JITTER)
        due = min(due, state.last_poll + timedelta(seconds=longest))
    if state.retry_after and state.retry_after > due:
        due = state.retry_after
    return due if due > now else now + spread


def skip_hours(state: SourceState) -> frozenset[int]:
    return frozenset(int(h) for h in (state.skip_hours or "").split() if h.isdigit() and int(h) < 24)


def skip_days(state: SourceState) -> frozenset[str]:
    return frozenset(d for d in (state.skip_days or "").split() if d in DAY_NAMES)


def skip_forward(when: datetime, hours: frozenset[int], days: frozenset[str]) -> datetime:
    """The first moment at or after `when` outside the feed's skipHours/skipDays (GMT, as RSS 2.0 says).

    A feed that skips every hour of the week is ignored rather than never polled.
    """
    if not hours and not days:
        return when
    when = when.astimezone(timezone.utc)
    candidate = when
    for _ in range(7 * 24 + 1):
        if candidate.hour not in hours and DAY_NAMES[candidate.weekday()] not in days:
            return candidate
        candidate = candidate.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return when
