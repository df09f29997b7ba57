"""What makes the daemon live and observable: WebSub push, Prometheus metrics, the health probe's vitals.

The daemon holds one `Live` and calls it at a few points: each fetch of a
poll (metrics, hub discovery), each poll's end (metrics, the safety net of a
live subscription), each output's publish (metrics, failing publishes), and
for the server's own paths (/metrics, /websub/<source-id>). `problems` is
what /healthz adds to the scheduler's and publisher's state (health.py).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Callable

from ..config import Config, SourceConfig
from ..errors import AggregatorError
from ..models import FetchResult, PollResult, SourceState
from ..store import Store
from .callback import Callbacks
from .health import Heartbeat, Vitals, heartbeat_every, overdue, verdict
from .metrics import Metrics
from .pipeline import Prepare
from .push import Subscriber

log = logging.getLogger("aggregator")

OWN_JOBS = "daemon "  # the daemon's own scheduler jobs (a space never appears in a source id)
TEXT = [("Content-Type", "text/plain; charset=utf-8")]


class Live:
    """Metrics, subscriptions and the hubs' callbacks, on the daemon's store.

    `mode` is the daemon's scheduling mode (local.LocalMode or workers.Worker:
    `poll_soon`, `subscribes`); `republish(outputs, urgent)` queues outputs
    for the publisher; `reading` is the store the server reads with.
    """

    def __init__(self, current: Callable[[], Config], store: Store, mode, prepare: Prepare,
                 republish: Callable[[set[str], bool], None], reading: Callable[[], Store]):
        self.current, self.store, self.republish = current, store, republish
        self.started = datetime.now(timezone.utc)
        self.heartbeat = Heartbeat()
        self.metrics = Metrics(current, reading)
        self.subscriber = Subscriber(current, store, mode.poll_soon, mode.subscribes)
        self.callbacks = Callbacks(current, store, self.subscriber, prepare, self.pushed, self.metrics.pushed)

    def start(self, scheduler) -> None:
        """The heartbeat job on the pollers' executor (so a scheduler whose threads are all stuck misses it), and
        the subscriber's thread."""
        scheduler.add_job(self.heartbeat.beat, "interval", seconds=heartbeat_every(self.current()),
                          id=OWN_JOBS + "heartbeat", name=OWN_JOBS + "heartbeat", next_run_time=self.started)
        self.subscriber.start()

    def stop(self) -> None:
        self.subscriber.stop()

    def reloaded(self) -> None:
        self.subscriber.reconcile()

    @staticmethod
    def owns(event) -> bool:
        return event.job_id.startswith(OWN_JOBS)

    # the daemon's hooks

    def fetched(self, source: SourceConfig, result: FetchResult | None, seconds: float) -> None:
        """A poll's fetch ended: count it, and look for a WebSub hub in what it brought."""
        try:
            self.metrics.fetched(source.id, result, seconds)
            self.subscriber.discovered(source, result)
        except AggregatorError as exc:
            log.error("%s: websub: %s", source.id, exc)

    def polled(self, source: SourceConfig, result: PollResult, now: datetime) -> None:
        """A poll that began at `now` ended: count it and its dedup decisions."""
        self.metrics.polled(source.id, result, self.store.merge_rules(source.id, now) if result.new else {})

    def poll_after(self, source_id: str, when: datetime | None) -> datetime | None:
        """When to poll next: `when`, or later while the source's subscription is live (the safety net)."""
        return self.subscriber.poll_after(source_id, when, datetime.now(timezone.utc))

    def pushed(self, source: SourceConfig, result: PollResult, now: datetime) -> None:
        """A pushed body was stored: publish the outputs it changed at once, and count it."""
        if result.outcome.changed:
            self.republish({o.id for o in self.current().outputs if o.selects(source)}, True)
        self.metrics.stored(source.id, result, self.store.merge_rules(source.id, now) if result.new else {})

    def published(self, output_id: str, seconds: float, written: int, error: str | None) -> None:
        self.metrics.published(seconds, written, failed=error is not None)
        self.heartbeat.published(output_id, error)

    def problems(self, states: dict[str, SourceState], running: bool, stopping: bool,
                 publish_waiting: float | None) -> list[str]:
        """Why /healthz should fail, if it should (health.verdict)."""
        config = self.current()
        vitals = Vitals(running=running, stopping=stopping, since_heartbeat=self.heartbeat.since(),
                        publish_waiting=publish_waiting, publish_failing=self.heartbeat.failing())
        return verdict(config, vitals, overdue(config, states, datetime.now(timezone.utc), self.started))

    def route(self, environ):
        """The server's paths that are the daemon's: /metrics and the WebSub callbacks (server.App's routes)."""
        path, method = environ.get("PATH_INFO") or "/", environ.get("REQUEST_METHOD", "GET")
        try:
            if path == "/metrics":
                if method not in ("GET", "HEAD"):
                    return "405 Method Not Allowed", b"only GET and HEAD\n", TEXT + [("Allow", "GET, HEAD")]
                return self.metrics.render()
            if path.startswith("/websub/"):
                return self.callbacks(environ, path[len("/websub/"):])
        except AggregatorError as exc:
            log.error("%s: %s", path, exc)
            return "503 Service Unavailable", f"{exc}\n".encode(), TEXT
        return None
