"""Which stored story a new item belongs to, and the evidence that decided it.

Precision before recall: an item joins a story only on strong evidence;
otherwise it starts a story of its own.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

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


def _is_site_root(canonical: str) -> bool:
    """A link to a home page says nothing about which story an item is."""
    return "/" not in canonical.rstrip("/") or canonical.endswith("/")
