"""Coalesced republishing: the outputs changed polls touched, rewritten once a burst of polls is over; and the
hubs told about it from the side."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

from ..output import websub

log = logging.getLogger("aggregator")

PUBLISH_QUIET = 1.0  # publish once no poll has changed anything for this long…
PUBLISH_MAX_WAIT = 10.0  # …or this long after the first change, whichever comes first
PUBLISH_URGENT = 0.1  # a pushed change (WebSub) waits only this long for company


class Publisher:
    """Republishes the outputs that changed polls touched, coalesced: one rewrite after a burst, not fifty."""

    def __init__(self, publish: Callable[[set[str] | None], None]):
        self._publish = publish
        self._cond = threading.Condition()
        self._pending: set[str] | None = set()  # None: every output
        self._any = False
        self._first = self._last = 0.0
        self._urgent = float("inf")  # when an urgent change wants its publish at the latest
        self._oldest: float | None = None  # the oldest change not yet taken by a publish
        self._publishing: float | None = None  # while a publish runs: the oldest change it carries
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="publisher", daemon=True)
        self._thread.start()

    def changed(self, outputs: set[str] | None, urgent: bool = False) -> None:
        """Queue outputs (None: all) to be published once the polls settle (urgent: within PUBLISH_URGENT)."""
        with self._cond:
            now = time.monotonic()
            if not self._any:
                self._first = now
            if self._oldest is None:
                self._oldest = now
            if urgent:
                self._urgent = min(self._urgent, now + PUBLISH_URGENT)
            self._any, self._last = True, now
            self._pending = None if outputs is None or self._pending is None else self._pending | outputs
            self._cond.notify()

    def pending_for(self) -> float | None:
        """Seconds the oldest change not yet published has waited (queued or being published), or None."""
        with self._cond:
            oldest = min((t for t in (self._oldest, self._publishing) if t is not None), default=None)
        return None if oldest is None else time.monotonic() - oldest

    def stop(self, timeout: float) -> None:
        """Publish what is pending now, then end."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._any and not self._stopping:
                    self._cond.wait()
                while not self._stopping:
                    wait = min(self._last + PUBLISH_QUIET, self._first + PUBLISH_MAX_WAIT,
                               self._urgent) - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if not self._any:
                    return
                outputs, self._pending, self._any = self._pending, set(), False
                self._publishing, self._oldest, self._urgent = self._oldest, None, float("inf")
            try:
                self._publish(outputs)
            except Exception:  # a bug must not end publishing for the rest of the daemon's life
                log.exception("publishing failed unexpectedly; the next change retries it")
            finally:
                with self._cond:
                    self._publishing = None


class HubPings:
    """The daemon's publish pings (websub.ping), one batch at a time on a thread of their own: a hub that does
    not answer (10 s a try, three tries) holds up neither a publish nor a stop (pings still queued then are
    dropped: subscribers see the change at their next poll)."""

    def __init__(self):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._loop, name="websub-ping", daemon=True).start()

    def __call__(self, hubs: tuple[str, ...], topics: list[str]) -> None:
        self._queue.put((hubs, topics))

    def _loop(self) -> None:
        while True:
            hubs, topics = self._queue.get()
            try:
                websub.ping(hubs, topics, parallel=1)  # no thread of its pool may outlive a stop
            except Exception as exc:  # noqa: BLE001 - a ping never stops the daemon, nor the pings after it
                log.warning("websub: pinging %s failed: %s", ", ".join(hubs), exc)
