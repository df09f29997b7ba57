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
    """judge's verdict on the pair, with every score and a line per rule."""
    evidence = match.judge(new, old)
    s = match.scores(new, old)
    checks = tuple(RuleCheck(rule, evidence is not None and evidence.rule == rule,
                             evidence.reason if evidence is not None and evidence.rule == rule
                             else _why_not(rule, new, old, s)) for rule in match.RULES)
    return Comparison(s, evidence, checks)


def _why_not(rule: str, new: Copy, old: Copy, s: dict) -> str:
    words, core = s["words"], s["core_words"]
    similar = s["title_similarity"] >= match.SIMILAR_TITLE
    title = (f"title similarity {s['title_similarity']} {'≥' if similar else '<'} {match.SIMILAR_TITLE}")
    if rule == match.RULES[0]:
        if not new.canonical_link or not old.canonical_link:
            return "a copy has no link that identifies one page"
        return "the links differ" if new.canonical_link != old.canonical_link else "the link names several items"
    if rule == match.RULES[1]:
        if not new.content_hash or new.content_hash != old.content_hash:
            return "the normalised texts differ"
        return f"identical text of only {words} words (needs {match.MIN_TEXT_WORDS}) and {title}"
    if _one_site(new, old) and s["jaccard"] < 0.9:
        return f"two pages of one site ({link_host(new.canonical_link)}) merge only on Jaccard ≥ 0.9; it is {s['jaccard']}"
    if rule == match.RULES[2]:
        if words < match.MIN_TEXT_WORDS:
            return f"the shorter text has {words} words: under {match.MIN_TEXT_WORDS}, text alone never merges"
        return f"Jaccard {s['jaccard']} < {match.jaccard_needed(words)} needed over {words} words"
    if rule == match.RULES[3]:
        if core < match.MIN_TEXT_WORDS:
            return f"{core} words compared (needs {match.MIN_TEXT_WORDS})"
        needed = match.containment_needed(core)
        return f"containment {s['containment']} {'≥' if s['containment'] >= needed else '<'} {needed} needed, {title}"
    if rule == match.RULES[4]:
        if not s["same_title"]:
            return "the titles differ" + (" (a generic title never matches)" if s["generic_title"] else "")
        hours = match.CLOSE_DATES.total_seconds() / 3600
        if s["hours_apart"] > hours:
            return f"{s['hours_apart']}h apart (at most {hours:.0f}h)"
        return (f"containment {s['containment']} over {core} words (needs {match.SUPPORT} over at least "
                f"{match.MIN_SUPPORT_WORDS})")
    return "not met"


def _one_site(new: Copy, old: Copy) -> bool:
    return (identifies_page(new.canonical_link) and identifies_page(old.canonical_link)
            and link_host(new.canonical_link) == link_host(old.canonical_link))
