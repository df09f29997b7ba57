"""Which stored story a new copy belongs to, and the evidence that decided it.

Precision before recall (SPEC §6): a copy joins a story only on strong
evidence, otherwise it starts a story of its own. Candidates are the stored
copies from other sources, published within `dedup.window` of the new copy,
that share its canonical link, content hash or normalised title, or share a
near-duplicate index key with it (MinHash LSH, so no pair-by-pair scan): the
store looks them up (`Lookup`), `shortlist` picks the few worth judging, the
store loads those (`Candidates`), and `match` judges them on exact scores;
`judge` asks the rules of `rules.py` (`rules.decide` also says which rule
kept two copies apart). Pure: nothing here reads the database.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ..models import to_text
from . import rules
from .copies import Copy
from .rules import Rule

NEAR_CANDIDATES = 12  # index candidates judged per new item, most shared keys first
TITLE_CANDIDATES = 20  # title-key candidates judged per new item
HASH_CANDIDATES = 50  # same-content-hash candidates judged per new item, earliest first


@dataclass(frozen=True)
class Evidence:
    """Why two copies are one story: the rule that matched, a sentence, and every score."""

    rule: Rule
    reason: str
    score: float
    scores: dict


@dataclass(frozen=True)
class Match:
    """The story a new copy joins, on the evidence of one of its copies; `joins`: the other stories the copy
    matched too, which become one story with it (so the result does not depend on which copy came first)."""

    story_id: int
    matched_item: int
    evidence: str
    score: float
    details: dict
    joins: tuple[Match, ...] = ()


@dataclass(frozen=True)
class Lookup:
    """What the store found for a poll's new copies: stored items sharing their links, hashes or index keys.

    Each map is value -> [(item id, published as stored text)], inside the window of the poll's copies.
    `repeated`: links and hashes that one source carries on several items, which identify nothing.
    """

    by_link: dict = field(default_factory=dict)
    by_hash: dict = field(default_factory=dict)
    by_key: dict = field(default_factory=dict)
    repeated: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Candidates:
    """The shortlisted stored copies (by item id), the stories already holding a copy from the new copies'
    source, and each story's original date: all `match` needs."""

    copies: dict[int, Copy]
    taken: set[int]
    first: dict[int, datetime]
    sources: dict[int, frozenset[str]] = field(default_factory=dict)  # each story's sources
    apart: frozenset[frozenset[int]] = frozenset()  # pairs of stories an operator's decision keeps apart


INDEX_SLACK = timedelta(days=1)  # the near-duplicate index keeps this much more than the window


def index_horizon(now: datetime, window: float) -> datetime:
    """How far back the near-duplicate index reaches: a new copy is matched only against stories published
    within the window of its date, and new copies are dated about now, or seen for the first time now."""
    return now - timedelta(seconds=window) - INDEX_SLACK


def lookup_values(copies: list[Copy], window: float) -> tuple[set[str], set[str], set[int], datetime, datetime]:
    """What to look up for a poll's copies: their links, hashes and index keys, and the dates spanning the window."""
    span = timedelta(seconds=window)
    links = {c.canonical_link for c in copies if c.canonical_link}
    hashes = {c.content_hash for c in copies if c.content_hash}
    keys = {k for c in copies for k in (*c.title_lookup_keys(), *c.keys)}
    return links, hashes, keys, min(c.published for c in copies) - span, max(c.published for c in copies) + span


def grouped(rows: list[tuple]) -> dict:
    """(value, item id, published) rows as value -> [(item id, published)]."""
    groups: dict = {}
    for value, item_id, published in rows:
        groups.setdefault(value, []).append((item_id, published))
    return groups


def shortlist(copy: Copy, window: float, lookup: Lookup) -> set[int]:
    """The stored items worth judging against this copy: sharing its link, its content hash, or the most
    index keys (title keys and text bands), among those published within the window of its date."""
    span = timedelta(seconds=window)
    low, high = to_text(copy.published - span), to_text(copy.published + span)
    ids: set[int] = set()
    if copy.canonical_link and copy.canonical_link not in lookup.repeated:
        ids.update(i for i, when in lookup.by_link.get(copy.canonical_link, ()) if low <= when <= high)
    if copy.content_hash and copy.content_hash not in lookup.repeated:
        same = sorted((when, i) for i, when in lookup.by_hash.get(copy.content_hash, ()) if low <= when <= high)
        ids.update(i for _, i in same[:HASH_CANDIDATES])
    for keys, limit in ((copy.title_lookup_keys(), TITLE_CANDIDATES), (copy.keys, NEAR_CANDIDATES)):
        shared = Counter(i for key in set(keys) for i, when in lookup.by_key.get(key, ()) if low <= when <= high)
        ids.update(i for i, _ in sorted(shared.items(), key=lambda pair: (-pair[1], pair[0]))[:limit])
    return ids


def match(copies: list[Copy], window: float, lookup: Lookup, shortlists: list[set[int]],
          candidates: Candidates) -> list[Match | None]:
    """For each of one source's new copies, in order, the story it is another copy of, if any, and the other
    stories it matches too (`Match.joins`), which are to become one story with it.

    A poll's copies are looked up together, a handful of queries in all
    rather than ten per copy; each is then judged as if stored one by one:
    a story an earlier copy joined is taken for the later ones. Stories are
    joined unless they share a source or an operator keeps them apart.
    """
    span = timedelta(seconds=window)
    taken, first = set(candidates.taken), dict(candidates.first)
    matches: list[Match | None] = []
    for copy, ids in zip(copies, shortlists):
        best: dict[int, tuple] = {}  # story id -> (rank, other, evidence): each story's strongest evidence
        link_identifies = bool(copy.canonical_link) and copy.canonical_link not in lookup.repeated
        hash_identifies = bool(copy.content_hash) and copy.content_hash not in lookup.repeated
        for item_id in sorted(ids):
            other = candidates.copies.get(item_id)
            if other is None or other.story_id in taken or first[other.story_id] < copy.published - span:
                continue  # a story whose original date is outside the window is not a candidate
            evidence = judge(copy, other, link_identifies, hash_identifies)
            if evidence:
                rank = (RULES.index(evidence.rule), -evidence.score, other.published, other.item_id)
                if other.story_id not in best or rank < best[other.story_id][0]:
                    best[other.story_id] = (rank, other, evidence)
        if not best:
            matches.append(None)
            continue
        found = [_match(other, evidence) for _, other, evidence in sorted(best.values(), key=lambda b: b[0])]
        primary, joins = found[0], _joinable(found[1:], found[0].story_id, candidates)
        for story_id in (primary.story_id, *(j.story_id for j in joins)):
            taken.add(story_id)
            first[story_id] = min(first[story_id], copy.published)
        matches.append(replace(primary, joins=tuple(joins)))
    return matches


def _match(other: Copy, evidence: Evidence) -> Match:
    return Match(other.story_id, other.item_id, evidence.reason, evidence.score, {"rule": evidence.rule,
                                                                                 **evidence.scores})


def _joinable(found: list[Match], story_id: int, candidates: Candidates) -> list[Match]:
    """Those of the other matched stories that can join the first one, strongest evidence first: none sharing
    a source with the stories joined so far (a source's two items are two stories), none kept apart from them."""
    group, sources, joins = {story_id}, set(candidates.sources.get(story_id, ())), []
    for found_match in found:
        theirs = candidates.sources.get(found_match.story_id, frozenset())
        if sources & theirs or any(frozenset((found_match.story_id, s)) in candidates.apart for s in group):
            continue
        group.add(found_match.story_id)
        sources |= theirs
        joins.append(found_match)
    return joins


def surviving_story(firsts: dict[int, tuple[datetime, str]]) -> int:
    """Of stories becoming one, the one whose id and republication date stay (SPEC §6): the story holding the
    earliest-published copy; among equals the one republished first, then the oldest row.
    `firsts`: story id -> (its earliest copy's publication date, its republication time as stored text)."""
    return min(firsts, key=lambda story_id: (firsts[story_id][0], firsts[story_id][1], story_id))


RULES = rules.ORDER  # strongest first


def scores(new: Copy, old: Copy) -> dict:
    """Every basic measure the rules look at, rounded for the record `explain` prints."""
    return rules.Pair(new, old).record()


def judge(new: Copy, old: Copy, link_identifies: bool = True, hash_identifies: bool = True) -> Evidence | None:
    """Whether two copies from different sources are one story: the rules of `rules`, strongest evidence first.

    Under MIN_TEXT_WORDS words, text alone never merges; a title never merges alone (a teaser's words must
    be found in the other copy). Two different pages of one site merge only on identical or near-identical
    text; copies sharing only an opening paragraph merge only under the same title.
    """
    decision = rules.decide(rules.Pair(new, old, link_identifies, hash_identifies))
    if decision is None or not decision.merged:
        return None
    return Evidence(decision.rule, decision.reason, decision.score, decision.scores)
