"""Canonical links: every decoration SPEC §6 lists folds to one form; different articles stay apart."""

from __future__ import annotations

import pytest

from aggregator.dedup.links import canonical_link
from aggregator.dedup.text import content_hash, normalised_text
from aggregator.dedup.titles import normalised_title

SAME = [
    ("https://www.Example.ORG:443/news/story/", "http://example.org/news/story"),
    ("https://example.org/news/story?utm_source=rss&utm_medium=feed", "https://example.org/news/story"),
    ("https://example.org/news/story?fbclid=abc&gclid=def#comments", "https://example.org/news/story"),
    ("https://example.org/a?b=2&a=1", "https://example.org/a?a=1&b=2"),
    ("http://example.org:80/a", "https://example.org/a"),
]
DIFFERENT = [
    ("https://example.org/news/story", "https://example.org/news/story-2"),
    ("https://example.org/a?id=1", "https://example.org/a?id=2"),
    ("https://example.org:8443/a", "https://example.org/a"),
    ("https://news.example.org/a", "https://example.org/a"),
]


@pytest.mark.parametrize("a, b", SAME)
def test_decorations_fold(a, b):
    assert canonical_link(a) == canonical_link(b)


@pytest.mark.parametrize("a, b", DIFFERENT)
def test_different_articles_stay_apart(a, b):
    assert canonical_link(a) != canonical_link(b)


def test_titles_and_text_normalise():
    assert normalised_title("  Mali’s  Junta —  EXTENDS rule! ") == normalised_title("mali s junta extends rule")
    assert normalised_text("<p>Hello,&nbsp;<b>World</b></p>") == "hello world"
    assert content_hash("too short to identify") is None
    long = " ".join(f"word{i}" for i in range(40))
    assert content_hash(long) and content_hash(long) == content_hash(normalised_text(long.upper()))
