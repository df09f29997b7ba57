"""The per-item work that needs no stored state, done where both cores can help.

Parsing a changed feed and, for each item new or changed since the last poll,
sanitising its HTML and taking its text's fingerprint and index keys is most
of what a cold poll costs. None of it reads the store, so a pool of worker
processes does it while the polling process fetches, deduplicates and stores.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import datetime

from ..dedup import copies as dedupe
from ..models import Entry, ParsedFeed, to_text
from ..reader.parse import parse_feed
from ..reader.sanitize import clean_html
from .lifeline import worker_pool

#: Below this many sources a run is over before worker (or poller) processes would have started.
POOL_MIN_SOURCES = 8
#: A feed smaller than this is parsed and prepared in place sooner than a worker would get it.
POOL_MIN_BYTES = 32 * 1024


@dataclass(frozen=True, eq=False)
class PreparedItem:
    """An entry's sanitised HTML and the copy dedupe compares, with the hash that says when to redo them."""

    raw_hash: str
    summary: str | None
    content: str | None
    copy: dedupe.Copy  # published as the source dates it (else now): a stored first date replaces it


@dataclass(frozen=True, eq=False)
class PreparedFeed:
    feed: ParsedFeed  # the entries in `items` without their raw HTML: what crosses from a worker is half the size
    context: dedupe.SourceContext
    items: dict[str, PreparedItem]  # by entry key: each entry whose raw hash was not the one known
    hashes: dict[str, str]  # every entry's raw hash, by key


def raw_hash(entry: Entry) -> str:
    """Changes whenever anything the source says about the item changes."""
    parts = (entry.title, entry.link, entry.summary, entry.content, entry.authors, entry.categories,
             to_text(entry.published), to_text(entry.updated), entry.language)
    if entry.enclosures:  # only then: an item without any keeps the hash stored before enclosures were read
        parts += (entry.enclosures,)
    return hashlib.sha256(repr(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def prepare_item(entry: Entry, context: dedupe.SourceContext, now: datetime, digest: str | None = None) -> PreparedItem:
    summary, content = clean_html(entry.summary, entry.link), clean_html(entry.content, entry.link)
    copy = dedupe.new_copy(context, entry.title, dedupe.page_link(entry), dedupe.text_of(content, summary),
                           entry.published or entry.updated or now)
    return PreparedItem(digest or raw_hash(entry), summary, content, copy)


def prepare_feed(body: bytes, headers: dict[str, str], url: str, now: datetime, max_entries: int,
                 source_id: str, latest: list[tuple[str, str, str]]) -> PreparedFeed:
    """Parse the feed, learn its source's title habits, and prepare the entries new or changed since `latest`.

    `latest` is the source's latest stored items, (key, raw hash, title), newest
    first; as a list of what is known it is a hint: an entry it wrongly calls
    unchanged is prepared later, in place, by whoever finds it missing.
    """
    feed = parse_feed(body, headers, url=url, now=now, max_entries=max_entries)
    context = dedupe.source_context(source_id, feed, [title for _, _, title in latest])
    known = {key: digest for key, digest, _ in latest}
    items: dict[str, PreparedItem] = {}
    hashes: dict[str, str] = {}
    for entry in feed.entries:
        if entry.key in hashes:
            continue  # the first occurrence of a key is the one stored
        digest = hashes[entry.key] = raw_hash(entry)
        if known.get(entry.key) != digest:
            items[entry.key] = prepare_item(entry, context, now, digest)
    entries = tuple(replace(e, summary=None, content=None) if e.key in items else e for e in feed.entries)
    return PreparedFeed(replace(feed, entries=entries), context, items, hashes)


class Preparer:
    """Runs prepare_feed in worker processes (one per core), or in place when there is one core.

    Workers start from a fork server, so the pool may be made while threads
    run (forking this threaded process itself could copy a lock some other
    thread holds). A pool that breaks (a worker killed) is replaced on the
    next call, and the call that met it is done in place. Workers end with
    this process, kill -9 included, and then the fork server and the
    resource tracker end too (lifeline.py).
    """

    def __init__(self, processes: int | None = None):
        self.processes = processes if processes is not None else (os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_sources(cls, count: int) -> Preparer:
        """Worker processes only for runs of enough sources to repay starting them."""
        return cls() if count >= POOL_MIN_SOURCES else cls(processes=1)

    def __call__(self, body: bytes, *args) -> PreparedFeed:
        """prepare_feed(body, *args), in a worker process when the feed is large enough to be worth it."""
        args = (body, *args)
        pool = self._ensure_pool() if len(body) >= POOL_MIN_BYTES else None
        if pool is None:
            return prepare_feed(*args)
        try:
            return pool.submit(prepare_feed, *args).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            return prepare_feed(*args)

    def _ensure_pool(self) -> ProcessPoolExecutor | None:
        if self.processes < 2:
            return None
        with self._lock:
            if self._pool is None:
                self._pool = worker_pool(self.processes, ["aggregator.run.prepare"])
            return self._pool

    def close(self, wait: bool = True) -> None:
        """Stop the workers: after their current feed, or (wait=False) at once, for a process about to exit
        with polls abandoned, whose workers would otherwise outlive it."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        if not wait:
            for process in list(pool._processes.values()):  # the executor offers no way to kill its workers
                process.kill()
        pool.shutdown(wait=wait, cancel_futures=True)

