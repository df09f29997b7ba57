"""WebSub subscriptions (SPEC §5.3, W3C WebSub): finding hubs, subscribing, renewing, falling back to polling.

With `websub.subscribe` and `server.public_url`, every poll that brings a
body looks for the hub and topic the feed advertises (reader.discovery); a
new one becomes a pending subscription in the store. A thread of its own
then asks the hub for it (W3C WebSub §5.1: hub.callback
`<public_url>websub/<source-id>`, hub.mode, hub.topic, hub.lease_seconds,
and hub.secret, a fresh random one, only to an HTTPS hub), follows a 307/308
to another hub, retries failures with growing pauses, renews a live lease
before it ends, and turns a lease that ended unrenewed back into polling.
The hub's answers (verification, denial, content) come to callback.py.

While a subscription is live its source is polled only as a safety net, at
most every `websub.safety_interval`; on denial or a lapsed lease it is
polled at once and then at its normal interval.

Which process subscribes: alone on a SQLite state, the daemon. On
PostgreSQL, the worker holding the publishing lock sends every request and
renewal, for every worker (so one process acts on a subscription at a time);
any worker answers the hub's callbacks, since subscriptions live in the
shared state, and any worker's polls discover hubs.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import socket
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Callable
from urllib.parse import urljoin, urlsplit

import requests

from .. import USER_AGENT
from ..config import Config, SourceConfig
from ..errors import AggregatorError
from ..models import FetchResult, PushState, PushSubscription
from ..reader.discovery import discover
from ..reader.transport import PUBLIC_NETWORKS_ENV, AddressPolicy, AddressRefused, Watch, WatchedAdapter
from ..redaction import redact
from ..store import Store

log = logging.getLogger("aggregator")

RENEW_SHARE = 0.25  # renew once this share of the lease is left…
RENEW_MARGIN_MAX = 86400.0  # …but no earlier than a day before it ends…
RENEW_MARGIN_MIN = 5.0  # …and no later than this before it ends (or half a lease shorter than twice this)
VERIFY_WAIT = 300.0  # seconds a hub gets to verify a request before it is asked again
RETRY_FIRST, RETRY_MAX = 60.0, 6 * 3600.0  # pauses after failed requests: doubling from the first, up to the last
REQUEST_TIMEOUT = 20.0
MAX_HUB_REDIRECTS = 3
TICK = 1.0  # seconds between looks at the subscriptions due


class PushError(AggregatorError):
    """A subscription request failed (the hub unreachable, refused, or on a forbidden address)."""

    stage = "websub"

    def __init__(self, message: str, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable  # no answer at all (connection, TLS, deadline): another URL may do


class Action(Enum):
    """What a due subscription needs."""

    REQUEST = "request"  # pending and not asked for (or asked in vain): send the request
    RENEW = "renew"  # live, its lease nearing its end
    LAPSE = "lapse"  # live, its lease over: back to polling, then ask again
    GIVE_UP_WAITING = "give up waiting"  # asked, never verified
    DROP = "drop"  # its source is no longer configured (or subscribing is off)
    NOTHING = "nothing"


def enabled(config: Config) -> bool:
    return config.subscribe and config.public_url is not None and config.listen is not None


def callback_url(config: Config, source_id: str) -> str:
    return f"{config.public_url}websub/{source_id}"


def plan(subscription: PushSubscription, now: datetime, wanted: bool) -> Action:
    """What to do about a subscription that is due (its next_action has come)."""
    if not wanted:
        return Action.DROP
    if subscription.state == PushState.DENIED:
        return Action.NOTHING
    if subscription.state == PushState.LIVE:
        return Action.LAPSE if subscription.expires is None or subscription.expires <= now else Action.RENEW
    return Action.REQUEST if subscription.requested is None else Action.GIVE_UP_WAITING


def renew_at(expires: datetime, lease: float) -> datetime:
    """When to renew a lease ending at `expires`: with a quarter of it left, at most a day and at least a few
    seconds (a few ticks of the subscriber's thread) before its end."""
    margin = max(lease * RENEW_SHARE, min(lease / 2, RENEW_MARGIN_MIN))
    return expires - timedelta(seconds=min(margin, RENEW_MARGIN_MAX))


def retry_delay(attempts: int) -> float:
    return min(RETRY_FIRST * 2 ** min(attempts, 20), RETRY_MAX)


class Subscriber:
    """The daemon's subscriptions: discovery from polls, and a thread that sends requests and renewals.

    The daemon hands it the current config, the store, `poll_soon(source_id,
    when)` to bring a source's poll forward, and `leading()`: whether this
    process sends the requests (see the module's note on workers).
    """

    def __init__(self, current: Callable[[], Config], store: Store, poll_soon: Callable[[str, datetime], None],
                 leading: Callable[[], bool]):
        self.current, self.store, self.poll_soon, self.leading = current, store, poll_soon, leading
        self._known: dict[str, tuple[str, str] | None] = {}  # what each source advertised at its last poll
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.mount("http://", WatchedAdapter())
        self._session.mount("https://", WatchedAdapter())
        self._thread = threading.Thread(target=self._loop, name="websub", daemon=True)

    def start(self) -> None:
        self.reconcile()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    # discovery, from the polls

    def discovered(self, source: SourceConfig, result: FetchResult | None) -> None:
        """A poll fetched a body: note the hub and topic it advertises (or that it advertises none now)."""
        if result is None or result.body is None or not enabled(self.current()):
            return
        found = discover(result.body, result.headers, result.url)
        key = (found.hub, found.topic) if found else None
        with self._lock:
            if source.id in self._known and self._known[source.id] == key:
                return
        now = datetime.now(timezone.utc)
        if found is None:
            if self.store.drop_push(source.id):
                log.info("websub: %s no longer advertises a hub; its subscription is dropped", source.id)
        elif self.store.push_discovered(source.id, found.hub, found.topic, now):
            log.info("websub: %s advertises the hub %s for %s; subscribing", source.id, redact(found.hub),
                     redact(found.topic))
            self._wake.set()
        with self._lock:
            self._known[source.id] = key

    def reconcile(self) -> None:
        """At a start or reload: drop the subscriptions of sources no longer configured, or all when subscribing
        is off (a push for them is then answered 410 Gone, which tells the hub to stop)."""
        config = self.current()
        polled = {s.id for s in config.sources if s.enabled}
        wanted = polled if enabled(config) else set()
        now = datetime.now(timezone.utc)
        for source_id in set(self.store.push_subscriptions()) - wanted:
            self.store.drop_push(source_id)
            log.info("websub: %s: subscription dropped (%s)", source_id,
                     "source no longer polled" if enabled(config) else "websub.subscribe is off")
            if source_id in polled:
                self.poll_soon(source_id, now)  # its safety net (a poll in up to 6 h) goes with the subscription
        with self._lock:
            self._known.clear()

    # the safety net

    def poll_after(self, source_id: str, when: datetime | None, now: datetime) -> datetime | None:
        """The next poll of a source polled (or pushed to) just now: `when`, or the safety net's later time while
        its subscription is live (kept in the store too, where `status` and other workers read it)."""
        config = self.current()
        if when is None or not enabled(config):
            return when
        subscription = self.store.push_subscription(source_id)
        if (subscription is None or subscription.state != PushState.LIVE or subscription.expires is None
                or subscription.expires <= now):
            return when
        later = now + timedelta(seconds=config.push_safety_interval)
        if later <= when:
            return when
        self.store.set_next_poll(source_id, later)
        return later

    # the requests

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                if self.leading():
                    self.tick(datetime.now(timezone.utc))
            except AggregatorError as exc:
                log.error("websub: %s; retrying", exc)
            except Exception:  # noqa: BLE001 - a bug must not end subscribing for the daemon's life
                log.exception("websub: subscribing failed unexpectedly; retrying")
            self._wake.wait(TICK)
            self._wake.clear()

    def tick(self, now: datetime) -> None:
        """Act on every subscription that is due."""
        config = self.current()
        for subscription in self.store.push_due(now):
            if self._stopped.is_set():
                return
            source = config.source(subscription.source_id)
            action = plan(subscription, now, enabled(config) and source is not None and source.enabled)
            if action == Action.DROP:
                self.store.drop_push(subscription.source_id)
            elif action in (Action.REQUEST, Action.RENEW):
                self._request(config, source, subscription, now)
            elif action == Action.LAPSE:
                self._lapse(subscription, now)
            elif action == Action.GIVE_UP_WAITING:
                self.store.push_failed(subscription.source_id, subscription.requested,
                                       f"the hub did not verify the subscription within {VERIFY_WAIT:g}s",
                                       now + timedelta(seconds=retry_delay(subscription.attempts)))

    def _lapse(self, subscription: PushSubscription, now: datetime) -> None:
        error = subscription.error or "the lease ended before the hub confirmed a renewal"
        if self.store.push_lapsed(subscription.source_id, subscription.expires, error, now):
            log.warning("websub: %s: the subscription at %s lapsed (%s); polling at the normal interval",
                        subscription.source_id, redact(subscription.hub), error)
            self.poll_soon(subscription.source_id, now)

    def _request(self, config: Config, source: SourceConfig, subscription: PushSubscription, now: datetime) -> None:
        """Send the subscription request (or renewal), following a hub's 307/308, and note how it went."""
        hub, live = subscription.hub, subscription.state == PushState.LIVE
        for _ in range(MAX_HUB_REDIRECTS + 1):
            subscription, response = self._send(config, source, subscription, hub, now)
            if isinstance(response, PushError):
                return self._failed(subscription, str(response), now)
            if response.status_code in (307, 308) and response.headers.get("Location"):
                hub = urljoin(subscription.hub, response.headers["Location"])
                continue
            if 200 <= response.status_code < 300:
                log.info("websub: %s: %s the subscription to %s at %s (lease %ds asked)", source.id,
                         "renewing" if live else "asked for", redact(subscription.topic), redact(subscription.hub),
                         int(config.push_lease))
                return None
            detail = " ".join(response.text[:200].split())
            return self._failed(subscription, f"the hub answered HTTP {response.status_code}"
                                + (f": {detail}" if detail else ""), now)
        return self._failed(subscription, f"more than {MAX_HUB_REDIRECTS} redirects between hubs", now)

    def _send(self, config: Config, source: SourceConfig, subscription: PushSubscription, hub: str,
              now: datetime) -> tuple[PushSubscription, requests.Response | PushError]:
        """One request to `hub`: an http one over https first (WebSub §8.2), and only there with our secret;
        the subscription as stored before the attempt that answered or failed last (stored first, since a hub
        may verify before it answers), and the answer or the failure."""
        attempts = ["https://" + hub[len("http://"):], hub] if hub.startswith("http://") else [hub]
        wait = now + timedelta(seconds=VERIFY_WAIT)
        live = subscription.state == PushState.LIVE
        for number, url in enumerate(attempts):
            secret = (subscription.secret or secrets.token_urlsafe(32)) if url.startswith("https://") else None
            subscription = replace(subscription, hub=url, secret=secret, requested=now,
                                   next_action=min(wait, subscription.expires) if live else wait)
            self.store.save_push(subscription)
            form = {"hub.callback": callback_url(config, source.id), "hub.mode": "subscribe",
                    "hub.topic": subscription.topic, "hub.lease_seconds": str(max(int(config.push_lease), 1))}
            if secret:
                form["hub.secret"] = secret
            try:
                return subscription, self._post(url, form, source.url)
            except PushError as exc:
                if number == len(attempts) - 1 or not exc.unreachable:
                    return subscription, exc
        raise AssertionError("unreachable")  # the last attempt returns

    def _failed(self, subscription: PushSubscription, error: str, now: datetime) -> None:
        delay = retry_delay(subscription.attempts)
        retry = now + timedelta(seconds=delay)
        if subscription.state == PushState.LIVE and subscription.expires:
            retry = min(retry, subscription.expires)
        self.store.push_failed(subscription.source_id, subscription.requested, error, retry)
        log.warning("websub: %s: subscribing at %s failed: %s; trying again at %s%s", subscription.source_id,
                    redact(subscription.hub), error, retry.isoformat(timespec="seconds"),
                    "" if subscription.state == PushState.LIVE else " (polled as usual meanwhile)")

    def _post(self, hub: str, form: dict, source_url: str) -> requests.Response:
        """POST the form to the hub, under a whole-request deadline; a hub on an internal address only for a
        source that is on one itself (or read from a file)."""
        policy = AddressPolicy.from_environment()
        watch = Watch(REQUEST_TIMEOUT, policy, check_addresses=not requests.utils.get_environ_proxies(hub))
        watch.hop, watch.allow_internal = 1, _internal(source_url, policy)
        try:
            with watch:
                response = self._session.post(hub, data=form, allow_redirects=False,
                                              timeout=(min(10.0, REQUEST_TIMEOUT), REQUEST_TIMEOUT))
                response.content  # noqa: B018 - read within the deadline
                return response
        except AddressRefused:
            raise PushError(f"the hub {urlsplit(hub).hostname} is on an internal address; list its network "
                            f"in {PUBLIC_NETWORKS_ENV} if it is really public") from None
        except requests.RequestException as exc:
            if watch.expired or isinstance(exc, requests.Timeout):
                raise PushError(f"the hub did not answer within {REQUEST_TIMEOUT:g}s", True) from exc
            errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
            reason = errno.group(1).strip() if errno else type(exc).__name__
            raise PushError(f"cannot reach the hub: {reason}", True) from exc


def _internal(url: str, policy: AddressPolicy) -> bool:
    """Whether the source is itself on an internal address (or a file), so its hub may be too."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return True
    host = parts.hostname or ""
    try:
        return policy.is_internal(str(ipaddress.ip_address(host)))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(policy.is_internal(info[4][0]) for info in infos)
