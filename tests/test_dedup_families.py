"""The widened labelled set (tests/fixtures/dedup/families.jsonl) is what it says it is.

A check of the data, not of deduplication: every family is big enough, both
halves are there and never share an article, a "distinct" pair really is two
stories (apart from the passage some kinds share on purpose), a "duplicate"
pair really carries one. It reads only the fixture files, never the aggregator.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "dedup"
sys.path.insert(0, str(FIXTURES))

import families_corpus as fc  # noqa: E402  (its text measures only; nothing here parses a feed)

SET = FIXTURES / "families.jsonl"
POSITIVE = {"typography-noise", "markup-split-words", "edited-wire-copy", "summary-lede-only", "teaser",
            "amp-digest", "republished-decorated"}
NEGATIVE = {"same-event-independent", "series-template", "shared-stock-lede", "long-quote-follow-up",
            "same-generic-title"}
SHARING = {"shared-stock-lede", "long-quote-follow-up"}  # two stories that share one passage on purpose
MIN_PER_FAMILY = 40


@pytest.fixture(scope="module")
def pairs() -> list[dict]:
    return [json.loads(line) for line in SET.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def sources() -> dict:
    return json.loads(SET.with_suffix(".sources.json").read_text(encoding="utf-8"))


def text_tokens(item: dict) -> list[str]:
    return fc.tokens(item["content"])


def test_every_family_is_big_enough_and_in_both_halves(pairs):
    kinds = Counter(p["kind"] for p in pairs)
    assert set(kinds) == POSITIVE | NEGATIVE, kinds
    for kind, count in kinds.items():
        assert count >= MIN_PER_FAMILY, (kind, count)
        halves = Counter(p["half"] for p in pairs if p["kind"] == kind)
        assert set(halves) == {"tune", "holdout"}, (kind, halves)
        assert min(halves.values()) >= count // 4, (kind, halves)
    for p in pairs:
        assert p["label"] == ("duplicate" if p["kind"] in POSITIVE else "distinct"), p["id"]


def test_records_have_the_pairs_format(pairs, sources):
    assert len({p["id"] for p in pairs}) == len(pairs)
    for p in pairs:
        assert {"id", "label", "kind", "half", "transformations", "articles", "a", "b"} <= set(p), p["id"]
        assert p["half"] in ("tune", "holdout") and p["articles"], p["id"]
        assert p["a"]["source"] != p["b"]["source"], p["id"]
        for side in "ab":
            item = p[side]
            assert set(item) == {"source", "guid", "link", "title", "content", "published"}, (p["id"], side)
            assert item["guid"] and item["link"].startswith(("http://", "https://")) and item["title"], (p["id"], side)
            datetime.strptime(item["published"], "%Y-%m-%dT%H:%M:%SZ")
            source = sources[item["source"]]
            assert source["title"] and item["title"] in source["titles"], (p["id"], side)
        assert (p["a"]["guid"], p["a"]["link"]) != (p["b"]["guid"], p["b"]["link"]), p["id"]


def test_no_article_serves_both_halves(pairs):
    halves = defaultdict(set)
    for p in pairs:
        for article in p["articles"]:
            halves[article].add(p["half"])
    assert not [a for a, h in halves.items() if len(h) > 1]


def test_no_text_serves_both_halves(pairs):
    """Not by name either: a holdout text is never largely found among the tune half's texts."""
    tune: set = set()
    for p in pairs:
        if p["half"] == "tune":
            for side in "ab":
                tune |= fc.shingles(text_tokens(p[side]), 8)
    leaks = []
    for p in pairs:
        if p["half"] != "holdout":
            continue
        for side in "ab":
            grams = fc.shingles(text_tokens(p[side]), 8)
            if len(grams) >= 20 and len(grams & tune) / len(grams) >= 0.5:
                leaks.append((p["id"], side, round(len(grams & tune) / len(grams), 2)))
    assert not leaks, leaks


def test_distinct_pairs_are_two_stories(pairs):
    for p in pairs:
        if p["label"] != "distinct":
            continue
        one, two = text_tokens(p["a"]), text_tokens(p["b"])
        if p["kind"] in SHARING:
            # `shared`: the passage, and its lightly edited form when one side edited it.
            assert p.get("shared"), p["id"]
            assert all(len(fc.tokens(passage, is_html=False)) >= 20 for passage in p["shared"]), p["id"]
            for name, words in (("a", one), ("b", two)):
                assert any(len(fc.without(words, passage)) < len(words) for passage in p["shared"]), \
                    (p["id"], name, "the shared passage is missing")
            for passage in p["shared"]:
                one, two = fc.without(one, passage), fc.without(two, passage)
            assert min(len(one), len(two)) >= 20, (p["id"], "nothing of their own besides the shared passage")
        else:
            assert not p.get("shared"), p["id"]
        assert fc.overlap(one, two) < 0.3, (p["id"], p["kind"], round(fc.overlap(one, two), 2))
        titles = fc.folded_title(p["a"]["title"]), fc.folded_title(p["b"]["title"])
        if p["kind"] == "same-generic-title":
            assert titles[0] == titles[1], p["id"]
        else:
            assert titles[0] != titles[1], (p["id"], titles)
        assert len(set(p["articles"])) >= 2, p["id"]


def test_duplicate_pairs_carry_one_story(pairs):
    for p in pairs:
        if p["label"] != "duplicate":
            continue
        original, copy = text_tokens(p["a"]), text_tokens(p["b"])
        shared = fc.shingles(copy, 3) & fc.shingles(original, 3)
        if "publisher-summary" in p["transformations"] or "teaser-publisher-summary" in p["transformations"]:
            # The publisher's own summary may be written afresh: then the title carries the story.
            one, two = set(fc.folded_title(p["a"]["title"]).split()), set(fc.folded_title(p["b"]["title"]).split())
            assert len(shared) >= 0.3 * len(fc.shingles(copy, 3)) or len(one & two) >= 0.5 * len(one), p["id"]
        else:
            assert len(shared) >= 0.3 * len(fc.shingles(copy, 3)), (p["id"], p["kind"])
        if p["kind"] == "teaser":
            assert 14 <= len(copy) <= 30, (p["id"], len(copy))
        if p["kind"] == "amp-digest":
            assert "amp" in p["b"]["link"].lower(), p["id"]
        if p["kind"] in ("typography-noise", "markup-split-words"):
            assert p["transformations"], p["id"]


def test_each_typography_and_markup_edit_appears_alone_in_each_half(pairs):
    for kind, edits in (("typography-noise", ["soft-hyphens", "nbsp", "thin-spaces", "zero-width", "quotes",
                                              "dashes", "ligatures"]),
                        ("markup-split-words", ["bold-first-letter", "autolink-stem", "emphasis-prefix",
                                                "wbr-breaks", "print-hyphenation", "footnote-markers", "entity-shy",
                                                "entity-numeric", "entity-named", "double-escaped"])):
        for half in ("tune", "holdout"):
            alone = Counter(next(iter(set(p["transformations"]) & set(edits)), None) for p in pairs
                            if p["kind"] == kind and p["half"] == half and len(set(p["transformations"]) & set(edits)) == 1)
            combined = sum(1 for p in pairs if p["kind"] == kind and p["half"] == half
                           and len(set(p["transformations"]) & set(edits)) >= 2)
            assert all(alone[e] >= 1 for e in edits), (kind, half, alone)
            assert combined >= 5, (kind, half, combined)


def test_the_set_spreads_over_feeds_and_languages(pairs):
    for kind in POSITIVE | NEGATIVE:
        feeds = Counter(p["articles"][0].split(":")[0] for p in pairs if p["kind"] == kind)
        assert len(feeds) >= 10, (kind, feeds)
        assert feeds.most_common(1)[0][1] <= 0.25 * sum(feeds.values()), (kind, feeds.most_common(3))
    languages = {fc.LANGUAGES.get(p["articles"][0].split(":")[0], "en") for p in pairs}
    assert {"en", "de", "pt", "nl", "sk", "zh"} <= languages, languages
