"""Poll one source end to end: the one place that joins I/O to the pure stages.

fetch → parse → (per new or changed item) sanitise, identify, dedupe → store,
all of a poll's writes in one transaction, and every failure recorded on the
source instead of raised.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone

from ..config import Config, SourceConfig
from ..dedup import copies as dedup_copies, match as dedup_match
from ..errors import AggregatorError, StoreError, failure_kind
from ..models import (Entry, FetchResult, Outcome, ParsedFeed, PollResult, SourceState, SourceStatus, from_text,
                      polled_url)
from ..redaction import redact
from ..reader.fetch import fetch, retry_after
from ..reader.hosts import HostLimiter
from ..reader.sanitize import SANITIZER
from ..store import Store, story_uid
from ..store.stories import DecidedBy, Join
from .prepare import PreparedFeed, PreparedItem, prepare_feed, prepare_item, raw_hash
from .schedule import next_poll_after_failure, next_poll_after_success

#: prepare_feed's signature: in place, or a prepare.Preparer's worker processes.
Prepare = Callable[..., PreparedFeed]
KNOWN_HINT = 1000  # a source's latest stored items whose raw hashes tell the preparer what to skip


#: The outputs that select any of these sources (for stories that copies of several sources joined).
Selecting = Callable[[Iterable[str]], list[str]]

#: Told of each fetch a poll makes: its result (None when it failed) and how long it took, in seconds.
Observe = Callable[[FetchResult | None, float], None]


def poll(store: Store, config: Config, source: SourceConfig, limiter: HostLimiter,
         now: datetime | None = None, prepare: Prepare = prepare_feed, state: SourceState | None = None,
         observe: Observe | None = None) -> PollResult:
    """Fetch, parse and store one source; never raises for a source's own failure.

    `state` is the source's stored state when the caller has just read it (`once` reads every source's at its start).
    `observe` sees the fetch before it is stored (the daemon's metrics and WebSub discovery).
    """
    now = now or datetime.now(timezone.utc)
    state = state or store.source_state(source.id)
    url = polled_url(source, state)
    return _recorded(store, source, state, url, now, lambda: _ingest(
        store, config, source, state, fetch_source(source, state, url, limiter, observe), now, prepare))


def fetch_source(source: SourceConfig, state: SourceState, url: str, limiter: HostLimiter,
                 observe: Observe | None = None) -> FetchResult:
    """The conditional GET of a poll, in one of the slots of each host it talks to, a redirect's target
    too (a file: URL needs none)."""
    if url.startswith("file:"):
        return _observed(observe, lambda: fetch(url, timeout=source.timeout, max_bytes=source.max_bytes,
                                                shown=source.shown_url))
    slots = _Granted(limiter)
    return _observed(observe, lambda: fetch(url, etag=state.etag, last_modified=state.last_modified,
                                            timeout=source.timeout, max_bytes=source.max_bytes, slot=slots.slot),
                     slots)


class _Granted:
    """A limiter's slots for one fetch, and when the first was granted (where `observe` starts timing)."""

    def __init__(self, limiter: HostLimiter):
        self._limiter = limiter
        self.at: float | None = None

    @contextmanager
    def slot(self, url: str) -> Iterator[None]:
        with self._limiter.slot(url):
            self.at = self.at or time.monotonic()
            yield


def _observed(observe: Observe | None, read: Callable[[], FetchResult], slots: _Granted | None = None) -> FetchResult:
    """read(), timed (from the first host slot's grant to the last byte) and shown to `observe`."""
    if observe is None:
        return read()
    started, result = time.monotonic(), None
    try:
        result = read()
        return result
    finally:
        observe(result, time.monotonic() - (slots.at if slots and slots.at else started))


def store_fetched(store: Store, config: Config, source: SourceConfig, state: SourceState, url: str,
                  now: datetime, outcome: FetchResult | AggregatorError, body_hash: str | None = None,
                  prepared: PreparedFeed | None = None) -> PollResult:
    """poll's second half, for a fetch and its preparing done elsewhere (`outcome`: the response, body
    emptied once hashed and prepared, or the failure)."""
    def ingest() -> PollResult:
        if isinstance(outcome, AggregatorError):
            raise outcome
        return _ingest(store, config, source, state, outcome, now, lambda *_: prepared, body_hash)
    return _recorded(store, source, state, url, now, ingest)


def internal_error(exc: Exception) -> AggregatorError:
    """A bug met by hostile input, as a failure of this source only, not of the run (SPEC §7)."""
    return AggregatorError(f"internal error on this source's data: {exc.__class__.__name__}: "
                           f"{' '.join(str(exc).split())[:200]}; please report it")


def _recorded(store: Store, source: SourceConfig, state: SourceState, url: str, now: datetime,
              step: Callable[[], PollResult]) -> PollResult:
    """step's result, or its failure recorded on the source."""
    try:
        return step()
    except StoreError:
        raise
    except AggregatorError as exc:
        return _record_failure(store, source, state, url, exc, now)
    except Exception as exc:  # noqa: BLE001
        return _record_failure(store, source, state, url, internal_error(exc), now)


def _ingest(store: Store, config: Config, source: SourceConfig, state: SourceState,
            result: FetchResult, now: datetime, prepare: Prepare, body_hash: str | None = None) -> PollResult:
    base = replace(
        state, state=SourceStatus.OK, last_poll=now, last_success=now, last_status=result.status, errors=0,
        last_error=None, last_failure=None, retry_after=None,
        etag=result.etag or (state.etag if result.not_modified else None),
        last_modified=result.last_modified or (state.last_modified if result.not_modified else None),
        url=result.permanent_url or (state.url if state.configured_url == source.url else None),
        configured_url=source.url,
    )
    if body_hash is None:
        body_hash = hashlib.sha256(result.body).hexdigest() if result.body is not None else state.body_hash
    if result.not_modified or body_hash == state.body_hash:
        with store.transaction() as db:
            final = _scheduled(db, source, base, result.max_age, now)
            store.save_source_state(db, final)
        return PollResult(source.id, Outcome.UNCHANGED, status=result.status, next_poll=final.next_poll)
    with store.snapshot() as db:
        latest = known_items(db, source.id)
    try:
        prepared = prepare(result.body, result.headers, result.url, now, source.max_entries, source.id, latest)
    except AggregatorError as exc:
        raise exc.answered(result.status)
    feed = prepared.feed
    min_interval = max(filter(None, (feed.info.ttl, result.max_age)), default=None)
    base = replace(
        base, body_hash=body_hash, changed_bodies=state.changed_bodies + 1, body_changed=now,
        feed_title=feed.info.title, feed_link=feed.info.link, feed_id=feed.info.id, feed_self=feed.info.self_link,
        min_interval=min_interval,
        skip_hours=" ".join(map(str, sorted(feed.info.skip_hours))) or None,
        skip_days=" ".join(sorted(feed.info.skip_days)) or None,
        warning="; ".join(filter(None, (feed.warning, feed.encoding_warning))) or None,
    )
    with store.transaction() as db:
        new, updated = store_entries(store, db, source, feed, now, config.dedup_window, prepared=prepared,
                                     queue_for=[o.id for o in config.outputs if o.selects(source)],
                                     selecting=lambda ids: outputs_selecting(config, ids))
        # the feed's own date, else its newest item's (never back before what it was), else when its items last
        # changed: never merely when it was polled (SPEC §4)
        dated = max((e.updated or e.published for e in feed.entries if e.updated or e.published), default=None)
        dated = max(filter(None, (dated, state.feed_updated))) if dated else Store.newest_update(db, source.id)
        base = replace(base, feed_updated=feed.info.updated or dated)
        final = _scheduled(db, source, base, result.max_age, now)
        store.save_source_state(db, final)
    outcome = Outcome.NEW if new else Outcome.UPDATED if updated else Outcome.UNCHANGED
    return PollResult(source.id, outcome, new=new, updated=updated, status=result.status, next_poll=final.next_poll)


def known_items(db, source_id: str) -> list[tuple[str, str, str]]:
    """(key, raw hash, title) of what the store already holds of a source, newest first, then its tombstones:
    what the preparer need not prepare again."""
    return Store.latest_items(db, source_id, KNOWN_HINT) + Store.tombstone_hints(db, source_id, KNOWN_HINT)


def _scheduled(db, source: SourceConfig, state: SourceState, max_age: int | None, now: datetime) -> SourceState:
    """The state with its next poll, adapted to the publishing history this poll's entries are part of."""
    history = Store.publishing_history(db, source.id, now)
    return replace(state, next_poll=next_poll_after_success(source, state, max_age, history, now))


def store_entries(store: Store, db, source: SourceConfig, feed: ParsedFeed, now: datetime, window: float,
                  context: dedup_copies.SourceContext | None = None,
                  prepared: PreparedFeed | None = None, queue_for: Iterable[str] = (),
                  selecting: Selecting | None = None) -> tuple[int, int]:
    """Store a poll's new and changed entries, each in the story dedup finds for it or a new one, inside the
    poll's transaction `db`; (new, updated). The stories touched are queued for the outputs `queue_for`.
    A new copy matching several stories joins them into one (`join_matched`), queued for the outputs
    `selecting` names for their sources (every output in `queue_for` when not given).

    What `prepared` holds was made with its own context: it is used when the
    caller gives no other.
    """
    entries, known = _listed_entries(store, db, source.id, feed, now)
    Store.ensure_index(db, since=dedup_match.index_horizon(now, window))
    if context is None:
        context = prepared.context if prepared else dedup_copies.source_context(
            source.id, feed, [title for _, _, title in Store.latest_items(db, source.id, dedup_copies.RECENT_TITLES)])
    ready = prepared.items if prepared and prepared.context is context else {}
    hashes = prepared.hashes if prepared else {}
    updated, touched = 0, set()
    fresh: list[tuple[Entry, dict, dedup_copies.Copy]] = []
    for entry in entries:
        item = ready.get(entry.key)
        stored = known.get(entry.key)
        if stored and stored[1] == (item.raw_hash if item else hashes.get(entry.key) or raw_hash(entry)):
            continue
        item = item or prepare_item(entry, context, now)
        values = item_values(entry, item, now, stored[2] if stored else None)
        copy = item.copy if item.copy.published == values["published"] else replace(
            item.copy, published=values["published"])
        values.update(copy.columns())
        if stored:
            values.pop("first_seen")
            Store.update_item(db, stored[0], values)
            touched.add(stored[3])
            if copy.published >= dedup_match.index_horizon(now, window):
                Store.index(db, stored[0], copy)
            updated += 1
        else:
            fresh.append((entry, values, copy))
    fresh = _not_pruned(db, source.id, fresh, now)
    touched = _store_fresh(db, source.id, fresh, touched, window, now, queue_for, selecting)
    Store.queue_stories(db, queue_for, touched)
    return len(fresh), updated


def _listed_entries(store: Store, db, source_id: str, feed: ParsedFeed, now: datetime
                    ) -> tuple[list[Entry], dict]:
    """The feed's entries to consider (the first of each key, none that was pruned) and the stored
    (id, raw hash, first seen, story) of those already known, under the source's lock, and the matching
    lock when any is new."""
    entries = list({e.key: e for e in reversed(feed.entries)}.values())[::-1]  # first occurrence of a key wins
    store.lock(db, "source", [source_id])  # a concurrent poll of this source waits, then sees what we stored
    known = Store.item_hashes(db, source_id, [e.key for e in entries])
    pruned, _ = Store.tombstoned(db, source_id, [e.key for e in entries if e.key not in known])
    if pruned:  # SPEC §6.1: a pruned item its source still lists never comes back
        Store.still_listed(db, source_id, sorted(pruned), (), now)
        entries = [e for e in entries if e.key not in pruned]
    if any(e.key not in known for e in entries):
        # Two processes ingesting copies of one story at once would each miss the other's uncommitted copy and
        # make two stories. Any evidence can join two copies, so a poll bringing new items takes one lock for all
        # matching: the second waits for the first to commit, then finds its copy (SQLite's writer lock does so).
        store.lock(db, "story", ["match new copies"])
    return entries, known


def _store_fresh(db, source_id: str, fresh: list[tuple[Entry, dict, dedup_copies.Copy]], touched: set,
                 window: float, now: datetime, queue_for: Iterable[str], selecting: Selecting | None) -> set:
    """The new copies matched against the store and stored, each in its story, and indexed; the stories
    touched, `touched` among them but for those a match joined into another."""
    copies = [c for _, _, c in fresh]
    matches = dedup_match.match(copies, window, *Store.dedup_candidates(db, copies, window))
    indexed = []
    for (entry, values, copy), match in zip(fresh, matches):
        item_id, story_id = _store_new(db, source_id, entry, values, match, now, queue_for, selecting)
        touched.difference_update(m.story_id for m in (match.joins if match else ()))
        touched.discard(match.story_id if match else None)
        touched.add(story_id)
        indexed.append((item_id, copy))
    Store.index_new(db, indexed)
    return touched


def _store_new(db, source_id: str, entry: Entry, values: dict, match: dedup_match.Match | None, now: datetime,
               queue_for: Iterable[str], selecting: Selecting | None) -> tuple[int, int]:
    """Store a new copy in the story it matched, or a new one; (item id, story id). A copy matching several
    stories makes them one (`join_matched`), queued for every output that selects one of their sources."""
    if match is None:
        story_id = Store.create_story(db, story_uid(source_id, entry.key), now)
        return Store.insert_item(db, story_id, source_id, {"key": entry.key, **values}), story_id
    found = {m.story_id: m for m in (match, *match.joins)}
    story_id = dedup_match.surviving_story(Store.story_firsts(db, found)) if match.joins else match.story_id
    item_id = Store.insert_item(db, story_id, source_id, {"key": entry.key, **values})
    shown = found[story_id]
    Store.record_merge(db, item_id, story_id, shown.matched_item, shown.evidence, shown.score, now, shown.details)
    if match.joins:
        join_matched(db, story_id, [m for m in found.values() if m.story_id != story_id], item_id, now)
        Store.queue_stories(db, (selecting or (lambda _: queue_for))(
            Store.story_sources(db, [story_id]).get(story_id, ())), [story_id])
    return item_id, story_id


def join_matched(db, survivor: int, others: list[dedup_match.Match], item_id: int, now: datetime) -> None:
    """The other stories a new copy (`item_id`) matched, joined into `survivor` (the story holding the
    earliest-published copy, which keeps its id and republication time): their ids are retired into it."""
    for found in others:
        Store.join_stories(db, survivor, found.story_id, Join(DecidedBy.RULES, item_id, found.matched_item,
                                                              found.evidence, found.score, found.details), now)


def outputs_selecting(config: Config, source_ids: Iterable[str]) -> list[str]:
    """The outputs that show stories of any of these sources."""
    sources = [s for s in map(config.source, source_ids) if s is not None]
    return [o.id for o in config.outputs if any(o.selects(s) for s in sources)]


def _not_pruned(db, source_id: str, fresh: list[tuple], now: datetime) -> list[tuple]:
    """The new copies but those with the content hash of one of the source's pruned items (under a new key)."""
    _, pruned = Store.tombstoned(db, source_id, [], {c.content_hash for _, _, c in fresh if c.content_hash})
    if not pruned:
        return fresh
    Store.still_listed(db, source_id, [], pruned, now)
    return [(entry, values, copy) for entry, values, copy in fresh if copy.content_hash not in pruned]


def item_values(entry: Entry, item: PreparedItem, now: datetime, stored_published: str | None) -> dict:
    """The columns of an item: sanitised HTML and the two dates of SPEC §4.

    published: the source's published date, else its updated date, else when
    first seen; a stored item the source gives no published date keeps its
    first one (a new updated date is a change, not a later publication).
    updated: the source's updated date, else (for a change) now; never
    earlier than published.
    """
    if entry.published:
        published = entry.published
    elif stored_published:
        published = from_text(stored_published)
    else:
        published = entry.updated or now
    if entry.updated:
        updated = entry.updated
    else:
        updated = now if stored_published else published
    updated = max(updated, published)
    return {
        "guid": entry.guid,
        "link": entry.link,
        "title": entry.title,
        "summary": item.summary,
        "content": item.content,
        "authors": entry.authors,
        "categories": entry.categories,
        "enclosures": entry.enclosures,
        "language": entry.language,
        "published": published,
        "updated": updated,
        "first_seen": now,
        "raw_hash": item.raw_hash,
        "sanitizer": SANITIZER,
    }


def _record_failure(store: Store, source: SourceConfig, state: SourceState, url: str,
                    exc: AggregatorError, now: datetime) -> PollResult:
    status = getattr(exc, "status", None)
    gone = status == 410
    kind = failure_kind(exc)
    message = redact(str(exc))  # kept, shown and logged: never the source URL's credentials
    failed = replace(
        state, state=SourceStatus.GONE if gone else SourceStatus.FAILING, last_poll=now, last_status=status,
        errors=state.errors + 1, last_error=message, last_failure=kind,
        # from when the answer came, not when the poll began: a politeness wait may lie between
        retry_after=retry_after(getattr(exc, "retry_after", None), datetime.now(timezone.utc))
        if status in (429, 503) else None,
        url=state.url if state.configured_url == source.url else None, configured_url=source.url,
    )
    failed = replace(failed, next_poll=None if gone else next_poll_after_failure(source, failed, now))
    with store.transaction() as db:
        store.save_source_state(db, failed)
    return PollResult(source.id, Outcome.ERROR, status=status, error=message, failure=kind, next_poll=failed.next_poll)
