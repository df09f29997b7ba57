"""Queries of items (one copy of a story, as its source gave it, sanitised), stories and merges."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any, Iterable

from ..errors import DamagedState
from ..models import Enclosure, StoredItem, from_json, from_text, to_text
from .backend import chunked, marks

Connection = Any  # a transaction's connection (sqlite3, or psycopg behind sqlite3's interface)

_ITEM_COLUMNS = ("id, story_id, source_id, key, title, link, summary, content, authors, categories, language, "
                 "published, updated, first_seen, sanitizer, enclosures")


class ItemQueries:
    """Items and the stories they belong to: stored by a poll, read by publishing and `explain`."""

    @staticmethod
    def item_hashes(db: Connection, source_id: str, keys: list[str]) -> dict[str, tuple[int, str, str, int]]:
        """(item id, raw hash, published, story id) of the given keys already stored for this source."""
        rows = chunked(db, keys, "SELECT key, id, raw_hash, published, story_id FROM items WHERE source_id = ? "
                       "AND key IN ({})", before=(source_id,))
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    @staticmethod
    def latest_items(db: Connection, source_id: str, limit: int) -> list[tuple[str, str, str]]:
        """(key, raw hash, title) of the source's latest published items, newest first."""
        rows = db.execute("SELECT key, raw_hash, title FROM items WHERE source_id = ? ORDER BY published DESC LIMIT ?",
                          (source_id, limit))
        return [tuple(r) for r in rows]

    @staticmethod
    def newest_update(db: Connection, source_id: str) -> datetime | None:
        """The newest `updated` of the source's items: when they last changed (a new item, or a new version)."""
        return from_text(db.execute("SELECT max(updated) FROM items WHERE source_id = ?", (source_id,)).fetchone()[0])

    @staticmethod
    def create_story(db: Connection, uid: str, republished: datetime) -> int:
        created = db.execute("INSERT INTO stories (uid, republished) VALUES (?, ?) ON CONFLICT (uid) DO NOTHING "
                             "RETURNING id", (uid, to_text(republished))).fetchone()
        return created[0] if created else db.execute("SELECT id FROM stories WHERE uid = ?", (uid,)).fetchone()[0]

    @staticmethod
    def insert_item(db: Connection, story_id: int, source_id: str, values: dict) -> int:
        columns = ["story_id", "source_id", *values]
        return db.execute(
            f"INSERT INTO items ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) RETURNING id",
            [story_id, source_id, *(_column_value(v) for v in values.values())],
        ).fetchone()[0]

    @staticmethod
    def update_item(db: Connection, item_id: int, values: dict) -> None:
        db.execute(
            f"UPDATE items SET {', '.join(f'{c} = ?' for c in values)} WHERE id = ?",
            [*(_column_value(v) for v in values.values()), item_id],
        )

    @staticmethod
    def record_merge(db: Connection, item_id: int, story_id: int, matched_item: int | None,
                     evidence: str, score: float, when: datetime, details: dict | None = None) -> None:
        db.execute(
            "INSERT INTO merges (item_id, story_id, matched_item, evidence, score, decided, details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (item_id) DO UPDATE SET story_id = excluded.story_id, "
            "matched_item = excluded.matched_item, evidence = excluded.evidence, score = excluded.score, "
            "decided = excluded.decided, details = excluded.details",
            (item_id, story_id, matched_item, evidence, score, to_text(when),
             json.dumps(details, sort_keys=True) if details else None))

    def items_by_id(self, item_ids: list[int]) -> list[StoredItem]:
        """The stored items with these ids (a few hundred per query)."""
        items = []
        for start in range(0, len(item_ids), 200):
            chunk = item_ids[start:start + 200]
            items += [_stored_item(row) for row in self.query(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE id IN ({marks(chunk)})", chunk)]
        return items

    def items_of_story(self, story_id: int) -> list[StoredItem]:
        return [_stored_item(row) for row in self.query(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE story_id = ?", (story_id,))]

    def stories_matching(self, needle: str, canonical: str | None) -> list[int]:
        """Stories whose id (or a retired id joined into them) is `needle`, or with a copy whose link, guid or
        canonical link it is."""
        rows = self.query(
            "SELECT id FROM stories WHERE uid = ? UNION SELECT story_id FROM retired_stories WHERE uid = ? "
            "UNION SELECT story_id FROM items WHERE link = ? OR guid = ? OR canonical_link = ? ORDER BY 1",
            (needle, needle, needle, needle, canonical or needle))
        return [r[0] for r in rows]

    def merge_rows(self, story_id: int) -> dict[int, Any]:
        """How each copy that joined the story was matched, by item id."""
        return {r["item_id"]: r for r in self.query("SELECT * FROM merges WHERE story_id = ?", (story_id,))}

    def story_rows(self, story_ids: Iterable[int]) -> dict[int, Any]:
        ids = list(story_ids)
        result = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self.query(f"SELECT * FROM stories WHERE id IN ({marks(chunk)})", chunk)
            result.update({row["id"]: row for row in rows})
        return result

    def merge_rules(self, source_id: str, first_seen: datetime) -> dict[str, int]:
        """How many of the source's items first seen at `first_seen` (one poll's new ones) joined a story, by the
        rule that merged them (metrics' dedup decisions)."""
        rules: dict[str, int] = {}
        for (details,) in self.query(
                "SELECT m.details FROM items AS i JOIN merges AS m ON m.item_id = i.id "
                "WHERE i.source_id = ? AND i.first_seen = ?", (source_id, to_text(first_seen))):
            rule = (json.loads(details) if details else {}).get("rule", "unknown")
            rules[rule] = rules.get(rule, 0) + 1
        return rules


def _column_value(value):
    if value is None or type(value) is str:  # most columns: checked first
        return value
    if isinstance(value, datetime):
        return to_text(value)
    if isinstance(value, (tuple, list)):
        return json.dumps(list(value), ensure_ascii=False, default=asdict) if value else "[]"  # enclosures: objects
    return value


def _stored_item(row) -> StoredItem:
    return StoredItem(
        id=row["id"], story_id=row["story_id"], source_id=row["source_id"], key=row["key"], title=row["title"],
        link=row["link"], summary=row["summary"], content=row["content"],
        authors=tuple(from_json(row["authors"])), categories=tuple(from_json(row["categories"])),
        language=row["language"], published=from_text(row["published"]), updated=from_text(row["updated"]),
        first_seen=from_text(row["first_seen"]), sanitizer=row["sanitizer"], enclosures=_enclosures(row["enclosures"]),
    )


def _enclosures(text: str | None) -> tuple[Enclosure, ...]:
    """Stored enclosures (none for an item stored before they were kept); DamagedState when they are not."""
    if text is None:
        return ()
    try:
        return tuple(Enclosure(**listed) for listed in from_json(text))
    except TypeError:
        raise DamagedState("an enclosure that is not one") from None
