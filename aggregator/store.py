"""SQLite state: migrations, one transaction per poll, the queries publishing needs.

Every item is kept as its source gave it (sanitised), linked to the story it
belongs to; a story carries the id and republication time that outputs show
forever. WAL mode and one transaction per poll mean a kill -9 at any moment
leaves either the whole poll or none of it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from . import NAMESPACE
from .errors import StoreError
from .models import SourceState, StoredItem

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

#: Append-only: each entry runs once, in order, inside its own transaction. Never edit a shipped one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE sources (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL DEFAULT 'new',
        configured_url TEXT,
        url TEXT,
        etag TEXT,
        last_modified TEXT,
        body_hash TEXT,
        last_poll TEXT,
        last_success TEXT,
        last_status INTEGER,
        errors INTEGER NOT NULL DEFAULT 0,
        next_poll TEXT,
        retry_after TEXT,
        last_error TEXT,
        feed_title TEXT,
        feed_link TEXT,
        feed_id TEXT,
        feed_updated TEXT,
        min_interval INTEGER
    );
    CREATE TABLE stories (
        id INTEGER PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        republished TEXT NOT NULL
    );
    CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        source_id TEXT NOT NULL,
        key TEXT NOT NULL,
        story_id INTEGER NOT NULL REFERENCES stories(id),
        guid TEXT,
        link TEXT,
        canonical_link TEXT,
        title TEXT NOT NULL,
        title_key TEXT,
        summary TEXT,
        content TEXT,
        authors TEXT NOT NULL DEFAULT '[]',
        categories TEXT NOT NULL DEFAULT '[]',
        language TEXT,
        published TEXT NOT NULL,
        updated TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        raw_hash TEXT NOT NULL,
        content_hash TEXT,
        UNIQUE (source_id, key)
    );
    CREATE INDEX items_story ON items (story_id);
    CREATE INDEX items_canonical_link ON items (canonical_link);
    CREATE INDEX items_source_published ON items (source_id, published);
    CREATE TABLE merges (
        item_id INTEGER PRIMARY KEY REFERENCES items(id),
        story_id INTEGER NOT NULL REFERENCES stories(id),
        matched_item INTEGER,
        evidence TEXT NOT NULL,
        score REAL NOT NULL,
        decided TEXT NOT NULL
    );
    """,
    # The near-duplicate index (MinHash LSH band keys per item) and the lookups dedupe makes.
    """
    CREATE TABLE near_keys (
        key INTEGER NOT NULL,
        published TEXT NOT NULL,
        item_id INTEGER NOT NULL REFERENCES items(id)
    );
    CREATE INDEX near_keys_lookup ON near_keys (key, published);
    CREATE INDEX near_keys_item ON near_keys (item_id);
    CREATE INDEX items_content_hash ON items (content_hash, published);
    CREATE TABLE dedup_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    ALTER TABLE merges ADD COLUMN details TEXT;
    ALTER TABLE items ADD COLUMN title_keys TEXT;
    """,
]


def to_text(when: datetime | None) -> str | None:
    return when.astimezone(timezone.utc).strftime(TIME_FORMAT) if when else None


def from_text(text: str | None) -> datetime | None:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=timezone.utc) if text else None


def story_uid(source_id: str, key: str) -> str:
    """A story's public id: derived from the copy that created it, so it never depends on row ids."""
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{NAMESPACE}#{source_id}\x00{key}"))


_SOURCE_TIMES = {"last_poll", "last_success", "next_poll", "retry_after", "feed_updated"}
_SOURCE_COLUMNS = [f.name for f in fields(SourceState) if f.name not in ("id", "entries")]


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), timeout=10, isolation_level=None, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(_explain(exc, self.path)) from exc
        except OSError as exc:
            raise StoreError(f"cannot create {self.path.parent}: {exc.strerror}; check the `state` path") from exc
        self._lock = threading.RLock()

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)")
        done = {row[0] for row in self.db.execute("SELECT version FROM schema_migrations")}
        for version, script in enumerate(MIGRATIONS, start=1):
            if version in done:
                continue
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for statement in filter(str.strip, script.split(";")):
                    self.db.execute(statement)
                self.db.execute("INSERT INTO schema_migrations VALUES (?, ?)",
                                (version, to_text(datetime.now(timezone.utc))))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; everything in it lands together or not at all."""
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise StoreError(_explain(exc, self.path)) from exc
            try:
                yield self.db
                self.db.execute("COMMIT")
            except BaseException as exc:
                self.db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.DatabaseError):
                    raise StoreError(_explain(exc, self.path)) from exc
                raise

    def query(self, sql: str, params: Iterable = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self.db.execute(sql, tuple(params)).fetchall()
            except sqlite3.DatabaseError as exc:
                raise StoreError(_explain(exc, self.path)) from exc

    # sources

    def source_states(self) -> dict[str, SourceState]:
        counts = {r[0]: r[1] for r in self.query("SELECT source_id, count(*) FROM items GROUP BY source_id")}
        return {row["id"]: _source_state(row, counts.get(row["id"], 0)) for row in self.query("SELECT * FROM sources")}

    def source_state(self, source_id: str) -> SourceState:
        rows = self.query("SELECT * FROM sources WHERE id = ?", (source_id,))
        if not rows:
            return SourceState(id=source_id)
        count = self.query("SELECT count(*) FROM items WHERE source_id = ?", (source_id,))[0][0]
        return _source_state(rows[0], count)

    @staticmethod
    def save_source_state(db: sqlite3.Connection, state: SourceState) -> None:
        values = [to_text(getattr(state, c)) if c in _SOURCE_TIMES else getattr(state, c) for c in _SOURCE_COLUMNS]
        db.execute(
            f"INSERT INTO sources (id, {', '.join(_SOURCE_COLUMNS)}) VALUES (?{', ?' * len(_SOURCE_COLUMNS)}) "
            f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _SOURCE_COLUMNS)}",
            [state.id, *values],
        )

    # items and stories

    @staticmethod
    def item_hashes(db: sqlite3.Connection, source_id: str, keys: list[str]) -> dict[str, tuple[int, str, str]]:
        """(item id, raw hash, published) of the given keys already stored for this source."""
        result = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = db.execute(
                f"SELECT key, id, raw_hash, published FROM items WHERE source_id = ? AND key IN ({','.join('?' * len(chunk))})",
                [source_id, *chunk],
            )
            result.update({r[0]: (r[1], r[2], r[3]) for r in rows})
        return result

    @staticmethod
    def create_story(db: sqlite3.Connection, uid: str, republished: datetime) -> int:
        db.execute("INSERT OR IGNORE INTO stories (uid, republished) VALUES (?, ?)", (uid, to_text(republished)))
        return db.execute("SELECT id FROM stories WHERE uid = ?", (uid,)).fetchone()[0]

    @staticmethod
    def insert_item(db: sqlite3.Connection, story_id: int, source_id: str, values: dict) -> int:
        columns = ["story_id", "source_id", *values]
        cursor = db.execute(
            f"INSERT INTO items ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [story_id, source_id, *(_column_value(v) for v in values.values())],
        )
        return cursor.lastrowid

    @staticmethod
    def update_item(db: sqlite3.Connection, item_id: int, values: dict) -> None:
        db.execute(
            f"UPDATE items SET {', '.join(f'{c} = ?' for c in values)} WHERE id = ?",
            [*(_column_value(v) for v in values.values()), item_id],
        )

    @staticmethod
    def items_by_canonical_link(db: sqlite3.Connection, canonical: str, earliest: datetime,
                                latest: datetime) -> list[tuple[int, int, str]]:
        """(item id, story id, source id) of copies with this canonical link published in the window."""
        return db.execute(
            "SELECT id, story_id, source_id FROM items WHERE canonical_link = ? AND published BETWEEN ? AND ? "
            "ORDER BY published, id", (canonical, to_text(earliest), to_text(latest))).fetchall()

    @staticmethod
    def record_merge(db: sqlite3.Connection, item_id: int, story_id: int, matched_item: int | None,
                     evidence: str, score: float, when: datetime, details: dict | None = None) -> None:
        db.execute(
            "INSERT OR REPLACE INTO merges (item_id, story_id, matched_item, evidence, score, decided, details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (item_id, story_id, matched_item, evidence, score, to_text(when),
             json.dumps(details, sort_keys=True) if details else None))

    # deduplication: candidate lookups and the near-duplicate index

    @staticmethod
    def items_by_content_hash(db: sqlite3.Connection, value: str, earliest: datetime, latest: datetime,
                              limit: int = 50) -> list[int]:
        """Ids of items with this content hash, published in the window."""
        rows = db.execute("SELECT id FROM items WHERE content_hash = ? AND published BETWEEN ? AND ? "
                          "ORDER BY published LIMIT ?", (value, to_text(earliest), to_text(latest), limit))
        return [r[0] for r in rows]

    @staticmethod
    def items_by_near_keys(db: sqlite3.Connection, keys: list[int], earliest: datetime, latest: datetime,
                           other_than_source: str, limit: int) -> list[tuple[int, int]]:
        """(item id, keys shared) of other sources' items in the window sharing index keys, most shared first."""
        if not keys:
            return []
        rows = db.execute(
            f"SELECT k.item_id, count(*) AS shared FROM near_keys k JOIN items i ON i.id = k.item_id "
            f"WHERE k.key IN ({','.join('?' * len(keys))}) AND k.published BETWEEN ? AND ? AND i.source_id != ? "
            "GROUP BY k.item_id ORDER BY shared DESC, k.item_id LIMIT ?",
            [*keys, to_text(earliest), to_text(latest), other_than_source, limit])
        return [(r[0], r[1]) for r in rows]

    @staticmethod
    def replace_near_keys(db: sqlite3.Connection, item_id: int, published: datetime, keys: list[int]) -> None:
        db.execute("DELETE FROM near_keys WHERE item_id = ?", (item_id,))
        when = to_text(published)
        db.executemany("INSERT INTO near_keys (key, published, item_id) VALUES (?, ?, ?)",
                       [(key, when, item_id) for key in keys])

    @staticmethod
    def clear_near_keys(db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM near_keys")

    @staticmethod
    def repeated_within_a_source(db: sqlite3.Connection, column: str, value: str) -> bool:
        """True when one source carries several items with this canonical_link or content_hash."""
        assert column in ("canonical_link", "content_hash")
        return db.execute(f"SELECT 1 FROM items WHERE {column} = ? GROUP BY source_id HAVING count(*) > 1 LIMIT 1",
                          (value,)).fetchone() is not None

    @staticmethod
    def copy_rows(db: sqlite3.Connection, item_ids: list[int]) -> list[sqlite3.Row]:
        """What dedupe compares of stored items (the longest of content and summary is its text)."""
        if not item_ids:
            return []
        return db.execute(
            "SELECT id, story_id, source_id, title, title_key, title_keys, canonical_link, content_hash, content, summary, "
            f"published FROM items WHERE id IN ({','.join('?' * len(item_ids))}) ORDER BY id", item_ids).fetchall()

    @staticmethod
    def stories_carrying(db: sqlite3.Connection, story_ids: list[int], source_id: str) -> set[int]:
        """Those of the stories that already hold a copy from this source."""
        if not story_ids:
            return set()
        rows = db.execute(f"SELECT DISTINCT story_id FROM items WHERE source_id = ? AND story_id IN "
                          f"({','.join('?' * len(story_ids))})", [source_id, *story_ids])
        return {r[0] for r in rows}

    @staticmethod
    def stories_first_published(db: sqlite3.Connection, story_ids: list[int]) -> dict[int, datetime]:
        """Each story's original date: the earliest publication of its copies."""
        if not story_ids:
            return {}
        rows = db.execute(f"SELECT story_id, min(published) FROM items WHERE story_id IN "
                          f"({','.join('?' * len(story_ids))}) GROUP BY story_id", story_ids)
        return {r[0]: from_text(r[1]) for r in rows}

    @staticmethod
    def recent_titles(db: sqlite3.Connection, source_id: str, limit: int) -> list[str]:
        rows = db.execute("SELECT title FROM items WHERE source_id = ? ORDER BY published DESC LIMIT ?",
                          (source_id, limit))
        return [r[0] for r in rows]

    @staticmethod
    def meta(db: sqlite3.Connection, name: str) -> str | None:
        row = db.execute("SELECT value FROM dedup_meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def set_meta(db: sqlite3.Connection, name: str, value: str) -> None:
        db.execute("INSERT OR REPLACE INTO dedup_meta (name, value) VALUES (?, ?)", (name, value))

    @staticmethod
    def item_ids_after(db: sqlite3.Connection, after: int, limit: int) -> list[int]:
        return [r[0] for r in db.execute("SELECT id FROM items WHERE id > ? ORDER BY id LIMIT ?", (after, limit))]

    def items(self, where: str, params: Iterable = ()) -> list[StoredItem]:
        rows = self.query(
            "SELECT id, story_id, source_id, key, title, link, summary, content, authors, categories, language, "
            f"published, updated, first_seen FROM items WHERE {where}", params)
        return [_stored_item(row) for row in rows]

    def stories_matching(self, needle: str, canonical: str | None) -> list[int]:
        """Stories whose id is `needle`, or with a copy whose link, guid or canonical link it is."""
        rows = self.query(
            "SELECT id FROM stories WHERE uid = ? UNION SELECT story_id FROM items "
            "WHERE link = ? OR guid = ? OR canonical_link = ? ORDER BY 1", (needle, needle, needle, canonical or needle))
        return [r[0] for r in rows]

    def merge_rows(self, story_id: int) -> dict[int, sqlite3.Row]:
        """How each copy that joined the story was matched, by item id."""
        return {r["item_id"]: r for r in self.query("SELECT * FROM merges WHERE story_id = ?", (story_id,))}

    def story_rows(self, story_ids: Iterable[int]) -> dict[int, sqlite3.Row]:
        ids = list(story_ids)
        result = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self.query(f"SELECT * FROM stories WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            result.update({row["id"]: row for row in rows})
        return result


def _column_value(value):
    if isinstance(value, datetime):
        return to_text(value)
    if isinstance(value, (tuple, list)):
        return json.dumps(list(value), ensure_ascii=False)
    return value


def _source_state(row: sqlite3.Row, entries: int) -> SourceState:
    values = {c: (from_text(row[c]) if c in _SOURCE_TIMES else row[c]) for c in _SOURCE_COLUMNS}
    return SourceState(id=row["id"], entries=entries, **values)


def _stored_item(row: sqlite3.Row) -> StoredItem:
    return StoredItem(
        id=row["id"], story_id=row["story_id"], source_id=row["source_id"], key=row["key"], title=row["title"],
        link=row["link"], summary=row["summary"], content=row["content"],
        authors=tuple(json.loads(row["authors"])), categories=tuple(json.loads(row["categories"])),
        language=row["language"], published=from_text(row["published"]), updated=from_text(row["updated"]),
        first_seen=from_text(row["first_seen"]),
    )


def _explain(exc: sqlite3.DatabaseError, path: Path) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return f"{path} is locked by another process; stop it or wait, then retry"
    if "readonly" in text or "read-only" in text:
        return f"{path} is read-only; give this user write access to it and its folder"
    if "unable to open" in text:
        return f"cannot open {path}; check that its folder exists and is writable"
    if "not a database" in text or "malformed" in text:
        return f"{path} is not a valid aggregator state file ({text}); move it aside to start afresh"
    if "disk is full" in text or "disk I/O" in text:
        return f"cannot write {path}: {text}; free some disk space"
    return f"{path}: {text}"
