"""The interval rule (SPEC §5.2) over synthetic publishing histories kept in a real store, and backoff."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from aggregator.config import SourceConfig
from aggregator.models import PublishingHistory, SourceState
from aggregator.run.schedule import (adaptive_interval, interval_bounds, next_poll_after_failure,
                                 next_poll_after_success, resume_at, skip_forward)
from aggregator.store import Store, story_uid

NOW = datetime(2024, 3, 4, 12, 0, tzinfo=timezone.utc)  # a Monday
MIN, HOUR, DAY = 60, 3600, 86400


class Midpoint:
    """An rng whose jitter is always the middle of its range: the rule without the noise."""

    @staticmethod
    def uniform(a: float, b: float) -> float:
        return (a + b) / 2


def source(interval: float = 30 * MIN, **kwargs) -> SourceConfig:
    return SourceConfig("s", "http://example.org/feed", 0, interval=interval, **kwargs)


@pytest.fixture
def history(tmp_path):
    """Writes a source's items, dated as given, into a real store; returns its PublishingHistory at NOW."""
    store = Store(tmp_path / "state.db")

    def make(dates: list[datetime]) -> PublishingHistory:
        with store.transaction() as db:
            for n, when in enumerate(dates):
                story = Store.create_story(db, story_uid("s", f"k{n}"), when)
                Store.insert_item(db, story, "s", {
                    "key": f"k{n}", "title": f"item {n}", "published": when, "updated": when, "first_seen": when,
                    "raw_hash": str(n)})
        with store.transaction() as db:
            return Store.publishing_history(db, "s", NOW)

    yield make
    store.close()


def every(step: timedelta, over: timedelta) -> list[datetime]:
    count = int(over / step)
    return [NOW - step * n for n in range(count)]


def test_an_hourly_publisher_is_polled_hourly(history):
    h = history(every(timedelta(hours=1), timedelta(days=30)))
    assert h.last_week == 168
    assert adaptive_interval(30 * MIN, h, NOW) == pytest.approx(HOUR)


def test_a_busy_publisher_is_polled_no_faster_than_a_quarter_of_the_target(history):
    h = history(every(timedelta(minutes=2), timedelta(days=8)))
    assert adaptive_interval(30 * MIN, h, NOW) == pytest.approx(7.5 * MIN)


def test_a_weekly_publisher_is_polled_at_the_slowest_allowed_rate(history):
    h = history(every(timedelta(days=7), timedelta(days=70)))
    assert h.last_week == 1
    assert adaptive_interval(30 * MIN, h, NOW) == 4 * HOUR  # 30m × 8


def test_a_silent_source_is_polled_at_the_slowest_allowed_rate(history):
    h = history([NOW - timedelta(days=40), NOW - timedelta(days=60)])
    assert h.last_week == 0
    assert adaptive_interval(30 * MIN, h, NOW) == 4 * HOUR


def test_a_new_source_showing_only_its_last_20_hourly_items_is_not_taken_for_a_slow_one(history):
    h = history(every(timedelta(hours=1), timedelta(hours=20)))
    assert adaptive_interval(30 * MIN, h, NOW) == pytest.approx(DAY / 20)  # 72 minutes, not 8.4 hours


def test_a_single_fresh_item_does_not_make_a_source_look_busy(history):
    h = history([NOW - timedelta(minutes=10)])
    assert adaptive_interval(30 * MIN, h, NOW) == 4 * HOUR


def test_items_dated_in_the_future_do_not_count(history):
    h = history([NOW + timedelta(hours=n) for n in range(1, 20)])
    assert h.last_week == 0


def test_bounds_are_clamped_to_five_minutes_and_a_day():
    assert interval_bounds(30 * MIN) == (7.5 * MIN, 4 * HOUR)
    assert interval_bounds(10 * MIN) == (5 * MIN, 80 * MIN)
    assert interval_bounds(12 * HOUR) == (3 * HOUR, DAY)
    assert interval_bounds(7 * DAY) == (DAY, DAY)


@pytest.mark.parametrize("target", [0.3, 30, 4 * MIN])
def test_an_interval_under_five_minutes_is_used_as_written(history, target):
    busy = history(every(timedelta(minutes=1), timedelta(days=2)))
    assert adaptive_interval(target, busy, NOW) == target
    assert adaptive_interval(target, PublishingHistory(), NOW) == target
    nxt = next_poll_after_success(source(target), SourceState("s"), None, busy, NOW, Midpoint)
    assert nxt == NOW + timedelta(seconds=target)


def test_the_feeds_ttl_and_max_age_are_floors(history):
    hourly = history(every(timedelta(hours=1), timedelta(days=30)))
    with_ttl = SourceState("s", min_interval=2 * HOUR)
    assert next_poll_after_success(source(), with_ttl, None, hourly, NOW, Midpoint) == NOW + timedelta(hours=2)
    assert next_poll_after_success(source(), SourceState("s"), 3 * HOUR, hourly, NOW, Midpoint) == NOW + timedelta(hours=3)
    # and the jitter never takes a poll below the floor
    rng = random.Random(1)
    for _ in range(200):
        assert next_poll_after_success(source(), with_ttl, None, hourly, NOW, rng) >= NOW + timedelta(hours=2)
    # a ttl asking for more than a day is capped at a day
    assert next_poll_after_success(source(), SourceState("s", min_interval=9 * DAY), None, hourly, NOW,
                                   Midpoint) == NOW + timedelta(days=1)


def test_success_jitter_spreads_polls_within_ten_percent(history):
    hourly = history(every(timedelta(hours=1), timedelta(days=30)))
    rng = random.Random(7)
    delays = {(next_poll_after_success(source(), SourceState("s"), None, hourly, NOW, rng) - NOW).total_seconds()
              for _ in range(100)}
    assert len(delays) > 50
    assert all(0.9 * HOUR <= d <= 1.1 * HOUR for d in delays)


@pytest.mark.parametrize("target, dates", [(10 * MIN, []), (30 * MIN, []),  # silent: at the slowest rate
                                           (30 * MIN, every(timedelta(minutes=2), timedelta(days=8)))])  # busy
def test_jitter_never_takes_a_poll_outside_the_bounds(history, target, dates):
    """At a bound the jitter only moves a poll inside it: 10m never waits past 80m, nor polls under 7.5m."""
    low, high = interval_bounds(target)
    h = history(dates)
    rng = random.Random(11)
    delays = [(next_poll_after_success(source(target), SourceState("s"), None, h, NOW, rng) - NOW).total_seconds()
              for _ in range(200)]
    assert all(low <= d <= high for d in delays), (min(delays), max(delays), low, high)
    assert len(set(delays)) > 100  # still spread


@pytest.mark.parametrize("target, floor", [(60, 0), (30 * MIN, 9 * HOUR)])
def test_an_interval_used_as_written_or_held_at_the_feeds_floor_keeps_its_jitter(history, target, floor):
    """Under 5m (no bounds to fold into) and at a floor above the bounds, polls still drift apart: +-10%,
    never under the floor."""
    h = history(every(timedelta(hours=1), timedelta(days=30)))
    rng = random.Random(5)
    base = max(target, floor)
    delays = [(next_poll_after_success(source(target), SourceState("s", min_interval=floor or None), None, h, NOW,
                                       rng) - NOW).total_seconds() for _ in range(100)]
    assert len(set(delays)) > 50 and all(max(0.9 * base, floor) <= d <= 1.1 * base for d in delays), delays


def test_skip_hours_and_days_move_the_next_poll(history):
    hourly = history(every(timedelta(hours=1), timedelta(days=30)))
    late = NOW.replace(hour=23, minute=30)  # Monday 23:30 → the next poll would be Tuesday 00:30
    state = SourceState("s", skip_hours="0 1")
    assert next_poll_after_success(source(), state, None, hourly, late, Midpoint) == datetime(
        2024, 3, 5, 2, 0, tzinfo=timezone.utc)
    state = SourceState("s", skip_days="tuesday wednesday")
    assert next_poll_after_success(source(), state, None, hourly, late, Midpoint) == datetime(
        2024, 3, 7, 0, 0, tzinfo=timezone.utc)


def test_a_feed_skipping_every_hour_is_still_polled():
    every_hour = frozenset(range(24))
    assert skip_forward(NOW, every_hour, frozenset()) == NOW


def test_backoff_doubles_to_a_day_and_never_stops():
    delays = []
    for errors in range(1, 16):
        when = next_poll_after_failure(source(), SourceState("s", errors=errors), NOW, Midpoint)
        delays.append((when - NOW).total_seconds())
    assert delays[:4] == [30 * MIN, HOUR, 2 * HOUR, 4 * HOUR]
    assert delays == sorted(delays)
    assert delays[-1] == DAY


def test_backoff_jitter_stays_capped_at_a_day():
    rng = random.Random(3)
    for _ in range(200):
        when = next_poll_after_failure(source(), SourceState("s", errors=40), NOW, rng)
        assert NOW + timedelta(hours=19) <= when <= NOW + timedelta(days=1)


def test_retry_after_wins_when_later_than_the_backoff():
    later = NOW + timedelta(hours=5)
    assert next_poll_after_failure(source(), SourceState("s", errors=1, retry_after=later), NOW, Midpoint) == later
    sooner = NOW + timedelta(minutes=1)
    assert next_poll_after_failure(source(), SourceState("s", errors=1, retry_after=sooner), NOW,
                                   Midpoint) == NOW + timedelta(minutes=30)


def polled(next_poll: datetime | None, **kwargs) -> SourceState:
    return SourceState("s", state=kwargs.pop("state", "ok"), configured_url="http://example.org/feed",
                       last_poll=kwargs.pop("last_poll", NOW - timedelta(minutes=10)), next_poll=next_poll, **kwargs)


def test_a_restart_keeps_each_sources_next_poll():
    future = NOW + timedelta(minutes=20)
    assert resume_at(source(), polled(future), NOW, Midpoint) == future


def test_a_restart_spreads_overdue_and_new_sources_over_a_few_seconds():
    for state in (None, SourceState("s"), polled(NOW - timedelta(hours=3))):
        when = resume_at(source(), state, NOW, random.Random(5))
        assert NOW <= when <= NOW + timedelta(seconds=5)


def test_a_gone_source_is_not_resumed_unless_its_url_changed():
    gone = polled(None, state="gone", errors=1)
    assert resume_at(source(), gone, NOW, Midpoint) is None
    moved = SourceConfig("s", "http://example.org/new-feed", 0)
    assert NOW <= resume_at(moved, gone, NOW, Midpoint) <= NOW + timedelta(seconds=5)
    assert resume_at(source(enabled=False), polled(NOW), NOW, Midpoint) is None


def test_a_shortened_interval_takes_effect_without_waiting_out_the_old_one():
    far = NOW + timedelta(hours=20)  # scheduled under an old, long interval
    when = resume_at(source(interval=60), polled(far, last_poll=NOW - timedelta(seconds=30)), NOW, Midpoint)
    assert when <= NOW + timedelta(seconds=36)


def test_a_failing_source_keeps_its_backoff_and_retry_after_on_restart():
    backoff = NOW + timedelta(hours=8)
    assert resume_at(source(), polled(backoff, state="failing", errors=5), NOW, Midpoint) == backoff
    limited = NOW + timedelta(hours=2)
    state = polled(NOW + timedelta(minutes=1), state="failing", errors=1, retry_after=limited)
    assert resume_at(source(), state, NOW, Midpoint) == limited


SKIPPING_FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>Night off</title><ttl>90</ttl>
<skipHours><hour>0</hour><hour>1</hour><hour>23</hour></skipHours>
<skipDays><day>Sunday</day><day>Funday</day></skipDays>
<item><title>One</title><guid>one</guid></item></channel></rss>"""


def test_skip_hours_days_and_ttl_travel_from_the_feed_to_the_stored_schedule(tmp_path, feed_server):
    from aggregator.reader.parse import parse_feed
    from conftest import run_cli, write_config

    info = parse_feed(SKIPPING_FEED.encode()).info
    assert (info.skip_hours, info.skip_days, info.ttl) == (frozenset({0, 1, 23}), frozenset({"sunday"}), 5400)
    config = write_config(tmp_path, [{"id": "night", "url": feed_server.serve("/night.xml", SKIPPING_FEED)}])
    run_cli("once", config=config, check=True)
    store = Store(tmp_path / "state" / "aggregator.db")
    state = store.source_state("night")
    store.close()
    assert (state.skip_hours, state.skip_days, state.min_interval) == ("0 1 23", "sunday", 5400)
    assert state.next_poll.hour not in (0, 1, 23) and state.next_poll.weekday() != 6
    assert state.next_poll - state.last_poll >= timedelta(minutes=90)
