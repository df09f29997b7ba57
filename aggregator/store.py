"""The state: migrations, one transaction per poll, the queries publishing needs.

Every item is kept as its source gave it (sanitised), linked to the story it
belongs to; a story carries the id and republication time that outputs show
forever. One transaction per poll means a kill -9 at any moment leaves either
the whole poll or none of it.

Two backends, one set of SQL: a SQLite file (WAL mode), or PostgreSQL when
`state` is a postgresql:// URL, so several processes can share one state.
Queries are written for sqlite3 (`?` placeholders, portable `ON CONFLICT`
and `RETURNING`); postgres.py translates them. Dates are stored as RFC 3339
text on both, so a state copies between them unchanged.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Iterator

from . import NAMESPACE
from .errors import StoreError
from .models import PublishingHistory, SourceState, StoredItem


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
    # 2: the feed's skipHours/skipDays, which the scheduler honours (schedule.skip_forward)
    """
    ALTER TABLE sources ADD COLUMN skip_hours TEXT;
    ALTER TABLE sources ADD COLUMN skip_days TEXT
    """,
    # 3: publish failures (a full disk, an unwritable folder), so `status` can show them
    """
    CREATE TABLE output_failures (
        id TEXT PRIMARY KEY,
        failed_at TEXT NOT NULL,
        error TEXT NOT NULL
    );
    """,
    # 4: the near-duplicate index (MinHash LSH band keys per item) and the lookups dedupe makes.
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
    # 5: several workers on one PostgreSQL state (workers.py): who polls a source until when (epoch seconds by
    # the database's clock), the outputs left for the publishing worker, due sources found by index
    """
    ALTER TABLE sources ADD COLUMN lease_owner TEXT;
    ALTER TABLE sources ADD COLUMN lease_expires REAL;
    CREATE INDEX sources_next_poll ON sources (next_poll);
    CREATE TABLE publish_requests (
        output_id TEXT PRIMARY KEY,
        requested TEXT NOT NULL
    );
    """,
    # 6: each item's text fingerprint (fingerprint.py), so judging a stored copy does not read its HTML again;
    # apart from items, whose rows stay small for the lookups
    """
    CREATE TABLE fingerprints (
        item_id INTEGER PRIMARY KEY REFERENCES items(id),
        words INTEGER NOT NULL,
        blocks TEXT NOT NULL,
        hashes BLOB NOT NULL
    );
    """,
    # 7: what each published file was rendered from (publish.Rendered), so an unchanged document is not rendered again
    """
    CREATE TABLE rendered (
        path TEXT PRIMARY KEY,
        digest TEXT NOT NULL,
        file TEXT NOT NULL
    );
    """,
    # 8: the near-duplicate index as one B-tree of (key, item id), the window checked on the item it joins:
    # a fifth of the size, and one random insert per key instead of two (a cold poll's commit rewrote ~2,000 pages)
    """
    ALTER TABLE near_keys RENAME TO near_keys_before;
    CREATE TABLE near_keys (
        key INTEGER NOT NULL,
        item_id INTEGER NOT NULL,
        PRIMARY KEY (key, item_id)
    ) WITHOUT ROWID;
    INSERT INTO near_keys (key, item_id) SELECT DISTINCT key, item_id FROM near_keys_before ORDER BY key, item_id;
    DROP TABLE near_keys_before;
    CREATE INDEX near_keys_item ON near_keys (item_id);
    """,
    # 9: how many polls brought a source a new body (what publishing reads of it may have changed since), so
    # `once` can tell that nothing did since the last publish; counted up, so a body changing back still counts
    """
    ALTER TABLE sources ADD COLUMN changed_bodies INTEGER NOT NULL DEFAULT 0;
    """,
]


def to_text(when: datetime | None) -> str | None:
    """RFC 3339 in UTC to the second, the form every stored time has (so text order is time order)."""
    if when is None:
        return None
    if when.tzinfo is not timezone.utc:
        when = when.astimezone(timezone.utc)
    return when.isoformat(timespec="seconds")[:19] + "Z"  # a third faster than strftime, and years < 1000 keep 4 digits


def from_text(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None  # C-fast; reads the trailing Z as UTC


def story_uid(source_id: str, key: str) -> str:
    """A story's public id: derived from the copy that created it, so it never depends on row ids."""
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{NAMESPACE}#{source_id}\x00{key}"))


#: Advisory-lock slots per scope on PostgreSQL (see Store.lock): enough that two polls' keys rarely share one;
#: and the most slots one transaction locks in one scope, well under PostgreSQL's default lock table.
LOCK_SLOTS = 65536
MAX_SLOTS = 256


def is_postgresql(location: str | Path) -> bool:
    """A `state` naming a PostgreSQL database; anything else is a SQLite file path."""
    return str(location).startswith(("postgresql://", "postgres://"))


def _hash32(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=4).digest(),
                          "big", signed=True)


_SOURCE_TIMES = {"last_poll", "last_success", "next_poll", "retry_after", "feed_updated"}
_SOURCE_COLUMNS = [f.name for f in fields(SourceState) if f.name not in ("id", "entries")]


#: SQLite's page cache per connection (it fills only as pages are read): a batch run ingesting many
#: items wants a large one, the long-running daemon a small one for its memory's sake.
BATCH_CACHE_KIB, DAEMON_CACHE_KIB = 64 * 1024, 8 * 1024
WAL_CHECKPOINT_PAGES = 20_000  # fewer, larger checkpoints: each one syncs the database file


class Store:
    """The state, in a SQLite file or a PostgreSQL database; one connection, one transaction at a time."""

    def __init__(self, path: str | Path, cache_kib: int = BATCH_CACHE_KIB):
        self._lock = threading.RLock()
        self._cache_kib = cache_kib
        self._group_seconds: float | None = None  # grouped_commits: how far apart the commits are
        self._group_began: float | None = None  # when the open group's transaction began
        if is_postgresql(path):
            from . import postgres

            self.dialect, self.path, self._url = "postgresql", postgres.redact(str(path)), str(path)
            self._errors, self._explain = postgres.ERRORS, postgres.explain
            self.db = postgres.connect(self._url)
        else:
            self.dialect, self.path = "sqlite", Path(path)
            self._errors, self._explain = (sqlite3.DatabaseError,), _explain
            self.db = self._open_sqlite()
        try:
            self._migrate()
        except BaseException:
            self.db.close()
            raise

    def _open_sqlite(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(self.path), timeout=10, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            _enter_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            # The near-duplicate index takes ~35 random inserts per new item: with SQLite's default 2 MB
            # page cache most of them read their page again (400 cold feeds: 82 s; with 64 MB: 34 s).
            db.execute(f"PRAGMA cache_size=-{self._cache_kib}")
            db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            db.execute("PRAGMA foreign_keys=ON")
            return db
        except sqlite3.DatabaseError as exc:
            raise StoreError(_explain(exc, self.path)) from exc
        except OSError as exc:
            raise StoreError(f"cannot create {self.path.parent}: {exc.strerror}; check the `state` path") from exc

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        """Apply the migrations not yet applied, each in its own transaction; concurrent openers take turns."""
        if not self.has_table("schema_migrations"):
            with self.transaction() as db:
                Store.lock(db, "migrations", ["schema"])
                db.execute(self._ddl("CREATE TABLE IF NOT EXISTS schema_migrations "
                                     "(version INTEGER PRIMARY KEY, applied TEXT NOT NULL)"))
        done = {row[0] for row in self.query("SELECT version FROM schema_migrations")}
        for version, script in enumerate(MIGRATIONS, start=1):
            if version in done:
                continue
            with self.transaction() as db:
                Store.lock(db, "migrations", ["schema"])
                if db.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone():
                    continue  # another process applied it while we waited
                for statement in filter(str.strip, script.split(";")):
                    db.execute(self._ddl(statement))
                db.execute("INSERT INTO schema_migrations VALUES (?, ?)",
                           (version, to_text(datetime.now(timezone.utc))))

    def has_table(self, name: str) -> bool:
        if self.dialect == "sqlite":
            return bool(self.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))
        return self.query("SELECT to_regclass(?) IS NOT NULL", (name,))[0][0]

    def _ddl(self, statement: str) -> str:
        if self.dialect == "sqlite":
            return statement
        from .postgres import ddl

        return ddl(statement)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; everything in it lands together or not at all."""
        if self._group_seconds is not None:
            with self._in_group() as db:
                yield db
            return
        with self._within("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN") as db:
            yield db

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every query in it sees the same state, whatever other writers commit meanwhile."""
        if self._group_seconds is not None:  # the group holds the only write lock: nobody else commits meanwhile
            with self._in_group() as db:
                yield db
            return
        with self._within("BEGIN" if self.dialect == "sqlite" else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") as db:
            yield db

    @contextmanager
    def grouped_commits(self, seconds: float = 1.0) -> Iterator[None]:
        """Transactions inside commit together, one commit at most `seconds` apart (SQLite only).

        A cold poll's commit rewrites every index page it touched; polls sharing
        a commit share most of those pages. Each transaction is still whole or
        absent: a kill loses at most the last `seconds` of them, sources' states
        included, so those sources are simply polled again. Not for PostgreSQL,
        whose workers coordinate through their commits.
        """
        if self.dialect != "sqlite":
            yield
            return
        self._group_seconds = seconds
        try:
            yield
        finally:
            with self._lock:
                self._group_seconds = None
                self._end_group()

    @contextmanager
    def _in_group(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._group_began is None:
                self._execute("BEGIN IMMEDIATE")
                self._group_began = time.monotonic()
            with self._within("SAVEPOINT grouped", "RELEASE grouped", "ROLLBACK TO grouped") as db:
                yield db
            if self._group_seconds is None or time.monotonic() - self._group_began >= self._group_seconds:
                self._end_group()  # (None: the group ended while this transaction waited for the lock)

    def _end_group(self) -> None:
        if self._group_began is None:
            return
        self._group_began = None
        with self._within(None):  # the COMMIT, or a ROLLBACK and a StoreError when it fails
            pass

    def _execute(self, statement: str) -> None:
        try:
            self.db.execute(statement)
        except self._errors as exc:
            raise StoreError(self._explain(exc, self.path)) from exc

    def _reconnect_if_dropped(self) -> None:
        """A connection the server dropped (a restart, a failover) fails its transaction; the next one reconnects."""
        if self.dialect == "postgresql" and self.db.closed:
            from .postgres import connect

            self.db = connect(self._url)

    @contextmanager
    def _within(self, begin: str | None, commit: str = "COMMIT", rollback: str = "ROLLBACK"
                ) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._reconnect_if_dropped()
            if begin:
                self._execute(begin)
            try:
                yield self.db
                self.db.execute(commit)
            except BaseException as exc:
                try:
                    self.db.execute(rollback)
                    if rollback != "ROLLBACK":
                        self.db.execute(commit)  # a savepoint rolled back to is still open
                except self._errors:
                    pass  # the connection is gone; the server discards the transaction
                if isinstance(exc, self._errors):
                    raise StoreError(self._explain(exc, self.path)) from exc
                raise

    def query(self, sql: str, params: Iterable = ()) -> list[sqlite3.Row]:
        with self._lock:
            self._reconnect_if_dropped()
            try:
                return self.db.execute(sql, tuple(params)).fetchall()
            except self._errors as exc:
                raise StoreError(self._explain(exc, self.path)) from exc

    def stream(self, sql: str, params: Iterable = (), batch: int = 2000) -> Iterator[tuple]:
        """The rows of one query a batch at a time, for scans too long to hold in memory at once.

        The store is held until the last row is read (or the iterator is closed).
        """
        with self._lock:
            self._reconnect_if_dropped()
            try:
                cursor = self.db.cursor()
                if self.dialect == "sqlite":
                    cursor.row_factory = None  # plain tuples: lighter than Rows, for many of them
                cursor.execute(sql, tuple(params))
                while rows := cursor.fetchmany(batch):
                    yield from rows
            except self._errors as exc:
                raise StoreError(self._explain(exc, self.path)) from exc

    @staticmethod
    def lock(db: sqlite3.Connection, scope: str, keys: Iterable[str]) -> None:
        """Hold these keys until the transaction ends, so writers of the same keys take turns.

        SQLite needs nothing: BEGIN IMMEDIATE already admits one writer at a
        time. PostgreSQL takes transaction-scoped advisory locks: the scope's
        whole-scope lock shared, and one lock per (scope, slot), each key
        hashed into one of LOCK_SLOTS slots (a shared slot only makes two
        writers wait for each other). Keys that fill more than MAX_SLOTS
        slots take the whole-scope lock exclusively instead, so a transaction
        never holds more than MAX_SLOTS + 1 locks of a scope. To stay free of
        deadlocks, lock each scope once per transaction, with all its keys,
        and scopes in one fixed order: "source", then "story".
        """
        if isinstance(db, sqlite3.Connection):
            return
        slots = sorted({_hash32(key) % LOCK_SLOTS for key in keys})
        if not slots:
            return
        scope_key = _hash32(scope)
        if len(slots) > MAX_SLOTS:
            db.execute("SELECT pg_advisory_xact_lock(?, -1)", (scope_key,))
            return
        db.execute("SELECT pg_advisory_xact_lock_shared(?, -1)", (scope_key,))
        db.execute("SELECT pg_advisory_xact_lock(?, slot) FROM unnest(?::int[]) AS slot", (scope_key, slots))

    # sources

    def source_states(self, only: Iterable[str] | None = None, count_entries: bool = True) -> dict[str, SourceState]:
        """Every source's state, or those of the sources in `only` (without counting everyone's items).

        count_entries=False leaves `entries` at 0, for callers that do not show it: counting reads an index
        entry per stored item (a first publish at 10,000 sources counted ~6,000 for each of its 6,000 pages).
        """
        if only is None:
            counts = {r[0]: r[1] for r in self.query(
                "SELECT source_id, count(*) FROM items GROUP BY source_id")} if count_entries else {}
            return {row["id"]: _source_state(row, counts.get(row["id"], 0))
                    for row in self.query("SELECT * FROM sources")}
        ids, states = list(only), {}
        for start in range(0, len(ids), 500):
            chunk, marks = ids[start:start + 500], ",".join("?" * len(ids[start:start + 500]))
            counts = {r[0]: r[1] for r in self.query(
                f"SELECT source_id, count(*) FROM items WHERE source_id IN ({marks}) GROUP BY source_id",
                chunk)} if count_entries else {}
            states.update((row["id"], _source_state(row, counts.get(row["id"], 0)))
                          for row in self.query(f"SELECT * FROM sources WHERE id IN ({marks})", chunk))
        return states

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

    # scheduling

    @staticmethod
    def publishing_history(db: sqlite3.Connection, source_id: str, now: datetime) -> PublishingHistory:
        """Entries dated in the week before `now`, and the oldest date stored, for the adaptive interval."""
        week_ago = to_text(now - timedelta(days=7))
        count, oldest = db.execute(
            "SELECT count(CASE WHEN published > ? AND published <= ? THEN 1 END), min(published) FROM items "
            "WHERE source_id = ?", (week_ago, to_text(now), source_id)).fetchone()
        return PublishingHistory(last_week=count, oldest=from_text(oldest))

    # items and stories

    @staticmethod
    def item_hashes(db: sqlite3.Connection, source_id: str, keys: list[str]) -> dict[str, tuple[int, str, str]]:
        """(item id, raw hash, published) of the given keys already stored for this source."""
        rows = _chunked(db, keys, "SELECT key, id, raw_hash, published FROM items WHERE source_id = ? AND key IN ({})",
                        before=(source_id,))
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    @staticmethod
    def create_story(db: sqlite3.Connection, uid: str, republished: datetime) -> int:
        created = db.execute("INSERT INTO stories (uid, republished) VALUES (?, ?) ON CONFLICT (uid) DO NOTHING "
                             "RETURNING id", (uid, to_text(republished))).fetchone()
        return created[0] if created else db.execute("SELECT id FROM stories WHERE uid = ?", (uid,)).fetchone()[0]

    @staticmethod
    def insert_item(db: sqlite3.Connection, story_id: int, source_id: str, values: dict) -> int:
        columns = ["story_id", "source_id", *values]
        return db.execute(
            f"INSERT INTO items ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) RETURNING id",
            [story_id, source_id, *(_column_value(v) for v in values.values())],
        ).fetchone()[0]

    @staticmethod
    def update_item(db: sqlite3.Connection, item_id: int, values: dict) -> None:
        db.execute(
            f"UPDATE items SET {', '.join(f'{c} = ?' for c in values)} WHERE id = ?",
            [*(_column_value(v) for v in values.values()), item_id],
        )

    @staticmethod
    def record_merge(db: sqlite3.Connection, item_id: int, story_id: int, matched_item: int | None,
                     evidence: str, score: float, when: datetime, details: dict | None = None) -> None:
        db.execute(
            "INSERT INTO merges (item_id, story_id, matched_item, evidence, score, decided, details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (item_id) DO UPDATE SET story_id = excluded.story_id, "
            "matched_item = excluded.matched_item, evidence = excluded.evidence, score = excluded.score, "
            "decided = excluded.decided, details = excluded.details",
            (item_id, story_id, matched_item, evidence, score, to_text(when),
             json.dumps(details, sort_keys=True) if details else None))

    # deduplication: candidate lookups and the near-duplicate index

    @staticmethod
    def items_by_values(db: sqlite3.Connection, column: str, values: Iterable[str], earliest: datetime,
                        latest: datetime) -> list[tuple[str, int, str]]:
        """(value, item id, published) of items with one of these canonical links or content hashes, in the window."""
        assert column in ("canonical_link", "content_hash")
        return _chunked(db, sorted(values), f"SELECT {column}, id, published FROM items WHERE {column} IN ({{}}) "
                        "AND published BETWEEN ? AND ?", after=(to_text(earliest), to_text(latest)))

    @staticmethod
    def repeated_values(db: sqlite3.Connection, column: str, values: Iterable[str]) -> set[str]:
        """Those of these canonical links or content hashes that one source carries on several items."""
        assert column in ("canonical_link", "content_hash")
        rows = _chunked(db, sorted(values), f"SELECT {column} FROM items WHERE {column} IN ({{}}) "
                        f"GROUP BY {column}, source_id HAVING count(*) > 1")
        return {r[0] for r in rows}

    @staticmethod
    def near_key_rows(db: sqlite3.Connection, keys: Iterable[int], earliest: datetime, latest: datetime,
                      other_than_source: str) -> list[tuple[int, int, str]]:
        """(key, item id, published) of other sources' items in the window holding one of these index keys."""
        return _chunked(db, sorted(keys), "SELECT k.key, k.item_id, i.published FROM near_keys k JOIN items i "
                        "ON i.id = k.item_id WHERE k.key IN ({}) AND i.published BETWEEN ? AND ? AND i.source_id != ?",
                        after=(to_text(earliest), to_text(latest), other_than_source))

    @staticmethod
    def save_fingerprints(db: sqlite3.Connection, rows: list[tuple[int, int, str, bytes]]) -> None:
        """(item id, words, blocks as JSON, shingle hashes) of items new or changed."""
        db.cursor().executemany(
            "INSERT INTO fingerprints (item_id, words, blocks, hashes) VALUES (?, ?, ?, ?) ON CONFLICT (item_id) "
            "DO UPDATE SET words = excluded.words, blocks = excluded.blocks, hashes = excluded.hashes", rows)

    @staticmethod
    def add_near_keys(db: sqlite3.Connection, rows: list[tuple[int, int]]) -> None:
        """(key, item id) rows of items new to the index."""
        db.cursor().executemany("INSERT INTO near_keys (key, item_id) VALUES (?, ?)", rows)

    @staticmethod
    def replace_near_keys(db: sqlite3.Connection, item_id: int, keys: list[int]) -> None:
        db.execute("DELETE FROM near_keys WHERE item_id = ?", (item_id,))
        Store.add_near_keys(db, [(key, item_id) for key in keys])

    @staticmethod
    def clear_near_keys(db: sqlite3.Connection) -> None:
        """Drop the index and the fingerprints it was built from, before a rebuild."""
        db.execute("DELETE FROM near_keys")
        db.execute("DELETE FROM fingerprints")

    @staticmethod
    def copy_rows(db: sqlite3.Connection, item_ids: list[int]) -> list[sqlite3.Row]:
        """What dedupe compares of stored items (the longest of content and summary is its text)."""
        if not item_ids:
            return []
        return db.execute(
            "SELECT id, story_id, source_id, title, title_key, title_keys, canonical_link, content_hash, content, summary, "
            "published, f.words, f.blocks, f.hashes FROM items LEFT JOIN fingerprints f ON f.item_id = items.id "
            f"WHERE id IN ({','.join('?' * len(item_ids))}) ORDER BY id", item_ids).fetchall()

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
    def latest_items(db: sqlite3.Connection, source_id: str, limit: int) -> list[tuple[str, str, str]]:
        """(key, raw hash, title) of the source's latest published items, newest first."""
        rows = db.execute("SELECT key, raw_hash, title FROM items WHERE source_id = ? ORDER BY published DESC LIMIT ?",
                          (source_id, limit))
        return [tuple(r) for r in rows]

    @staticmethod
    def meta(db: sqlite3.Connection, name: str) -> str | None:
        row = db.execute("SELECT value FROM dedup_meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def set_meta(db: sqlite3.Connection, name: str, value: str) -> None:
        db.execute("INSERT INTO dedup_meta (name, value) VALUES (?, ?) "
                   "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, value))

    @staticmethod
    def item_ids_after(db: sqlite3.Connection, after: int, limit: int) -> list[int]:
        return [r[0] for r in db.execute("SELECT id FROM items WHERE id > ? ORDER BY id LIMIT ?", (after, limit))]

    # outputs

    def output_failures(self) -> dict[str, tuple[datetime, str]]:
        """Output id → (when, error) of the outputs whose last publish failed."""
        return {r[0]: (from_text(r[1]), r[2]) for r in self.query("SELECT id, failed_at, error FROM output_failures")}

    def record_publish(self, output_id: str, error: str | None, when: datetime) -> None:
        """Remember a failed publish, or forget the failure once a publish succeeds."""
        with self.transaction() as db:
            if error is None:
                db.execute("DELETE FROM output_failures WHERE id = ?", (output_id,))
            else:
                db.execute("INSERT INTO output_failures VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                           "failed_at = excluded.failed_at, error = excluded.error", (output_id, to_text(when), error))

    def body_changes(self) -> list[tuple]:
        """(id, changed bodies, adopted url, configured url) of every source: what, besides the config and time,
        publishing's inputs change with."""
        return [tuple(r) for r in self.query("SELECT id, changed_bodies, url, configured_url FROM sources ORDER BY id")]

    def published_inputs(self) -> str | None:
        """publish.Rendered.inputs() of the last publish of every output that went through without a failure."""
        rows = self.query("SELECT value FROM dedup_meta WHERE name = 'published_inputs'")
        return rows[0][0] if rows else None

    def set_published_inputs(self, inputs: str) -> None:
        with self.transaction() as db:
            Store.set_meta(db, "published_inputs", inputs)

    def rendered_files(self) -> dict[str, str]:
        """Every file publishing recorded writing, with its signature (size, times, inode) then."""
        return {r[0]: r[1] for r in self.query("SELECT path, file FROM rendered")}

    def rendered(self, path: str) -> tuple[str, str] | None:
        """(digest, file signature) recorded when publishing last wrote `path`, or None."""
        rows = self.query("SELECT digest, file FROM rendered WHERE path = ?", (path,))
        return (rows[0][0], rows[0][1]) if rows else None

    def record_rendered(self, rows: list[tuple[str, str, str]]) -> None:
        """Remember (path, digest, file signature) of files publishing just wrote."""
        with self.transaction() as db:
            for row in rows:
                db.execute("INSERT INTO rendered VALUES (?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
                           "digest = excluded.digest, file = excluded.file", row)

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


def _enter_wal(db: sqlite3.Connection) -> None:
    """WAL mode. Processes creating one new file together can be told "locked" at once, busy timeout or not: retry."""
    for attempt in range(100):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.01)


def _chunked(db: sqlite3.Connection, values: list, sql: str, before: tuple = (), after: tuple = (),
             size: int = 500) -> list[tuple]:
    """The rows of `sql` (its IN list written `{}`) over all values, a few hundred parameters at a time."""
    rows: list[tuple] = []
    for start in range(0, len(values), size):
        chunk = values[start:start + size]
        rows += [tuple(r) for r in db.execute(sql.format(",".join("?" * len(chunk))), [*before, *chunk, *after])]
    return rows


def _column_value(value):
    if value is None or type(value) is str:  # most columns: checked first
        return value
    if isinstance(value, datetime):
        return to_text(value)
    if isinstance(value, (tuple, list)):
        return json.dumps(list(value), ensure_ascii=False) if value else "[]"
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
