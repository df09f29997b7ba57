"""The daemon (`aggregator run`): polls on APScheduler jobs, coalesced publishing, serving, signals, reload.

How sources are scheduled is the mode's: alone on a SQLite state, a job per
source (local.LocalMode); on a PostgreSQL state, one of several workers that
claim due sources under leases, only the one holding the publishing lock
rendering the outputs (workers.Worker). Outputs a changed poll touched are
republished once the burst of polls is over. SIGTERM/SIGINT stop it, SIGHUP
reloads the config.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent.futures import Executor
from datetime import datetime, timedelta, timezone

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from ..config import Config, OutputConfig, SourceConfig, load_config
from ..errors import AggregatorError, ConfigError
from ..models import Outcome, PollResult, SourceState, polled_url
from ..output.archive import PublishMemory
from ..output.pages import raise_for_templates
from ..output.publish import WORKER_MODULE, finish_interrupted, publish_outputs
from ..reader.hosts import PoliteLimiter
from ..store import Store
from ..store.backend import DAEMON_CACHE_KIB
from .outage import NetworkWatch, forgive, no_answer, polled_over_http
from .pipeline import poll
from .prepare import Preparer
from .process import StateLock, fewer_malloc_arenas, setup_logging
from .prune import due, prune
from .publisher import HubPings, Publisher
from .lifeline import spare_cores
from .live import Live
from .local import LocalMode
from .schedule import resume_at
from .server import App, Server

log = logging.getLogger("aggregator")

WORKERS = 16
STOP_GRACE = 5.0  # seconds in-flight polls get to finish after SIGTERM before they are abandoned
PUBLISH_RETRY = 60.0
RETRY_AFTER_BUG = 60.0
MAINTENANCE, MAINTENANCE_EVERY, MAINTENANCE_FIRST = "maintenance", 3600.0, 10.0  # prune: the job, how often it looks


def run(config: Config) -> int:
    """Run until SIGTERM/SIGINT; 0 on a clean stop."""
    setup_logging()
    fewer_malloc_arenas()
    return Daemon(config).run()


class Daemon:
    def __init__(self, config: Config):
        self.config = config
        self.lock = StateLock(config.state)
        self.limiter = PoliteLimiter(config)
        self.watch = NetworkWatch(config)
        self.store: Store | None = None
        self.server: Server | None = None
        self.app: App | None = None
        self.publisher: Publisher | None = None
        self.memory = PublishMemory()  # what publishing keeps between the daemon's publishes
        self.pings = HubPings()
        self.mode = None  # how sources are scheduled: alone, or as one of several workers
        self.live: Live | None = None  # WebSub push, metrics, health (live.py)
        self.preparer = Preparer.for_sources(sum(1 for source in config.sources if source.enabled))
        self.scheduler = BackgroundScheduler(
            timezone=timezone.utc, executors={"default": ThreadPoolExecutor(WORKERS)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        self.scheduler.add_listener(self._job_done, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES)
        self._wake = threading.Event()
        self._stop: bool | str = False  # or the name of the signal that asked for it
        self._reload = False
        self._active = 0
        self._active_lock = threading.Lock()

    # life cycle

    def run(self) -> int:
        self.lock.acquire()
        try:
            try:
                finish_interrupted(self.config)  # a publish a crash interrupted, before anything else
            except AggregatorError as exc:
                log.error("%s; publishing tries again", exc)
            self.store = Store.of(self.config, cache_kib=DAEMON_CACHE_KIB)
            stopping = lambda: bool(self._stop)  # noqa: E731
            if self.store.backend.shared:
                from .workers import Worker  # psycopg is imported only where a state needs it

                self.mode = Worker(self.config.state, self.scheduler, self._poll_job,
                                   lambda outputs: self.publisher.changed(outputs), stopping, WORKERS)
            else:
                self.mode = LocalMode(self.scheduler, self._poll_job, stopping)
            self.limiter = self.mode.limiter(self.config)
            self.live = Live(lambda: self.config, self.store, self.mode, self.preparer,
                             lambda outputs, urgent: self.publisher.changed(outputs, urgent),
                             lambda: self.app.store if self.app else self.store)
            self.publisher = Publisher(self._publish)  # before serving: a hub may push at once
            self._start_server(self.config)
            self._install_signals()
            self.scheduler.start()
            self.mode.start(self.store, self.config)
            self.live.start(self.scheduler)
            self.scheduler.add_job(self._maintain, "interval", seconds=MAINTENANCE_EVERY, id=MAINTENANCE,
                                   name="prune once a day", next_run_time=datetime.now(timezone.utc)
                                   + timedelta(seconds=MAINTENANCE_FIRST))
            self.publisher.changed(None)
            log.info("running %s: %d sources, %d outputs%s", self.config.path, len(self.config.sources),
                     len(self.config.outputs), self._serving())
            while not self._stop:
                self._wake.wait(1.0)
                self._wake.clear()
                if self._reload and not self._stop:
                    self._reload = False
                    self.reload()
            log.info("%s received: stopping", self._stop)
        finally:
            abandoned = self._shutdown()
        if abandoned:
            self.preparer.close(wait=False)
            logging.shutdown()
            os._exit(0)  # in-flight requests cannot be interrupted; their transactions never committed
        return 0

    def _install_signals(self) -> None:
        def stop(signum, frame):
            self._stop = signal.Signals(signum).name
            self._wake.set()

        def reload(signum, frame):
            self._reload = True
            self._wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def _shutdown(self) -> int:
        """Stop scheduling, serving and publishing; the number of polls abandoned in flight."""
        self._stop = True
        if self.store is None:  # the state would not open: nothing started, and the error says why
            self.lock.release()
            return 0
        if self.live:
            self.live.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.server:
            self.server.stop()
        deadline = time.monotonic() + STOP_GRACE
        while self._in_flight() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.publisher:
            self.publisher.stop(timeout=max(deadline - time.monotonic(), 1.0))
        abandoned = self._in_flight()
        if abandoned:
            log.warning("stopped; abandoned %d poll(s) in flight: nothing of theirs was stored, they are polled "
                        "again %s", abandoned, "by the other workers" if self.mode.shared else "on the next start")
            self.mode.abandon()
            return abandoned
        for store in (self.store, self.app.store if self.app else None, self.mode):
            if store:
                store.close()
        self.preparer.close()
        self.lock.release()
        log.info("stopped")
        return 0

    def _in_flight(self) -> int:
        with self._active_lock:
            return self._active

    def _job_done(self, event) -> None:
        """Re-add a source's job for its next poll (or, as a worker, hand it back), now that this run has finished."""
        if self.live.owns(event) or self.mode.owns(event) or event.job_id == MAINTENANCE:
            return
        now = datetime.now(timezone.utc)
        if event.code == EVENT_JOB_MAX_INSTANCES:
            return  # its poll in flight (a reload re-added the job meanwhile) schedules the next when it ends
        if event.code == EVENT_JOB_EXECUTED:
            when = event.retval
        else:
            exc = event.exception
            if isinstance(exc, AggregatorError):
                log.error("%s: %s; retrying in %ds", event.job_id, exc, RETRY_AFTER_BUG)
            else:
                log.error("%s: unexpected %s: %s; retrying in %ds", event.job_id, type(exc).__name__, exc,
                          RETRY_AFTER_BUG, exc_info=(type(exc), exc, event.exception.__traceback__))
            when = now + timedelta(seconds=RETRY_AFTER_BUG)
        self.mode.finished(event.job_id, when)

    # one poll

    def _poll_job(self, source_id: str) -> datetime | None:
        """Poll one source; when to poll it next (None: never, it is gone or no longer configured)."""
        config = self.config
        source = config.source(source_id)
        if source is None or not source.enabled or self._stop:
            return None
        with self._active_lock:
            self._active += 1
        try:
            before, now = self.store.source_state(source_id), datetime.now(timezone.utc)
            result = poll(self.store, config, source, self.mode.poll_limiter(self.limiter, source), now=now,
                          prepare=self.preparer,
                          observe=lambda fetched, seconds: self.live.fetched(source, fetched, seconds))
            refunded = self._judge_network(source, before, result)
            if result.outcome.changed:
                self.publisher.changed({o.id for o in config.outputs if o.selects(source)})
            self.live.polled(source, result, now)
            state = self.store.source_state(source_id)
        finally:
            with self._active_lock:
                self._active -= 1
        log.info("%s: %s; %s", source_id, _describe(result),
                 f"next poll {state.next_poll.isoformat(timespec='seconds')}" if state.next_poll else "no more polls")
        current = self.config.source(source_id)
        if current != source:  # the config was reloaded while this poll ran
            return resume_at(current, state, datetime.now(timezone.utc)) if current else None
        return self.live.poll_after(source_id, result.next_poll if result.next_poll and not refunded
                                    else state.next_poll)

    def _judge_network(self, source: SourceConfig, before: SourceState, result: PollResult) -> bool:
        """Feed the network watch; give back failures that were the network's. True if the state changed."""
        url = polled_url(source, before)
        if not polled_over_http(url, result):
            return False
        uncharged = False
        if no_answer(result):
            uncharged = self.watch.unreachable(source.id, url)
        else:
            self.watch.answered()
        owed = self.watch.settle(source.id) + uncharged
        if not owed or not forgive(self.store, source, owed, note=uncharged):
            return False
        log.warning("%s: no server answers: the network looks down; not counting it against the source", source.id)
        return True

    # retention

    def _maintain(self) -> None:
        """Prune the state once a day (SPEC §6.1); the job looks every MAINTENANCE_EVERY seconds."""
        now = datetime.now(timezone.utc)
        if self._stop or not self.mode.maintains() or not due(self.store, now):
            return
        try:
            report = prune(self.store, self.config, now, memory=self.memory)
        except AggregatorError as exc:
            log.error("retention: %s; retrying in %ds", exc, MAINTENANCE_EVERY)
            return
        log.info("retention: %s", report.summary())

    # publishing and serving

    def _publish(self, outputs: set[str] | None) -> None:
        if not self.mode.publishes(outputs):
            return  # another worker renders the outputs
        config = self.config
        with spare_cores([WORKER_MODULE]) as pool:  # workers start only for a publish of many story pages
            for output in config.outputs:
                if outputs is None or output.id in outputs:
                    self._publish_output(config, output, pool)

    def _publish_output(self, config: Config, output: OutputConfig, pool: Executor | None) -> None:
        started = time.monotonic()
        try:
            written = publish_outputs(self.store, config, only={output.id}, memory=self.memory, pool=pool,
                                      pinger=self.pings)
        except AggregatorError as exc:
            self.live.published(output.id, time.monotonic() - started, 0, str(exc))
            log.error("%s; retrying in %ds", exc, PUBLISH_RETRY)
            timer = threading.Timer(PUBLISH_RETRY, self.publisher.changed, [{output.id}])
            timer.daemon = True
            timer.start()
            return
        self.live.published(output.id, time.monotonic() - started, len(written), None)
        if written:
            log.info("published %s", ", ".join(p.name for p in written))

    def _start_server(self, config: Config) -> None:
        if config.listen is None:
            return
        if self.app is None:
            self.app = App(lambda: self.config, Store.of(config, cache_kib=DAEMON_CACHE_KIB), self.health,
                           routes=self.live.route)
        self.server = Server(self.app, config.listen).start()

    def _serving(self) -> str:
        if not self.server:
            return ""
        host, port = self.server.address
        return f"; serving http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def health(self) -> tuple[bool, dict]:
        """For /healthz: healthy unless live.problems finds reasons (health.py); counts of sources by state."""
        counts: dict[str, int] = {}
        states = self.app.store.source_states(count_entries=False) if self.app else {}
        for source in self.config.sources:
            state = states.get(source.id)
            name = "disabled" if not source.enabled else state.state if state else "new"
            counts[name] = counts.get(name, 0) + 1
        reasons = self.live.problems(states, self.scheduler.running, bool(self._stop),
                                     self.publisher.pending_for() if self.publisher else None)
        details = {"sources": counts, "network": "down" if self.watch.down else "up", **self.mode.health()}
        return not reasons, {**details, **({"reasons": reasons} if reasons else {})}

    # reload

    def reload(self) -> None:
        """SIGHUP: take the new config if it is valid; otherwise say why and keep the old one."""
        try:
            new = load_config(self.config.path)
            raise_for_templates(new)  # a theme that does not compile is a bad config too
        except ConfigError as exc:
            log.error("reload failed; still running the previous configuration:\n%s", exc)
            return
        if new.state != self.config.state:
            log.error("reload refused: `state` changed (%s → %s); restart to switch; "
                      "still running the previous configuration", self.config.state, new.state)
            return
        old, self.config = self.config, new
        self.limiter.configure(new)
        self.watch.configure(new)
        if new.listen != old.listen:
            if self.server:
                self.server.stop()
                self.server = None
            try:
                self._start_server(new)
            except AggregatorError as exc:
                log.error("%s", exc)
        self.mode.reload(self.store, old, new)
        self.live.reloaded()
        self.publisher.changed(None)
        added = len({s.id for s in new.sources} - {s.id for s in old.sources})
        removed = len({s.id for s in old.sources} - {s.id for s in new.sources})
        log.info("reloaded %s: %d sources (%d added, %d removed), %d outputs%s", new.path, len(new.sources),
                 added, removed, len(new.outputs), self._serving())


def _describe(result: PollResult) -> str:
    if result.outcome == Outcome.ERROR:
        return f"error: {result.error}"
    if result.outcome.changed:
        return f"{result.new} new, {result.updated} updated"
    return "unchanged" + (" (304)" if result.status == 304 else "")
