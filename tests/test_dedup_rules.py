"""The dedup rules (aggregator/dedup/rules.py), each on its own, then on real copies from the labelled set.

The real pairs are taken from the tune half of tests/fixtures/dedup/families.jsonl
(real articles of the shared corpus, edited as ORIGIN.md describes), and go
through the real pipeline's steps: RSS bytes -> parse -> sanitise -> new_copy ->
judge.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aggregator.dedup import copies, match, rules
from aggregator.dedup.rules import KeptApart, Pair, Rule, decide
from aggregator.reader.parse import parse_feed
from aggregator.run.prepare import prepare_item

FIXTURES = Path(__file__).parent / "fixtures" / "dedup"
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
WHEN = datetime(2021, 9, 27, 10, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)

LEDE = ("The city council met on Tuesday evening to discuss the annual budget, with members of the public "
        "filling the chamber and several residents speaking during the open comment period before the vote.")
STORY_A = [LEDE, "Councillors approved a plan to repair the old stone bridge over the Wensum river, closed since "
           "the spring floods undermined its piers, at a cost the engineers put at two million pounds.",
           "Work starts in March and the crossing should reopen before the autumn fair, the highways officer said, "
           "adding that a temporary footbridge will carry pedestrians and cyclists in the meantime."]
STORY_B = [LEDE, "The meeting also heard complaints about parking charges at the market square, where traders say "
           "takings have fallen by a third since the evening tariff was introduced last year.",
           "A petition signed by four hundred shoppers asks for free parking after six, and the council promised "
           "to report back in January after a survey of the square's car parks."]


def html(paragraphs: list[str]) -> str:
    return "".join(f"<p>{p}</p>" for p in paragraphs)


def copy(source: str, title: str, text: str, link: str | None = None, when: datetime = WHEN) -> copies.Copy:
    return copies.new_copy(copies.SourceContext(source), title, link, text, when)


def test_the_rules_are_an_enum_in_order_and_match_ranks_by_them():
    assert match.RULES == rules.ORDER == (Rule.SAME_LINK, Rule.SAME_HASH, Rule.NEAR_IDENTICAL, Rule.CONTAINED,
                                          Rule.SAME_TITLE, Rule.TEASER, Rule.EDITED_COPY)


def test_same_link():
    one = copy("a", "Bridge to be repaired", html(STORY_A), "https://a.example/bridge")
    two = copy("b", "Something else entirely", "", "https://a.example/bridge")
    assert rules.same_link(Pair(two, one))
    assert not rules.same_link(Pair(two, one, link_identifies=False))
    assert decide(Pair(two, one)).rule is Rule.SAME_LINK


def test_same_hash_needs_a_long_text_or_similar_titles():
    short = " ".join(LEDE.split()[:30])
    assert rules.same_hash(Pair(copy("b", "Council meets on budget", short), copy("a", "Council meets on budget", short)))
    assert not rules.same_hash(Pair(copy("b", "Parking charges", short), copy("a", "Bridge repair", short)))


def test_one_site_keeps_two_pages_apart():
    one = copy("a", "Bridge to be repaired", html(STORY_A), "https://town.example/news/bridge")
    two = copy("b", "Bridge to be repaired", html(STORY_A[:2] + STORY_B[1:]), "https://town.example/news/parking")
    decision = decide(Pair(two, one))
    assert decision.rule is KeptApart.ONE_SITE and not decision.merged


def test_a_shared_stock_lede_alone_never_merges():
    a = copy("a", "Bridge over the Wensum to be repaired", html(STORY_A))
    b = copy("b", "Traders angry over market parking charges", html(STORY_B[:2]), when=WHEN + 3 * HOUR)
    pair = Pair(b, a)
    assert pair.opening_only
    assert decide(pair).rule is KeptApart.SHARED_OPENING
    assert match.judge(b, a) is None and match.judge(a, b) is None


def test_a_lede_only_summary_under_the_same_title_still_merges():
    a = copy("a", "Bridge over the Wensum to be repaired", html(STORY_A))
    summary = copy("b", "Bridge over the Wensum to be repaired", html(STORY_A[:1]), when=WHEN + 3 * HOUR)
    assert Pair(summary, a).opening_only
    assert match.judge(summary, a) is not None


def test_a_teaser_merges_on_title_dates_and_its_words():
    a = copy("a", "Bridge over the Wensum to be repaired", html(STORY_A))
    teaser = "Councillors approve two million pounds to repair the Wensum bridge, closed by the spring floods."
    b = copy("b", "Bridge over the Wensum to be repaired", teaser, when=WHEN + 5 * HOUR)
    pair = Pair(b, a)
    assert rules.teaser(pair) and decide(pair).rule is Rule.TEASER
    assert pair.record()["words_contained"] >= rules.TEASER_WORDS_CONTAINED


@pytest.mark.parametrize("why, title, text, later", [
    ("another title", "Parking charges anger traders", "Councillors approve two million pounds to repair the "
     "Wensum bridge, closed by the spring floods.", 5),
    ("three days later", "Bridge over the Wensum to be repaired", "Councillors approve two million pounds to "
     "repair the Wensum bridge, closed by the spring floods.", 72),
    ("words of another story", "Bridge over the Wensum to be repaired", "Traders say takings at the market "
     "square fell by a third after the evening parking tariff began.", 5),
    ("too few words", "Bridge over the Wensum to be repaired", "Read on.", 5),
])
def test_a_teaser_needs_all_three(why, title, text, later):
    a = copy("a", "Bridge over the Wensum to be repaired", html(STORY_A))
    assert not rules.teaser(Pair(copy("b", title, text, when=WHEN + later * HOUR), a)), why


def test_a_generic_title_never_carries_a_teaser():
    a = copy("a", "Weekly roundup", html(STORY_A))
    b = copy("b", "Weekly roundup", "Councillors approve two million pounds to repair the Wensum bridge.",
             when=WHEN + HOUR)
    assert match.judge(b, a) is None


def test_every_measure_a_rule_looked_at_is_in_the_record():
    a = copy("a", "Bridge over the Wensum to be repaired", html(STORY_A))
    b = copy("b", "Traders angry over market parking charges", html(STORY_B[:2]), when=WHEN + 3 * HOUR)
    record = decide(Pair(b, a)).scores
    assert record["opening_only"] is True
    assert {"jaccard", "containment", "core_words", "title_similarity", "hours_apart"} <= record.keys()


# --- Real copies from the tune half of the labelled set, through the pipeline's steps. ---

def labelled(pair_id: str) -> tuple[dict, copies.Copy, copies.Copy]:
    sources = json.loads((FIXTURES / "families.sources.json").read_text("utf-8"))
    for line in (FIXTURES / "families.jsonl").open(encoding="utf-8"):
        pair = json.loads(line)
        if pair["id"] == pair_id:
            assert pair["half"] == "tune"  # never a held-out pair
            made = []
            for side in "ab":
                item = pair[side]
                source = sources[item["source"]]
                context = copies.learn_context(item["source"], source["title"], source["titles"],
                                               source.get("links", []))
                made.append(prepare_item(parse_feed(feed(source["title"], item), now=NOW).entries[0], context,
                                         NOW).copy)
            return pair, made[0], made[1]
    raise KeyError(pair_id)


def feed(title: str, item: dict) -> bytes:
    from email.utils import format_datetime
    from xml.sax.saxutils import escape

    published = format_datetime(datetime.fromisoformat(item["published"].replace("Z", "+00:00")), usegmt=True)
    body = item["content"].replace("]]>", "]]]]><![CDATA[>")
    return (f'<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
            f"<title>{escape(title)}</title><item><title>{escape(item['title'])}</title>"
            f"<link>{escape(item['link'])}</link><guid>{escape(item['guid'])}</guid><pubDate>{published}</pubDate>"
            f"<content:encoded><![CDATA[{body}]]></content:encoded></item></channel></rss>").encode("utf-8")


@pytest.mark.parametrize("pair_id, rule", [
    ("f1-0152", Rule.EDITED_COPY),  # retitled, lede rewritten, a paragraph dropped, words edited, both sides
    ("f1-0160", Rule.EDITED_COPY),  # retitled with synonyms, a paragraph dropped, local paragraphs appended
    ("f1-0263", Rule.TEASER),  # the publisher's own 23-word summary: no shingle in common with the article
    ("f1-0278", Rule.TEASER),  # a 14-word summary
    ("f1-0321", Rule.SAME_LINK),  # a digest linking the article's AMP page (/amp), tracking parameters on it
    ("f1-0336", Rule.SAME_LINK),  # ... Google's AMP viewer
    ("f1-0001", Rule.NEAR_IDENTICAL),  # soft hyphens in every long Dutch word
    ("f1-0093", Rule.SAME_HASH),  # print hyphenation, footnote markers, entities escaped twice
])
def test_real_copies_merge_by_the_rule_made_for_them(pair_id, rule):
    pair, original, edited = labelled(pair_id)
    assert pair["label"] == "duplicate"
    evidence = match.judge(edited, original)
    assert evidence is not None and evidence.rule is rule, (evidence, match.scores(edited, original))


@pytest.mark.parametrize("pair_id", ["f1-0579", "f1-0584", "f1-0588", "f1-0592", "f1-0600"])
def test_real_stories_sharing_a_stock_lede_stay_apart(pair_id):
    pair, one, two = labelled(pair_id)
    assert pair["kind"] == "shared-stock-lede"
    assert match.judge(two, one) is None and match.judge(one, two) is None
    assert decide(Pair(two, one)).rule is KeptApart.SHARED_OPENING


@pytest.mark.parametrize("pair_id", ["f1-0648", "f1-0643", "f1-0449", "f1-0527"])
def test_real_hard_negatives_near_the_edited_copy_rule_stay_apart(pair_id):
    pair, one, two = labelled(pair_id)
    assert pair["label"] == "distinct"
    assert match.judge(two, one) is None and match.judge(one, two) is None


def test_one_title_but_for_its_numbers_is_two_stories_of_one_template():
    """Two posts of one template (a tester's pair from the corpus: feedburner.atom's "AdWords API v201509
    sunset reminder" and its v201506 twin, 97% of their paragraphs alike): kept apart, whatever the text."""
    body = html(STORY_A + STORY_B[1:])
    one = copy("a", "AdWords API v201509 sunset reminder", body)
    two = copy("b", "AdWords API v201506 sunset reminder", body.replace("two million", "three million"),
               when=WHEN + 24 * HOUR)
    assert decide(Pair(two, one)).rule is KeptApart.OTHER_NUMBERS
    persian = [copy(s, f"گزارش روز {n} از نمایشگاه", body.replace("two", word), when=WHEN + h * HOUR)
               for s, n, word, h in (("a", "۱۲", "two", 0), ("b", "13", "three", 24))]
    assert decide(Pair(*persian)).rule is KeptApart.OTHER_NUMBERS  # Persian digits read as numbers
    same = copy("b", "AdWords API v201509 sunset reminder – Dev digest", body, when=WHEN + HOUR)
    assert decide(Pair(same, one)).merged  # the same numbers: a copy
    dated = copy("b", "AdWords API sunset reminder", body, when=WHEN + HOUR)
    assert decide(Pair(dated, one)).merged  # one title without numbers: no template to tell


def test_a_correction_notice_is_not_its_article_but_a_corrected_copy_is():
    article = copy("a", "Bridge over the Wensum to be repaired", html(STORY_A))
    notice = copy("b", "Correction: Bridge over the Wensum to be repaired",
                  html(["An earlier version of this story about the bridge over the Wensum misstated the cost "
                        "the engineers put on the repair of its piers."]), when=WHEN + 16 * HOUR)
    assert decide(Pair(notice, article)).rule is KeptApart.CORRECTION
    corrected = copy("b", "CORRECTED - Bridge over the Wensum to be repaired", html(STORY_A), when=WHEN + 2 * HOUR)
    assert decide(Pair(corrected, article)).merged  # a corrected wire copy, as long: the same story
