"""Several `aggregator run` workers on one PostgreSQL state: source leases, shared host slots, one publisher.

On PostgreSQL a worker keeps no job per source. A claim job takes due
sources in small batches, each with a lease (an UPDATE over `SELECT … FOR
UPDATE SKIP LOCKED`, so two workers never take one row), polls them, and
hands each back with its next poll time. A heartbeat renews the leases of
the polls in flight, so a source is leased only while it is being polled,
and the sources of a worker that died are taken over once their leases
expire. Lease times are the database's clock: workers' clocks need not agree.

Two session-level advisory locks per host:port keep the 2-requests-per-host
rule (SPEC §5.1) across workers; one more elects the worker that renders
the outputs, and the others leave the outputs their polls changed in
`publish_requests` for it. These locks live on one dedicated connection per
worker, so the server drops them the moment a worker's connection ends,
kill -9 included, and another worker takes over.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.triggers.date import DateTrigger

from ..config import Config, SourceConfig
from ..errors import AggregatorError, StoreError
from ..reader.hosts import PoliteLimiter, host_key
from ..store import Store
from ..store.leases import PER_HOST, Coordinator, LeaseLost
from .schedule import resume_at

log = logging.getLogger("aggregator")

LEASE = 60.0  # seconds a dead worker's sources wait before others take them; AGGREGATOR_LEASE overrides it
BATCH = 8  # sources claimed at a time
CLAIM_EVERY = 1.0  # seconds between looks for due sources (a finished poll also looks at once)
LEAD_EVERY = 1.0  # seconds between checks of the publishing lock and of others' publish requests
JOB_PREFIX = "worker "  # the workers' own jobs; a space never appears in a source id
REQUEST_GRACE = 5.0  # seconds a request's lease outlasts its deadline (the sockets shut, the thread scheduled)


class WorkerError(AggregatorError):
    """A worker cannot start as configured."""

    stage = "run"


def lease_seconds(environ=os.environ) -> float:
    """The lease: LEASE, or AGGREGATOR_LEASE seconds (short ones are for tests)."""
    text = environ.get("AGGREGATOR_LEASE")
    if text is None:
        return LEASE
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds >= 1:
        raise WorkerError(f"AGGREGATOR_LEASE={text!r} is not a number of seconds ≥ 1; fix or unset it")
    return seconds


def register(store: Store, config: Config, now: datetime) -> None:
    """Put the enabled sources on the shared schedule: a new one due now, another sooner if resume_at says so."""
    states = store.source_states(count_entries=False)
    fresh, sooner = [], []
    for source in config.sources:
        state = states.get(source.id)
        when = resume_at(source, state, now)
        if when is None:
            continue
        if state is None:
            fresh.append((source.id, when))
        elif state.next_poll is None or when < state.next_poll:
            sooner.append((source.id, when))
    store.put_on_schedule(fresh, sooner)


class SharedLimiter(PoliteLimiter):
    """The daemon's politeness, with the 2-in-flight bound counted across every worker."""

    def __init__(self, config: Config, coordinator: Coordinator):
        super().__init__(config, PER_HOST)
        self._coordinator = coordinator

    @contextmanager
    def slot(self, url: str) -> Iterator[None]:
        with super().slot(url), self._coordinator.host_slot(host_key(url)):
            yield


class LeasedPoll:
    """The limiter of one poll of a leased source: the shared host slot, then the lease extended to outlast
    the request (its whole-request deadline and REQUEST_GRACE) right before it is sent to that host (each
    host a redirect leads to takes a slot too); LeaseLost instead when another worker took the source while
    this one stalled."""

    def __init__(self, limiter: SharedLimiter, coordinator: Coordinator, source: SourceConfig):
        self._limiter, self._coordinator, self._source = limiter, coordinator, source

    @contextmanager
    def slot(self, url: str) -> Iterator[None]:
        with self._limiter.slot(url):
            self._coordinator.cover(self._source.id, self._source.timeout + REQUEST_GRACE)
            yield


class Worker:
    """This `run` as one of several workers on a PostgreSQL state, driven by the daemon's scheduler.

    The daemon hands it: its scheduler, the function that polls one source
    (returning when to poll next), `changed` to queue outputs for publishing,
    and `stopping` to ask whether it is shutting down. It offers the daemon
    the methods local.LocalMode does.
    """

    shared = True

    def __init__(self, url: str, scheduler, poll: Callable, changed: Callable, stopping: Callable[[], bool],
                 pollers: int):
        self.coordinator = Coordinator(url, lease_seconds())
        self._scheduler, self._poll, self._changed, self._stopping = scheduler, poll, changed, stopping
        self._pollers = pollers
        self._store: Store | None = None  # the daemon's, from start()
        self._source_ids: list[str] = []
        self._output_ids: set[str] = set()
        self._claim_lock = threading.Lock()
        self._wanted = False  # a poll finished while the claim job was not waiting: claim again at once
        self._drained = False  # the last claim found fewer due sources than it asked for

    def limiter(self, config: Config) -> SharedLimiter:
        return SharedLimiter(config, self.coordinator)

    def poll_limiter(self, limiter: SharedLimiter, source: SourceConfig) -> LeasedPoll:
        """What one poll of `source` takes its host slot from: the slot, and its lease covering the request."""
        return LeasedPoll(limiter, self.coordinator, source)

    def start(self, store: Store, config: Config) -> None:
        """Register the sources, then claim, renew and lead on a small pool of threads of their own.

        Heartbeat and lead are interval jobs. The claim job re-adds itself
        when it ends: in a second, or at once when a poll finished meanwhile,
        so there is never more than one, and threads freed by polls are not
        left idle until the next second.
        """
        log.info("worker %s: sharing %s with any other workers (leases of %gs)", self.coordinator.owner,
                 store.path, self.coordinator.lease)
        self._scheduler.add_executor(ThreadPoolExecutor(3), alias="workers")
        self._register(store, config)
        for name, every, job in (("heartbeat", self.coordinator.lease / 3, self.heartbeat),
                                 ("lead", LEAD_EVERY, self.lead)):
            self._scheduler.add_job(_guarded(job), "interval", seconds=every, id=JOB_PREFIX + name,
                                    name=JOB_PREFIX + name, executor="workers", next_run_time=datetime.now(timezone.utc))
        self._add_claim(0)

    def reload(self, store: Store, old: Config, new: Config) -> None:
        """After a reload: the sources this worker polls now, and their resume times."""
        try:
            self._register(store, new)
        except StoreError as exc:
            log.error("%s; sources the reload added are polled once a later reload or restart registers them", exc)
        self._nudge()

    def _register(self, store: Store, config: Config) -> None:
        self._store = store
        self._source_ids = [s.id for s in config.sources if s.enabled]
        self._output_ids = {o.id for o in config.outputs}
        self._drained = False
        register(store, config, datetime.now(timezone.utc))

    def owns(self, event) -> bool:
        """Its own jobs log their errors; a source whose job was still running is handed back when that poll
        ends; a poll that lost its lease before its request leaves the source to the worker that took it."""
        if event.code == EVENT_JOB_ERROR and isinstance(event.exception, LeaseLost):
            log.warning("%s", event.exception)
            self.finished(event.job_id, None)
            return True
        return event.job_id.startswith(JOB_PREFIX) or event.code == EVENT_JOB_MAX_INSTANCES

    # the jobs

    def claim(self) -> None:
        """Lease due sources in batches while there are threads free, and run a poll for each."""
        try:
            while not self._stopping():
                room = min(BATCH, self._pollers - len(self.coordinator.held))
                if room <= 0:
                    return
                claimed = self.coordinator.claim(self._source_ids, room, datetime.now(timezone.utc))
                for source_id in claimed:
                    self._scheduler.add_job(self._poll, args=[source_id], id=source_id, name=f"poll {source_id}",
                                            replace_existing=True)
                if not self._scheduler.running:  # stopped meanwhile: these will not run
                    for source_id in claimed:
                        self.coordinator.release(source_id, None)
                    return
                self._drained = len(claimed) < room
                if self._drained:
                    return
        finally:
            with self._claim_lock:
                delay, self._wanted = (0 if self._wanted else CLAIM_EVERY), False
                if not self._stopping():
                    self._add_claim(delay)

    def finished(self, source_id: str, when: datetime | None) -> None:
        """A poll ended: hand its source back, and look for more work if there may be some."""
        try:
            self.coordinator.release(source_id, when)
        except StoreError as exc:
            log.error("%s: %s; its lease expires by itself", source_id, exc)
        if not self._drained and not self._stopping():
            self._nudge()

    def heartbeat(self) -> None:
        lost = self.coordinator.renew()
        if lost:
            log.warning("%d lease(s) expired before this worker renewed them (a stall longer than %gs?); "
                        "another worker may poll those sources too", lost, self.coordinator.lease)

    def lead(self) -> None:
        """Take over publishing when no worker holds it; as the publisher, take others' requests."""
        if self._leading():
            requested = self.coordinator.take_publish_requests()
            if requested:
                self._changed(requested)

    # publishing

    def _leading(self) -> bool:
        """Whether this worker publishes, taking the lock if it is free; a new publisher republishes everything."""
        was = self.coordinator.leading
        leading = self.coordinator.lead()
        if leading and not was:
            log.info("publishing: this worker renders the outputs now")
            self._changed(None)
        return leading

    def publishes(self, outputs: set[str] | None) -> bool:
        """True if this worker renders now; else the outputs are left for the worker that does."""
        try:
            if self._leading():
                return True
            self.coordinator.request_publish(self._output_ids if outputs is None else outputs,
                                             datetime.now(timezone.utc))
        except StoreError as exc:
            log.error("publishing deferred: %s", exc)
        return False

    def maintains(self) -> bool:
        """Whether this worker prunes the shared state: the publishing one, so one worker does it."""
        return self.coordinator.leading

    def health(self) -> dict:
        return {"publishing": self.coordinator.leading}

    def poll_soon(self, source_id: str, when: datetime) -> None:
        """Move the source's next poll on the shared schedule to `when` if it is later (any worker may take it)."""
        if self._store is not None:  # (not before start: the sources are not on the schedule yet either)
            self._store.put_on_schedule([], [(source_id, when)])
            self._nudge()

    def subscribes(self) -> bool:
        """Whether this worker sends WebSub subscription requests: the publishing worker does, for every worker."""
        return self.coordinator.leading

    def abandon(self) -> None:
        """Polls were abandoned in flight: hand their sources back now rather than when their leases expire."""
        self.coordinator.close()

    def close(self) -> None:
        self.coordinator.close()

    def _add_claim(self, delay: float) -> None:
        when = datetime.now(timezone.utc) + timedelta(seconds=delay)
        self._scheduler.add_job(_guarded(self.claim), DateTrigger(when), id=JOB_PREFIX + "claim",
                                name=JOB_PREFIX + "claim", executor="workers", replace_existing=True)

    def _nudge(self) -> None:
        """Claim now: move the waiting claim job to now, or have the running one go again when it ends."""
        with self._claim_lock:
            try:
                self._scheduler.modify_job(JOB_PREFIX + "claim", next_run_time=datetime.now(timezone.utc))
            except JobLookupError:
                self._wanted = True  # it is running (or not started yet)


def _guarded(job: Callable[[], None]) -> Callable[[], None]:
    """A worker job that logs its failure in one line and runs again on its next turn."""

    def run() -> None:
        try:
            job()
        except AggregatorError as exc:
            log.error("%s: %s; retrying", job.__name__, exc)
        except Exception:
            log.exception("%s failed unexpectedly; retrying", job.__name__)

    run.__name__ = job.__name__
    return run
