"""Several workers on one PostgreSQL state: source leases, host slots and the publishing lock, on connections of their own.

A worker takes due sources in small batches, each with a lease (an UPDATE
over `SELECT … FOR UPDATE SKIP LOCKED`, so two workers never take one row),
and hands each back with its next poll time; lease times are the database's
clock. Host slots and the publishing lock are session-level advisory locks
on this connection, so the server drops them the moment a worker's
connection ends, kill -9 included.

No source is requested twice at once. A claim never takes a source its
worker still holds (`held`: claimed and not handed back, so a lease that
lapsed under a poll still running is not granted to it again). Renewals go
on a connection of their own, so a statement that waits on the main one
cannot hold them up. And right before each request a poll extends its
lease to outlast the request's own deadline (`cover`), or stops if the
lease went to another worker meanwhile: however long a worker stalls, no
other worker takes a source while its request may still be in flight.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from typing import Iterator

from ..errors import StoreError
from ..models import to_text
from . import postgres
from .backend import hash32

log = logging.getLogger("aggregator")

PER_HOST = 2  # requests in flight to one host:port, across every worker (SPEC §5.1)
SLOT_RETRY = 0.02  # seconds between tries for a busy host's slot

CLAIM = """
    UPDATE sources SET lease_owner = ?, lease_expires = extract(epoch FROM clock_timestamp()) + ?
    WHERE id IN (
        SELECT id FROM sources
        WHERE id = ANY(?) AND NOT id = ANY(?) AND next_poll <= ?
          AND (lease_expires IS NULL OR lease_expires < extract(epoch FROM clock_timestamp()))
        ORDER BY next_poll, last_poll NULLS FIRST, id
        LIMIT ?
        FOR UPDATE SKIP LOCKED)
    RETURNING id
"""


#: Extend a lease to at least `seconds` from now, if this worker still owns it.
COVER = """
    UPDATE sources SET lease_expires = greatest(lease_expires, extract(epoch FROM clock_timestamp()) + ?)
    WHERE id = ? AND lease_owner = ? RETURNING id
"""


class LeaseLost(StoreError):
    """A poll's lease went to another worker before its request (this one stalled longer than the lease)."""


class Coordinator:
    """One worker's own connection: its leases, its host slots, the publishing lock; one statement at a time."""

    def __init__(self, url: str, lease: float):
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.lease = lease
        self.leading = False
        self.closed = False
        self._url = url
        self._lock = threading.Lock()
        self._db = None
        self._generation = 0  # bumped on each reconnection: the locks of an older connection are gone
        self._slots: dict[str, set[int]] = {}  # host:port → the slots this worker holds
        self.held: set[str] = set()  # sources this worker has leased (claimed, not yet handed back)
        self._beat_lock = threading.Lock()  # the heartbeat's own connection, opened on its first renewal
        self._beat = None
        with self._lock:
            self._connect()

    def _connect(self) -> None:
        self._db = postgres.connect(self._url)
        database, schema = self._db.execute("SELECT current_database(), current_schema()").fetchone()
        self._scope = f"{database}.{schema}"  # advisory locks are per database; one state per schema
        self._generation += 1
        self._slots.clear()
        self.leading = False

    def _run(self, sql: str, params=()) -> list:
        """Rows of one statement (or [rowcount] when it returns none); reconnects once the old connection is gone."""
        try:
            if self._db.closed:
                self._connect()
            cursor = self._db.execute(sql, params)
            return cursor.fetchall() if cursor.description else [cursor.rowcount]
        except postgres.ERRORS as exc:
            if self._db.closed and self.leading:
                log.warning("no longer publishing: lost the connection that held the publishing lock")
                self.leading = False
            raise StoreError(postgres.explain(exc, postgres.redact(self._url))) from exc

    def close(self) -> None:
        """Hand back every lease still held and end the connection, which drops its advisory locks."""
        with self._lock:
            try:
                if self.held and not self._db.closed:
                    self._run("UPDATE sources SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner = ?",
                              (self.owner,))
            except StoreError:
                pass  # the leases expire by themselves
            self._db.close()
            self.closed = True
        with self._beat_lock:
            if self._beat is not None:
                self._beat.close()

    # leases

    def claim(self, source_ids: list[str], limit: int, now: datetime) -> list[str]:
        """Lease up to `limit` of these sources that are due and not leased by anyone; their ids."""
        with self._lock:
            rows = self._run(CLAIM, (self.owner, self.lease, source_ids, sorted(self.held), to_text(now), limit))
            claimed = [row[0] for row in rows]
            self.held.update(claimed)
            return claimed

    def release(self, source_id: str, next_poll: datetime | None) -> None:
        """Hand a polled source back, due again at next_poll (None: keep the time its poll stored)."""
        with self._lock:
            self.held.discard(source_id)
            if self.closed:
                return  # close() handed it back already
            self._run("UPDATE sources SET lease_owner = NULL, lease_expires = NULL, "
                      "next_poll = coalesce(?, next_poll) WHERE id = ? AND lease_owner = ?",
                      (to_text(next_poll), source_id, self.owner))

    def renew(self) -> int:
        """Extend the leases of every poll in flight; how many of them were lost (a stall longer than a lease).

        On the heartbeat's own connection: a statement waiting on the main one (a host slot's, a claim's)
        does not hold renewals up. A lease covering a request in flight is never shortened."""
        with self._lock:
            held = sorted(self.held)
        if not held:
            return 0
        with self._beat_lock:
            if self.closed:
                return 0
            try:
                if self._beat is None or self._beat.closed:
                    self._beat = postgres.connect(self._url)
                rows = self._beat.execute(
                    "UPDATE sources SET lease_expires = greatest(lease_expires, "
                    "extract(epoch FROM clock_timestamp()) + ?) WHERE lease_owner = ? AND id = ANY(?) RETURNING id",
                    (self.lease, self.owner, held)).fetchall()
            except postgres.ERRORS as exc:
                raise StoreError(postgres.explain(exc, postgres.redact(self._url))) from exc
        renewed = {row[0] for row in rows}
        with self._lock:  # a source handed back meanwhile was not lost
            return sum(1 for source_id in held if source_id not in renewed and source_id in self.held)

    def cover(self, source_id: str, seconds: float) -> None:
        """Right before a request for this source: its lease extended to outlast the request (`seconds`, its
        deadline and a margin), so no other worker takes it while the request may be in flight; LeaseLost
        if another worker already did."""
        with self._lock:
            if not self._run(COVER, (max(seconds, self.lease), source_id, self.owner)):
                raise LeaseLost(f"{source_id}: its lease went to another worker while this one stalled "
                                f"(longer than the {self.lease:g}s lease); this poll stops before its request")

    # host slots

    @contextmanager
    def host_slot(self, key: str) -> Iterator[None]:
        """One of the PER_HOST slots of this host:port, shared by every worker; waits until one is free."""
        lock = hash32(f"{self._scope} host {key}")
        while True:
            with self._lock:
                held = self._slots.setdefault(key, set())
                free = [slot for slot in range(PER_HOST) if slot not in held]
                taken = next((slot for slot in free if self._run(
                    "SELECT pg_try_advisory_lock(?::int, ?::int)", (lock, slot))[0][0]), None)
                if taken is not None:
                    held.add(taken)
                    generation = self._generation
                    break
            time.sleep(random.uniform(SLOT_RETRY / 2, SLOT_RETRY))
        try:
            yield
        finally:
            with self._lock:
                if generation == self._generation:  # else the slot went with the old connection
                    self._slots[key].discard(taken)
                    if not self._slots[key]:
                        del self._slots[key]  # no host kept that no request uses (redirects choose them)
                    try:
                        self._run("SELECT pg_advisory_unlock(?::int, ?::int)", (lock, taken))
                    except StoreError:
                        pass  # the connection is gone, and its locks with it

    # publishing

    def lead(self) -> bool:
        """Whether this worker renders the outputs: it keeps the lock while its connection lives, else tries for it."""
        with self._lock:
            if self.leading:
                self._run("SELECT 1")  # a connection that still answers still holds its session lock
            else:
                self.leading = self._run("SELECT pg_try_advisory_lock(?::int, 0)",
                                         (hash32(f"{self._scope} publisher"),))[0][0]
            return self.leading

    def request_publish(self, outputs: set[str], now: datetime) -> None:
        """Leave these outputs for the publishing worker."""
        with self._lock:
            for output in sorted(outputs):
                self._run("INSERT INTO publish_requests (output_id, requested) VALUES (?, ?) "
                          "ON CONFLICT (output_id) DO NOTHING", (output, to_text(now)))

    def take_publish_requests(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._run("DELETE FROM publish_requests RETURNING output_id")}
