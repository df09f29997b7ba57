"""Retention, run once a day by the daemon and by `aggregator prune` (SPEC §6.1).

A story is pruned once its republication date is older than `retention.keep`
and no output's documents can change it any more (output.archive.open_stories);
its items leave tombstones, which stay while their source still lists them.
The near-duplicate index is trimmed to the dedup window at the same time, and
the space given back to the file system.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..config import Config
from ..dedup.match import index_horizon
from ..output.archive import PublishMemory, open_stories
from ..output.pages import story_page
from ..output.rendered import Rendered
from ..store import Store

DAY = timedelta(days=1)


@dataclass(frozen=True)
class PruneReport:
    """What one prune removed (or, dry, would remove)."""

    dry_run: bool
    before: datetime | None  # stories republished before this were prunable; None: retention is off
    stories: int
    items: int
    text_bytes: int  # the items' text (titles, summaries, contents): most of what they took
    tombstones: int  # dropped: their source no longer lists them
    index_rows: int  # near-duplicate keys and fingerprints of items now outside the dedup window
    bytes_before: int
    bytes_after: int

    def summary(self) -> str:
        verb = "would prune" if self.dry_run else "pruned"
        if self.before is None:
            stories = "retention is off (retention.keep: forever): no story pruned"
        else:
            stories = (f"{verb} {self.stories} stories ({self.items} items, {_size(self.text_bytes)} of text) "
                       f"republished before {self.before.isoformat(timespec='seconds')}")
        tombstones = f"{'would drop' if self.dry_run else 'dropped'} {self.tombstones} tombstones"
        size = "" if self.dry_run else (f"; state {_size(self.bytes_before)} -> {_size(self.bytes_after)}"
                                        f" ({_size(max(self.bytes_before - self.bytes_after, 0))} given back)")
        index = "" if self.dry_run else f", {self.index_rows} index rows outside the dedup window"
        return f"{stories}; {tombstones}{index}{size}"


def due(store: Store, now: datetime) -> bool:
    """Whether a day has passed since the last prune (or none ever ran)."""
    last = store.last_prune()
    return last is None or now - last >= DAY


def prune(store: Store, config: Config, now: datetime, dry_run: bool = False,
          memory: PublishMemory | None = None) -> PruneReport:
    """Apply retention now: prune old stories, drop expired tombstones, trim the index, give space back."""
    memory = memory or PublishMemory()
    size_before = store.size_bytes()
    before = now - timedelta(seconds=config.retention) if config.retention is not None else None
    stories = items = text = 0
    if before is not None:
        kept: set[int] = set()
        settings = Rendered(store, config).selection()
        for output in config.outputs:
            kept |= open_stories(store, config, output, memory, settings)
        for batch in store.prunable_stories(before, kept):
            count, size = store.story_sizes(batch)
            stories, items, text = stories + len(batch), items + count, text + size
            if not dry_run:
                pages = [str(story_page(config, uid)) for uid in store.story_uids(batch).values()]
                store.prune_stories(batch, now)
                store.forget_rendered(pages)  # the pages stay; their records would only grow the state
    sources = {s.id for s in config.sources}
    horizon = before if before is not None else now - timedelta(days=36500)
    if dry_run:
        return PruneReport(True, before, stories, items, text, store.expired_tombstones(horizon, sources), 0,
                           size_before, size_before)
    tombstones = store.drop_tombstones(horizon, sources) if before is not None else 0
    trimmed = store.trim_index(index_horizon(now, config.dedup_window), store.index_trimmed_before())
    store.reclaim_space()
    store.record_prune(now)
    return PruneReport(False, before, stories, items, text, tombstones, trimmed, size_before, store.size_bytes())


def _size(count: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"
