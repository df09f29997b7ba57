"""Which stories an output shows, and which copy of each: the entries, newest first.

The copy shown is the one from the source with the highest priority, then
the one published first, then the source listed first in the config; the
story's other copies become related links.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .config import Config, OutputConfig, SourceConfig
from .pipeline import polled_url
from .models import RelatedCopy, SourceMeta, SourceState, StoredItem, StoryEntry
from .sanitize import plain_text
from .store import Store, from_text

BATCH = 200
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


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


def source_meta(source: SourceConfig, state: SourceState | None) -> SourceMeta:
    state = state or SourceState(id=source.id)
    url = polled_url(source, state)
    return SourceMeta(
        id=source.id,
        title=source.title or state.feed_title or source.id,
        feed_id=state.feed_id or url,
        self_url=url,
        site_url=state.feed_link,
        updated=state.feed_updated or state.last_success or EPOCH,
    )


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


def story_refs(store: Store, config: Config, output: OutputConfig, *, skip_uids: frozenset[str] = frozenset(),
               only_uids: frozenset[str] | None = None, filtered: bool = True,
               stop_after: int | None = None) -> list[StoryRef]:
    """Every story of this output as its best copy, newest `published` first.

    Stories in `skip_uids` (already archived) are dropped before any text is
    loaded; `only_uids` restricts to those stories; `filtered=False` ignores
    include/exclude/languages (an archive page keeps what it once showed);
    `stop_after` ends the scan once that many stories passed the filters.
    """
    sources = {s.id: s for s in config.sources_for(output)}
    if not sources:
        return []
    best: dict[int, tuple] = {}
    rank_of = {sid: (-src.priority, src.order) for sid, src in sources.items()}
    rows = store.query(
        "SELECT items.id, items.story_id, items.source_id, items.published, stories.uid FROM items "
        f"JOIN stories ON stories.id = items.story_id WHERE items.source_id IN ({','.join('?' * len(sources))})",
        list(sources))
    for item_id, story_id, source_id, published, uid in rows:
        if uid in skip_uids or (only_uids is not None and uid not in only_uids):
            continue
        priority, order = rank_of[source_id]
        rank = (priority, published, order)  # stored times are fixed-width RFC 3339: they sort as text
        if story_id not in best or rank < best[story_id][0]:
            best[story_id] = (rank, item_id, uid)
    ordered = sorted(best.items(), key=lambda kv: (kv[1][0][1], kv[0]), reverse=True)
    ordered = [StoryRef(story_id, item_id, uid, from_text(rank[1])) for story_id, (rank, item_id, uid) in ordered]
    if not filtered or not (output.include or output.exclude or output.languages):
        return ordered[:stop_after] if stop_after is not None else ordered
    kept: list[StoryRef] = []
    for start in range(0, len(ordered), BATCH):
        chunk = ordered[start:start + BATCH]
        by_id = {i.id: i for i in _items(store, [r.item_id for r in chunk])}
        for ref in chunk:
            if matches_filters(output, by_id[ref.item_id]):
                kept.append(ref)
                if stop_after is not None and len(kept) >= stop_after:
                    return kept
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


def load_entries(store: Store, config: Config, refs: list[StoryRef]) -> list[StoryEntry]:
    """The StoryEntries of these refs, in the same order."""
    by_id = {i.id: i for i in _items(store, [r.item_id for r in refs])}
    return _story_entries(store, config, [by_id[r.item_id] for r in refs if r.item_id in by_id])


def _items(store: Store, item_ids: list[int]) -> list[StoredItem]:
    items = []
    for start in range(0, len(item_ids), BATCH):
        chunk = item_ids[start:start + BATCH]
        items += store.items(f"id IN ({','.join('?' * len(chunk))})", chunk)
    return items


def _story_entries(store: Store, config: Config, chosen: list[StoredItem]) -> list[StoryEntry]:
    if not chosen:
        return []
    states = store.source_states()
    configured = {s.id: s for s in config.sources}
    metas = {sid: source_meta(src, states.get(sid)) for sid, src in configured.items()}
    story_ids = [i.story_id for i in chosen]
    stories = store.story_rows(story_ids)
    copies = _other_copies(store, configured, chosen)
    entries = []
    for item in chosen:
        source = configured[item.source_id]
        others = sorted(copies.get(item.story_id, ()), key=lambda c: copy_rank(configured[c.source_id], c.published))
        entries.append(StoryEntry(
            uid=stories[item.story_id]["uid"],
            republished=from_text(stories[item.story_id]["republished"]),
            published=item.published,
            updated=max(item.updated, item.published),
            title=item.title or "(untitled)",
            link=item.link,
            summary=item.summary,
            content=item.content,
            authors=item.authors,
            categories=tuple(dict.fromkeys((*source.tags, *item.categories))),
            language=item.language,
            source=metas[item.source_id],
            related=tuple(RelatedCopy(c.title, c.link, metas[c.source_id].title) for c in others),
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
    for start in range(0, len(chosen), 500):
        chunk = chosen[start:start + 500]
        marks = ",".join("?" * len(chunk))
        rows = store.query("SELECT id, story_id, source_id, title, link, published FROM items "
                           f"WHERE story_id IN ({marks}) AND id NOT IN ({marks}) ORDER BY id",
                           [i.story_id for i in chunk] + [i.id for i in chunk])
        for item_id, story_id, source_id, title, link, published in rows:
            if link and source_id in configured:
                copies.setdefault(story_id, []).append(_Copy(source_id, title, link, from_text(published)))
    return copies
