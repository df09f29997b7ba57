"""Where the state lives: a SQLite file or a PostgreSQL database, behind one small interface.

`backend_for(location)` decides once which one a `state` names. Everything
that differs between the two (opening a connection, how transactions begin,
locks between writers, streaming long scans, migration types, turning driver
errors into one-line messages) is a method here, so the rest of the store
writes one set of SQL in SQLite's style (`?` placeholders, portable
`ON CONFLICT` and `RETURNING`), which postgres.py translates.
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import StoreError

#: SQLite's page cache per connection (it fills only as pages are read): a batch run ingesting many
#: items wants a large one, the long-running daemon a small one for its memory's sake.
BATCH_CACHE_KIB, DAEMON_CACHE_KIB = 64 * 1024, 8 * 1024
WAL_CHECKPOINT_PAGES = 20_000  # fewer, larger checkpoints: each one syncs the database file
#: Advisory-lock slots per scope on PostgreSQL (see Backend.lock): enough that two polls' keys rarely share one;
#: and the most slots one transaction locks in one scope, well under PostgreSQL's default lock table.
LOCK_SLOTS = 65536
MAX_SLOTS = 256
STREAM_BATCH = 2000


def is_postgresql(location: str | Path) -> bool:
    """A `state` naming a PostgreSQL database; anything else is a SQLite file path."""
    return str(location).startswith(("postgresql://", "postgres://"))


def backend_for(location: str | Path, cache_kib: int = BATCH_CACHE_KIB) -> Backend:
    """The backend a `state` names: PostgreSQL for a postgresql:// URL, else a SQLite file."""
    if is_postgresql(location):
        return PostgresBackend(str(location))
    return SqliteBackend(Path(location), cache_kib)


def hash32(text: str) -> int:
    """A signed 32-bit hash of a text: advisory-lock keys."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=4).digest(),
                          "big", signed=True)


def chunked(db, values: list, sql: str, before: tuple = (), after: tuple = (), size: int = 500) -> list[tuple]:
    """The rows of `sql` (its IN list written `{}`) over all values, a few hundred parameters at a time."""
    rows: list[tuple] = []
    for start in range(0, len(values), size):
        chunk = values[start:start + size]
        rows += [tuple(r) for r in db.execute(sql.format(",".join("?" * len(chunk))), [*before, *chunk, *after])]
    return rows


def marks(values: list) -> str:
    """`?, ?, …`: the placeholders of an IN list of these values."""
    return ",".join("?" * len(values))


class Backend(ABC):
    """One kind of state storage; the Store holds one and asks it whatever differs between kinds."""

    #: Several processes (workers) may share this state at once.
    shared: bool = False
    #: Statements that open a write and a read-only transaction.
    begin_write: str = "BEGIN"
    begin_read: str = "BEGIN"
    errors: tuple[type[Exception], ...] = ()

    @property
    @abstractmethod
    def display(self) -> str:
        """The state's name as messages show it (a path, or a URL without its password)."""

    @abstractmethod
    def connect(self):
        """A new connection in autocommit mode, whose rows read by position or by column name."""

    @abstractmethod
    def explain(self, exc: Exception) -> str:
        """A driver error as one line naming the state and what to do."""

    def error(self, exc: Exception) -> StoreError:
        return StoreError(self.explain(exc))

    def dropped(self, db) -> bool:
        """Whether the server dropped this connection (a restart, a failover): the next use reconnects."""
        return False

    @abstractmethod
    def has_table(self, db, name: str) -> bool: ...

    @abstractmethod
    def size_bytes(self, db) -> int:
        """The bytes the state occupies (Store.size_bytes)."""

    def ddl(self, statement: str) -> str:
        """A migration statement as this backend takes it (they are written for SQLite)."""
        return statement

    def lock(self, db, scope: str, keys: Iterable[str]) -> None:
        """Hold these keys until the transaction ends, so writers of the same keys take turns (see subclasses)."""

    @abstractmethod
    def stream(self, db, sql: str, params: tuple, batch: int = STREAM_BATCH) -> Iterator[tuple]:
        """The rows of one query a batch at a time, never all of them in memory at once."""

    def lock_file(self) -> Path | None:
        """The file whose flock admits one daemon to this state (None: the state coordinates its workers)."""
        return None

    def reclaim(self, store, pages: int) -> None:
        """Give the space of deleted rows back to the file system, without holding the store for long."""

    def emptied(self) -> bool:
        """Whether the state exists but holds nothing at all, not even its own header (a file truncated to 0
        bytes); a state that does not exist yet is not emptied."""
        return False


class SqliteBackend(Backend):
    """A SQLite file in WAL mode: one writer at a time (BEGIN IMMEDIATE), readers never blocked."""

    begin_write = "BEGIN IMMEDIATE"
    errors = (sqlite3.DatabaseError,)

    def __init__(self, path: Path, cache_kib: int = BATCH_CACHE_KIB):
        self.path = path
        self.cache_kib = cache_kib

    @property
    def display(self) -> str:
        return str(self.path)

    def connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(self.path), timeout=10, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            if db.execute("PRAGMA page_count").fetchone()[0] == 0:  # a new file: pruning can give pages back
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            _enter_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            # The near-duplicate index takes ~35 random inserts per new item: with SQLite's default 2 MB
            # page cache most of them read their page again (400 cold feeds: 82 s; with 64 MB: 34 s).
            db.execute(f"PRAGMA cache_size=-{self.cache_kib}")
            db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            db.execute("PRAGMA foreign_keys=ON")
            # Each poll of a group is a savepoint; the old images of the pages it changes, kept to roll it back,
            # went to temporary files past 64 KB and were written anew at every poll (223 MB for 50 cold feeds).
            db.execute("PRAGMA temp_store=MEMORY")
            return db
        except sqlite3.DatabaseError as exc:
            raise self.error(exc) from exc
        except OSError as exc:
            raise StoreError(f"cannot create {self.path.parent}: {exc.strerror}; check the `state` path") from exc

    def explain(self, exc: Exception) -> str:
        text, path = str(exc), self.path
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

    def has_table(self, db, name: str) -> bool:
        return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None

    def size_bytes(self, db) -> int:
        """The database file's pages (those a checkpoint has yet to copy from the WAL included)."""
        return db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]

    def lock(self, db, scope: str, keys: Iterable[str]) -> None:
        """Nothing to do: BEGIN IMMEDIATE already admits one writer at a time."""

    def stream(self, db, sql: str, params: tuple, batch: int = STREAM_BATCH) -> Iterator[tuple]:
        cursor = db.cursor()
        cursor.row_factory = None  # plain tuples: lighter than Rows, for many of them
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(batch):
            yield from rows

    def lock_file(self) -> Path | None:
        return Path(str(self.path) + ".lock")

    def reclaim(self, store, pages: int) -> None:
        """The free pages handed back a few thousand at a time (polls wait for one step at most), the WAL
        truncated. A state made before retention existed is first converted once by a full VACUUM."""
        with store._lock:
            if store.db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:  # 2: incremental
                store.db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                store.db.execute("VACUUM")
        while True:
            with store._lock:
                if not store.db.execute("PRAGMA freelist_count").fetchone()[0]:
                    break
                store.db.execute(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()
        with store._lock:
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def emptied(self) -> bool:
        try:
            return self.path.stat().st_size == 0
        except OSError:
            return False


class PostgresBackend(Backend):
    """A PostgreSQL database (or schema) that several workers share; psycopg behind sqlite3's interface."""

    shared = True
    begin_read = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

    def __init__(self, url: str):
        from . import postgres

        self.url = url
        self._postgres = postgres
        self._cursors = itertools.count()  # names of this backend's server-side cursors
        self.errors = postgres.ERRORS

    @property
    def display(self) -> str:
        return self._postgres.redact(self.url)

    def connect(self):
        return self._postgres.connect(self.url)

    def explain(self, exc: Exception) -> str:
        return self._postgres.explain(exc, self.display)

    def dropped(self, db) -> bool:
        return db.closed

    def has_table(self, db, name: str) -> bool:
        return db.execute("SELECT to_regclass(?) IS NOT NULL", (name,)).fetchone()[0]

    def ddl(self, statement: str) -> str:
        return self._postgres.ddl(statement)

    def size_bytes(self, db) -> int:
        """Every table of the state's schema, with its indexes and TOAST (the schema is the state's own)."""
        row = db.execute("SELECT coalesce(sum(pg_total_relation_size(t.oid)), 0) FROM pg_class AS t "
                         "WHERE t.relkind = 'r' AND t.relnamespace = current_schema()::regnamespace").fetchone()
        return int(row[0])

    def lock(self, db, scope: str, keys: Iterable[str]) -> None:
        """Transaction-scoped advisory locks: the scope's whole-scope lock shared, and one lock per (scope, slot).

        Each key is hashed into one of LOCK_SLOTS slots (a shared slot only
        makes two writers wait for each other). Keys that fill more than
        MAX_SLOTS slots take the whole-scope lock exclusively instead, so a
        transaction never holds more than MAX_SLOTS + 1 locks of a scope. To
        stay free of deadlocks, lock each scope once per transaction, with all
        its keys, and scopes in one fixed order: "source", then "story".
        """
        slots = sorted({hash32(key) % LOCK_SLOTS for key in keys})
        if not slots:
            return
        scope_key = hash32(scope)
        if len(slots) > MAX_SLOTS:
            db.execute("SELECT pg_advisory_xact_lock(?, -1)", (scope_key,))
            return
        db.execute("SELECT pg_advisory_xact_lock_shared(?, -1)", (scope_key,))
        db.execute("SELECT pg_advisory_xact_lock(?, slot) FROM unnest(?::int[]) AS slot", (scope_key, slots))

    def stream(self, db, sql: str, params: tuple, batch: int = STREAM_BATCH) -> Iterator[tuple]:
        """On a server-side (named) cursor, `batch` rows per round trip: a client-side cursor would hold the
        whole result in libpq's memory before the first row. A named cursor lives in a transaction: outside
        one, the scan opens its own read-only snapshot and ends it with the last row."""
        own = db.info.transaction_status == self._postgres.IDLE
        if own:
            db.execute(self.begin_read)
        try:
            name = f"aggregator_stream_{next(self._cursors)}"
            with db.cursor(name=name, row_factory=self._postgres.TUPLES) as cursor:
                cursor.itersize = batch
                cursor.execute(self._postgres.translate(sql), params)
                while rows := cursor.fetchmany(batch):
                    yield from rows
        except BaseException:
            if own and not db.closed:
                try:
                    db.execute("ROLLBACK")
                except self.errors:
                    pass  # the connection is gone, and the snapshot with it
            raise
        if own:
            db.execute("COMMIT")



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
