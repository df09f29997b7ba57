"""The rules that decide whether two copies from different sources are one story, each a small pure function.

`Pair` holds the measures of two copies (computed when a rule first asks
for them); each rule looks at a few and returns the sentence that explains
its decision, or None. `decide` tries them in order, strongest evidence
first (SPEC §6), and names the rule that decided: a `Rule` when the copies
are one story, a `KeptApart` when a rule refused to let the text alone join
two stories (and None when no rule found anything). Precision before
recall: a title never merges alone, and a rule that merges on less text asks
for more agreement elsewhere.

1. `Rule.SAME_LINK`: the same canonical link (when it identifies a page).
2. `Rule.SAME_HASH`: the same normalised text, long enough or under similar titles.
   Then two refusals, which stop every rule below:
   - `KeptApart.ONE_SITE`: two different pages of one site are two stories unless their texts are near-identical;
   - `KeptApart.SHARED_OPENING`: when all the copies share lies in the longer copy's opening paragraph (a
     stock lede, a standfirst), only the same title makes them one story;
   - `KeptApart.OTHER_NUMBERS`: one title but for its numbers ("API v201509 sunset reminder" and "API
     v201506 sunset reminder", a bulletin's day) is two stories of one template;
   - `KeptApart.CORRECTION`: a correction notice ("Correction: …", "… (corrected)"), at most half as long
     as the article its title names, is not that article (a corrected wire copy, as long, still is).
3. `Rule.NEAR_IDENTICAL`: shingle Jaccard (aligned to the shorter text's length) above a threshold that
   rises as texts get shorter.
4. `Rule.CONTAINED`: the shorter text found almost whole in the longer one (a summary, a trimmed copy)
   under similar titles; a short first or last paragraph the other lacks is an addition.
5. `Rule.SAME_TITLE`: the same non-generic title, close dates, and a text mostly held by the other copy.
6. `Rule.TEASER`: a teaser (a few dozen words at most, too short for shingles to carry a match): the same
   title or a nearly identical one, dates within TEASER_DATES, and the teaser's meaningful words mostly
   found in the other copy.
7. `Rule.EDITED_COPY`: an edited wire copy (headline, lede, a few words changed, a paragraph dropped or
   local ones added): texts of comparable length, most of each one's paragraphs found in the other,
   the shorter text mostly contained (containment, not Jaccard: an edited copy is often a subset),
   most of its meaningful words (names, rare words) in the other, close dates, and titles that share
   a meaningful word or texts that share much.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import cached_property

import numpy as np

from . import fingerprint
from .copies import Copy
from .fingerprint import Fingerprint
from .links import identifies_page, link_host
from .text import STOPWORDS, text_tokens
from .titles import corrects, title_numbers, title_shape, title_similarity

MIN_TEXT_WORDS = 50  # below this, text similarity alone never merges
MIN_SUPPORT_WORDS = 20  # below this, a text cannot even support a title match
SIMILAR_TITLE = 0.5  # Jaccard of the titles' meaningful words
CLOSE_DATES = timedelta(days=3)
ALIGN_SLACK = 1.1  # a summary is compared with this much of the longer text's opening
ADDED_PARAGRAPH_WORDS = 40  # a first or last paragraph this short may be an addition
SUPPORT = 0.8  # under the same title, the share of the shorter text the other copy must hold
ONE_SITE_JACCARD = 0.9  # two pages of one site must be this alike
OPENING_SHARE = 0.9  # shared shingles this much inside the longer copy's first paragraph: a shared opening
OPENING_MAX_SHARE = 0.6  # ... when that paragraph is at most this share of its text
TEASER_MAX_WORDS = 40
TEASER_MIN_MEANINGFUL = 4  # meaningful (not function) words a teaser needs
TEASER_TITLE = 0.8  # title similarity a teaser needs, when its title is not the same
TEASER_DATES = timedelta(days=2)
TEASER_WORDS_CONTAINED = 0.6  # share of the teaser's meaningful words the other copy must hold ...
TEASER_WORDS_SIMILAR_TITLE = 0.8  # ... and when the titles are only nearly the same
EDITED_MIN_WORDS = 80
EDITED_LENGTH_RATIO = 0.5  # the shorter text at least this share of the longer
EDITED_CONTAINMENT = 0.6
EDITED_PARAGRAPH = 0.5  # a paragraph whose shingles are this much in the other copy is found there
EDITED_SHORT_PARAGRAPHS = 0.65  # share of the shorter text's words in paragraphs found in the longer
EDITED_LONG_PARAGRAPHS = 0.55  # ... and of the longer text's in the shorter
EDITED_WORDS = 0.65  # share of the shorter text's meaningful words (names, rare words) found in the longer
EDITED_TITLE = 0.2  # titles sharing this much ...
EDITED_JACCARD = 0.4  # ... or texts this alike


class Rule(StrEnum):
    """What made two copies one story, strongest first; the value is what `explain` and metrics show."""

    SAME_LINK = "same canonical link"
    SAME_HASH = "same content hash"
    NEAR_IDENTICAL = "near-identical text"
    CONTAINED = "text contained in the other copy"
    SAME_TITLE = "same title, close dates, supporting text"
    TEASER = "teaser under the same title"
    EDITED_COPY = "edited copy, combined evidence"


class KeptApart(StrEnum):
    """What kept two copies apart although their texts share much."""

    ONE_SITE = "two pages of one site"
    SHARED_OPENING = "only an opening paragraph is shared"
    OTHER_NUMBERS = "their titles name other numbers"
    CORRECTION = "one is a correction notice"


def jaccard_needed(words: int) -> float:
    """Near-identical text: shorter texts need more agreement (the lemon24/reader approach)."""
    return 0.8 if words < 100 else 0.7 if words < 300 else 0.6


def containment_needed(words: int) -> float:
    """A copy cut down (summary, paragraph trimmed) must be found almost whole in the other one."""
    return 0.9 if words < 100 else 0.85


class Pair:
    """Two copies and every measure the rules look at, each computed the first time a rule asks."""

    def __init__(self, new: Copy, old: Copy, link_identifies: bool = True, hash_identifies: bool = True):
        self.new, self.old = new, old
        self.link_identifies, self.hash_identifies = link_identifies, hash_identifies
        self.short_copy, self.long_copy = (new, old) if new.text.words <= old.text.words else (old, new)
        self.short, self.long = self.short_copy.text, self.long_copy.text

    @cached_property
    def long_shingles(self) -> np.ndarray:
        return self.long.shingles()

    @cached_property
    def jaccard(self) -> float:
        if self.long.words > 1.5 * max(self.short.words, 1):  # a summary against a full text: like with like
            aligned = self.long.shingles(int(self.short.words * ALIGN_SLACK) + fingerprint.SHINGLE_WORDS)
        else:
            aligned = self.long_shingles
        return round(fingerprint.jaccard(self.short.shingles(), aligned), 3)

    @cached_property
    def core(self) -> tuple[float, int]:
        contained, words = core_containment(self.short, self.long_shingles)
        return round(contained, 3), words

    @cached_property
    def title_similarity(self) -> float:
        return round(max((title_similarity(a, b) for a, b in title_pairs(self.new, self.old)), default=0.0), 3)

    @cached_property
    def same_title(self) -> str | None:
        """The title both copies share, if any."""
        return next((a for a, b in title_pairs(self.new, self.old) if a == b), None)

    @cached_property
    def hours_apart(self) -> float:
        return round(abs((self.new.published - self.old.published).total_seconds()) / 3600, 1)

    @cached_property
    def opening_only(self) -> bool:
        """Whether what the copies share lies in the longer copy's first paragraph, a paragraph that is
        not most of its text: a stock lede or a standfirst, all a lede-only summary shares too."""
        blocks = self.long.blocks
        if len(blocks) < 2 or blocks[0] > OPENING_MAX_SHARE * self.long.words:
            return False
        shared = np.intersect1d(self.short.shingles(), self.long_shingles, assume_unique=True)
        if not len(shared):
            return False
        return fingerprint.containment(shared, self.long.span(0, blocks[0])) >= OPENING_SHARE

    @cached_property
    def paragraphs_found(self) -> tuple[float, float]:
        """The share of each text's words (shorter, longer) in paragraphs found in the other text."""
        return (round(paragraphs_found(self.short, self.long_shingles), 3),
                round(paragraphs_found(self.long, self.short.shingles()), 3))

    @cached_property
    def words_contained(self) -> float:
        """The share of the shorter text's meaningful words found anywhere in the longer one."""
        mine, theirs = meaningful_words(self.short_copy), meaningful_words(self.long_copy)
        if len(mine) < TEASER_MIN_MEANINGFUL:
            return 0.0
        return round(len(mine & theirs) / len(mine), 3)

    def record(self) -> dict:
        """The measures for the record `explain` prints: the basic ones always, the others when computed."""
        contained, core_words = self.core
        scores = {
            "words": self.short.words, "other_words": self.long.words, "jaccard": self.jaccard,
            "containment": contained, "core_words": core_words, "title_similarity": self.title_similarity,
            "same_title": self.same_title is not None,
            "generic_title": self.new.generic_title or self.old.generic_title, "hours_apart": self.hours_apart,
        }
        for name in ("opening_only", "words_contained"):
            if name in self.__dict__:
                scores[name] = self.__dict__[name]
        if "paragraphs_found" in self.__dict__:
            scores["paragraphs_found"], scores["other_paragraphs_found"] = self.paragraphs_found
        return scores


def title_pairs(new: Copy, old: Copy):
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


def paragraphs_found(text: Fingerprint, other_shingles: np.ndarray) -> float:
    """The share of a text's words in paragraphs at least EDITED_PARAGRAPH of whose shingles (those starting
    in the paragraph) the other text holds."""
    if not text.words or not len(text.hashes):
        return 0.0
    present = np.isin(text.hashes, other_shingles)
    kept = text.hashes != 0
    found, start = 0, 0
    for words in text.blocks or (text.words,):
        end = min(start + words, len(text.hashes))
        counted = int(np.count_nonzero(kept[start:end]))
        if counted and np.count_nonzero(present[start:end] & kept[start:end]) >= EDITED_PARAGRAPH * counted:
            found += words
        start += words
    return found / text.words


def meaningful_words(copy: Copy) -> frozenset[str]:
    """The words of a copy's text that are not function words."""
    return frozenset(w for w in text_tokens(copy.html) if w not in STOPWORDS and not w.isdigit())


# --- The rules: each returns the sentence that explains its decision, or None. ---

def same_link(p: Pair) -> str | None:
    link = p.new.canonical_link
    if p.link_identifies and link and link == p.old.canonical_link:
        return f"same canonical link {link}"
    return None


def same_hash(p: Pair) -> str | None:
    if (p.hash_identifies and p.new.content_hash and p.new.content_hash == p.old.content_hash
            and (p.short.words >= MIN_TEXT_WORDS or p.title_similarity >= SIMILAR_TITLE)):
        return f"same normalised text ({p.short.words} words)"
    return None


def one_site(p: Pair) -> str | None:
    new, old = p.new.canonical_link, p.old.canonical_link
    if (identifies_page(new) and identifies_page(old) and link_host(new) == link_host(old)
            and p.jaccard < ONE_SITE_JACCARD):
        return f"two pages of {link_host(new)} whose texts are not near-identical (Jaccard {p.jaccard:.2f})"
    return None


def shared_opening(p: Pair) -> str | None:
    if p.same_title is None and p.opening_only:
        return (f"all they share is the opening paragraph of the longer copy, under different titles "
                f"(title similarity {p.title_similarity:.2f})")
    return None


def other_numbers(p: Pair) -> str | None:
    new, old = title_numbers(p.new.title_key), title_numbers(p.old.title_key)
    if new and old and new != old and title_shape(p.new.title_key) == title_shape(p.old.title_key):
        return (f"one title with other numbers ({', '.join(sorted(new))} against {', '.join(sorted(old))}): "
                "two stories of one template")
    return None


def correction(p: Pair) -> str | None:
    notice, article = (p.short_copy, p.long_copy)
    if corrects(notice.title_key) and not corrects(article.title_key) and 2 * p.short.words <= p.long.words:
        return "a correction notice, at most half as long as the article its title names"
    return None


def near_identical(p: Pair) -> str | None:
    words, needed = p.short.words, jaccard_needed(p.short.words)
    if words >= MIN_TEXT_WORDS and p.jaccard >= needed:
        return f"near-identical text: Jaccard {p.jaccard:.2f} over {words} words (needs {needed})"
    return None


def contained(p: Pair) -> str | None:
    share, core = p.core
    if core >= MIN_TEXT_WORDS and share >= containment_needed(core) and p.title_similarity >= SIMILAR_TITLE:
        return (f"{share:.0%} of the shorter text ({core} words) is in the other copy; "
                f"title similarity {p.title_similarity:.2f}")
    return None


def same_title(p: Pair) -> str | None:
    share, core = p.core
    if (p.same_title is not None and p.hours_apart <= CLOSE_DATES.total_seconds() / 3600
            and core >= MIN_SUPPORT_WORDS and share >= SUPPORT):
        return f"same title {p.same_title!r}, {p.hours_apart}h apart, text contained {share:.0%}"
    return None


def teaser(p: Pair) -> str | None:
    if not 0 < p.short.words <= TEASER_MAX_WORDS or p.hours_apart > TEASER_DATES.total_seconds() / 3600:
        return None
    if p.same_title is None and p.title_similarity < TEASER_TITLE:
        return None
    if p.words_contained >= (TEASER_WORDS_CONTAINED if p.same_title else TEASER_WORDS_SIMILAR_TITLE):
        title = repr(p.same_title) if p.same_title else f"similarity {p.title_similarity:.2f}"
        return (f"a teaser of {p.short.words} words under the same title ({title}), {p.hours_apart}h apart, "
                f"{p.words_contained:.0%} of its meaningful words in the other copy")
    return None


def edited_copy(p: Pair) -> str | None:
    short, long = p.short.words, p.long.words
    if short < EDITED_MIN_WORDS or short < EDITED_LENGTH_RATIO * long:
        return None
    if p.hours_apart > CLOSE_DATES.total_seconds() / 3600 or p.core[0] < EDITED_CONTAINMENT:
        return None
    if p.title_similarity < EDITED_TITLE and p.jaccard < EDITED_JACCARD:
        return None
    found_short, found_long = p.paragraphs_found
    if (found_short >= EDITED_SHORT_PARAGRAPHS and found_long >= EDITED_LONG_PARAGRAPHS
            and p.words_contained >= EDITED_WORDS):
        return (f"an edited copy: {found_short:.0%} and {found_long:.0%} of the texts in paragraphs found in "
                f"the other, {p.core[0]:.0%} contained, {p.words_contained:.0%} of the meaningful words shared, "
                f"title similarity {p.title_similarity:.2f}, {p.hours_apart}h apart")
    return None


BEFORE_REFUSALS = ((Rule.SAME_LINK, same_link), (Rule.SAME_HASH, same_hash))
REFUSALS = ((KeptApart.ONE_SITE, one_site), (KeptApart.SHARED_OPENING, shared_opening),
            (KeptApart.OTHER_NUMBERS, other_numbers), (KeptApart.CORRECTION, correction))
TEXT_RULES = ((Rule.NEAR_IDENTICAL, near_identical), (Rule.CONTAINED, contained), (Rule.SAME_TITLE, same_title),
              (Rule.TEASER, teaser), (Rule.EDITED_COPY, edited_copy))
ORDER = tuple(rule for rule, _ in BEFORE_REFUSALS + TEXT_RULES)  # strongest first: how match ranks candidates


SCORES = {Rule.SAME_LINK: lambda p: 1.0, Rule.SAME_HASH: lambda p: 1.0, Rule.NEAR_IDENTICAL: lambda p: p.jaccard,
          Rule.CONTAINED: lambda p: p.core[0], Rule.SAME_TITLE: lambda p: p.core[0],
          Rule.TEASER: lambda p: p.words_contained, Rule.EDITED_COPY: lambda p: p.core[0]}


@dataclass(frozen=True)
class Decision:
    """The rule that decided (a Rule: one story; a KeptApart: kept apart), its sentence, its score (what the
    rule measured, 0 for a refusal) and every measure."""

    rule: Rule | KeptApart
    reason: str
    score: float
    scores: dict

    @property
    def merged(self) -> bool:
        return isinstance(self.rule, Rule)


def decide(pair: Pair) -> Decision | None:
    """The first rule, in order, that decides about these two copies; None when none found anything."""
    for rule, holds in BEFORE_REFUSALS + REFUSALS + TEXT_RULES:
        if reason := holds(pair):
            score = SCORES[rule](pair) if isinstance(rule, Rule) else 0.0
            return Decision(rule, reason, score, pair.record())
    return None
