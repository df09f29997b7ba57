"""Copies of a story as dedup compares them: what a source's own habits and one item's text, link and title say.

A `Copy` is made from a new item (`new_copy`, with its source's `SourceContext`)
or from the columns the store keeps of a stored one (`stored_copy`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from ..models import Entry, ParsedFeed, from_json, from_text
from . import fingerprint
from .links import canonical_link, identifies_page
from .titles import Decorations, is_generic_title, learn_decorations, normalised_title, title_keys
from .fingerprint import Fingerprint
from .text import content_hash

RECENT_TITLES = 200  # stored titles of a source that decoration learning looks at


@dataclass(frozen=True)
class SourceContext:
    """What a poll knows about its source that single items do not say."""

    source_id: str
    decorations: Decorations = Decorations()
    recurring_titles: frozenset[str] = frozenset()  # title keys this source gives several items
    repeated_links: frozenset[str] = frozenset()  # canonical links several items of this poll share


@dataclass(frozen=True, eq=False)
class Copy:
    """One copy of a story as dedupe compares it."""

    source_id: str
    title_key: str  # the normalised title, the source's decorations removed
    titles: tuple[str, ...]  # the title keys that may match another copy's: never a generic one
    generic_title: bool
    canonical_link: str | None
    content_hash: str | None
    published: datetime
    text: Fingerprint = field(repr=False)
    keys: tuple[int, ...] = field(default=(), repr=False)  # LSH band keys of the text
    item_id: int | None = None
    story_id: int | None = None
    html: str | None = field(default=None, repr=False)  # the text the fingerprint was made of (rules may reread it)

    def columns(self) -> dict:
        """The identity columns the store keeps for this item."""
        return {"canonical_link": self.canonical_link, "title_key": self.title_key, "title_keys": self.titles,
                "content_hash": self.content_hash}

    def own_title(self) -> str | None:
        """The copy's title key when it may match at all (not generic)."""
        return self.title_key if self.titles and self.titles[0] == self.title_key else None

    def title_index_keys(self) -> list[int]:
        """What the index holds for this copy's title: its own title, and the keys left without affixes."""
        own = self.own_title()
        return [fingerprint.title_index_key(k, k == own) for k in self.titles]

    def title_lookup_keys(self) -> list[int]:
        """What to look up: stored copies whose own title is one of my keys, or has my own title among its keys."""
        own = self.own_title()
        return [fingerprint.title_index_key(k, True) for k in self.titles] + (
            [fingerprint.title_index_key(own, False)] if own else [])


def source_context(source_id: str, feed: ParsedFeed, stored_titles: list[str]) -> SourceContext:
    """Learn the source's title decorations and series titles from this feed and its latest stored titles."""
    titles = [e.title for e in feed.entries if e.title]
    return learn_context(source_id, feed.info.title, titles + stored_titles[:RECENT_TITLES],
                         [page_link(e) for e in feed.entries])


def learn_context(source_id: str, feed_title: str | None, titles: list[str],
                  links: list[str | None] = ()) -> SourceContext:
    decorations = learn_decorations(feed_title, titles)
    keys = Counter(normalised_title(t, decorations) for t in set(titles))
    links = Counter(canonical_link(link) for link in links if link)
    return SourceContext(source_id, decorations, frozenset(k for k, n in keys.items() if n > 1),
                         frozenset(link for link, n in links.items() if n > 1))


def page_link(entry: Entry) -> str | None:
    """The page's own canonical link when the feed names one, else the item's link."""
    return entry.canonical or entry.link


def text_of(content: str | None, summary: str | None) -> str | None:
    """The longer of an item's content and summary: the most a copy says."""
    return max((content or "", summary or ""), key=len) or None


def new_copy(context: SourceContext, title: str, link: str | None, html: str | None,
             published: datetime) -> Copy:
    text, words = fingerprint.text_fingerprint(html)
    keys = title_keys(title, context.decorations)
    canonical = canonical_link(link)
    key = keys[0] if keys else ""
    return Copy(
        source_id=context.source_id, title_key=key,
        titles=tuple(k for k in keys if not is_generic_title(k, context.recurring_titles)),
        generic_title=is_generic_title(key, context.recurring_titles),
        canonical_link=canonical if _identifies(canonical, context) else None,
        content_hash=content_hash(words),
        published=published, text=text, keys=tuple(fingerprint.index_keys(text)), html=html,
    )


def stored_copy(row: Mapping) -> Copy:
    """A stored item as dedup compares it, from the store's columns (id, story_id, source_id, title,
    title_key, title_keys, canonical_link, content_hash, content, summary, published, words, blocks, hashes);
    its title key was normalised when it was stored."""
    html = text_of(row["content"], row["summary"])
    if row["hashes"] is not None:
        text = Fingerprint(row["words"], np.frombuffer(row["hashes"], dtype="<u4"),
                            tuple(from_json(row["blocks"])))
    else:  # stored before fingerprints were
        text, _ = fingerprint.text_fingerprint(html)
    key = row["title_key"] or ""
    if row["title_keys"] is not None:
        titles = tuple(from_json(row["title_keys"]))
    else:  # stored before title keys were: as its source would have seen them, less what it learnt
        titles = tuple(k for k in dict.fromkeys((key, *title_keys(row["title"])))
                       if k and not is_generic_title(k))
    return Copy(row["source_id"], key, titles, key not in titles, row["canonical_link"], row["content_hash"],
                from_text(row["published"]), text, item_id=row["id"], story_id=row["story_id"], html=html)



def index_keys(copy: Copy) -> list[int]:
    """Every near-duplicate index key of a copy: its text's bands and its title keys, sorted."""
    return sorted({*copy.keys, *copy.title_index_keys()})


def _identifies(canonical: str | None, context: SourceContext) -> bool:
    """A link names one story unless it is a home page or the source's feed gives it to several items
    (a day page whose items differ only by #fragment, a show page for every episode)."""
    return identifies_page(canonical) and canonical not in context.repeated_links

