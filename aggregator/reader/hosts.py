"""Per-host politeness: at most 2 requests in flight to one host:port, and spaced request starts.

SPEC §5.1 allows at most 2 requests in flight to one host:port; the daemon
also spaces request starts to one host, so fifty feeds on one site are not
fetched in one burst. A fetch takes a slot of each host it talks to, in turn
(fetch.Slot): a redirect to another host counts against that host.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlsplit

from ..config import Config

DEFAULT_SPACING = 1.0  # seconds between request starts to one host


def host_key(url: str) -> str:
    """host:port, the unit of politeness limits (a redirect's port may be no port at all: its text then,
    and requests refuses the URL)."""
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    except ValueError:  # out of range or not a number: the request will fail, under a key of its own
        port = parts.netloc.rpartition(":")[2]
    return f"{(parts.hostname or '').lower()}:{port}"


class HostLimiter:
    """At most `per_host` requests in flight to one host:port. A host is kept only while a request holds or
    waits for one of its slots: the hosts redirects lead to (a feed chooses them) do not pile up for as long
    as the daemon runs."""

    def __init__(self, per_host: int = 2):
        self.per_host = per_host
        self._lock = threading.Lock()
        self._hosts: dict[str, tuple[threading.BoundedSemaphore, list[int]]] = {}  # the slots, and their users

    def __len__(self) -> int:
        """The hosts a request holds or waits for a slot of."""
        return len(self._hosts)

    @contextmanager
    def slot(self, url: str) -> Iterator[None]:
        key = host_key(url)
        with self._lock:
            semaphore, users = self._hosts.setdefault(key, (threading.BoundedSemaphore(self.per_host), [0]))
            users[0] += 1
        try:
            with semaphore:
                yield
        finally:
            with self._lock:
                users[0] -= 1
                if not users[0]:
                    del self._hosts[key]


def host_spacing(config: Config) -> dict[str, float]:
    """Each host's minimum spacing: a second, or half the shortest interval asked of that host if shorter.

    An operator who configures sub-second intervals on a host (tests, a local
    service) has said that host can take it.
    """
    spacing: dict[str, float] = {}
    for source in config.sources:
        if source.enabled and source.url.startswith(("http://", "https://")):
            key = host_key(source.url)
            spacing[key] = min(spacing.get(key, DEFAULT_SPACING), source.interval / 2)
    return spacing


class PoliteLimiter(HostLimiter):
    """HostLimiter's 2-in-flight bound plus a minimum spacing between request starts to one host."""

    def __init__(self, config: Config, per_host: int = 2):
        super().__init__(per_host)
        self._spacing = host_spacing(config)
        self._next_start: dict[str, float] = {}

    def configure(self, config: Config) -> None:
        """Take a reloaded config's hosts; requests in flight keep their slots."""
        with self._lock:
            self._spacing = host_spacing(config)

    @contextmanager
    def slot(self, url: str) -> Iterator[None]:
        key = host_key(url)
        with super().slot(url):
            with self._lock:
                now = time.monotonic()
                start = max(now, self._next_start.get(key, 0.0))
                if len(self._next_start) > 2 * len(self._spacing) + 64:  # a start in the past spaces nothing
                    self._next_start = {k: t for k, t in self._next_start.items() if t > now}
                self._next_start[key] = start + self._spacing.get(key, DEFAULT_SPACING)
            time.sleep(start - now)
            yield
