"""The daemon's Prometheus metrics (SPEC §9), served at /metrics in the text format.

One CollectorRegistry per daemon (prometheus_client's process-wide default
registry is never used): counters and histograms that polls, pushes and
publishes move as they happen, and gauges read from the store when
Prometheus scrapes (sources by state, the oldest overdue poll, the store's
size, subscriptions by state). Series per source exist only with
`metrics.per_source: true`, since their number grows with the sources. No
label or value carries a URL, a path or a secret: sources are named by id.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.process_collector import ProcessCollector

from .. import __version__
from ..config import Config
from ..errors import AggregatorError
from ..models import FetchResult, PollResult, PushState, SourceStatus
from ..store import Store

FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PUBLISH_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
NEW_STORY = "new_story"  # a new item that joined no story: the decision "none of the rules matched"


def rule_label(rule: str) -> str:
    """A dedup rule's name as a label value: 'same canonical link' → 'same_canonical_link'."""
    return re.sub(r"[^a-z0-9]+", "_", rule.lower()).strip("_") or "unknown"


class Metrics:
    """What the daemon counts, and the registry /metrics renders."""

    def __init__(self, current: Callable[[], Config], store: Callable[[], Store | None]):
        self.current = current
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = Counter("aggregator_polls", "Polls by outcome", ["outcome"], registry=r)
        self.fetch_seconds = Histogram("aggregator_fetch_duration_seconds", "Time a poll's fetch took, from its "
                                       "first host slot's grant to the last byte", buckets=FETCH_BUCKETS, registry=r)
        self.fetched_bytes = Counter("aggregator_fetched_bytes", "Decoded bytes of the bodies fetched", registry=r)
        self.entries = Counter("aggregator_entries", "Entries stored by polls and pushes: new (a story of its own), "
                               "merged (a new copy of a known story), updated (a known item changed)", ["change"],
                               registry=r)
        self.decisions = Counter("aggregator_dedup_decisions", "What deduplication decided for each new item: the "
                                 "rule that merged it, or new_story", ["rule"], registry=r)
        self.publish_seconds = Histogram("aggregator_publish_duration_seconds", "Time one output's publish took",
                                         buckets=PUBLISH_BUCKETS, registry=r)
        self.documents = Counter("aggregator_documents_written", "Output files rewritten by publishing", registry=r)
        self.publish_failures = Counter("aggregator_publish_failures", "Publishes of an output that failed",
                                        registry=r)
        self.last_publish = Gauge("aggregator_last_publish_timestamp_seconds", "When an output was last published "
                                  "without error (Unix time)", registry=r)
        self.pushes = Counter("aggregator_pushes", "WebSub content distributions received, by what was done with "
                              "them: accepted (stored), rejected (bad or missing signature), hint (from a hub without "
                              "our secret: polled), refused (no subscription)", ["result"], registry=r)
        self.per_source = current().metrics_per_source  # fixed for the daemon's life: a restart changes it
        if self.per_source:
            self.source_polls = Counter("aggregator_source_polls", "Polls by source and outcome",
                                        ["source", "outcome"], registry=r)
            self.source_bytes = Counter("aggregator_source_fetched_bytes", "Decoded bytes fetched by source",
                                        ["source"], registry=r)
            self.source_entries = Counter("aggregator_source_entries", "Entries stored by source and change",
                                          ["source", "change"], registry=r)
        r.register(_StateCollector(current, store, self.per_source))
        ProcessCollector(registry=r)

    def render(self) -> tuple[str, bytes, list[tuple[str, str]]]:
        """The /metrics response: status, the text exposition, headers."""
        return "200 OK", generate_latest(self.registry), [("Content-Type", CONTENT_TYPE_LATEST),
                                                          ("Cache-Control", "no-store")]

    def fetched(self, source_id: str, result: FetchResult | None, seconds: float) -> None:
        self.fetch_seconds.observe(seconds)
        size = len(result.body) if result is not None and result.body is not None else 0
        self.fetched_bytes.inc(size)
        if self.per_source:
            self.source_bytes.labels(source_id).inc(size)

    def polled(self, source_id: str, result: PollResult, rules: dict[str, int]) -> None:
        """A poll ended; `rules`: how many of its new items each dedup rule merged."""
        self.polls.labels(result.outcome.value).inc()
        if self.per_source:
            self.source_polls.labels(source_id, result.outcome.value).inc()
        self.stored(source_id, result, rules)

    def stored(self, source_id: str, result: PollResult, rules: dict[str, int]) -> None:
        """Entries a poll or a push stored, and the dedup decisions for its new ones."""
        merged = min(sum(rules.values()), result.new)
        counts = {"new": result.new - merged, "merged": merged, "updated": result.updated}
        for change, count in counts.items():
            if count:
                self.entries.labels(change).inc(count)
                if self.per_source:
                    self.source_entries.labels(source_id, change).inc(count)
        for rule, count in rules.items():
            self.decisions.labels(rule_label(rule)).inc(count)
        if counts["new"]:
            self.decisions.labels(NEW_STORY).inc(counts["new"])

    def published(self, seconds: float, written: int, failed: bool) -> None:
        self.publish_seconds.observe(seconds)
        self.documents.inc(written)
        if failed:
            self.publish_failures.inc()
        else:
            self.last_publish.set_to_current_time()

    def pushed(self, result: str) -> None:
        self.pushes.labels(result).inc()


class _StateCollector:
    """Gauges read from the store at each scrape."""

    def __init__(self, current: Callable[[], Config], store: Callable[[], Store | None], per_source: bool):
        self.current, self.store, self.per_source = current, store, per_source

    def describe(self):
        return []  # not known before a scrape; the registry then never calls collect() early

    def collect(self):
        store, config = self.store(), self.current()
        if store is None:
            return
        try:
            states = store.source_states(count_entries=False)
            subscriptions = store.push_subscriptions()
            size = store.size_bytes()
        except AggregatorError:
            return  # the state cannot be read right now: its gauges are left out of this scrape
        now = datetime.now(timezone.utc)
        info = InfoMetricFamily("aggregator_build", "This aggregator's version")
        info.add_metric([], {"version": __version__})
        yield info
        by_state = GaugeMetricFamily("aggregator_sources", "Configured sources by state", labels=["state"])
        counts = {s.value: 0 for s in SourceStatus}
        oldest = 0.0
        for source in config.sources:
            state = states.get(source.id)
            name = SourceStatus.DISABLED if not source.enabled else state.state if state else SourceStatus.NEW
            counts[name.value] += 1
            if source.enabled and state and state.next_poll and state.state != SourceStatus.GONE:
                oldest = max(oldest, (now - state.next_poll).total_seconds())
        for name, count in counts.items():
            by_state.add_metric([name], count)
        yield by_state
        yield GaugeMetricFamily("aggregator_oldest_overdue_poll_seconds", "How long the most overdue poll has been "
                                "due (0: none is overdue)", value=oldest)
        yield GaugeMetricFamily("aggregator_store_size_bytes", "Bytes the state occupies", value=size)
        push = GaugeMetricFamily("aggregator_push_subscriptions", "WebSub subscriptions by state", labels=["state"])
        for state in PushState:
            push.add_metric([state.value], sum(1 for s in subscriptions.values() if s.state == state))
        yield push
        if self.per_source:
            yield from _per_source(config, states)


def _per_source(config: Config, states: dict) -> list:
    success = GaugeMetricFamily("aggregator_source_last_success_timestamp_seconds", "When each source was last "
                                "polled successfully (Unix time)", labels=["source"])
    errors = GaugeMetricFamily("aggregator_source_consecutive_errors", "Each source's failed polls in a row",
                               labels=["source"])
    for source in config.sources:
        state = states.get(source.id)
        if state is None:
            continue
        if state.last_success:
            success.add_metric([source.id], state.last_success.timestamp())
        errors.add_metric([source.id], state.errors)
    return [success, errors]
