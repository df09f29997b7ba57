"""The Store: one connection to the state, its transactions, and every table family's queries.

Every item is kept as its source gave it (sanitised), linked to the story it
belongs to; a story carries the id and republication time that outputs show
forever. One transaction per poll means a kill -9 at any moment leaves either
the whole poll or none of it. Dates are stored as RFC 3339 text on both
backends, so a state copies between them unchanged.

The queries live in one module per table family (sources.py, items.py,
index.py, outputs.py, selection.py, stories.py), each a class the Store is made of;
those taking a `db` run inside a transaction the caller opened
(`with store.transaction() as db`).
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from .. import NAMESPACE
from ..errors import StoreError
from .backend import BATCH_CACHE_KIB, STREAM_BATCH, Backend, backend_for
from .index import IndexQueries
from .items import ItemQueries
from .migrations import migrate
from .outputs import OutputQueries
from .publications import PublicationQueries
from .push import PushQueries
from .retention import RetentionQueries
from .selection import SelectionQueries
from .sources import SourceQueries
from .stories import StoryQueries

if TYPE_CHECKING:
    from ..config import Config


def _published(folder: Path) -> bool:
    """Whether a folder holds a published feed (every output writes `<id>.atom`)."""
    try:
        return any(p.suffix == ".atom" and not p.name.startswith(".") for p in folder.iterdir())
    except OSError:
        return False


def story_uid(source_id: str, key: str) -> str:
    """A story's public id: derived from the copy that created it, so it never depends on row ids."""
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{NAMESPACE}#{source_id}\x00{key}"))


class Store(SourceQueries, ItemQueries, IndexQueries, OutputQueries, SelectionQueries, PushQueries,
            RetentionQueries, PublicationQueries, StoryQueries):
    """The state, in a SQLite file or a PostgreSQL database; one connection, one transaction at a time."""

    def __init__(self, location: str | Path, cache_kib: int = BATCH_CACHE_KIB, outputs: Path | None = None):
        """Open (or create) the state; `outputs`, the folder it publishes to, lets it tell a new state from a
        lost one: an empty state file beside published feeds is refused, not started afresh."""
        self.backend: Backend = backend_for(location, cache_kib)
        self.path = self.backend.display  # as messages name the state
        if outputs is not None and self.backend.emptied() and _published(outputs):
            raise StoreError(f"{self.path} is empty (0 bytes), but {outputs} holds feeds published from it: the "
                             "state was lost (a bad restore, a full disk?); restore it from a backup, or delete "
                             f"{self.path} to start afresh on purpose (every story then gets a new id)")
        self._lock = threading.RLock()
        self._group_seconds: float | None = None  # grouped_commits: how far apart the commits are
        self._group_began: float | None = None  # when the open group's transaction began
        self.db = self.backend.connect()
        try:
            migrate(self)
        except BaseException:
            self.db.close()
            raise

    @classmethod
    def of(cls, config: Config, cache_kib: int = BATCH_CACHE_KIB) -> Store:
        """The state a configuration names, for the commands that poll, publish or show it."""
        return cls(config.state, cache_kib, outputs=config.output_dir)

    def close(self) -> None:
        self.db.close()

    def size_bytes(self) -> int:
        """How much room the state takes: the SQLite file's pages, or PostgreSQL's relations (with indexes, TOAST)."""
        with self._lock:
            self._reconnect_if_dropped()
            try:
                return self.backend.size_bytes(self.db)
            except self.backend.errors as exc:
                raise self.backend.error(exc) from exc

    def has_table(self, name: str) -> bool:
        with self._lock:
            return self.backend.has_table(self.db, name)

    def lock(self, db, scope: str, keys: Iterable[str]) -> None:
        """Hold these keys until the transaction ends, so writers of the same keys take turns (Backend.lock)."""
        self.backend.lock(db, scope, keys)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """One write transaction; everything in it lands together or not at all."""
        if self._group_seconds is not None:
            with self._in_group() as db:
                yield db
            return
        with self._within(self.backend.begin_write) as db:
            yield db

    @contextmanager
    def snapshot(self) -> Iterator[Any]:
        """One read transaction: every query in it sees the same state, whatever other writers commit meanwhile."""
        if self._group_seconds is not None:  # the group holds the only write lock: nobody else commits meanwhile
            with self._in_group() as db:
                yield db
            return
        with self._within(self.backend.begin_read) as db:
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
        if self.backend.shared:
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
    def _in_group(self) -> Iterator[Any]:
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
        except self.backend.errors as exc:
            raise self.backend.error(exc) from exc

    def _reconnect_if_dropped(self) -> None:
        """A connection the server dropped (a restart, a failover) fails its transaction; the next one reconnects."""
        if self.backend.dropped(self.db):
            self.db = self.backend.connect()

    @contextmanager
    def _within(self, begin: str | None, commit: str = "COMMIT", rollback: str = "ROLLBACK"
                ) -> Iterator[Any]:
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
                except self.backend.errors:
                    pass  # the connection is gone; the server discards the transaction
                if isinstance(exc, self.backend.errors):
                    raise self.backend.error(exc) from exc
                raise

    def query(self, sql: str, params: Iterable = ()) -> list:
        with self._lock:
            self._reconnect_if_dropped()
            try:
                return self.db.execute(sql, tuple(params)).fetchall()
            except self.backend.errors as exc:
                raise self.backend.error(exc) from exc

    def stream(self, sql: str, params: Iterable = (), batch: int = STREAM_BATCH) -> Iterator[tuple]:
        """The rows of one query a batch at a time, for scans too long to hold in memory at once.

        The store is held until the last row is read (or the iterator is closed).
        """
        with self._lock:
            self._reconnect_if_dropped()
            try:
                yield from self.backend.stream(self.db, sql, tuple(params), batch)
            except self.backend.errors as exc:
                raise self.backend.error(exc) from exc
