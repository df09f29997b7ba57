"""Poll one source end to end: the one place that joins I/O to the pure stages.

fetch → parse → (per new or changed item) sanitise, identify, dedupe → store,
all of a poll's writes in one transaction, and every failure recorded on the
source instead of raised.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone

from . import dedupe
from .config import Config, SourceConfig
from .errors import AggregatorError, PublishError, StoreError
from .fetch import fetch, host_key, retry_after
from .models import Entry, FetchResult, ParsedFeed, PollResult, SourceState
from .prepare import PreparedFeed, PreparedItem, prepare_feed, prepare_item, raw_hash
from .schedule import next_poll_after_failure, next_poll_after_success
from .store import Store, story_uid

#: prepare_feed's signature: in place, or a prepare.Preparer's worker processes.
Prepare = Callable[..., PreparedFeed]
KNOWN_HINT = 1000  # a source's latest stored items whose raw hashes tell the preparer what to skip


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
         now: datetime | None = None, prepare: Prepare = prepare_feed, state: SourceState | None = None) -> PollResult:
    """Fetch, parse and store one source; never raises for a source's own failure.

    `state` is the source's stored state when the caller has just read it (`once` reads every source's at its start).
    """
    now = now or datetime.now(timezone.utc)
    state = state or store.source_state(source.id)
    url = polled_url(source, state)
    return _recorded(store, source, state, url, now, lambda: _ingest(
        store, config, source, state, fetch_source(source, state, url, limiter), now, prepare))


def fetch_source(source: SourceConfig, state: SourceState, url: str, limiter: HostLimiter) -> FetchResult:
    """The conditional GET of a poll, in one of the host's slots (a file: URL needs neither)."""
    if url.startswith("file:"):
        return fetch(url, timeout=source.timeout, max_bytes=source.max_bytes)
    with limiter.slot(url):
        return fetch(url, etag=state.etag, last_modified=state.last_modified,
                     timeout=source.timeout, max_bytes=source.max_bytes)


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
        state, state="ok", last_poll=now, last_success=now, last_status=result.status, errors=0,
        last_error=None, retry_after=None,
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
        return PollResult(source.id, "unchanged", status=result.status, next_poll=final.next_poll)
    with store.snapshot() as db:
        latest = Store.latest_items(db, source.id, KNOWN_HINT)
    prepared = prepare(result.body, result.headers, result.url, now, source.max_entries, source.id, latest)
    feed = prepared.feed
    min_interval = max(filter(None, (feed.info.ttl, result.max_age)), default=None)
    base = replace(
        base, body_hash=body_hash, changed_bodies=state.changed_bodies + 1, feed_title=feed.info.title,
        feed_link=feed.info.link, feed_id=feed.info.id, min_interval=min_interval,
        feed_updated=feed.info.updated or max((e.updated or e.published for e in feed.entries
                                               if e.updated or e.published), default=state.feed_updated),
        skip_hours=" ".join(map(str, sorted(feed.info.skip_hours))) or None,
        skip_days=" ".join(sorted(feed.info.skip_days)) or None,
    )
    with store.transaction() as db:
        new, updated = _store_entries(db, source, feed, now, config.dedup_window, prepared=prepared)
        final = _scheduled(db, source, base, result.max_age, now)
        store.save_source_state(db, final)
    outcome = "new" if new else "updated" if updated else "unchanged"
    return PollResult(source.id, outcome, new=new, updated=updated, status=result.status, next_poll=final.next_poll)


def _scheduled(db, source: SourceConfig, state: SourceState, max_age: int | None, now: datetime) -> SourceState:
    """The state with its next poll, adapted to the publishing history this poll's entries are part of."""
    history = Store.publishing_history(db, source.id, now)
    return replace(state, next_poll=next_poll_after_success(source, state, max_age, history, now))


def _store_entries(db, source: SourceConfig, feed: ParsedFeed, now: datetime, window: float,
                   context: dedupe.SourceContext | None = None,
                   prepared: PreparedFeed | None = None) -> tuple[int, int]:
    """Store a poll's new and changed entries, each in the story dedupe finds for it or a new one.

    What `prepared` holds was made with its own context: it is used when the
    caller gives no other.
    """
    entries = list({e.key: e for e in reversed(feed.entries)}.values())[::-1]  # first occurrence of a key wins
    Store.lock(db, "source", [source.id])  # a concurrent poll of this source waits, then sees what we stored
    known = Store.item_hashes(db, source.id, [e.key for e in entries])
    dedupe.claim(db, [e for e in entries if e.key not in known])
    dedupe.ensure_index(db)
    if context is None:
        context = prepared.context if prepared else dedupe.source_context(
            source.id, feed, [title for _, _, title in Store.latest_items(db, source.id, dedupe.RECENT_TITLES)])
    ready = prepared.items if prepared and prepared.context is context else {}
    hashes = prepared.hashes if prepared else {}
    updated = 0
    fresh: list[tuple[Entry, dict, dedupe.Copy]] = []
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
            dedupe.index(db, stored[0], copy)
            updated += 1
        else:
            fresh.append((entry, values, copy))
    indexed = []
    for (entry, values, copy), match in zip(fresh, dedupe.find_stories(db, [c for _, _, c in fresh], window)):
        story_id = match.story_id if match else Store.create_story(db, story_uid(source.id, entry.key), now)
        item_id = Store.insert_item(db, story_id, source.id, {"key": entry.key, **values})
        indexed.append((item_id, copy))
        if match:
            Store.record_merge(db, item_id, story_id, match.matched_item, match.evidence, match.score, now,
                               match.details)
    dedupe.index_new(db, indexed)
    return len(fresh), updated


def item_values(entry: Entry, item: PreparedItem, now: datetime, stored_published: str | None) -> dict:
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
        "summary": item.summary,
        "content": item.content,
        "authors": entry.authors,
        "categories": entry.categories,
        "language": entry.language,
        "published": published,
        "updated": updated,
        "first_seen": now,
        "raw_hash": item.raw_hash,
    }


def _record_failure(store: Store, source: SourceConfig, state: SourceState, url: str,
                    exc: AggregatorError, now: datetime) -> PollResult:
    status = getattr(exc, "status", None)
    gone = status == 410
    failed = replace(
        state, state="gone" if gone else "failing", last_poll=now, last_status=status,
        errors=state.errors + 1, last_error=str(exc),
        # from when the answer came, not when the poll began: a politeness wait may lie between
        retry_after=retry_after(getattr(exc, "retry_after", None), datetime.now(timezone.utc))
        if status in (429, 503) else None,
        url=state.url if state.configured_url == source.url else None, configured_url=source.url,
    )
    failed = replace(failed, next_poll=None if gone else next_poll_after_failure(source, failed, now))
    with store.transaction() as db:
        store.save_source_state(db, failed)
    return PollResult(source.id, "error", status=status, error=str(exc), next_poll=failed.next_poll)


def publish_outputs(store: Store, config: Config, now: datetime | None = None,
                    only: set[str] | None = None, unless_unchanged: bool = False) -> list:
    """Render every output (or those named in `only`): all formats and archive pages; the files rewritten.

    One output that cannot be written (a full disk) does not stop the others:
    its old files stay, the failure is recorded for `status`, and a
    PublishError naming it is raised once every output has been tried. Hubs
    are pinged about each current document that changed. `unless_unchanged`:
    nothing is read when nothing publishing depends on changed since the last
    complete publish (selecting the stories of a large state costs seconds).
    """
    from . import archive, websub
    from .publish import Rendered, publish_output, publish_site

    written, errors = [], []
    rendered = Rendered(store, config)
    inputs = rendered.inputs()  # first: a poll committing while this publish reads counts as a change next time
    if unless_unchanged and rendered.nothing_to_publish(config, inputs, store.published_inputs()):
        return []
    try:
        written += publish_site(config)
    except PublishError as exc:
        errors.append(str(exc))
    failing = store.output_failures()
    for output in config.outputs:
        if only is not None and output.id not in only:
            continue
        try:
            entries, update = archive.prepare(store, config, output, now)
            written += publish_output(config, output, entries, update, rendered)
        except PublishError as exc:
            errors.append(str(exc))
            _record_publish(store, output.id, str(exc), now)
            continue
        if output.id in failing:
            _record_publish(store, output.id, None, now)
    if config.hubs:
        changed = {path.relative_to(config.output_dir).as_posix() for path in written}
        topics = [config.base_url + f"{o.id}.{fmt}" for o in config.outputs for fmt in o.formats
                  if f"{o.id}.{fmt}" in changed]
        websub.ping(config.hubs, topics)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise PublishError(errors[0].removeprefix("publish: ") + more)
    if only is None:
        store.set_published_inputs(inputs)
    return written


def _record_publish(store: Store, output_id: str, error: str | None, now: datetime | None) -> None:
    """Best effort: on a really full disk the store cannot take the note either; the raised error still says it."""
    try:
        store.record_publish(output_id, error, now or datetime.now(timezone.utc))
    except StoreError:
        pass
