"""Which stories an output shows, and which copy of each: the entries, newest first.

The copy shown is the one from the source with the highest priority, then
the one published first, then the source listed first in the config; the
story's other copies become related links.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from .config import Config, OutputConfig, SourceConfig
from .identity import normalised_text
from .pipeline import polled_url
from .models import RelatedCopy, SourceMeta, SourceState, StoredItem, StoryEntry
from .store import Store, from_text, to_text

BATCH = 200
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


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


def matches_filters(output: OutputConfig, item: StoredItem) -> bool:
    if output.languages:
        language = (item.language or "").lower()
        if not any(language == lang or language.startswith(lang + "-") for lang in output.languages):
            return False
    if output.include or output.exclude:
        haystack = f"{item.title}\n{normalised_text(item.content or item.summary)}"
        if output.include and not any(p.search(haystack) for p in output.include):
            return False
        if any(p.search(haystack) for p in output.exclude):
            return False
    return True


def select_entries(store: Store, config: Config, output: OutputConfig,
                   now: datetime | None = None) -> list[StoryEntry]:
    """The newest `limit` stories of this output, each as its best selected copy."""
    now = now or datetime.now(timezone.utc)
    sources = {s.id: s for s in config.sources_for(output)}
    if not sources:
        return []
    placeholders = ",".join("?" * len(sources))
    params: list = list(sources)
    where = f"source_id IN ({placeholders})"
    if output.since:
        where += " AND published >= ?"
        params.append(to_text(now - timedelta(seconds=output.since)))
    best: dict[int, tuple] = {}
    for item_id, story_id, source_id, published in store.query(
            f"SELECT id, story_id, source_id, published FROM items WHERE {where}", params):
        rank = copy_rank(sources[source_id], from_text(published))
        if story_id not in best or rank < best[story_id][0]:
            best[story_id] = (rank, item_id)
    ordered = sorted(best.items(), key=lambda kv: (kv[1][0][1], kv[0]), reverse=True)
    chosen: list[StoredItem] = []
    for start in range(0, len(ordered), BATCH):
        if len(chosen) >= output.limit:
            break
        ids = [item_id for _, (_, item_id) in ordered[start:start + BATCH]]
        by_id = {i.id: i for i in store.items(f"id IN ({','.join('?' * len(ids))})", ids)}
        for item_id in ids:
            item = by_id[item_id]
            if matches_filters(output, item):
                chosen.append(item)
                if len(chosen) >= output.limit:
                    break
    return _story_entries(store, config, chosen)


def _story_entries(store: Store, config: Config, chosen: list[StoredItem]) -> list[StoryEntry]:
    if not chosen:
        return []
    states = store.source_states()
    configured = {s.id: s for s in config.sources}
    metas = {sid: source_meta(src, states.get(sid)) for sid, src in configured.items()}
    story_ids = [i.story_id for i in chosen]
    stories = store.story_rows(story_ids)
    copies: dict[int, list[StoredItem]] = {}
    for start in range(0, len(story_ids), 500):
        chunk = story_ids[start:start + 500]
        for other in store.items(f"story_id IN ({','.join('?' * len(chunk))})", chunk):
            if other.source_id in configured:
                copies.setdefault(other.story_id, []).append(other)
    entries = []
    for item in chosen:
        source = configured[item.source_id]
        others = sorted((c for c in copies.get(item.story_id, ()) if c.id != item.id and c.link),
                        key=lambda c: copy_rank(configured[c.source_id], c.published))
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
