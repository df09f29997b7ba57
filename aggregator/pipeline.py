"""Poll one source end to end: the one place that joins I/O to the pure stages.

fetch → parse → (per new or changed item) sanitise, identify, dedupe → store,
all of a poll's writes in one transaction, and every failure recorded on the
source instead of raised.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from datetime import datetime, timezone

from . import dedupe
from .config import Config, SourceConfig
from .errors import AggregatorError, FetchError, StoreError
from .fetch import fetch, host_key, retry_after
from .models import Entry, FetchResult, ParsedFeed, PollResult, SourceState
from .parse import parse_feed
from .sanitize import clean_html
from .schedule import next_poll_after_failure, next_poll_after_success
from .store import Store, story_uid, to_text


class HostLimiter:
    """At most `per_host` requests in flight to one host:port."""

    def __init__(self, per_host: int = 2):
        self.per_host = per_host
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}

    def slot(self, url: str) -> threading.BoundedSemaphore:
        key = host_key(url)
        with self._lock:
            if key not in self._semaphores:
                self._semaphores[key] = threading.BoundedSemaphore(self.per_host)
            return self._semaphores[key]


def polled_url(source: SourceConfig, state: SourceState) -> str:
    """The adopted URL after a permanent redirect, unless the operator has since changed the config."""
    if state.url and state.configured_url == source.url:
        return state.url
    return source.url


def poll(store: Store, config: Config, source: SourceConfig, limiter: HostLimiter,
         now: datetime | None = None) -> PollResult:
    """Fetch, parse and store one source; never raises for a source's own failure."""
    now = now or datetime.now(timezone.utc)
    state = store.source_state(source.id)
    url = polled_url(source, state)
    try:
        if url.startswith("file:"):
            result = fetch(url, timeout=source.timeout, max_bytes=source.max_bytes)
        else:
            with limiter.slot(url):
                result = fetch(url, etag=state.etag, last_modified=state.last_modified,
                               timeout=source.timeout, max_bytes=source.max_bytes)
        return _ingest(store, config, source, state, result, now)
    except FetchError as exc:
        return _record_failure(store, source, state, url, exc, now)
    except StoreError:
        raise
    except AggregatorError as exc:
        return _record_failure(store, source, state, url, exc, now)


def _ingest(store: Store, config: Config, source: SourceConfig, state: SourceState,
            result: FetchResult, now: datetime) -> PollResult:
    base = replace(
        state, state="ok", last_poll=now, last_success=now, last_status=result.status, errors=0,
        last_error=None, retry_after=None,
        etag=result.etag or (state.etag if result.not_modified else None),
        last_modified=result.last_modified or (state.last_modified if result.not_modified else None),
        url=result.permanent_url or (state.url if state.configured_url == source.url else None),
        configured_url=source.url,
    )
    body_hash = hashlib.sha256(result.body).hexdigest() if result.body is not None else state.body_hash
    if result.not_modified or body_hash == state.body_hash:
        final = replace(base, next_poll=next_poll_after_success(source, base, result.max_age, now))
        with store.transaction() as db:
            store.save_source_state(db, final)
        return PollResult(source.id, "unchanged", status=result.status)
    feed = parse_feed(result.body, result.headers, url=result.url, now=now, max_entries=source.max_entries)
    min_interval = max(filter(None, (feed.info.ttl, result.max_age)), default=None)
    base = replace(
        base, body_hash=body_hash, feed_title=feed.info.title, feed_link=feed.info.link,
        feed_id=feed.info.id, min_interval=min_interval,
        feed_updated=feed.info.updated or max((e.updated or e.published for e in feed.entries
                                               if e.updated or e.published), default=state.feed_updated),
    )
    final = replace(base, next_poll=next_poll_after_success(source, base, result.max_age, now))
    with store.transaction() as db:
        new, updated = _store_entries(db, source, feed, now, config.dedup_window)
        store.save_source_state(db, final)
    outcome = "new" if new else "updated" if updated else "unchanged"
    return PollResult(source.id, outcome, new=new, updated=updated, status=result.status)


def _store_entries(db, source: SourceConfig, feed: ParsedFeed, now: datetime, window: float,
                   context: dedupe.SourceContext | None = None) -> tuple[int, int]:
    entries = list({e.key: e for e in reversed(feed.entries)}.values())[::-1]  # first occurrence of a key wins
    known = Store.item_hashes(db, source.id, [e.key for e in entries])
    dedupe.ensure_index(db)
    context = context or dedupe.source_context(db, source.id, feed)
    new = updated = 0
    for entry in entries:
        digest = raw_hash(entry)
        stored = known.get(entry.key)
        if stored and stored[1] == digest:
            continue
        values = item_values(entry, digest, now, stored[2] if stored else None)
        copy = dedupe.new_copy(context, entry.title, dedupe.page_link(entry),
                               dedupe.text_of(values["content"], values["summary"]), values["published"])
        values.update(copy.columns())
        if stored:
            values.pop("first_seen")
            Store.update_item(db, stored[0], values)
            dedupe.index(db, stored[0], copy)
            updated += 1
            continue
        match = dedupe.find_story(db, copy, window)
        story_id = match.story_id if match else Store.create_story(db, story_uid(source.id, entry.key), now)
        item_id = Store.insert_item(db, story_id, source.id, {"key": entry.key, **values})
        dedupe.index(db, item_id, copy)
        if match:
            Store.record_merge(db, item_id, story_id, match.matched_item, match.evidence, match.score, now,
                               match.details)
        new += 1
    return new, updated


def raw_hash(entry: Entry) -> str:
    """Changes whenever anything the source says about the item changes."""
    parts = (entry.title, entry.link, entry.summary, entry.content, entry.authors, entry.categories,
             to_text(entry.published), to_text(entry.updated), entry.language)
    return hashlib.sha256(repr(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def item_values(entry: Entry, digest: str, now: datetime, stored_published: str | None) -> dict:
    """The columns of an item: sanitised HTML and the two dates of SPEC §4.

    published: the source's published date, else its updated date, else when
    first seen. updated: the source's updated date, else (for a change) now;
    never earlier than published.
    """
    if entry.published or entry.updated:
        published = entry.published or entry.updated
    elif stored_published:
        published = datetime.strptime(stored_published, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    else:
        published = now
    if entry.updated:
        updated = entry.updated
    else:
        updated = now if stored_published else published
    updated = max(updated, published)
    return {
        "guid": entry.guid,
        "link": entry.link,
        "title": entry.title,
        "summary": clean_html(entry.summary, entry.link),
        "content": clean_html(entry.content, entry.link),
        "authors": entry.authors,
        "categories": entry.categories,
        "language": entry.language,
        "published": published,
        "updated": updated,
        "first_seen": now,
        "raw_hash": digest,
    }


def _record_failure(store: Store, source: SourceConfig, state: SourceState, url: str,
                    exc: AggregatorError, now: datetime) -> PollResult:
    status = getattr(exc, "status", None)
    gone = status == 410
    failed = replace(
        state, state="gone" if gone else "failing", last_poll=now, last_status=status,
        errors=state.errors + 1, last_error=str(exc),
        retry_after=retry_after(getattr(exc, "retry_after", None), now) if status in (429, 503) else None,
        url=state.url if state.configured_url == source.url else None, configured_url=source.url,
    )
    failed = replace(failed, next_poll=None if gone else next_poll_after_failure(source, failed, now))
    with store.transaction() as db:
        store.save_source_state(db, failed)
    return PollResult(source.id, "error", status=status, error=str(exc))


def publish_outputs(store: Store, config: Config, now: datetime | None = None) -> list:
    """Render every output from the store; the files actually rewritten."""
    from .publish import publish_output
    from .select import select_entries

    written = []
    for output in config.outputs:
        written += publish_output(config, output, select_entries(store, config, output, now))
    return written
