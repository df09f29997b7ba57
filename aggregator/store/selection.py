"""The queries behind an output's selection: every copy's (id, story, source, date), uids, related copies.

Only those few columns are read for a whole history, streamed, so choosing
which stories an output shows stays small in memory however old the store.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from .backend import marks

CHUNK = 500  # ids per IN (...) list


class SelectionQueries:
    """What output.select reads to choose stories and copies."""

    def copy_refs(self, source_ids: list[str] | None) -> Iterator[tuple]:
        """(item id, story id, source id, published) of every copy these sources hold (None: every source), streamed."""
        columns = "SELECT id, story_id, source_id, published FROM items"
        if source_ids is None:  # one pass over the table
            yield from self.stream(columns)
            return
        for start in range(0, len(source_ids), CHUNK):
            chunk = source_ids[start:start + CHUNK]
            yield from self.stream(f"{columns} WHERE source_id IN ({marks(chunk)})", chunk)

    def copy_refs_of(self, story_ids: list[int]) -> Iterator[tuple]:
        """(item id, story id, source id, published) of every copy of these stories, streamed (a story may have
        gathered many copies, some from sources no longer configured, which the caller drops)."""
        for start in range(0, len(story_ids), CHUNK):
            chunk = story_ids[start:start + CHUNK]
            yield from self.stream(f"SELECT id, story_id, source_id, published FROM items WHERE story_id IN "
                                   f"({marks(chunk)})", chunk)

    def story_ids(self, uids: Iterable[str]) -> dict[str, int]:
        """uid → id of the stories with these uids that the store holds."""
        uids, ids = list(uids), {}
        for start in range(0, len(uids), CHUNK):
            chunk = uids[start:start + CHUNK]
            ids.update((r[0], r[1]) for r in self.query(f"SELECT uid, id FROM stories WHERE uid IN ({marks(chunk)})",
                                                        chunk))
        return ids

    def story_uids(self, story_ids: list[int]) -> dict[int, str]:
        """id → uid of these stories."""
        uids = {}
        for start in range(0, len(story_ids), CHUNK):
            chunk = story_ids[start:start + CHUNK]
            uids.update((r[0], r[1]) for r in self.query(f"SELECT id, uid FROM stories WHERE id IN ({marks(chunk)})",
                                                         chunk))
        return uids

    def raw_hashes(self, item_ids: list[int]) -> dict[int, str]:
        """id → raw hash (what changes whenever the source changes the item) of these items."""
        return {r[0]: r[1] for r in self.query(f"SELECT id, raw_hash FROM items WHERE id IN ({marks(item_ids)})",
                                               item_ids)} if item_ids else {}

    def other_copies(self, chosen: list[tuple[int, int]]) -> Iterator[tuple]:
        """(id, story id, source id, title, link, published) of the copies of these (story id, item id) stories
        other than the chosen items, by item id, streamed (a story may have gathered many copies, some from
        sources no longer configured, which the caller drops)."""
        for start in range(0, len(chosen), CHUNK):
            chunk = chosen[start:start + CHUNK]
            placeholders = marks(chunk)
            yield from self.stream("SELECT id, story_id, source_id, title, link, published FROM items "
                                   f"WHERE story_id IN ({placeholders}) AND id NOT IN ({placeholders}) ORDER BY id",
                                   [story_id for story_id, _ in chunk] + [item_id for _, item_id in chunk])
