"""Telling a dead network from dead hosts (SPEC §5.4).

When every server stops answering at once, the network is down, not the
sources: their error counts and backoff are left alone.
"""

from __future__ import annotations

import threading

from ..config import Config
from ..reader.hosts import host_key

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
            self._needed = min(MAX_HOSTS_FOR_OUTAGE, len(hosts)) if len(hosts) >= 2 else 0

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


def no_answer(error: str | None, status: int | None) -> bool:
    """A failure where no server answered at all: the kind a network outage causes."""
    return status is None and bool(error) and error.startswith(
        ("fetch: cannot connect", "fetch: connection timed out"))
