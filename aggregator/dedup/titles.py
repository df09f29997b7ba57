"""Titles: normalised keys, the decorations each source adds around its titles, generic titles, and what a
title says of its story (its numbers, a correction notice).

Pure functions over strings.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from .text import STOPWORDS, fold

_DIGITS = re.compile(r"\d+")
_SEPARATOR = r"(?:\s+[-–—|•·»›~/:]{1,2}\s+|\s*\|\s*|\s*::\s*)"
# (affix, rest) patterns, tried in order: brackets first, then a separator.
_PREFIXES = (re.compile(r"^\s*[\[(]([^\[\]()]{1,100})[\])]\s*(.+)$"),
             re.compile(rf"^\s*([^:|]{{1,60}}?)(?:{_SEPARATOR}|:\s+)(.+)$"))
_SUFFIXES = (re.compile(r"^(.*\S)\s*[\[(]([^\[\]()]{1,100})[\])]\s*$"),
             re.compile(rf"^(.+){_SEPARATOR}([^|:]{{1,60}}?)\s*$"))
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")
_SPACED_MARK = re.compile(r"\s[-–—|•·»›~/:]")
CORRECTION_WORDS = frozenset({"correction", "corrected", "correcting", "clarification", "erratum", "retraction",
                              "retracted", "rectification", "correccion", "rectificatif", "berichtigung",
                              "korrektur", "rettifica", "اصلاحیه", "تصحیح", "تصحيح"})  # a notice, not the story
MIN_DECORATION_SHARE = 0.05  # of a source's titles that must carry an affix before it counts as one


def normalised_title(title: str | None, decorations: Decorations | None = None) -> str:
    """Case, punctuation, whitespace and Unicode forms folded, the source's decorations removed."""
    text = unicodedata.normalize("NFKC", title or "").strip()
    if decorations:
        text = decorations.strip(text)
    return fold(text)


def title_keys(title: str | None, decorations: Decorations | None = None) -> tuple[str, ...]:
    """The title's key, then the keys left when one or two more prefixes or suffixes are taken off.

    Catches decorations a source's own titles could not teach ("Report: …",
    "… (via Example News)", another outlet's name in front). Only the first is
    the title; the others may match another copy's title, never each other.
    """
    text = unicodedata.normalize("NFKC", title or "").strip()
    level = [decorations.strip(text) if decorations else text]
    texts = list(level)
    for _ in range(2):  # up to two more affixes off, in any order
        level = [split[1] for t in level for split in (split_affix(t, "prefix"), split_affix(t, "suffix")) if split]
        texts += level
    return tuple(dict.fromkeys(k for k in map(fold, texts) if k))


def title_numbers(key: str) -> frozenset[str]:
    """The numbers a folded title names, in ASCII digits without leading zeros (۱۲ and 012 are 12)."""
    return frozenset("".join(str(unicodedata.digit(c)) for c in number).lstrip("0") or "0"
                     for number in _DIGITS.findall(key))


def corrects(key: str) -> bool:
    """Whether a folded title opens or ends with a word that marks a correction notice."""
    words = key.split()
    return bool(words) and (words[0] in CORRECTION_WORDS or words[-1] in CORRECTION_WORDS)


@lru_cache(maxsize=4096)  # an affix's shape is asked for each title that carries it, while learning and stripping
def title_shape(text: str) -> str:
    """A folded title with numbers replaced: "Episode 12" and "Episode 13" share a shape."""
    return _DIGITS.sub("#", fold(text))


@lru_cache(maxsize=4096)  # a title is split while learning its source's habits, stripping it and keying it
def split_affix(text: str, position: str) -> tuple[str, str] | None:
    """(affix, rest) when the title has a prefix (or suffix) set off by a separator or brackets."""
    bracketed, separated = _PREFIXES if position == "prefix" else _SUFFIXES
    if not (match := bracketed.match(text)):
        # Every separator (and a prefix's ": ") holds a "|", a ":", or a dash or mark after a space: most titles
        # have none, and are told so faster than the pattern can try each place a separator might start.
        if not ("|" in text or ":" in text or _SPACED_MARK.search(text)) or not (match := separated.match(text)):
            return None
    affix, rest = match.groups() if position == "prefix" else reversed(match.groups())
    if any(part.count("(") != part.count(")") or part.count("[") != part.count("]") for part in (affix, rest)):
        return None  # a separator inside brackets does not split a title
    rest = rest.strip()
    if not _has_words(rest) or not _has_words(affix):
        return None
    return affix.strip(), rest


def _has_words(text: str) -> bool:
    """Whether fold leaves anything of a text: in ASCII, whether it has a letter or digit."""
    return bool(_LETTER_OR_DIGIT.search(text)) if text.isascii() else bool(fold(text))


@dataclass(frozen=True)
class Decorations:
    """The site-name prefixes and suffixes one source adds to its titles, by shape."""

    prefixes: frozenset[str] = frozenset()
    suffixes: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()  # the source's own name(s), folded, from its feed title

    def strip(self, text: str) -> str:
        """The title without its decorations; never strips a title down to nothing."""
        for _ in range(4):
            changed = False
            for position, known in (("prefix", self.prefixes), ("suffix", self.suffixes)):
                split = split_affix(text, position)
                if split and (title_shape(split[0]) in known or self.is_name(split[0])):
                    text, changed = split[1], True
            if not changed:
                break
        return text

    def is_name(self, affix: str) -> bool:
        loose = _loose(affix)
        return bool(loose) and any(loose == name or f" {loose} " in f" {name} " for name in self.names)


def learn_decorations(feed_title: str | None, titles: Iterable[str]) -> Decorations:
    """What one source adds around its titles, learnt from those titles and its feed title.

    An affix is a decoration when it names the source (its feed title or a part
    of it) or when the same affix, numbers aside, recurs on several of the
    source's titles ("Opinion | …", "… - Reuters", "Giant Bombcast 512: …").
    """
    names = {_loose(feed_title or "")}
    for part in re.split(_SEPARATOR, feed_title or ""):
        names.add(_loose(part))
    names.discard("")
    titles = [unicodedata.normalize("NFKC", t).strip() for t in titles if t]
    counts: dict[str, Counter] = {"prefix": Counter(), "suffix": Counter()}
    for title in set(titles):
        for position in counts:
            split = split_affix(title, position)
            if split:
                counts[position][title_shape(split[0])] += 1
    needed = max(2, int(MIN_DECORATION_SHARE * len(set(titles))))
    recurring = {p: frozenset(s for s, n in c.items() if n >= needed and s) for p, c in counts.items()}
    return Decorations(recurring["prefix"], recurring["suffix"], frozenset(names))


_ARTICLES = {"the", "a", "an", "le", "la", "les", "der", "die", "das", "el", "il", "o", "de"}


def _loose(text: str) -> str:
    return " ".join(w for w in fold(text).split() if w not in _ARTICLES)


# Words that make a title a series label rather than a story ("Weekly roundup", "Episode 12").
GENERIC_WORDS = frozenset("""
weekly daily monthly yearly annual roundup round up links link open thread threads podcast episode ep
show news update updates live digest newsletter briefing brief morning afternoon evening night edition
issue vol volume part chapter week day month year today tonight weekend review recap notes note
thoughts random misc miscellany miscellaneous mailbag q qa ama announcement announcements release
released new post posts blog untitled photo photos picture pictures video videos quote quotes reading
list top best highlights headlines bulletin report column special feature minisode bonus chat
interview interviews discussion quick short takes stuff things odds ends bits pieces reader readers
mail fun good reads read worth interesting assorted various latest recent roundtable catchup catch
welcome hello introduction intro preview teaser trailer sneak peek summary wrap wrapup friday monday tuesday wednesday thursday saturday sunday january
february march april may june july august september october november december jan feb mar apr jun
jul aug sep sept oct nov dec
""".split())


def is_generic_title(key: str, recurring_titles: frozenset[str] = frozenset()) -> bool:
    """A title that cannot say which story an item is: only generic words, dates and numbers
    ("Weekly roundup", "Podcast episode 12", "2008-11-11"), or one this source gives several items
    ("Daily forecast for London"). A recurring series name with a number that changes
    ("Giant Bombcast 512") still names one episode."""
    content = [w for w in key.split() if w not in GENERIC_WORDS and w not in STOPWORDS and not w.isdigit()]
    return not content or key in recurring_titles


def title_words(key: str) -> frozenset[str]:
    """The words of a folded title that carry its meaning."""
    return frozenset(w for w in key.split() if w not in STOPWORDS)


def title_similarity(one: str, two: str) -> float:
    """Jaccard similarity of two folded titles' meaningful words."""
    a, b = title_words(one), title_words(two)
    return len(a & b) / len(a | b) if a and b else 0.0
