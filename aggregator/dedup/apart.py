"""Why two copies are not one story: each rule of `rules` on its own, and the figures it fell short on.

`explain A --against B` asks this of two stored copies that were not
merged. Every rule is tried by itself on the same measures `rules.decide`
uses (a stronger rule met does not hide a weaker one's figures), and a
refusal that stops the text rules is named. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import rules
from .copies import Copy
from .match import Evidence, judge
from .rules import KeptApart, Pair, Rule


@dataclass(frozen=True)
class RuleCheck:
    """One rule, for one pair of copies: whether it holds, and why (not)."""

    rule: Rule | KeptApart
    met: bool
    why: str


@dataclass(frozen=True)
class Comparison:
    """Every measure between two copies, the evidence that merges them (None: nothing does), each merging
    rule's check in the order they are tried, and the refusal that keeps them apart, if one does."""

    scores: dict
    evidence: Evidence | None
    checks: tuple[RuleCheck, ...]
    refusal: RuleCheck | None


def compare(new: Copy, old: Copy) -> Comparison:
    """The verdict on the pair, with every measure and, for each rule on its own, whether it holds and why."""
    pair = Pair(new, old)
    checks = []
    for rule, holds in rules.BEFORE_REFUSALS + rules.TEXT_RULES:
        reason = holds(pair)
        checks.append(RuleCheck(rule, reason is not None, reason or _SHORTFALL[rule](pair)))
    refusal = next((RuleCheck(rule, True, reason) for rule, holds in rules.REFUSALS if (reason := holds(pair))), None)
    return Comparison(pair.record(), judge(new, old), tuple(checks), refusal)


def _vs(value: float, needed: float) -> str:
    return f"{round(value, 2)} {'≥' if value >= needed else '<'} {needed}"


def _same_link(p: Pair) -> str:
    if not p.new.canonical_link or not p.old.canonical_link:
        return "a copy has no link that identifies one page"
    return "the links differ"


def _same_hash(p: Pair) -> str:
    if not p.new.content_hash or p.new.content_hash != p.old.content_hash:
        return "the normalised texts differ"
    return (f"identical text of {p.short.words} words: needs {rules.MIN_TEXT_WORDS} words, or title similarity "
            f"{_vs(p.title_similarity, rules.SIMILAR_TITLE)}")


def _near_identical(p: Pair) -> str:
    if p.short.words < rules.MIN_TEXT_WORDS:
        return f"the shorter text has {p.short.words} words: under {rules.MIN_TEXT_WORDS}, text alone never merges"
    return f"Jaccard {_vs(p.jaccard, rules.jaccard_needed(p.short.words))} needed over {p.short.words} words"


def _contained(p: Pair) -> str:
    share, core = p.core
    if core < rules.MIN_TEXT_WORDS:
        return f"{core} words compared (needs {rules.MIN_TEXT_WORDS})"
    return (f"containment {_vs(share, rules.containment_needed(core))} needed over {core} words, "
            f"title similarity {_vs(p.title_similarity, rules.SIMILAR_TITLE)}")


def _same_title(p: Pair) -> str:
    if p.same_title is None:
        return "the titles differ" + (" (a generic title never matches)" if p.new.generic_title or p.old.generic_title else "")
    hours = rules.CLOSE_DATES.total_seconds() / 3600
    share, core = p.core
    return (f"{p.hours_apart}h apart (at most {hours:.0f}h); containment {_vs(share, rules.SUPPORT)} over {core} "
            f"words (at least {rules.MIN_SUPPORT_WORDS})")


def _teaser(p: Pair) -> str:
    if not 0 < p.short.words <= rules.TEASER_MAX_WORDS:
        return f"the shorter text has {p.short.words} words: a teaser has at most {rules.TEASER_MAX_WORDS}"
    hours = rules.TEASER_DATES.total_seconds() / 3600
    return (f"{p.hours_apart}h apart (at most {hours:.0f}h), title similarity "
            f"{_vs(p.title_similarity, rules.TEASER_TITLE)} or the same title, meaningful words contained "
            f"{_vs(p.words_contained, rules.TEASER_WORDS_CONTAINED)}")


def _edited_copy(p: Pair) -> str:
    short, long = p.short.words, p.long.words
    if short < rules.EDITED_MIN_WORDS or short < rules.EDITED_LENGTH_RATIO * long:
        return (f"texts of {short} and {long} words: needs at least {rules.EDITED_MIN_WORDS}, the shorter at least "
                f"{rules.EDITED_LENGTH_RATIO:.0%} of the longer")
    found_short, found_long = p.paragraphs_found
    return (f"containment {_vs(p.core[0], rules.EDITED_CONTAINMENT)}, paragraphs found "
            f"{_vs(found_short, rules.EDITED_SHORT_PARAGRAPHS)} and {_vs(found_long, rules.EDITED_LONG_PARAGRAPHS)}, "
            f"meaningful words {_vs(p.words_contained, rules.EDITED_WORDS)}, title similarity "
            f"{_vs(p.title_similarity, rules.EDITED_TITLE)} or Jaccard {_vs(p.jaccard, rules.EDITED_JACCARD)}, "
            f"{p.hours_apart}h apart")


_SHORTFALL = {Rule.SAME_LINK: _same_link, Rule.SAME_HASH: _same_hash, Rule.NEAR_IDENTICAL: _near_identical,
              Rule.CONTAINED: _contained, Rule.SAME_TITLE: _same_title, Rule.TEASER: _teaser,
              Rule.EDITED_COPY: _edited_copy}
