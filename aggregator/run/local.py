"""The daemon alone on its state (a SQLite file): one APScheduler job per source.

Each source has a date-triggered job at its next poll time, which the store
remembers (schedule.py decides it), so a restart resumes where the last run
left off. After a poll the job is re-added for the next time, from the
scheduler's "job executed" event, when the finished run no longer counts
against `max_instances`. The other mode, several workers sharing a
PostgreSQL state, is workers.Worker; the daemon drives either through the
same methods.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Callable

from apscheduler.jobstores.base import JobLookupError
from apscheduler.triggers.date import DateTrigger

from ..config import Config
from ..reader.hosts import PoliteLimiter
from ..store import Store
from .schedule import resume_at


class LocalMode:
    """Scheduling for a daemon that is the only one on its state; it always publishes itself."""

    shared = False

    def __init__(self, scheduler, poll: Callable, stopping: Callable[[], bool]):
        self._scheduler, self._poll, self._stopping = scheduler, poll, stopping
        self._config: Config | None = None
        self._soon: dict[str, datetime] = {}  # polls asked for while the source's poll was running
        self._soon_lock = threading.Lock()

    def limiter(self, config: Config) -> PoliteLimiter:
        return PoliteLimiter(config)

    def poll_limiter(self, limiter: PoliteLimiter, source) -> PoliteLimiter:
        """What one poll takes its host slot from: the daemon's limiter itself (no lease to keep)."""
        return limiter

    def start(self, store: Store, config: Config) -> None:
        self._schedule_all(store, config, previous=None)

    def reload(self, store: Store, old: Config, new: Config) -> None:
        self._schedule_all(store, new, previous=old)

    def owns(self, event) -> bool:
        """Whether a scheduler event is this mode's own business (none is: every job is a source's poll)."""
        return False

    def finished(self, source_id: str, when: datetime | None) -> None:
        """A poll ended: its job again at `when`, unless the daemon stops or the source left the config."""
        with self._soon_lock:
            soon = self._soon.pop(source_id, None)
        if when is not None and soon is not None and soon < when:
            when = max(soon, datetime.now(timezone.utc))
        if not self._stopping() and self._config.source(source_id) is not None:
            self._schedule(source_id, when)

    def poll_soon(self, source_id: str, when: datetime) -> None:
        """Poll the source at `when` if its job would come later (a WebSub hint, a subscription that ended)."""
        with self._soon_lock:
            job = self._scheduler.get_job(source_id)
            try:
                if job is not None and (job.next_run_time is None or job.next_run_time > when):
                    self._scheduler.modify_job(source_id, next_run_time=when)
            except JobLookupError:
                job = None  # it started meanwhile
            if job is None:  # its poll is running (or it is not scheduled): finished() takes it into account
                self._soon[source_id] = min(when, self._soon.get(source_id, when))

    def subscribes(self) -> bool:
        """Whether this daemon sends WebSub subscription requests: alone on its state, it always does."""
        return True

    def publishes(self, outputs: set[str] | None) -> bool:
        return True

    def maintains(self) -> bool:
        """Whether this process prunes the state (once a day): alone on it, always."""
        return True

    def health(self) -> dict:
        return {}

    def abandon(self) -> None:
        """Polls were abandoned in flight: nothing to hand back, they are polled again on the next start."""

    def close(self) -> None:
        pass

    def _schedule_all(self, store: Store, config: Config, previous: Config | None) -> None:
        """Add, move or drop each source's job after a start or a reload."""
        self._config = config
        now = datetime.now(timezone.utc)
        states = store.source_states(count_entries=False)
        for source in config.sources:
            if previous is not None and previous.source(source.id) == source:
                continue
            self._schedule(source.id, resume_at(source, states.get(source.id), now))
        for old in previous.sources if previous else ():
            if config.source(old.id) is None:
                self._schedule(old.id, None)

    def _schedule(self, source_id: str, when: datetime | None) -> None:
        if when is None:
            try:
                self._scheduler.remove_job(source_id)
            except JobLookupError:
                pass
            return
        self._scheduler.add_job(self._poll, DateTrigger(when), args=[source_id], id=source_id,
                                name=f"poll {source_id}", replace_existing=True)
