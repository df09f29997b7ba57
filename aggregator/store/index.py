"""The near-duplicate index and the lookups dedup's candidates come from.

Each item has its text fingerprint (fingerprints) and its MinHash band and
title keys (near_keys). For a poll's new copies the store finds the stored
items that share a canonical link, a content hash or an index key with them
(`dedup_lookup`), lets dedup shortlist the few worth judging, and loads
those as dedup copies (`dedup_candidates`); dedup itself never reads the
database.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any, Iterable

from ..dedup import fingerprint
from ..dedup.copies import Copy, index_keys, stored_copy
from ..dedup.match import Candidates, Lookup, grouped, lookup_values, shortlist
from ..models import from_text, to_text
from .backend import chunked, marks

Connection = Any  # a transaction's connection (sqlite3, or psycopg behind sqlite3's interface)


class IndexQueries:
    """The near-duplicate index: written as items are stored, read for dedup's candidates."""

    # dedup's candidates

    @classmethod
    def dedup_candidates(cls, db: Connection, copies: list[Copy], window: float
                         ) -> tuple[Lookup, list[set[int]], Candidates]:
        """For one source's new copies: what the store holds that may match them, shortlisted by dedup."""
        if not copies:
            return Lookup(), [], Candidates({}, set(), {})
        source_id = copies[0].source_id
        links, hashes, keys, earliest, latest = lookup_values(copies, window)
        lookup = Lookup(
            by_link=grouped(cls.items_by_values(db, "canonical_link", links, earliest, latest)),
            by_hash=grouped(cls.items_by_values(db, "content_hash", hashes, earliest, latest)),
            by_key=grouped(cls.near_key_rows(db, keys, earliest, latest, source_id)),
            repeated=frozenset(cls.repeated_values(db, "canonical_link", links)
                               | cls.repeated_values(db, "content_hash", hashes)),
        )
        shortlists = [shortlist(copy, window, lookup) for copy in copies]
        stored = {r["id"]: stored_copy(r) for r in cls.copy_rows(db, sorted(set().union(*shortlists)))
                  if r["source_id"] != source_id}
        story_ids = sorted({c.story_id for c in stored.values()})
        sources = cls.story_sources(db, story_ids)
        candidates = Candidates(stored, {s for s, held in sources.items() if source_id in held},
                                cls._stories_first_published(db, story_ids), sources, cls.stories_apart(db, story_ids))
        return lookup, shortlists, candidates

    @staticmethod
    def items_by_values(db: Connection, column: str, values: Iterable[str], earliest: datetime,
                         latest: datetime) -> list[tuple[str, int, str]]:
        """(value, item id, published) of items with one of these canonical links or content hashes, in the window."""
        assert column in ("canonical_link", "content_hash")
        return chunked(db, sorted(values), f"SELECT {column}, id, published FROM items WHERE {column} IN ({{}}) "
                       "AND published BETWEEN ? AND ?", after=(to_text(earliest), to_text(latest)))

    @staticmethod
    def repeated_values(db: Connection, column: str, values: Iterable[str]) -> set[str]:
        """Those of these canonical links or content hashes that one source carries on several items."""
        assert column in ("canonical_link", "content_hash")
        rows = chunked(db, sorted(values), f"SELECT {column} FROM items WHERE {column} IN ({{}}) "
                       f"GROUP BY {column}, source_id HAVING count(*) > 1")
        return {r[0] for r in rows}

    @staticmethod
    def near_key_rows(db: Connection, keys: Iterable[int], earliest: datetime, latest: datetime,
                       other_than_source: str) -> list[tuple[int, int, str]]:
        """(key, item id, published) of other sources' items in the window holding one of these index keys."""
        return chunked(db, sorted(keys), "SELECT k.key, k.item_id, i.published FROM near_keys k JOIN items i "
                       "ON i.id = k.item_id WHERE k.key IN ({}) AND i.published BETWEEN ? AND ? AND i.source_id != ?",
                       after=(to_text(earliest), to_text(latest), other_than_source))

    @staticmethod
    def copy_rows(db: Connection, item_ids: list[int]) -> list:
        """What dedup compares of stored items (the longest of content and summary is its text)."""
        if not item_ids:
            return []
        return db.execute(
            "SELECT id, story_id, source_id, title, title_key, title_keys, canonical_link, content_hash, content, summary, "
            "published, f.words, f.blocks, f.hashes FROM items LEFT JOIN fingerprints f ON f.item_id = items.id "
            f"WHERE id IN ({marks(item_ids)}) ORDER BY id", item_ids).fetchall()

    @staticmethod
    def _stories_first_published(db: Connection, story_ids: list[int]) -> dict[int, datetime]:
        """Each story's original date: the earliest publication of its copies."""
        if not story_ids:
            return {}
        rows = db.execute(f"SELECT story_id, min(published) FROM items WHERE story_id IN "
                          f"({marks(story_ids)}) GROUP BY story_id", story_ids)
        return {r[0]: from_text(r[1]) for r in rows}

    # writing the index

    @classmethod
    def index(cls, db: Connection, item_id: int, copy: Copy) -> None:
        """Add (or refresh) an item's near-duplicate keys (text bands and titles) and fingerprint."""
        db.execute("DELETE FROM near_keys WHERE item_id = ?", (item_id,))
        cls.index_new(db, [(item_id, copy)])

    @staticmethod
    def index_new(db: Connection, copies: list[tuple[int, Copy]]) -> None:
        """Add the near-duplicate keys and fingerprints of items just stored, (item id, copy) each."""
        db.cursor().executemany("INSERT INTO near_keys (key, item_id) VALUES (?, ?)",
                                [(key, item_id) for item_id, copy in copies for key in index_keys(copy)])
        db.cursor().executemany(
            "INSERT INTO fingerprints (item_id, words, blocks, hashes) VALUES (?, ?, ?, ?) ON CONFLICT (item_id) "
            "DO UPDATE SET words = excluded.words, blocks = excluded.blocks, hashes = excluded.hashes",
            [(item_id, copy.text.words, json.dumps(copy.text.blocks), copy.text.hashes.astype("<u4").tobytes())
             for item_id, copy in copies])

    @classmethod
    def ensure_index(cls, db: Connection, since: datetime | None = None, batch: int = 500) -> int:
        """Rebuild the near-duplicate index from the stored items when it was built another way (or never).

        The index lives in the store, so a restart loses nothing; this only runs
        after an upgrade changes how keys are made. Only items published or first
        seen since `since` are indexed (the dedup window's). Returns the items
        reindexed.
        """
        if cls.meta(db, "near_index") == fingerprint.INDEX_VERSION:
            return 0
        db.execute("DELETE FROM near_keys")
        db.execute("DELETE FROM fingerprints")
        done, last = 0, 0
        low = to_text(since) if since else ""
        while ids := [r[0] for r in db.execute("SELECT id FROM items WHERE id > ? AND (published >= ? OR "
                                               "first_seen >= ?) ORDER BY id LIMIT ?", (last, low, low, batch))]:
            for row in cls.copy_rows(db, ids):
                copy = stored_copy(row)
                cls.index(db, row["id"], replace(copy, keys=tuple(fingerprint.index_keys(copy.text))))
            done, last = done + len(ids), ids[-1]
        cls.set_meta(db, "near_index", fingerprint.INDEX_VERSION)
        return done

    @staticmethod
    def meta(db: Connection, name: str) -> str | None:
        row = db.execute("SELECT value FROM dedup_meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def set_meta(db: Connection, name: str, value: str) -> None:
        db.execute("INSERT INTO dedup_meta (name, value) VALUES (?, ?) "
                   "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, value))
