"""The lxml fast path gives exactly what feedparser gives, on every document it accepts."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from aggregator.reader import fastparse
from aggregator.errors import ParseError
from aggregator.reader.parse import parse_feed
from conftest import FIXTURES, ROOT

NOW = datetime(2026, 11, 30, tzinfo=timezone.utc)
FEEDS = sorted(p for p in (FIXTURES / "corpus").rglob("*") if p.suffix in (".xml", ".rss", ".atom", ".rdf"))
FEEDS += sorted((FIXTURES / "feeds").iterdir()) + sorted((FIXTURES / "parse").iterdir())
TAKEN = [p for p in FEEDS if fastparse.read(p.read_bytes(), "application/xml") is not None]


def both(body: bytes, content_type: str = "application/xml"):
    headers = {"content-type": content_type}
    try:
        reference = parse_feed(body, headers, url="https://example.org/feed", now=NOW, fast=False)
    except ParseError:
        reference = "ParseError"
    return reference, parse_feed(body, headers, url="https://example.org/feed", now=NOW)


@pytest.mark.parametrize("path", TAKEN, ids=[str(p.relative_to(FIXTURES)) for p in TAKEN])
def test_same_result_as_feedparser(path):
    reference, fast = both(path.read_bytes())
    assert fast.info == reference.info
    assert fast.entries == reference.entries


def test_fast_path_takes_the_common_real_feeds():
    assert len([p for p in TAKEN if "real" in p.parts]) >= 15


def test_generated_benchmark_feeds_take_the_fast_path_and_agree():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from feeds import FeedSet

    feeds = FeedSet(4, seed=3, items=8, item_bytes=1500)
    for body in feeds.bodies:
        assert fastparse.read(body, "application/xml") is not None
        reference, fast = both(body)
        assert fast == reference


def test_the_fixtures_of_text_types_take_the_fast_path():
    """test_same_result_as_feedparser compares the fast path's plain-text titles with feedparser's on these."""
    for name in ("text_constructs_follow_their_type.atom", "rss_titles_as_feedparser_reads_them.rss"):
        assert FIXTURES / "parse" / name in TAKEN, name


def test_the_fixtures_of_enclosures_take_the_fast_path():
    """test_same_result_as_feedparser compares the fast path's enclosures with feedparser's on these."""
    for name in ("enclosures_rss.rss", "enclosures_atom.atom"):
        assert FIXTURES / "parse" / name in TAKEN, name


RSS_TEXTS = ["Tom & Jerry", "Tom &amp; Jerry", "Jerry&#8217;s", "&#x2019;", "A <b>bold</b> move", "<B>Bold</B>",
             "Why <script> tags", "<script>x</script> <b>y</b>", "1 < 2 > 0", "a &bogus; b", "&hellip;",
             "<event-source>x</event-source>", "<h1>x</h1>", "x</p>", "<br/>a &amp; b", "AT&T;", "&#;", ""]


@pytest.mark.parametrize("text", RSS_TEXTS)
def test_an_rss_title_is_guessed_html_as_feedparser_guesses(text):
    from feedparser.mixin import _FeedParserMixin

    from aggregator.reader.sanitize import looks_like_html

    assert looks_like_html(text) == _FeedParserMixin.looks_like_html(text)


def test_the_guess_knows_the_elements_feedparser_knows():
    from feedparser.sanitizer import _HTMLSanitizer

    from aggregator.reader.sanitize import GUESSED_ELEMENTS

    assert GUESSED_ELEMENTS == set(_HTMLSanitizer.acceptable_elements)


@pytest.mark.parametrize("body, content_type", [
    (b'<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><title>t</title></channel></rss>', ""),
    (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "b">]><rss version="2.0"><channel><title>&a;</title></channel></rss>', ""),
    (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>', "text/xml"),
    (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>', "text/html"),
    (b'<?xml version="1.0"?><rss version="0.91"><channel><title>t</title></channel></rss>', ""),
    (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>a</title><itunes:x xmlns:itunes="u"/></item></channel></rss>', ""),
    (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>a</title><pubDate>27 Sep 2021 10:00</pubDate></item></channel></rss>', ""),
])
def test_declines_what_only_feedparser_reads_right(body, content_type):
    assert fastparse.read(body, content_type) is None
