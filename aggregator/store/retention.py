"""Retention (SPEC §6.1): pruning old stories, their tombstones, trimming the near-duplicate index, space.

A pruned story's items, fingerprints, index keys and merges leave the store;
each item leaves a tombstone (source, key, raw and content hash, the story's
uid, when), so a source that still lists the item never brings it back. The
near-duplicate index keeps only items published inside the dedup window (plus
a day), so a poll's lookups depend on the window, not on the store's age.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from ..models import from_text, to_text
from .backend import chunked, marks

Connection = Any  # a transaction's connection (sqlite3, or psycopg behind sqlite3's interface)

PRUNE_BATCH = 500  # stories removed per transaction: polls wait at most for one batch
VACUUM_PAGES = 2000  # SQLite pages given back per step of the incremental vacuum


@dataclass(frozen=True)
class StoreStats:
    """What `status --json` shows of the store as a whole."""

    stories: int
    tombstones: int
    bytes: int
    last_prune: datetime | None


@dataclass(frozen=True)
class Tombstone:
    """What stays of a pruned item while its source still lists it."""

    source_id: str
    key: str
    uid: str
    pruned: datetime
    last_listed: datetime


class RetentionQueries:
    """Pruning and the tombstones that keep pruned items from coming back."""

    # what is prunable

    def prunable_stories(self, before: datetime, keep: set[int]) -> Iterable[list[int]]:
        """Batches of the ids of stories republished before `before`, except those in `keep`, oldest id first."""
        last = 0
        while True:
            rows = self.query("SELECT id FROM stories WHERE republished < ? AND id > ? ORDER BY id LIMIT ?",
                              (to_text(before), last, PRUNE_BATCH))
            if not rows:
                return
            last = rows[-1][0]
            batch = [r[0] for r in rows if r[0] not in keep]
            if batch:
                yield batch

    def story_sizes(self, story_ids: list[int]) -> tuple[int, int]:
        """(items, bytes of their text) of these stories: what pruning them removes."""
        items = text = 0
        for start in range(0, len(story_ids), 500):
            chunk = story_ids[start:start + 500]
            count, size = self.query("SELECT count(*), coalesce(sum(length(coalesce(content, '')) + length(coalesce("
                                     f"summary, '')) + length(title)), 0) FROM items WHERE story_id IN ({marks(chunk)})",
                                     chunk)[0]
            items, text = items + count, text + size
        return items, text

    # pruning

    def prune_stories(self, story_ids: list[int], now: datetime) -> int:
        """Remove these stories with everything of theirs, leaving a tombstone per item; the items removed."""
        with self.transaction() as db:
            items = [r[0] for r in chunked(db, story_ids, "SELECT id FROM items WHERE story_id IN ({})")]
            when = to_text(now)
            db.execute(f"INSERT INTO tombstones (source_id, key, raw_hash, content_hash, uid, pruned, last_listed) "
                       f"SELECT i.source_id, i.key, i.raw_hash, i.content_hash, s.uid, ?, ? FROM items i "
                       f"JOIN stories s ON s.id = i.story_id WHERE i.story_id IN ({marks(story_ids)}) "
                       "ON CONFLICT (source_id, key) DO UPDATE SET raw_hash = excluded.raw_hash, "
                       "content_hash = excluded.content_hash, uid = excluded.uid, pruned = excluded.pruned, "
                       "last_listed = excluded.last_listed", [when, when, *story_ids])
            for start in range(0, len(items), 500):
                chunk = items[start:start + 500]
                for table, column in (("near_keys", "item_id"), ("fingerprints", "item_id"), ("merges", "item_id"),
                                      ("kept_apart", "item_id"), ("kept_apart", "other_item"),
                                      ("dedup_decisions", "item_id"), ("dedup_decisions", "other_item")):
                    db.execute(f"DELETE FROM {table} WHERE {column} IN ({marks(chunk)})", chunk)
            db.execute(f"DELETE FROM merges WHERE story_id IN ({marks(story_ids)})", story_ids)
            for table in ("archived", "publish_queue", "retired_stories"):
                db.execute(f"DELETE FROM {table} WHERE story_id IN ({marks(story_ids)})", story_ids)
            db.execute(f"DELETE FROM items WHERE story_id IN ({marks(story_ids)})", story_ids)
            db.execute(f"DELETE FROM stories WHERE id IN ({marks(story_ids)})", story_ids)
        return len(items)

    def expired_tombstones(self, before: datetime, sources: set[str]) -> int:
        """How many tombstones drop_tombstones(before, sources) would drop."""
        return self.query(f"SELECT count(*) FROM tombstones t {self._expired(sources)}",
                          self._expired_params(before, sources))[0][0]

    def drop_tombstones(self, before: datetime, sources: set[str]) -> int:
        """Drop the tombstones whose source left them out of a new body, or left the config, before `before`.

        A source that brought no new body since it last listed a tombstone
        still lists it: that tombstone stays however old it is.
        """
        with self.transaction() as db:
            cursor = db.execute(f"DELETE FROM tombstones WHERE (source_id, key) IN (SELECT t.source_id, t.key "
                                f"FROM tombstones t {self._expired(sources)})", self._expired_params(before, sources))
            return cursor.rowcount

    @staticmethod
    def _expired(sources: set[str]) -> str:
        configured = f"t.source_id IN ({marks(sorted(sources))})" if sources else "1 = 0"
        return ("LEFT JOIN sources s ON s.id = t.source_id WHERE t.last_listed < ? AND "
                f"(NOT ({configured}) OR s.body_changed > t.last_listed)")

    @staticmethod
    def _expired_params(before: datetime, sources: set[str]) -> list:
        return [to_text(before), *sorted(sources)]

    # tombstones met by a poll

    @staticmethod
    def tombstoned(db: Connection, source_id: str, keys: list[str], hashes: Iterable[str] = ()) -> tuple[set, set]:
        """(keys, content hashes) among these that tombstones of this source hold."""
        found_keys = {r[0] for r in chunked(db, keys, "SELECT key FROM tombstones WHERE source_id = ? AND key IN ({})",
                                            before=(source_id,))}
        found_hashes = {r[0] for r in chunked(db, sorted(set(hashes)), "SELECT content_hash FROM tombstones "
                                              "WHERE source_id = ? AND content_hash IN ({})", before=(source_id,))}
        return found_keys, found_hashes

    @staticmethod
    def still_listed(db: Connection, source_id: str, keys: list[str], hashes: Iterable[str], now: datetime) -> None:
        """The source's new body lists these tombstoned items (by key or content hash) again: they stay."""
        when = to_text(now)
        for column, values in (("key", keys), ("content_hash", sorted(set(hashes)))):
            for start in range(0, len(values), 500):
                chunk = values[start:start + 500]
                db.execute(f"UPDATE tombstones SET last_listed = ? WHERE source_id = ? AND {column} IN "
                           f"({marks(chunk)})", [when, source_id, *chunk])

    @staticmethod
    def tombstone_hints(db: Connection, source_id: str, limit: int) -> list[tuple[str, str, str]]:
        """(key, raw hash, '') of the source's tombstones: what the preparer need not prepare again."""
        return [(r[0], r[1], "") for r in db.execute(
            "SELECT key, raw_hash FROM tombstones WHERE source_id = ? ORDER BY last_listed DESC LIMIT ?",
            (source_id, limit))]

    def tombstones_matching(self, needle: str) -> list[Tombstone]:
        """Tombstones of the story with this id, or of an item with this guid or link."""
        rows = self.query("SELECT source_id, key, uid, pruned, last_listed FROM tombstones WHERE uid = ? "
                          "OR key IN (?, ?) ORDER BY pruned, source_id, key", (needle, "guid:" + needle, "link:" + needle))
        return [Tombstone(r[0], r[1], r[2], from_text(r[3]), from_text(r[4])) for r in rows]

    # the near-duplicate index

    def trim_index(self, before: datetime, since: datetime | None) -> int:
        """Drop the index keys and fingerprints of items both published and first seen before `before` (and one
        of them since `since`, when the last trim went up to it): no new copy can be matched with them.

        A new copy dated about now is compared with stories inside the window of
        its date; one dated long ago (a feed's old items, seen for the first time)
        with stories of that time, which other sources' first polls usually bring
        at the same moment: an item stays indexed while either date is recent.
        """
        low, high = to_text(since) if since else "", to_text(before)
        removed = 0
        while True:
            with self.transaction() as db:
                ids = [r[0] for r in db.execute(
                    "SELECT id FROM items WHERE ((published >= ? AND published < ? AND first_seen < ?) OR "
                    "(first_seen >= ? AND first_seen < ? AND published < ?)) AND id IN (SELECT item_id FROM "
                    "fingerprints) LIMIT 2000", (low, high, high, low, high, high))]
                if not ids:
                    self.set_meta(db, "index_trimmed_before", to_text(before))
                    return removed
                for table in ("near_keys", "fingerprints"):
                    removed += db.execute(f"DELETE FROM {table} WHERE item_id IN ({marks(ids)})", ids).rowcount

    def index_trimmed_before(self) -> datetime | None:
        rows = self.query("SELECT value FROM dedup_meta WHERE name = 'index_trimmed_before'")
        return from_text(rows[0][0]) if rows else None

    # the store as a whole

    def stats(self) -> StoreStats:
        return StoreStats(self.query("SELECT count(*) FROM stories")[0][0],
                          self.query("SELECT count(*) FROM tombstones")[0][0], self.size_bytes(), self.last_prune())

    def last_prune(self) -> datetime | None:
        rows = self.query("SELECT value FROM dedup_meta WHERE name = 'last_prune'")
        return from_text(rows[0][0]) if rows else None

    def record_prune(self, when: datetime) -> None:
        with self.transaction() as db:
            self.set_meta(db, "last_prune", to_text(when))

    def reclaim_space(self) -> None:
        """Give freed pages back to the file system (SQLite); PostgreSQL's autovacuum does so by itself."""
        self.backend.reclaim(self, VACUUM_PAGES)
