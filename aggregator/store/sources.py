"""Queries of the sources table: what the store remembers about polling each source."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any, Iterable

from ..errors import DamagedState, FailureKind
from ..models import PublishingHistory, SourceState, SourceStatus, from_text, to_text
from .backend import marks

Connection = Any  # a transaction's connection (sqlite3, or psycopg behind sqlite3's interface)

_SOURCE_TIMES = {"last_poll", "last_success", "next_poll", "retry_after", "feed_updated", "body_changed"}
_SOURCE_COLUMNS = [f.name for f in fields(SourceState) if f.name not in ("id", "entries")]


class SourceQueries:
    """Source states: read, saved after each poll, and the publishing history the schedule adapts to."""

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
            chunk = ids[start:start + 500]
            placeholders = marks(chunk)
            counts = {r[0]: r[1] for r in self.query(
                f"SELECT source_id, count(*) FROM items WHERE source_id IN ({placeholders}) GROUP BY source_id",
                chunk)} if count_entries else {}
            states.update((row["id"], _source_state(row, counts.get(row["id"], 0)))
                          for row in self.query(f"SELECT * FROM sources WHERE id IN ({placeholders})", chunk))
        return states

    def source_state(self, source_id: str) -> SourceState:
        rows = self.query("SELECT * FROM sources WHERE id = ?", (source_id,))
        if not rows:
            return SourceState(id=source_id)
        count = self.query("SELECT count(*) FROM items WHERE source_id = ?", (source_id,))[0][0]
        return _source_state(rows[0], count)

    @staticmethod
    def save_source_state(db: Connection, state: SourceState) -> None:
        values = [to_text(getattr(state, c)) if c in _SOURCE_TIMES else getattr(state, c) for c in _SOURCE_COLUMNS]
        db.execute(
            f"INSERT INTO sources (id, {', '.join(_SOURCE_COLUMNS)}) VALUES (?{', ?' * len(_SOURCE_COLUMNS)}) "
            f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _SOURCE_COLUMNS)}",
            [state.id, *values],
        )

    @staticmethod
    def publishing_history(db: Connection, source_id: str, now: datetime) -> PublishingHistory:
        """Entries dated in the week before `now`, and the oldest date stored, for the adaptive interval."""
        week_ago = to_text(now - timedelta(days=7))
        count, oldest = db.execute(
            "SELECT count(CASE WHEN published > ? AND published <= ? THEN 1 END), min(published) FROM items "
            "WHERE source_id = ?", (week_ago, to_text(now), source_id)).fetchone()
        return PublishingHistory(last_week=count, oldest=from_text(oldest))

    def body_changes(self) -> list[tuple]:
        """(id, changed bodies, adopted url, configured url) of every source: what, besides the config and time,
        publishing's inputs change with."""
        return [tuple(r) for r in self.query("SELECT id, changed_bodies, url, configured_url FROM sources ORDER BY id")]


    def put_on_schedule(self, fresh: list[tuple[str, datetime]], sooner: list[tuple[str, datetime]]) -> None:
        """Shared schedule (workers): add new sources due at their time; move others' next poll sooner."""
        with self.transaction() as db:
            if fresh:
                db.cursor().executemany("INSERT INTO sources (id, next_poll) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                                        [(source_id, to_text(when)) for source_id, when in fresh])
            if sooner:
                db.cursor().executemany("UPDATE sources SET next_poll = ? WHERE id = ? AND "
                                        "(next_poll IS NULL OR next_poll > ?)",
                                        [(to_text(when), source_id, to_text(when)) for source_id, when in sooner])


def _source_state(row, entries: int) -> SourceState:
    values = {c: (from_text(row[c]) if c in _SOURCE_TIMES else row[c]) for c in _SOURCE_COLUMNS}
    try:
        values["state"] = SourceStatus(values["state"])
    except ValueError:
        raise DamagedState("a source state that is not one") from None
    values["last_failure"] = _failure_kind(values["last_failure"])
    return SourceState(id=row["id"], entries=entries, **values)


def _failure_kind(text: str | None) -> FailureKind | None:
    """A stored failure kind; one this version does not know (written by a newer one) reads as a request failure."""
    if text is None:
        return None
    try:
        return FailureKind(text)
    except ValueError:
        return FailureKind.REQUEST
