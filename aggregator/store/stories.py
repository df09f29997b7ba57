"""Stories becoming one, and an operator's corrections: joins, retired story ids, merge and unmerge decisions.

When a new copy matches several stories they become one (SPEC §6): the
surviving story keeps its id and republication time, the others' copies
move to it and their ids are retired. `retired_stories` maps each retired
id to the story it lives on in, so `explain` and lookups by the old id
still find it, while outputs no longer show it. An operator's `merge` joins
two stories the same way; `unmerge` moves one copy out into a story of its
own and keeps it apart from the copies it left (`kept_apart`), which no
automatic join undoes. Every operator decision is a row of `dedup_decisions`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Iterable

from ..models import from_text, to_text
from .backend import chunked, marks

Connection = Any  # a transaction's connection (sqlite3, or psycopg behind sqlite3's interface)


class DecidedBy(StrEnum):
    """Who joined two stories: the dedup rules (a new copy matched both) or an operator's `merge`."""

    RULES = "rules"
    OPERATOR = "operator"


class Action(StrEnum):
    """An operator's correction."""

    MERGE = "merge"
    UNMERGE = "unmerge"


@dataclass(frozen=True)
class Join:
    """Why a story was joined into another: who decided, the copy that tied them, and the evidence."""

    decided_by: DecidedBy
    item_id: int | None  # the new copy that matched both stories (None: an operator's merge)
    matched_item: int | None  # the copy of the joined story it matched
    evidence: str
    score: float
    details: dict | None = None


@dataclass(frozen=True)
class Retired:
    """A story id that lives on in another story."""

    uid: str
    story_id: int
    republished: str
    retired: str
    join: Join


@dataclass(frozen=True)
class Decision:
    """One operator correction as stored."""

    id: int
    action: Action
    item_id: int
    other_item: int | None
    decided: str
    note: str


@dataclass(frozen=True)
class NamedCopy:
    """A copy a name given on the command line stands for, and how it was found."""

    item_id: int
    story_id: int
    source_id: str
    key: str
    by: str  # link, guid, canonical, story (the story's id), retired (a retired story id)
    published: str


class StoryQueries:
    """Joining stories, moving copies out, and the decisions that make them stick."""

    @staticmethod
    def story_sources(db: Connection, story_ids: Iterable[int]) -> dict[int, frozenset[str]]:
        """The sources each of these stories holds a copy from."""
        found: dict[int, set[str]] = {}
        for story_id, source_id in chunked(db, sorted(set(story_ids)),
                                           "SELECT DISTINCT story_id, source_id FROM items WHERE story_id IN ({})"):
            found.setdefault(story_id, set()).add(source_id)
        return {story_id: frozenset(sources) for story_id, sources in found.items()}

    @staticmethod
    def stories_apart(db: Connection, story_ids: Iterable[int]) -> frozenset[frozenset[int]]:
        """The pairs of these stories (and others) that an operator's unmerge keeps apart."""
        ids = sorted(set(story_ids))
        if not ids or db.execute("SELECT 1 FROM kept_apart LIMIT 1").fetchone() is None:
            return frozenset()
        rows = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows += db.execute(f"SELECT a.story_id, b.story_id FROM kept_apart k JOIN items a ON a.id = k.item_id "
                               f"JOIN items b ON b.id = k.other_item WHERE a.story_id IN ({marks(chunk)}) "
                               f"OR b.story_id IN ({marks(chunk)})", [*chunk, *chunk]).fetchall()
        return frozenset(frozenset(pair) for pair in rows if pair[0] != pair[1])

    @staticmethod
    def story_firsts(db: Connection, story_ids: Iterable[int]) -> dict[int, tuple[datetime, str]]:
        """story id -> (its earliest copy's publication date, its republication time as stored)."""
        ids = sorted(set(story_ids))
        rows = db.execute(f"SELECT s.id, min(i.published), s.republished FROM stories s JOIN items i ON "
                          f"i.story_id = s.id WHERE s.id IN ({marks(ids)}) GROUP BY s.id, s.republished", ids)
        return {r[0]: (from_text(r[1]), r[2]) for r in rows}

    @staticmethod
    def join_stories(db: Connection, survivor: int, retired: int, join: Join, when: datetime) -> None:
        """Move every copy of `retired` to `survivor` and retire its id (kept, pointing at the survivor)."""
        details = json.dumps(join.details, sort_keys=True) if join.details else None
        db.execute("INSERT INTO retired_stories (uid, story_id, republished, retired, decided_by, item_id, "
                   "matched_item, evidence, score, details) SELECT uid, ?, republished, ?, ?, ?, ?, ?, ?, ? "
                   "FROM stories WHERE id = ?",
                   (survivor, to_text(when), str(join.decided_by), join.item_id, join.matched_item, join.evidence,
                    join.score, details, retired))
        for table in ("items", "merges", "retired_stories"):
            db.execute(f"UPDATE {table} SET story_id = ? WHERE story_id = ?", (survivor, retired))
        for table in ("publish_queue", "archived"):
            db.execute(f"DELETE FROM {table} WHERE story_id = ?", (retired,))
        db.execute("DELETE FROM stories WHERE id = ?", (retired,))

    @staticmethod
    def uid_in_use(db: Connection, uid: str) -> bool:
        """Whether a story has this id, or had it before it was joined into another."""
        return db.execute("SELECT 1 FROM stories WHERE uid = ? UNION ALL SELECT 1 FROM retired_stories "
                          "WHERE uid = ?", (uid, uid)).fetchone() is not None

    @staticmethod
    def retired_row(db: Connection, uid: str) -> tuple[int, str] | None:
        """(the story it lives on in, its own republication time) of a retired story id."""
        row = db.execute("SELECT story_id, republished FROM retired_stories WHERE uid = ?", (uid,)).fetchone()
        return (row[0], row[1]) if row else None

    @staticmethod
    def revive(db: Connection, uid: str) -> None:
        """A retired id given back to a story (an unmerge moving out the copy that made it)."""
        db.execute("DELETE FROM retired_stories WHERE uid = ?", (uid,))

    @staticmethod
    def move_copy(db: Connection, item_id: int, story_id: int) -> None:
        """Move one copy into another story; how it joined the old one no longer applies."""
        db.execute("UPDATE items SET story_id = ? WHERE id = ?", (story_id, item_id))
        db.execute("DELETE FROM merges WHERE item_id = ?", (item_id,))

    @staticmethod
    def copies_of(db: Connection, story_ids: Iterable[int]) -> list[int]:
        """The item ids of these stories' copies."""
        return sorted(r[0] for r in chunked(db, sorted(set(story_ids)), "SELECT id FROM items WHERE story_id IN ({})"))

    @staticmethod
    def record_decision(db: Connection, action: Action, item_id: int, other_item: int | None, when: datetime,
                        note: str) -> int:
        return db.execute("INSERT INTO dedup_decisions (action, item_id, other_item, decided, note) "
                          "VALUES (?, ?, ?, ?, ?) RETURNING id",
                          (str(action), item_id, other_item, to_text(when), note)).fetchone()[0]

    @staticmethod
    def keep_apart(db: Connection, item_id: int, others: Iterable[int], decision: int) -> None:
        """No automatic join may put this copy in one story with any of the others again."""
        rows = sorted({(min(item_id, o), max(item_id, o), decision) for o in others if o != item_id})
        db.cursor().executemany("INSERT INTO kept_apart (item_id, other_item, decision) VALUES (?, ?, ?) "
                                "ON CONFLICT (item_id, other_item) DO UPDATE SET decision = excluded.decision", rows)

    @staticmethod
    def allow_together(db: Connection, items: Iterable[int], others: Iterable[int]) -> None:
        """An operator's merge overrides an earlier unmerge between these copies."""
        one, two = sorted(set(items)), sorted(set(others))
        if one and two:
            db.execute(f"DELETE FROM kept_apart WHERE (item_id IN ({marks(one)}) AND other_item IN ({marks(two)})) "
                       f"OR (item_id IN ({marks(two)}) AND other_item IN ({marks(one)}))", [*one, *two, *two, *one])

    # read by explain, merge and unmerge

    def corrections(self) -> tuple[int, int | None]:
        """(how many, the newest) operator decisions: publishing's inputs change with them."""
        row = self.query("SELECT count(*), max(id) FROM dedup_decisions")[0]
        return row[0], row[1]

    def copies_named(self, needle: str, canonical: str | None) -> list[NamedCopy]:
        """The copies a command-line name stands for: a copy's link, guid or canonical link, else a story id (its
        copies), current or retired."""
        rows = self.query(
            "SELECT id, story_id, source_id, key, 'link', published FROM items WHERE link = ? "
            "UNION ALL SELECT id, story_id, source_id, key, 'guid', published FROM items WHERE guid = ? "
            "UNION ALL SELECT id, story_id, source_id, key, 'canonical', published FROM items WHERE canonical_link = ? "
            "UNION ALL SELECT i.id, i.story_id, i.source_id, i.key, 'story', i.published FROM items i "
            "JOIN stories s ON s.id = i.story_id WHERE s.uid = ? "
            "UNION ALL SELECT i.id, i.story_id, i.source_id, i.key, 'retired', i.published FROM items i "
            "JOIN retired_stories r ON r.story_id = i.story_id WHERE r.uid = ?",
            (needle, needle, canonical or needle, needle, needle))
        return [NamedCopy(*row) for row in rows]

    def retired_into(self, story_id: int) -> list[Retired]:
        """The story ids joined into this story, in the order they were."""
        rows = self.query("SELECT * FROM retired_stories WHERE story_id = ? ORDER BY retired, uid", (story_id,))
        return [Retired(r["uid"], r["story_id"], r["republished"], r["retired"], Join(
            DecidedBy(r["decided_by"]), r["item_id"], r["matched_item"], r["evidence"], r["score"],
            json.loads(r["details"]) if r["details"] else None)) for r in rows]

    def decisions_about(self, item_ids: Iterable[int]) -> list[Decision]:
        """The operator decisions naming any of these copies, oldest first."""
        ids = sorted(set(item_ids))
        if not ids:
            return []
        rows = self.query(f"SELECT id, action, item_id, other_item, decided, note FROM dedup_decisions WHERE "
                          f"item_id IN ({marks(ids)}) OR other_item IN ({marks(ids)}) ORDER BY id", [*ids, *ids])
        return [Decision(r[0], Action(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    def apart_decision(self, item_id: int, other_item: int) -> int | None:
        """The decision that keeps these two copies apart, if one does."""
        rows = self.query("SELECT decision FROM kept_apart WHERE item_id = ? AND other_item = ?",
                          (min(item_id, other_item), max(item_id, other_item)))
        return rows[0][0] if rows else None
