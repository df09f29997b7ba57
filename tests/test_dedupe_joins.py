"""match() reports every story a new copy matches, and which may be joined; apart.compare says why two are not.

Pure: copies made in memory, no store (the CLI side is test_dedupe_order.py
and test_dedupe_corrections.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from threecopies import OTHER, PARAGRAPHS

from aggregator.dedup import apart, rules
from aggregator.dedup.copies import SourceContext, new_copy
from aggregator.dedup.match import Candidates, Lookup, match, surviving_story

WHEN = datetime(2021, 9, 27, 8, tzinfo=timezone.utc)
WINDOW = 14 * 86400
TEXT = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)


def copy(source: str, title: str, link: str, html: str, hours: float = 0, item_id=None, story_id=None):
    made = new_copy(SourceContext(source), title, link, html, WHEN + timedelta(hours=hours))
    return replace(made, item_id=item_id, story_id=story_id)


def stored() -> dict:
    """Two stories: the original (story 1) and a digest linking its permalink (story 2), which share nothing."""
    return {
        10: copy("news", "Dockworkers' strike spreads", "https://news.example/archives/4711", TEXT, 0, 10, 1),
        20: copy("digest", "Today's pick: ports shut", "https://news.example/2021/09/27/strike?utm_source=x",
                 "<p>" + " ".join(PARAGRAPHS[0].split()[:30]) + "</p>", 1, 20, 2),
    }


def judged(new, candidates: Candidates):
    return match([new], WINDOW, Lookup(), [set(candidates.copies)], candidates)[0]


def test_a_copy_matching_two_stories_reports_both():
    copies = stored()
    tie = copy("repub", "Strike at the docks widens", "https://news.example/2021/09/27/strike", TEXT, 2)
    found = judged(tie, Candidates(copies, set(), {1: WHEN, 2: WHEN + timedelta(hours=1)},
                                   {1: frozenset({"news"}), 2: frozenset({"digest"})}))
    assert {found.story_id, *(j.story_id for j in found.joins)} == {1, 2}
    assert found.story_id == 2 and found.details["rule"] == "same canonical link"  # the strongest evidence first
    assert found.joins[0].matched_item == 10


def test_stories_sharing_a_source_or_kept_apart_are_not_joined():
    copies = stored()
    tie = copy("repub", "Strike at the docks widens", "https://news.example/2021/09/27/strike", TEXT, 2)
    first = {1: WHEN, 2: WHEN + timedelta(hours=1)}
    shared = judged(tie, Candidates(copies, set(), first, {1: frozenset({"news", "x"}), 2: frozenset({"digest", "x"})}))
    assert shared.joins == ()
    apart_ = judged(tie, Candidates(copies, set(), first, {1: frozenset({"news"}), 2: frozenset({"digest"})},
                                    frozenset({frozenset({1, 2})})))
    assert apart_.joins == () and apart_.story_id == 2


def test_the_story_with_the_earliest_published_copy_survives():
    assert surviving_story({1: (WHEN, "2021-09-28T00:00:00Z"), 2: (WHEN - timedelta(hours=1),
                                                                  "2021-09-29T00:00:00Z")}) == 2
    assert surviving_story({3: (WHEN, "2021-09-28T00:00:00Z"), 2: (WHEN, "2021-09-28T00:00:00Z")}) == 2
    assert surviving_story({3: (WHEN, "2021-09-27T00:00:00Z"), 2: (WHEN, "2021-09-28T00:00:00Z")}) == 3


def test_compare_names_every_rule_and_the_one_that_decides():
    one = copy("news", "Dockworkers' strike spreads", "https://news.example/a", TEXT)
    same = apart.compare(copy("mirror", "Ports strike widens", "https://mirror.example/b", TEXT, 1), one)
    assert same.evidence is not None and [c.rule for c in same.checks] == list(rules.ORDER)
    assert next(c for c in same.checks if c.met).rule == same.evidence.rule
    other = apart.compare(copy("mirror", "Cycling plan approved", "https://mirror.example/c",
                               "".join(f"<p>{p}</p>" for p in OTHER), 1), one)
    assert other.evidence is None and not any(c.met for c in other.checks)
    assert {"jaccard", "containment", "title_similarity", "hours_apart"} <= other.scores.keys()
    assert "the links differ" in other.checks[0].why and other.checks[2].why.startswith("Jaccard 0.0 < ")


def test_compare_names_the_refusal_that_stops_a_rule_met_on_its_own():
    """Two pages of one site whose texts are alike but not near-identical: a text rule holds by itself, and the
    one-site refusal is what keeps them apart."""
    one = copy("news", "Dockworkers' strike spreads", "https://news.example/a", TEXT)
    trimmed = "".join(f"<p>{p}</p>" for p in PARAGRAPHS[:-1]) + "".join(f"<p>{p}</p>" for p in OTHER[:1])
    found = apart.compare(copy("desk", "Dockworkers' strike spreads", "https://news.example/b", trimmed, 1), one)
    assert found.evidence is None and any(c.met for c in found.checks)
    assert found.refusal is not None and found.refusal.rule == rules.KeptApart.ONE_SITE
