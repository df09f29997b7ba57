"""Why two copies are not one story: each rule of `match.judge` and the threshold it missed.

`explain A --against B` asks this of two stored copies that were not
merged. It reads the same scores `judge` decides on (`match.scores`) and
says, rule by rule in judge's order, what was met and what fell short. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import match
from .copies import Copy
from .links import identifies_page, link_host


@dataclass(frozen=True)
class RuleCheck:
    """One rule of judge, for one pair of copies: whether it holds, and why (not)."""

    rule: str
    met: bool
    why: str


@dataclass(frozen=True)
class Comparison:
    """Every score between two copies, the rule that merges them (None: none does), and each rule's check."""

    scores: dict
    evidence: match.Evidence | None
    checks: tuple[RuleCheck, ...]


def compare(new: Copy, old: Copy) -> Comparison:
    """judge's verdict on the pair, with every score and, for each rule on its own, whether it holds and why."""
    evidence = match.judge(new, old)
    s = match.scores(new, old)
    checks = []
    for rule in match.RULES:
        if evidence is not None and evidence.rule == rule:
            checks.append(RuleCheck(rule, True, evidence.reason))
        else:
            checks.append(RuleCheck(rule, *_check(rule, new, old, s)))
    return Comparison(s, evidence, tuple(checks))


def _check(rule: str, new: Copy, old: Copy, s: dict) -> tuple[bool, str]:
    """Whether one rule's own conditions hold (judge applies the strongest that does), and the figures."""
    words, core = s["words"], s["core_words"]
    similar = s["title_similarity"] >= match.SIMILAR_TITLE
    title = f"title similarity {s['title_similarity']} {'≥' if similar else '<'} {match.SIMILAR_TITLE}"
    if rule == match.RULES[0]:
        if not new.canonical_link or not old.canonical_link:
            return False, "a copy has no link that identifies one page"
        same = new.canonical_link == old.canonical_link
        return same, "the same link, but it names several items" if same else "the links differ"
    if rule == match.RULES[1]:
        if not new.content_hash or new.content_hash != old.content_hash:
            return False, "the normalised texts differ"
        long_enough = words >= match.MIN_TEXT_WORDS or similar
        return long_enough, f"identical text of {words} words (needs {match.MIN_TEXT_WORDS}, or {title})"
    if _one_site(new, old) and s["jaccard"] < 0.9:
        return False, (f"two pages of one site ({link_host(new.canonical_link)}) merge only on Jaccard ≥ 0.9; "
                       f"it is {s['jaccard']}")
    if rule == match.RULES[2]:
        if words < match.MIN_TEXT_WORDS:
            return False, f"the shorter text has {words} words: under {match.MIN_TEXT_WORDS}, text alone never merges"
        needed = match.jaccard_needed(words)
        return s["jaccard"] >= needed, f"Jaccard {s['jaccard']} {_cmp(s['jaccard'], needed)} needed over {words} words"
    if rule == match.RULES[3]:
        if core < match.MIN_TEXT_WORDS:
            return False, f"{core} words compared (needs {match.MIN_TEXT_WORDS})"
        needed = match.containment_needed(core)
        return (s["containment"] >= needed and similar,
                f"containment {s['containment']} {_cmp(s['containment'], needed)} needed, {title}")
    if rule == match.RULES[4]:
        if not s["same_title"]:
            return False, "the titles differ" + (" (a generic title never matches)" if s["generic_title"] else "")
        hours = match.CLOSE_DATES.total_seconds() / 3600
        if s["hours_apart"] > hours:
            return False, f"{s['hours_apart']}h apart (at most {hours:.0f}h)"
        met = core >= match.MIN_SUPPORT_WORDS and s["containment"] >= match.SUPPORT
        return met, (f"containment {s['containment']} over {core} words (needs {match.SUPPORT} over at least "
                     f"{match.MIN_SUPPORT_WORDS})")
    return False, "not met"


def _cmp(value: float, needed: float) -> str:
    return f"{'≥' if value >= needed else '<'} {needed}"


def _one_site(new: Copy, old: Copy) -> bool:
    return (identifies_page(new.canonical_link) and identifies_page(old.canonical_link)
            and link_host(new.canonical_link) == link_host(old.canonical_link))
