"""What publishing needs to publish only what changed: each output's last publication, its queue, its archive.

Every story a poll stores, changes or merges is queued for the outputs that
select its source. An output's publication record holds the stories its
current document showed (none of them archived) and the settings it was
rendered with; `archived` holds which stories its archive pages hold. A
publish then reads the recorded stories and the queued ones, not the whole
history: every story of an output is archived, in the recorded current
document, or queued since.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

from .backend import marks

Connection = Any  # a transaction's connection (sqlite3, or psycopg behind sqlite3's interface)


@dataclass(frozen=True)
class Publication:
    """An output's last complete publish: what it was rendered with, what its current document showed."""

    settings: str  # a digest of everything that decides which stories the output shows
    current: frozenset[int]  # story ids
    newest_page: int  # the newest archive page then (0: none)


class PublicationQueries:
    """The publish queue, publication records and archived stories, per output."""

    @staticmethod
    def queue_stories(db: Connection, outputs: Iterable[str], story_ids: Iterable[int]) -> None:
        """Queue these stories for these outputs' next publish (inside a poll's transaction)."""
        rows = [(output_id, story_id) for output_id in sorted(set(outputs)) for story_id in sorted(set(story_ids))]
        if rows:
            db.cursor().executemany("INSERT INTO publish_queue (output_id, story_id) VALUES (?, ?) "
                                    "ON CONFLICT DO NOTHING", rows)

    def queued(self, output_id: str) -> set[int]:
        return {r[0] for r in self.query("SELECT story_id FROM publish_queue WHERE output_id = ?", (output_id,))}

    def publication(self, output_id: str) -> Publication | None:
        rows = self.query("SELECT settings, current, newest_page FROM publications WHERE output_id = ?", (output_id,))
        if not rows:
            return None
        return Publication(rows[0][0], frozenset(json.loads(rows[0][1])), rows[0][2])

    def archived_among(self, output_id: str, story_ids: Iterable[int]) -> set[int]:
        """Those of these stories that the output's archive pages hold."""
        ids, found = sorted(set(story_ids)), set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            found.update(r[0] for r in self.query(f"SELECT story_id FROM archived WHERE output_id = ? AND story_id IN "
                                                  f"({marks(chunk)})", [output_id, *chunk]))
        return found

    def record_publication(self, output_id: str, publication: Publication, archived: Iterable[int],
                           consumed: Iterable[int]) -> None:
        """After an output's files are written: its record, the stories it archived, the queue it consumed."""
        with self.transaction() as db:
            db.execute("INSERT INTO publications (output_id, settings, current, newest_page) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (output_id) DO UPDATE SET settings = excluded.settings, current = "
                       "excluded.current, newest_page = excluded.newest_page",
                       (output_id, publication.settings, json.dumps(sorted(publication.current)),
                        publication.newest_page))
            db.cursor().executemany("INSERT INTO archived (output_id, story_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                                    [(output_id, story_id) for story_id in sorted(set(archived))])
            done = sorted(set(consumed))
            for start in range(0, len(done), 500):
                chunk = done[start:start + 500]
                db.execute(f"DELETE FROM publish_queue WHERE output_id = ? AND story_id IN ({marks(chunk)})",
                           [output_id, *chunk])

    def forget_publication(self, output_id: str) -> None:
        """The output's archive started afresh (its folder moved aside): the next publish reads everything."""
        with self.transaction() as db:
            db.execute("DELETE FROM publications WHERE output_id = ?", (output_id,))
            db.execute("DELETE FROM archived WHERE output_id = ?", (output_id,))
