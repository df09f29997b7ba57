"""Which stories an output shows, and which copy of each: the entries, newest first.

The copy shown is the one from the source with the highest priority, then
the one published first, then the source listed first in the config; the
story's other copies become related links.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import numpy as np

from ..config import Config, OutputConfig, SourceConfig
from ..models import RelatedCopy, SourceMeta, SourceState, StoredItem, StoryEntry, from_text, polled_url
from ..reader.sanitize import plain_text, xml_safe
from ..reader.urls import web_link
from ..redaction import redact
from ..store import Store

BATCH = 200
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: An absolute IRI (RFC 3987): a scheme, then no character an IRI cannot hold.
IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`\x00-\x1f\x7f]+$")
DNS_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
TAG_DATE = "2024"  # the date of every tag: URI we mint (RFC 4151); fixed, so the ids never change


@dataclass(frozen=True)
class StoryRef:
    """A story an output may show, as its best copy, before any text is loaded."""

    story_id: int
    item_id: int
    uid: str
    published: datetime


def copy_rank(source: SourceConfig, published: datetime) -> tuple:
    """Sort key: the best copy of a story sorts first."""
    return (-source.priority, published, source.order)


def source_meta(source: SourceConfig, state: SourceState | None, base_url: str) -> SourceMeta:
    """How outputs name a source (atom:source, RSS <source>, JSON `_aggregator.source`), from what the store
    keeps of what the feed said. Only public URLs are published: never a file: URL, never a URL with
    credentials (redaction.redact would change it). The feed's URL (`self_url`) is the URL polled, else
    the feed's own rel="self", else none; its id is the feed's own when that is an absolute IRI, else its
    URL, else a tag: URI made from base_url and the source id (SPEC §4). Nothing in it moves with a poll that
    brought no new body: publishing's inputs (rendered.Rendered.inputs) count the new bodies, not the polls."""
    state = state or SourceState(id=source.id)
    self_url = public_url(polled_url(source, state)) or public_url(state.feed_self)
    return SourceMeta(
        id=source.id,
        title=source.title or state.feed_title or source.id,
        feed_id=_feed_id(state.feed_id) or self_url or tag_uri(base_url, source.id),
        self_url=self_url,
        site_url=public_url(state.feed_link),
        updated=state.feed_updated or state.body_changed or EPOCH,
    )


def public_url(url: str | None) -> str | None:
    """The URL when an output may carry it: absolute http(s), with no credentials in it."""
    if not url or not url.lower().startswith(("http://", "https://")) or not IRI.match(url) or redact(url) != url:
        return None
    return url if urlsplit(url).hostname else None


def _feed_id(feed_id: str | None) -> str | None:
    """The feed's own id, when an output may carry it: an absolute IRI, not a file: URL, with no credentials."""
    if not feed_id or not IRI.match(feed_id) or feed_id.lower().startswith("file:") or redact(feed_id) != feed_id:
        return None
    return feed_id


def tag_uri(base_url: str, source_id: str) -> str:
    """`tag:<host of base_url>,2024:<its path>sources/<source id>`, for a source with no public id or URL."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    return f"tag:{host if DNS_NAME.match(host) else 'localhost'},{TAG_DATE}:{parts.path.lstrip('/')}sources/{source_id}"


def haystack(item: StoredItem) -> str:
    """What include/exclude patterns search: the title and the plain text of summary and content."""
    parts = [item.title, plain_text(item.summary)]
    if item.content and item.content != item.summary:
        parts.append(plain_text(item.content))
    return "\n".join(parts)


def matches_filters(output: OutputConfig, item: StoredItem) -> bool:
    """The output's `languages`, `include` and `exclude` applied to one copy.

    An entry without a declared language (its own or its feed's) is left out
    when `languages` is set: the filter promises those languages only.
    """
    if output.languages:
        language = (item.language or "").lower()
        if not any(language == lang or language.startswith(lang + "-") for lang in output.languages):
            return False
    if output.include or output.exclude:
        text = haystack(item)
        if output.include and not any(p.search(text) for p in output.include):
            return False
        if any(p.search(text) for p in output.exclude):
            return False
    return True


class StorySet:
    """Story ids as a bitmap: a million archived stories cost 125 KB, not the 100 MB of a set of their ids."""

    def __init__(self, bits: bytes = b""):
        self.bits = bytearray(bits)

    def add(self, story_id: int) -> None:
        byte = story_id >> 3
        if byte >= len(self.bits):
            self.bits.extend(bytes(byte + 1 - len(self.bits) + len(self.bits) // 4))
        self.bits[byte] |= 1 << (story_id & 7)

    def __contains__(self, story_id: int) -> bool:
        byte = story_id >> 3
        return byte < len(self.bits) and bool(self.bits[byte] >> (story_id & 7) & 1)

    def copy(self) -> StorySet:
        return StorySet(self.bits)

    def ids(self) -> list[int]:
        """Every story id in the set."""
        return np.flatnonzero(np.unpackbits(np.frombuffer(bytes(self.bits), dtype=np.uint8), bitorder="little")).tolist()


@dataclass
class RejectedCopies:
    """Output filters → item id → raw hash of the copies found not to pass them, kept across publishes.

    A story whose copy fails the filters is never archived, so without this every publish would load and
    test its text again.
    """

    by_filters: dict = field(default_factory=dict)


def story_refs(store: Store, config: Config, output: OutputConfig, *, skip: StorySet | None = None,
               only_uids: frozenset[str] | None = None, only_ids: set[int] | None = None, filtered: bool = True,
               stop_after: int | None = None, rejected: RejectedCopies | None = None) -> list[StoryRef]:
    """Every story of this output as its best copy, newest `published` first.

    Stories in `skip` (already archived) are dropped before any text is
    loaded; `only_uids` (or `only_ids`) restricts to those stories; `filtered=False` ignores
    include/exclude/languages (an archive page keeps what it once showed);
    `stop_after` ends the scan once that many stories passed the filters;
    `rejected` remembers, across publishes, the copies that failed them.
    Only (id, story, source, date) of each copy is read, a batch at a time,
    and only the stories not skipped are kept, so a long history stays small.
    """
    sources = {s.id: s for s in config.sources_for(output)}
    if not sources:
        return []
    rank_of = {sid: (-src.priority, src.order) for sid, src in sources.items()}
    best: dict[int, tuple] = {}
    if only_uids is not None or only_ids is not None:
        ids = set(store.story_ids(only_uids).values()) if only_uids is not None else set()
        rows = store.copy_refs_of(sorted(ids | (only_ids or set())))
    else:  # one pass over the table for every source; copies of sources no longer configured are dropped below
        rows = store.copy_refs(None if len(sources) == len(config.sources) else list(sources))
    bits = (skip or StorySet()).bits
    size = len(bits)
    for item_id, story_id, source_id, published in rows:
        byte = story_id >> 3
        if byte < size and bits[byte] >> (story_id & 7) & 1:
            continue
        ranked = rank_of.get(source_id)
        if ranked is None:
            continue
        rank = (ranked[0], published, ranked[1])  # stored times are fixed-width RFC 3339: they sort as text
        held = best.get(story_id)
        if held is None or rank < held[0] or (rank == held[0] and item_id < held[1]):
            best[story_id] = (rank, item_id)
    uids = store.story_uids(list(best))
    ordered = sorted(best.items(), key=lambda kv: (kv[1][0][1], kv[0]), reverse=True)
    ordered = [StoryRef(story_id, item_id, uids[story_id], from_text(rank[1]))
               for story_id, (rank, item_id) in ordered]
    if not filtered or not (output.include or output.exclude or output.languages):
        return ordered[:stop_after] if stop_after is not None else ordered
    return _passing(store, output, ordered, stop_after, rejected or RejectedCopies())


def _passing(store: Store, output: OutputConfig, refs: list[StoryRef], stop_after: int | None,
             memory: RejectedCopies) -> list[StoryRef]:
    """The refs whose copy passes the output's filters; a copy that failed them before and has not changed
    since (same raw hash) is not loaded again."""
    filters = (output.id, tuple(p.text for p in output.include), tuple(p.text for p in output.exclude),
               output.languages)
    rejected = memory.by_filters.setdefault(filters, {})
    still: dict[int, str] = {}
    kept: list[StoryRef] = []
    for start in range(0, len(refs), BATCH):
        chunk = refs[start:start + BATCH]
        digests = store.raw_hashes([r.item_id for r in chunk])
        known = {r.item_id for r in chunk if rejected.get(r.item_id, "") == digests.get(r.item_id)}
        by_id = {i.id: i for i in store.items_by_id([r.item_id for r in chunk if r.item_id not in known])}
        for ref in chunk:
            if ref.item_id in known or not matches_filters(output, by_id[ref.item_id]):
                still[ref.item_id] = digests[ref.item_id]
                continue
            kept.append(ref)
            if stop_after is not None and len(kept) >= stop_after:
                rejected.update(still)
                return kept
    rejected.clear()  # a whole pass: forget copies no longer in question
    rejected.update(still)
    return kept


def recent(output: OutputConfig, refs: list[StoryRef], now: datetime) -> list[StoryRef]:
    """The refs inside the output's `since` age (all of them when it has none)."""
    if not output.since:
        return refs
    cutoff = now - timedelta(seconds=output.since)
    return [r for r in refs if r.published >= cutoff]


def select_entries(store: Store, config: Config, output: OutputConfig,
                   now: datetime | None = None) -> list[StoryEntry]:
    """The newest `limit` stories of this output, each as its best selected copy (archives aside)."""
    now = now or datetime.now(timezone.utc)
    refs = story_refs(store, config, output, stop_after=output.limit)
    return load_entries(store, config, recent(output, refs, now)[:output.limit])


def load_entries(store: Store, config: Config, refs: list[StoryRef],
                 metas: dict[str, SourceMeta] | None = None) -> list[StoryEntry]:
    """The StoryEntries of these refs, in the same order.

    `metas`: the sources' metadata already read, by source id, added to as more are read; callers loading
    many pages in one publish pass the same dict, so each source's state is read once, not once a page.
    """
    by_id = {i.id: i for i in store.items_by_id([r.item_id for r in refs])}
    return _story_entries(store, config, [by_id[r.item_id] for r in refs if r.item_id in by_id],
                          {} if metas is None else metas)


def _story_entries(store: Store, config: Config, chosen: list[StoredItem],
                   metas: dict[str, SourceMeta]) -> list[StoryEntry]:
    if not chosen:
        return []
    configured = {s.id: s for s in config.sources}
    story_ids = [i.story_id for i in chosen]
    stories = store.story_rows(story_ids)
    copies = _other_copies(store, configured, chosen)
    shown = {i.source_id for i in chosen} | {c.source_id for held in copies.values() for c in held}
    if missing := shown - metas.keys():
        states = store.source_states(only=missing, count_entries=False)
        metas.update((sid, source_meta(configured[sid], states.get(sid), config.base_url)) for sid in missing)
    entries = []
    for item in chosen:
        source = configured[item.source_id]
        others = sorted(copies.get(item.story_id, ()), key=lambda c: copy_rank(configured[c.source_id], c.published))
        entries.append(StoryEntry(
            uid=stories[item.story_id]["uid"],
            republished=from_text(stories[item.story_id]["republished"]),
            published=item.published,
            updated=max(item.updated, item.published),
            title=xml_safe(item.title) or "(untitled)",  # a title of nothing XML allows is no title
            link=web_link(item.link),  # stored by a version that kept relative links: left out, never published
            summary=item.summary,
            content=item.content,
            authors=item.authors,
            categories=tuple(dict.fromkeys((*source.tags, *item.categories))),
            language=item.language,
            source=metas[item.source_id],
            related=tuple(RelatedCopy(c.title, c.link, metas[c.source_id].title) for c in others),
            sanitizer=item.sanitizer,
            enclosures=item.enclosures,
        ))
    return entries


@dataclass(frozen=True)
class _Copy:
    source_id: str
    title: str
    link: str
    published: datetime


def _other_copies(store: Store, configured: dict[str, SourceConfig], chosen: list[StoredItem]) -> dict[int, list[_Copy]]:
    """Each story's linked copies from configured sources other than the chosen one: what a related link needs.

    Only those columns are read, and only of the other copies: most stories
    have one copy, the chosen one, already loaded.
    """
    copies: dict[int, list[_Copy]] = {}
    if chosen:
        rows = store.other_copies([(i.story_id, i.id) for i in chosen])
        for item_id, story_id, source_id, title, link, published in rows:
            if web_link(link) and source_id in configured:
                copies.setdefault(story_id, []).append(_Copy(source_id, title, link, from_text(published)))
    return copies
