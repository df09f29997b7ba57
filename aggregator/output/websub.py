"""WebSub: tell each hub that a feed changed, so subscribed readers get it at once instead of polling.

The publish ping is the form hubs accept (WebSub leaves it to the hub; this
is PubSubHubbub's): a form POST of hub.mode=publish and hub.url=TOPIC, one per
topic. A 2xx answer is success. A connection error, 429 or 5xx is retried after
growing pauses; any other answer is final. A hub that fails is reported and
never stops publishing: the feeds are already written.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from .. import USER_AGENT

RETRY_DELAYS = (1.0, 5.0)  # pauses before the 2nd and 3rd attempt
TIMEOUT = 10.0
MAX_PARALLEL = 8

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PingResult:
    hub: str
    topic: str
    ok: bool
    attempts: int
    error: str | None = None


def ping(hubs: tuple[str, ...] | list[str], topics: list[str], *, delays: tuple[float, ...] = RETRY_DELAYS,
         timeout: float = TIMEOUT, parallel: int = MAX_PARALLEL) -> list[PingResult]:
    """Ping every hub about every topic (`parallel` at a time; 1: in the calling thread, one after the other);
    failures are also logged as one line each."""
    jobs = [(hub, topic) for hub in hubs for topic in topics]
    if not jobs:
        return []
    with requests.Session() as session:
        session.headers["User-Agent"] = USER_AGENT
        one = lambda job: _ping_one(session, *job, delays, timeout)  # noqa: E731
        if parallel <= 1:
            results = [one(job) for job in jobs]
        else:
            with ThreadPoolExecutor(max_workers=min(parallel, len(jobs))) as pool:
                results = list(pool.map(one, jobs))
    for result in results:
        if not result.ok:
            log.warning("websub: hub %s was not told about %s after %d attempt(s): %s; "
                        "subscribers will see the change when they next poll",
                        result.hub, result.topic, result.attempts, result.error)
    return results


def _ping_one(session: requests.Session, hub: str, topic: str, delays: tuple[float, ...],
              timeout: float) -> PingResult:
    error = None
    for attempt in range(1, len(delays) + 2):
        try:
            response = session.post(hub, data={"hub.mode": "publish", "hub.url": topic}, timeout=timeout)
        except requests.RequestException as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        else:
            if 200 <= response.status_code < 300:
                return PingResult(hub, topic, True, attempt)
            error = f"HTTP {response.status_code}"
            if response.status_code != 429 and response.status_code < 500:
                return PingResult(hub, topic, False, attempt, error)
        if attempt <= len(delays):
            time.sleep(delays[attempt - 1])
    return PingResult(hub, topic, False, len(delays) + 1, error)
