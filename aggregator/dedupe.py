"""Which stored story a new item belongs to, and the evidence that decided it.

Precision before recall: an item joins a story only on strong evidence;
otherwise it starts a story of its own.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from .identity import canonical_link
from .models import Entry
from .store import Store


@dataclass(frozen=True)
class Copy:
    """The identity of a new item as dedupe compares it."""

    source_id: str
    canonical_link: str | None
    published: datetime


@dataclass(frozen=True)
class Match:
    story_id: int
    matched_item: int
    evidence: str
    score: float


def find_story(db: sqlite3.Connection, copy: Copy, window: float) -> Match | None:
    """The story this copy is another copy of, if the evidence is strong enough."""
    if not copy.canonical_link or _is_site_root(copy.canonical_link):
        return None
    span = timedelta(seconds=window)
    for item_id, story_id, source_id in Store.items_by_canonical_link(
            db, copy.canonical_link, copy.published - span, copy.published + span):
        if source_id != copy.source_id:
            return Match(story_id, item_id, f"same canonical link {copy.canonical_link}", 1.0)
    return None


def claim(db: sqlite3.Connection, entries: Iterable[Entry]) -> None:
    """Hold what these new entries can match on until the poll's transaction ends.

    Two processes ingesting copies of one story at the same moment would each
    miss the other's uncommitted copy and create two stories; claiming first
    makes the second wait for the first to commit and then find its copy.
    Every key find_story matches on must be claimed here, in one call.
    """
    links = (canonical_link(e.link) for e in entries)
    Store.lock(db, "story", [f"link {link}" for link in links if link and not _is_site_root(link)])


def _is_site_root(canonical: str) -> bool:
    """A link to a home page says nothing about which story an item is."""
    return "/" not in canonical.rstrip("/") or canonical.endswith("/")
