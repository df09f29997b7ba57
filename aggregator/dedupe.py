"""Which stored story a new item belongs to, and the evidence that decided it.

Precision before recall (SPEC §6): an item joins a story only on strong
evidence, otherwise it starts a story of its own. Candidates are the stored
copies from other sources, published within `dedup.window` of the new item,
that share its canonical link, content hash or normalised title, or share a
near-duplicate index key with it (MinHash LSH, so no pair-by-pair scan). Each
candidate is then judged on exact scores; `judge` holds the rules.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np

from . import fingerprint, identity
from .fingerprint import Fingerprint
from .models import Entry, ParsedFeed
from .store import Store, from_text, to_text

MIN_TEXT_WORDS = 50  # below this, text similarity alone never merges
MIN_SUPPORT_WORDS = 20  # below this, a text cannot even support a title match
SIMILAR_TITLE = 0.5  # Jaccard of the titles' meaningful words
CLOSE_DATES = timedelta(days=3)
NEAR_CANDIDATES = 12  # index candidates judged per new item, most shared keys first
TITLE_CANDIDATES = 20  # title-key candidates judged per new item
HASH_CANDIDATES = 50  # same-content-hash candidates judged per new item, earliest first
RECENT_TITLES = 200  # stored titles of a source that decoration learning looks at
ALIGN_SLACK = 1.1  # a summary is compared with this much of the longer text's opening
ADDED_PARAGRAPH_WORDS = 40  # a first or last paragraph this short may be an addition
SUPPORT = 0.8  # under the same title, the share of the shorter text the other copy must hold


def jaccard_needed(words: int) -> float:
    """Near-identical text: shorter texts need more agreement (the lemon24/reader approach)."""
    return 0.8 if words < 100 else 0.7 if words < 300 else 0.6


def containment_needed(words: int) -> float:
    """A copy cut down (summary, paragraph trimmed) must be found almost whole in the other one."""
    return 0.9 if words < 100 else 0.85


@dataclass(frozen=True)
class SourceContext:
    """What a poll knows about its source that single items do not say."""

    source_id: str
    decorations: identity.Decorations = identity.Decorations()
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


@dataclass(frozen=True)
class Evidence:
    """Why two copies are one story: the rule that matched, a sentence, and every score."""

    rule: str
    reason: str
    score: float
    scores: dict


@dataclass(frozen=True)
class Match:
    story_id: int
    matched_item: int
    evidence: str
    score: float
    details: dict


def source_context(source_id: str, feed: ParsedFeed, stored_titles: list[str]) -> SourceContext:
    """Learn the source's title decorations and series titles from this feed and its latest stored titles."""
    titles = [e.title for e in feed.entries if e.title]
    return learn_context(source_id, feed.info.title, titles + stored_titles[:RECENT_TITLES],
                         [page_link(e) for e in feed.entries])


def learn_context(source_id: str, feed_title: str | None, titles: list[str],
                  links: list[str | None] = ()) -> SourceContext:
    decorations = identity.learn_decorations(feed_title, titles)
    keys = Counter(identity.normalised_title(t, decorations) for t in set(titles))
    links = Counter(identity.canonical_link(link) for link in links if link)
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
    text, tokens = fingerprint.text_fingerprint(html)
    keys = identity.title_keys(title, context.decorations)
    canonical = identity.canonical_link(link)
    key = keys[0] if keys else ""
    return Copy(
        source_id=context.source_id, title_key=key,
        titles=tuple(k for k in keys if not identity.is_generic_title(k, context.recurring_titles)),
        generic_title=identity.is_generic_title(key, context.recurring_titles),
        canonical_link=canonical if _identifies(canonical, context) else None,
        content_hash=identity.content_hash(" ".join(tokens)),
        published=published, text=text, keys=tuple(fingerprint.index_keys(text)),
    )


def stored_copy(row: sqlite3.Row) -> Copy:
    """A stored item as dedupe compares it; its title key was normalised when it was stored."""
    if row["hashes"] is not None:
        text = Fingerprint(row["words"], np.frombuffer(row["hashes"], dtype="<u4"),
                            tuple(json.loads(row["blocks"])))
    else:  # stored before fingerprints were
        text, _ = fingerprint.text_fingerprint(text_of(row["content"], row["summary"]))
    key = row["title_key"] or ""
    if row["title_keys"] is not None:
        titles = tuple(json.loads(row["title_keys"]))
    else:  # stored before title keys were: as its source would have seen them, less what it learnt
        titles = tuple(k for k in dict.fromkeys((key, *identity.title_keys(row["title"])))
                       if k and not identity.is_generic_title(k))
    return Copy(row["source_id"], key, titles, key not in titles, row["canonical_link"], row["content_hash"],
                from_text(row["published"]), text, item_id=row["id"], story_id=row["story_id"])


def index(db: sqlite3.Connection, item_id: int, copy: Copy) -> None:
    """Add (or refresh) an item's near-duplicate keys (text bands and titles) and fingerprint in the store."""
    Store.replace_near_keys(db, item_id, sorted({*copy.keys, *copy.title_index_keys()}))
    Store.save_fingerprints(db, [_fingerprint_row(item_id, copy)])


def index_new(db: sqlite3.Connection, copies: list[tuple[int, Copy]]) -> None:
    """Add the near-duplicate keys of items just stored, (item id, copy) each, in one statement."""
    rows = []
    for item_id, copy in copies:
        rows += [(key, item_id) for key in sorted({*copy.keys, *copy.title_index_keys()})]
    Store.add_near_keys(db, rows)
    Store.save_fingerprints(db, [_fingerprint_row(item_id, copy) for item_id, copy in copies])


def _fingerprint_row(item_id: int, copy: Copy) -> tuple[int, int, str, bytes]:
    text = copy.text
    return item_id, text.words, json.dumps(text.blocks), text.hashes.astype("<u4").tobytes()


def find_stories(db: sqlite3.Connection, copies: list[Copy], window: float) -> list[Match | None]:
    """For each of one source's new copies, in order, the story it is another copy of, if any.

    A poll's copies are looked up together, a handful of queries in all
    rather than ten per copy; each is then judged as if stored one by one:
    a story an earlier copy joined is taken for the later ones.
    """
    if not copies:
        return []
    span = timedelta(seconds=window)
    source_id = copies[0].source_id
    earliest, latest = min(c.published for c in copies) - span, max(c.published for c in copies) + span
    links = {c.canonical_link for c in copies if c.canonical_link}
    hashes = {c.content_hash for c in copies if c.content_hash}
    by_link = _grouped(Store.items_by_values(db, "canonical_link", links, earliest, latest))
    by_hash = _grouped(Store.items_by_values(db, "content_hash", hashes, earliest, latest))
    repeated = Store.repeated_values(db, "canonical_link", links) | Store.repeated_values(db, "content_hash", hashes)
    by_key = _grouped(Store.near_key_rows(db, {k for c in copies for k in (*c.title_lookup_keys(), *c.keys)},
                                          earliest, latest, source_id))
    candidates = [_candidates(copy, span, repeated, by_link, by_hash, by_key) for copy in copies]
    rows = {r["id"]: r for r in Store.copy_rows(db, sorted(set().union(*candidates)))
            if r["source_id"] != source_id}
    story_ids = sorted({r["story_id"] for r in rows.values()})
    taken = Store.stories_carrying(db, story_ids, source_id)  # one story, at most one copy per source
    first = Store.stories_first_published(db, story_ids)
    others: dict[int, Copy] = {}
    matches: list[Match | None] = []
    for copy, ids in zip(copies, candidates):
        best: tuple | None = None
        link_identifies = bool(copy.canonical_link) and copy.canonical_link not in repeated
        hash_identifies = bool(copy.content_hash) and copy.content_hash not in repeated
        for item_id in sorted(ids):
            row = rows.get(item_id)
            if row is None or row["story_id"] in taken or first[row["story_id"]] < copy.published - span:
                continue  # a story whose original date is outside the window is not a candidate
            other = others.get(item_id) or others.setdefault(item_id, stored_copy(row))
            evidence = judge(copy, other, link_identifies, hash_identifies)
            if evidence:
                rank = (RULES.index(evidence.rule), -evidence.score, other.published, other.item_id)
                if best is None or rank < best[0]:
                    best = (rank, other, evidence)
        if best is None:
            matches.append(None)
            continue
        _, other, evidence = best
        taken.add(other.story_id)
        first[other.story_id] = min(first[other.story_id], copy.published)
        matches.append(Match(other.story_id, other.item_id, evidence.reason, evidence.score,
                             {"rule": evidence.rule, **evidence.scores}))
    return matches


def _grouped(rows: list[tuple]) -> dict:
    """(value, item id, published) rows as value -> [(item id, published)]."""
    grouped: dict = {}
    for value, item_id, published in rows:
        grouped.setdefault(value, []).append((item_id, published))
    return grouped


def _candidates(copy: Copy, span: timedelta, repeated: set[str], by_link: dict, by_hash: dict,
                by_key: dict) -> set[int]:
    """The stored items worth judging against this copy: sharing its link, its content hash, or the most
    index keys (title keys and text bands), among those published within the window of its date."""
    low, high = to_text(copy.published - span), to_text(copy.published + span)
    ids: set[int] = set()
    if copy.canonical_link and copy.canonical_link not in repeated:
        ids.update(i for i, when in by_link.get(copy.canonical_link, ()) if low <= when <= high)
    if copy.content_hash and copy.content_hash not in repeated:
        same = sorted((when, i) for i, when in by_hash.get(copy.content_hash, ()) if low <= when <= high)
        ids.update(i for _, i in same[:HASH_CANDIDATES])
    for keys, limit in ((copy.title_lookup_keys(), TITLE_CANDIDATES), (copy.keys, NEAR_CANDIDATES)):
        shared = Counter(i for key in set(keys) for i, when in by_key.get(key, ()) if low <= when <= high)
        ids.update(i for i, _ in sorted(shared.items(), key=lambda pair: (-pair[1], pair[0]))[:limit])
    return ids


def _identifies(canonical: str | None, context: SourceContext) -> bool:
    """A link names one story unless it is a home page or the source's feed gives it to several items
    (a day page whose items differ only by #fragment, a show page for every episode)."""
    return identity.identifies_page(canonical) and canonical not in context.repeated_links


RULES = ("same canonical link", "same content hash", "near-identical text", "text contained in the other copy",
         "same title, close dates, supporting text")


def scores(new: Copy, old: Copy) -> dict:
    """Every measure the rules look at, rounded for the record `explain` prints."""
    short, long = (new.text, old.text) if new.text.words <= old.text.words else (old.text, new.text)
    short_shingles, long_shingles = short.shingles(), long.shingles()
    if long.words > 1.5 * max(short.words, 1):  # a summary against a full text: compare like with like
        aligned = long.shingles(int(short.words * ALIGN_SLACK) + fingerprint.SHINGLE_WORDS)
    else:
        aligned = long_shingles
    contained, core_words = core_containment(short, long_shingles)
    return {
        "words": short.words,
        "other_words": long.words,
        "jaccard": round(fingerprint.jaccard(short_shingles, aligned), 3),
        "containment": round(contained, 3),
        "core_words": core_words,
        "title_similarity": round(max((identity.title_similarity(a, b) for a, b in _title_pairs(new, old)),
                                      default=0.0), 3),
        "same_title": any(a == b for a, b in _title_pairs(new, old)),
        "generic_title": new.generic_title or old.generic_title,
        "hours_apart": round(abs((new.published - old.published).total_seconds()) / 3600, 1),
    }


def _title_pairs(new: Copy, old: Copy):
    """Each copy's own title against the other's title keys: "Report: X (via Y)" matches "X", but two
    titles that only share a leftover part ("Example News | A" and "Example News | B") do not."""
    for one, two in ((new, old), (old, new)):
        if one.own_title():
            yield from ((one.title_key, key) for key in two.titles)


def core_containment(short: Fingerprint, long_shingles) -> tuple[float, int]:
    """How much of the shorter text the longer one holds, and over how many words.

    A short first or last paragraph the other copy lacks entirely is an
    addition (an attribution, an editor's note, a link back), not a sign of a
    different story: the best share with such a paragraph left out counts.
    """
    blocks, words = short.blocks or (short.words,), short.words
    edges = {"first": (0, blocks[0]), "last": (words - blocks[-1], words)} if len(blocks) > 1 else {}
    added = [name for name, (start, end) in edges.items() if end - start <= ADDED_PARAGRAPH_WORDS
             and fingerprint.containment(short.span(start, end), long_shingles) < 0.5]
    best = (fingerprint.containment(short.shingles(), long_shingles), words)
    for drop in ([["first"], ["last"], ["first", "last"]] if len(added) == 2 else [added] if added else []):
        start = blocks[0] if "first" in drop else 0
        end = words - blocks[-1] if "last" in drop else words
        if end - start >= MIN_SUPPORT_WORDS:
            best = max(best, (fingerprint.containment(short.span(start, end), long_shingles), end - start))
    return best


def judge(new: Copy, old: Copy, link_identifies: bool = True, hash_identifies: bool = True) -> Evidence | None:
    """Whether two copies from different sources are one story, strongest evidence first.

    1. the same canonical link (when it identifies a page);
    2. the same content hash (identical normalised text) of a text long enough,
       or shorter but under similar titles;
    3. near-identical text (shingle Jaccard, aligned to the shorter text's
       length) above a threshold that rises as texts get shorter;
    4. the shorter text found almost whole in the longer one (a summary, a
       trimmed copy) under similar titles: a passage quoted whole in another
       article under its own title is a quotation, not a copy;
    5. the same non-generic title, dates within CLOSE_DATES, and a text that
       supports it.
    Under MIN_TEXT_WORDS words, text alone never merges; a title never merges alone.
    Two different pages of one site merge only on identical or near-identical text.
    """
    s = scores(new, old)
    if link_identifies and new.canonical_link and new.canonical_link == old.canonical_link:
        return Evidence(RULES[0], f"same canonical link {new.canonical_link}", 1.0, s)
    words, similar_title = s["words"], s["title_similarity"] >= SIMILAR_TITLE
    if (hash_identifies and new.content_hash and new.content_hash == old.content_hash
            and (words >= MIN_TEXT_WORDS or similar_title)):
        return Evidence(RULES[1], f"same normalised text ({words} words)", 1.0, s)
    one_site = (identity.identifies_page(new.canonical_link) and identity.identifies_page(old.canonical_link)
                and identity.link_host(new.canonical_link) == identity.link_host(old.canonical_link))
    if one_site and s["jaccard"] < 0.9:
        return None
    if words >= MIN_TEXT_WORDS and s["jaccard"] >= jaccard_needed(words):
        return Evidence(RULES[2], f"near-identical text: Jaccard {s['jaccard']:.2f} over {words} words "
                        f"(needs {jaccard_needed(words)})", s["jaccard"], s)
    core = s["core_words"]
    if core >= MIN_TEXT_WORDS and s["containment"] >= containment_needed(core) and similar_title:
        return Evidence(RULES[3], f"{s['containment']:.0%} of the shorter text ({core} words) is in the other "
                        f"copy; title similarity {s['title_similarity']:.2f}", s["containment"], s)
    if (s["same_title"] and s["hours_apart"] <= CLOSE_DATES.total_seconds() / 3600
            and core >= MIN_SUPPORT_WORDS and s["containment"] >= SUPPORT):
        shared = next(a for a, b in _title_pairs(new, old) if a == b)
        return Evidence(RULES[4], f"same title {shared!r}, {s['hours_apart']}h apart, text contained "
                        f"{s['containment']:.0%}", s["containment"], s)
    return None


def ensure_index(db: sqlite3.Connection, batch: int = 500) -> int:
    """Rebuild the near-duplicate index from the stored items when it was built another way (or never).

    The index lives in the store, so a restart loses nothing; this only runs
    after an upgrade changes how keys are made. Returns the items reindexed.
    """
    if Store.meta(db, "near_index") == fingerprint.INDEX_VERSION:
        return 0
    Store.clear_near_keys(db)
    done, last = 0, 0
    while ids := Store.item_ids_after(db, last, batch):
        for row in Store.copy_rows(db, ids):
            copy = stored_copy(row)
            index(db, row["id"], replace(copy, keys=tuple(fingerprint.index_keys(copy.text))))
        done, last = done + len(ids), ids[-1]
    Store.set_meta(db, "near_index", fingerprint.INDEX_VERSION)
    return done


def claim(db: sqlite3.Connection, new_entries: list[Entry]) -> None:
    """Hold the right to match new copies until the poll's transaction ends.

    Two processes ingesting copies of one story at the same moment would each
    miss the other's uncommitted copy and create two stories. Every kind of
    evidence (links, hashes, titles, near-duplicate keys) can join two copies,
    so a poll that brings new items takes one lock for all matching: the
    second waits for the first to commit, then finds its copy. Fetching and
    parsing stay concurrent; on SQLite the write transaction already does this.
    """
    if new_entries:
        Store.lock(db, "story", ["match new copies"])
