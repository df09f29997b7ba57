"""identity: the canonical forms of links, titles and texts that deduplication compares."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.dedup import links, text, titles, tokens
from aggregator.dedup.links import canonical_link
from aggregator.dedup.titles import Decorations, learn_decorations, normalised_title


@pytest.mark.parametrize("url, expected", [
    ("https://www.Example.COM/a/b/", "example.com/a/b"),
    ("http://example.com/a/b", "example.com/a/b"),
    ("https://example.com:443/a/b#comments", "example.com/a/b"),
    ("http://example.com:80/a//b", "example.com/a/b"),
    ("https://example.com:8443/a", "example.com:8443/a"),
    ("https://example.com/a?utm_source=rss&utm_medium=feed&fbclid=x&gclid=y&mc_cid=1&ref=home", "example.com/a"),
    ("https://example.com/a?b=2&a=1&utm_campaign=z", "example.com/a?a=1&b=2"),
    ("https://example.com/article.php?id=12&p=3", "example.com/article.php?id=12&p=3"),
    ("https://www.google.com/url?q=https://news.example/x?id%3D3&sa=D", "news.example/x?id=3"),
    ("https://example.com", "example.com/"),
    ("mailto:someone@example.com", "mailto:someone@example.com"),
    ("", None),
    (None, None),
])
def test_canonical_link_folds_what_outlets_vary(url, expected):
    assert canonical_link(url) == expected


def test_a_home_page_does_not_identify_a_story():
    assert not links.identifies_page(canonical_link("https://www.example.com/"))
    assert not links.identifies_page(canonical_link("https://example.com/?utm_source=rss"))
    assert links.identifies_page(canonical_link("https://example.com/2021/09/story"))
    assert not links.identifies_page(None)


def test_decorations_are_learnt_from_the_feed_title_and_recurring_affixes():
    titles = ["Storm hits the coast | World Press Digest", "Markets rally on jobs data - Reuters",
              "Court rules on merger - Reuters", "Opinion | Why the vote matters", "Opinion | Rates will fall"]
    decorations = learn_decorations("World Press Digest", titles)
    assert normalised_title("Storm hits the coast | World Press Digest", decorations) == "storm hits the coast"
    assert normalised_title("[World Press Digest] Storm hits the coast", decorations) == "storm hits the coast"
    assert normalised_title("Markets rally on jobs data - Reuters", decorations) == "markets rally on jobs data"
    assert normalised_title("Opinion | Why the vote matters", decorations) == "why the vote matters"
    # a colon that is part of one title is not a decoration
    assert normalised_title("Brexit: what comes next", decorations) == "brexit what comes next"


def test_decorations_with_numbers_are_learnt_by_shape():
    titles = ["Giant Bombcast 512: Call of Tuesday", "Giant Bombcast 513: Easy Chicken", "Giant Bombcast 514: Uncle"]
    decorations = learn_decorations("Giant Bombcast", titles)
    assert normalised_title("Giant Bombcast 515: School Meat", decorations) == "school meat"


def test_a_title_is_never_stripped_to_nothing():
    decorations = Decorations(suffixes=frozenset({"reuters"}), names=frozenset({"reuters"}))
    assert normalised_title("Reuters", decorations) == "reuters"
    assert normalised_title("", decorations) == ""


def test_normalised_title_folds_case_punctuation_and_unicode():
    assert normalised_title("  Ｔhe “Big”   Story’s END!  ") == "the big story s end"


def test_title_keys_also_offer_the_title_without_unlearnt_affixes():
    keys = titles.title_keys("One Foot Tsunami: Watch: Pretty Damned Good")
    assert keys[0] == "one foot tsunami watch pretty damned good"
    assert "pretty damned good" in keys
    keys = titles.title_keys("Off beat courses (via Varthabharathi : Kanrnataka's Leading Kannada News Portal)")
    assert "off beat courses" in keys
    keys = titles.title_keys("Karnataka Bank bags MSME banking excellence awards - Daily : Leading News")
    assert "karnataka bank bags msme banking excellence awards" in keys


@pytest.mark.parametrize("title, generic", [
    ("Weekly roundup", True), ("Open thread", True), ("Podcast episode 12", True), ("2008-11-11", True),
    ("Links for Friday", True), ("Newsletter #12", True), ("Live updates", True),
    ("Bye", False), ("Apple earnings beat expectations", False), ("Giant Bombcast 512", False),
])
def test_generic_titles(title, generic):
    assert titles.is_generic_title(normalised_title(title)) is generic


def test_a_title_the_source_reuses_is_generic():
    assert titles.is_generic_title("daily forecast for london", frozenset({"daily forecast for london"}))


ARTICLE = ("<p>Researchers working deep in the Amazon rainforest have identified a previously unknown species of "
           "tree frog, according to a study published on Monday.</p><p>The frog is about two centimetres long and "
           "has bright orange markings and a distinctive call.</p>")


@pytest.mark.parametrize("boilerplate", [
    "<p>Originally published by Alpha News on 27 September 2021.</p>",
    "<p>This article was originally published on The Conversation. Read the original article.</p>",
    "<p>The post Scientists find a frog appeared first on Alpha News.</p>",
    "<p>This story first appeared in Alpha and is republished here under a Creative Commons license.</p>",
    "<p>Republished with permission from Alpha News.</p>",
    "<p>Source: Alpha News</p>",
    "<p><a href='x'>Read more »</a></p>",
    "<p>To read this article in full, please click here</p>",
])
def test_boilerplate_paragraphs_are_not_part_of_the_text(boilerplate):
    plain = text.normalised_text(ARTICLE)
    assert text.normalised_text(boilerplate + ARTICLE) == plain
    assert text.normalised_text(ARTICLE + boilerplate) == plain


def test_paragraphs_that_merely_mention_publication_stay():
    article = ("<p>The report, originally published in 2019, found that many people were affected by the changes "
            "in policy.</p><p>Image attribution: Creative Commons. Retrieved from the archive, this photograph of "
            "the old harbour shows the boats, the cranes, the warehouses and the people who worked there for many "
            "years before the port closed and the workers left for the new container terminal in the south.</p>")
    assert "originally published in 2019" in text.normalised_text(article)
    assert "image attribution" in text.normalised_text(article)


def test_summary_endings_are_removed():
    assert text.text_blocks("<p>The frog was found near the river… <a>Continue reading →</a></p>") == [
        "The frog was found near the river"]
    assert text.text_blocks("<p>The frog was found near the river [...]</p>") == ["The frog was found near the river"]


def test_markup_changes_give_the_same_text_and_hash():
    versions = [
        ARTICLE,
        ARTICLE.replace("</p><p>", "<br><br>").replace("<p>", "").replace("</p>", ""),
        "<div class='x'><span>" + ARTICLE.replace("<p>", "").replace("</p>", "</span></div><div><span>") + "</div>",
        ARTICLE.replace("about", "<em>about</em>").replace("tree frog", "tree&nbsp;frog"),
    ]
    texts = {text.normalised_text(v) for v in versions}
    assert len(texts) == 1
    assert len({text.content_hash(t) for t in texts}) == 1
    assert text.content_hash(texts.pop()) is not None


@pytest.mark.parametrize("html", [
    ARTICLE,
    "<p>It’s “quoted” — and… done.</p><p>Ünïcödé Straße ǅemal ﬁne ① ½ ＡＢＣ x_y</p>",
    "<p>cafe\u0301 and Cafe\u0301s</p><p>한국어 \u1100\u1161\u11a8 text</p>",
    "<p>東京タワー is tall, 中文abc ｶﾀｶﾅ</p><p>emoji \U0001f600 here</p>",
])
def test_words_are_found_in_all_paragraphs_as_in_each(html):
    """However the words are found, they are what the tokeniser finds in each folded paragraph."""
    per_paragraph = [tokens._TOKEN.findall(unicodedata.normalize("NFKC", block).casefold())
                     for block in text.text_blocks(html)]
    assert text.block_tokens(html) == [words for words in per_paragraph if words]


_EMOJI_COMPANY = ["Wait", "what", " ", "É", "e", "\u0301", "\u200d", "\ufe0f", "\U0001f600", "\U0001f3fb", "\U0001f1e9",
                  "\U0001f1ea", "\U0001f44b", "\U0001f130", "\U0001f100", "\U0001d400", "\U00020000", "\U000e0067",
                  "\U0001f9d1", "\U0001faf6", "①", "ﬁ", "-", "_", "9", "\u0645\u06cc", "東"]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_EMOJI_COMPANY), max_size=10).map("".join).filter(str.strip), min_size=1,
                max_size=3))
def test_emoji_are_spaces_to_the_table_as_to_the_tokeniser(blocks):
    """A text with emoji (and other pictographs past the BMP) is split by table as by regex; one with another
    character past the BMP, or a CJK one, is left to the regex."""
    per_block = [tokens._words(block) for block in blocks]
    found = tokens._block_words(blocks)
    assert found is None or found == per_block
    pictographs = tokens._pictographs()
    if not any(c in "".join(blocks) for c in "\U0001f130\U0001f100\U0001d400\U00020000東"):
        assert found == per_block
    assert pictographs.match("\U0001f600") and not pictographs.match("\U0001f130")  # squared A: NFKC makes "a"


def test_characters_nfkc_makes_spaces_of_are_spaces_without_it():
    """An ellipsis, a no-break space, …: the table reads them as the spaces NFKC would make, in any company."""
    unfolded, _ = tokens._spacing()
    spaced = [chr(unit) for unit in range(0x3000)
              if unfolded[unit] == ord(" ") and unicodedata.normalize("NFKC", chr(unit)) != chr(unit)]
    assert "…" in spaced and "\u00a0" in spaced
    for char in spaced:
        block = f"Wait{char}what{char}{char}É9{char}x _{char}"
        assert unfolded[[ord(c) for c in block]].all()  # no NFKC: the table alone finds the words
        expected = tokens._TOKEN.findall(unicodedata.normalize("NFKC", block).casefold())
        assert tokens._block_words([block, char]) == [expected, []], repr(char)


@pytest.mark.parametrize("boilerplate", [
    "<p>This article was originally published on The Conversation’s site.</p>",
    "<p>Source: Alpha News — 東京</p>",
    "<p>Credit: Ünïcödé Press</p>",
])
def test_boilerplate_is_found_in_text_with_any_characters(boilerplate):
    assert text.normalised_text(boilerplate + ARTICLE) == text.normalised_text(ARTICLE)


def test_block_words_do_not_run_together():
    assert text.normalised_text("<ul><li>one</li><li>two</li></ul><p>three</p>") == "one two three"


def test_short_texts_have_no_content_hash():
    assert text.content_hash("a few words only") is None
