"""The WebSub callback, /websub/<source-id>: what hubs send us (W3C WebSub §5.2, §5.3, §7).

- GET, hub.mode=subscribe: verification of intent. Answered with the
  hub.challenge only when hub.topic is the topic of a subscription we asked
  for (pending, or live and being confirmed again); anything else gets 404.
  The hub's hub.lease_seconds starts the lease (never longer than the one asked).
- GET, hub.mode=denied: the hub refused (or ended) the subscription; the
  source is polled at once and then at its normal interval.
- POST: content distribution. From a hub that has our secret, the body is
  taken only with a valid `X-Hub-Signature: method=signature` (HMAC of the
  raw body under that secret; sha1, sha256, sha384 or sha512); a missing or
  wrong signature gets the body discarded and the event logged, with the
  same 202 as a valid one, so the secret cannot be probed. A valid body goes
  through the same pipeline as a poll (limits, sanitising, dedup) and the
  outputs carrying the source are republished at once. From a hub that has
  no secret of ours (an http one) a push is only a hint: the source is
  polled now, at most every HINT_SPACING. A push for a source without a
  subscription gets 410 Gone, which tells the hub to drop it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime, timedelta, timezone
from typing import Callable
from urllib.parse import parse_qs

from ..config import ID_PATTERN, Config, SourceConfig
from ..errors import AggregatorError, StoreError
from ..models import FetchResult, PollResult, PushState, PushSubscription, polled_url
from ..redaction import redact
from ..store import Store
from .pipeline import KNOWN_HINT, Prepare, internal_error, store_fetched
from .push import Subscriber, enabled, renew_at

log = logging.getLogger("aggregator")

ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
HINT_SPACING = 10.0  # seconds: a hint polls the source at most this often
MAX_REASON = 300
TEXT = [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")]

Answer = tuple[str, bytes, list]  # status, body, headers: as server._send takes them


def signature_ok(header: str | None, body: bytes, secret: str) -> bool:
    """Whether `X-Hub-Signature: method=signature` is the HMAC of the body under the secret (WebSub §7.1)."""
    method, _, signature = (header or "").strip().partition("=")
    digest = ALGORITHMS.get(method.strip().lower())
    if digest is None or not signature:
        return False
    expected = hmac.new(secret.encode("utf-8"), body, digest).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


class Callbacks:
    """Answers the hubs; the daemon hands it what a push needs to be stored and published like a poll."""

    def __init__(self, current: Callable[[], Config], store: Store, subscriber: Subscriber, prepare: Prepare,
                 stored: Callable[[SourceConfig, PollResult, datetime], None], counted: Callable[[str], None]):
        self.current, self.store, self.subscriber, self.prepare = current, store, subscriber, prepare
        self.stored = stored  # the daemon's: publish what a push changed, and count it
        self.counted = counted  # metrics: what was done with a push (accepted, rejected, hint, refused)

    def __call__(self, environ, source_id: str) -> Answer:
        method = environ.get("REQUEST_METHOD", "GET")
        config = self.current()
        source = config.source(source_id) if ID_PATTERN.match(source_id) else None
        try:
            subscription = self.store.push_subscription(source_id) if source else None
        except StoreError as exc:
            log.error("websub: %s: %s", source_id, exc)
            return "503 Service Unavailable", b"state unavailable\n", TEXT
        wanted = enabled(config) and source is not None and source.enabled
        if method in ("GET", "HEAD"):
            return self.verify(source_id, parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
                               subscription if wanted else None)
        if method == "POST":
            return self.distribute(environ, source, subscription if wanted else None)
        return "405 Method Not Allowed", b"GET or POST\n", TEXT + [("Allow", "GET, HEAD, POST")]

    def verify(self, source_id: str, query: dict, subscription: PushSubscription | None) -> Answer:
        """Verification of intent, or a denial."""
        mode, topic = _first(query, "hub.mode"), _first(query, "hub.topic")
        now = datetime.now(timezone.utc)
        if subscription is None or topic != subscription.topic:
            return _not_found(source_id, mode, topic)
        if mode == "subscribe" and _first(query, "hub.challenge"):
            asked = int(self.current().push_lease)  # more than we asked for is not taken: a forged verification
            lease = min(_lease(_first(query, "hub.lease_seconds")) or asked, asked)  # could delay the renewal
            expires = now + timedelta(seconds=lease)
            if self.store.push_verified(source_id, topic, lease, expires, renew_at(expires, lease)):
                log.info("websub: %s: %s verified the subscription; live until %s", source_id,
                         redact(subscription.hub), expires.isoformat(timespec="seconds"))
                return "200 OK", _first(query, "hub.challenge").encode("utf-8"), TEXT
        elif mode == "denied":
            reason = " ".join((_first(query, "hub.reason") or "no reason given").split())[:MAX_REASON]
            if self.store.push_denied(source_id, topic, reason):
                log.warning("websub: %s: %s denied the subscription: %s; polling at the normal interval",
                            source_id, redact(subscription.hub), reason)
                self.subscriber.poll_soon(source_id, now)
                return "200 OK", b"", TEXT
        return _not_found(source_id, mode, topic)

    def distribute(self, environ, source: SourceConfig | None,
                   subscription: PushSubscription | None) -> Answer:
        """Content distribution: a signed body stored, a hint polled, anything else discarded."""
        if source is None or subscription is None or subscription.state == PushState.DENIED:
            self.counted("refused")
            return "410 Gone", b"no subscription here\n", TEXT
        body = environ["wsgi.input"].read(source.max_bytes + 1)
        if len(body) > source.max_bytes:
            log.warning("websub: %s: a push larger than max_bytes was discarded; polling instead", source.id)
            self._hint(source)
            return "413 Content Too Large", b"larger than this source's max_bytes\n", TEXT
        if subscription.secret is None:
            self.counted("hint")
            self._hint(source)
            return "202 Accepted", b"", TEXT
        if not signature_ok(environ.get("HTTP_X_HUB_SIGNATURE"), body, subscription.secret):
            self.counted("rejected")
            log.warning("websub: %s: a push with a %s signature was discarded (%d bytes from %s)", source.id,
                        "wrong" if environ.get("HTTP_X_HUB_SIGNATURE") else "missing", len(body),
                        environ.get("REMOTE_ADDR", "?"))
            return "202 Accepted", b"", TEXT
        self.counted("accepted")
        self.ingest(source, subscription, body, environ.get("CONTENT_TYPE") or "application/xml")
        return "202 Accepted", b"", TEXT

    def ingest(self, source: SourceConfig, subscription: PushSubscription, body: bytes, content_type: str) -> None:
        """A pushed body through poll's second half, as if a poll had fetched it from the topic."""
        config, now = self.current(), datetime.now(timezone.utc)
        headers = {"content-type": content_type, "content-location": subscription.topic}
        state = self.store.source_state(source.id)
        try:
            with self.store.snapshot() as db:
                latest = Store.latest_items(db, source.id, KNOWN_HINT)
            prepared = self.prepare(body, headers, subscription.topic, now, source.max_entries, source.id, latest)
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the body is, it costs this push only
            error = exc if isinstance(exc, AggregatorError) else internal_error(exc)
            log.warning("websub: %s: a pushed body could not be read (%s); polling the source instead",
                        source.id, error)
            self._hint(source)
            return
        result = store_fetched(self.store, config, source, state, polled_url(source, state), now,
                               FetchResult(subscription.topic, 200, body, headers), prepared=prepared)
        self.subscriber.poll_after(source.id, result.next_poll, now)
        log.info("websub: %s: pushed: %d new, %d updated", source.id, result.new, result.updated)
        self.stored(source, result, now)

    def _hint(self, source: SourceConfig) -> None:
        now = datetime.now(timezone.utc)
        last = self.store.source_state(source.id).last_poll
        when = max(now, last + timedelta(seconds=HINT_SPACING)) if last else now
        self.subscriber.poll_soon(source.id, when)


def _not_found(source_id: str, mode: str | None, topic: str | None) -> Answer:
    log.info("websub: %s: answered 404 to a hub's %s for %s: no such subscription was asked for", source_id,
             (mode or "request")[:20], redact(topic or "no topic")[:200])
    return "404 Not Found", b"no such subscription\n", TEXT


def _first(query: dict, key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _lease(text: str | None) -> int | None:
    try:
        seconds = int(text or "")
    except ValueError:
        return None
    return seconds if seconds > 0 else None
