"""Telling a dead network from dead hosts (SPEC §5.4).

When every server stops answering at once, the network is down, not the
sources: their error counts and backoff are left alone. What counts as "no
answer" is the failure's kind (errors.FailureKind.no_answer: DNS failures,
refused or unreachable connections, connect timeouts), never its message.
The daemon watches polls as they end (NetworkWatch); `once` judges its whole
run at its end (outage_in_run); both give the failures back with `forgive`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timezone

from ..config import Config, SourceConfig
from ..models import Outcome, PollResult, SourceState, SourceStatus, polled_url
from ..reader.hosts import host_key
from ..store import Store
from .schedule import next_poll_after_failure

DOWN_NOTE = " (the network was down: not counted against this source)"

MAX_HOSTS_FOR_OUTAGE = 5


class NetworkWatch:
    """Decides whether a failed poll is charged to its source.

    The network counts as down when every HTTP poll since the last answer from
    any server failed without one (no connection, DNS, connect timeout), across
    at least min(5, number of hosts) distinct hosts and never fewer than two.
    While it is down such failures are not charged, and the failures charged at
    the start of the outage, before it was recognised, are owed back: each
    source settles what it is owed in its own next poll, so no two threads
    ever write one source's count. One answer from any server ends the outage.
    """

    def __init__(self, config: Config):
        self._lock = threading.Lock()
        self._needed = 0
        self._failed_hosts: set[str] = set()
        self._streak: dict[str, int] = {}  # source id → failures charged since the last answer
        self._owed: dict[str, int] = {}  # source id → failures to give back, found to be the network's
        self.down = False
        self.configure(config)

    def configure(self, config: Config) -> None:
        hosts = {host_key(s.url) for s in config.sources if s.enabled and s.url.startswith(("http://", "https://"))}
        with self._lock:
            self._needed = hosts_needed(len(hosts))

    def answered(self) -> None:
        """Some server answered (any status): the network is up; failures before this were the hosts' own."""
        with self._lock:
            self._failed_hosts.clear()
            self._streak.clear()
            self.down = False

    def unreachable(self, source_id: str, url: str) -> bool:
        """Record a poll that got no answer; True when it is the network's fault and not to be charged."""
        with self._lock:
            if not self._needed:
                return False
            if self.down:
                return True
            self._failed_hosts.add(host_key(url))
            self._streak[source_id] = self._streak.get(source_id, 0) + 1
            if len(self._failed_hosts) < self._needed:
                return False
            self.down = True
            for sid, count in self._streak.items():
                self._owed[sid] = self._owed.get(sid, 0) + count
            self._streak.clear()
            return False  # already counted in _owed

    def settle(self, source_id: str) -> int:
        """The failures this source is owed back; each is given back once."""
        with self._lock:
            return self._owed.pop(source_id, 0)


def hosts_needed(hosts: int) -> int:
    """How many distinct hosts must fail without an answer before the network counts as down (0: never)."""
    return min(MAX_HOSTS_FOR_OUTAGE, hosts) if hosts >= 2 else 0


def no_answer(result: PollResult) -> bool:
    """A failure where no server answered at all: the kind a network outage causes."""
    return result.outcome == Outcome.ERROR and result.failure is not None and result.failure.no_answer


def polled_over_http(url: str, result: PollResult) -> bool:
    """Whether this poll tells anything about the network: an HTTP(S) request was made."""
    return url.startswith(("http://", "https://")) and result.outcome != Outcome.SKIPPED


def outage_in_run(polls: Iterable[tuple[str, PollResult]]) -> list[str]:
    """For a run that polled each source once (`once`): the sources whose failures were the network's.

    Every (url, result) of the run is known, so the rule needs no order: the
    network was down when no HTTP poll got an answer and the polls that got
    none reached at least hosts_needed() distinct hosts. Then every such
    failure is the network's; otherwise none is.
    """
    polls = [(url, result) for url, result in polls if polled_over_http(url, result)]
    if not polls or not all(no_answer(result) for _, result in polls):
        return []
    needed = hosts_needed(len({host_key(url) for url, _ in polls}))
    return [result.source_id for _, result in polls] if needed else []


def forgive(store: Store, source: SourceConfig, count: int, note: bool, now: datetime | None = None) -> bool:
    """Take `count` failures the network caused off the source's error count and its backoff; `note` adds to
    its last error that the network was down. False when there was nothing to take off."""
    now = now or datetime.now(timezone.utc)
    with store.transaction() as db:
        state = store.source_state(source.id)
        errors = max(state.errors - count, 0)
        if errors == state.errors:
            return False
        state = replace(state, errors=errors)
        if note and state.last_error and not state.last_error.endswith(DOWN_NOTE):
            state = replace(state, last_error=state.last_error + DOWN_NOTE)
        if state.state == SourceStatus.FAILING:
            state = replace(state, next_poll=next_poll_after_failure(source, state, now))
        Store.save_source_state(db, state)
    return True


def forgive_run(store: Store, config: Config, states: dict[str, SourceState], results: list[PollResult]) -> list[str]:
    """After `once` polled: give back every failure of a run the network was down for; the sources forgiven."""
    polls = []
    for result in results:
        source = config.source(result.source_id)
        if source is not None:
            polls.append((polled_url(source, states.get(source.id) or SourceState(id=source.id)), result))
    down = outage_in_run(polls)
    return [source_id for source_id in down if forgive(store, config.source(source_id), 1, note=True)]
