"""When each source is polled next: its interval, the feed's own limits, backoff after failures."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from .config import SourceConfig
from .models import SourceState

MAX_BACKOFF = 24 * 3600.0


def next_poll_after_success(source: SourceConfig, state: SourceState, max_age: int | None,
                            now: datetime) -> datetime:
    interval = source.interval
    asked = max(filter(None, (state.min_interval, max_age)), default=0)
    interval = max(interval, min(asked, MAX_BACKOFF))
    return now + timedelta(seconds=interval * random.uniform(0.9, 1.1))


def next_poll_after_failure(source: SourceConfig, state: SourceState, now: datetime) -> datetime:
    """Exponential backoff with jitter, capped at a day; Retry-After wins when later."""
    delay = min(source.interval * 2 ** min(state.errors - 1, 20), MAX_BACKOFF)
    when = now + timedelta(seconds=delay * random.uniform(0.8, 1.2))
    if state.retry_after and state.retry_after > when:
        return state.retry_after
    return when
