"""Selection per output: the include/exclude grammar (plain words, /regex/flags on RE2), sources, tags,
since and languages, checked on real stores and through the CLI's config check."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from aggregator.config import load_config
from aggregator.config.filters import parse_pattern
from aggregator.reader.hosts import HostLimiter
from aggregator.run.pipeline import poll
from aggregator.output.select import select_entries
from aggregator.store import Store
from conftest import run_cli, write_config

UTC = timezone.utc
NOW = datetime(2021, 10, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("term, text, matches", [
    ("Mali", "Drought in MALI worsens", True),
    ("Mali", "Somalia votes", False),  # a plain word matches whole words only
    ("mali", "Mali's harvest", True),
    ("climate change", "Climate\n  change summit", True),  # a phrase matches across any whitespace
    ("C++", "Why C++ templates", True),
    ("sponsored", "Sponsored: buy now", True),
    ("Zürich", "Demonstration in zürich", True),
    ("Zürich", "Zürichsee cleanup", False),
    ("/\\bSahel\\b/i", "the SAHEL region", True),
    ("/\\bSahel\\b/i", "Sahelian", False),
    ("/Sahel/", "the SAHEL region", False),  # a regex is case-sensitive without i
    ("/^Breaking/m", "Intro\nBreaking: news", True),
    ("/^Breaking/", "Intro\nBreaking: news", False),
    ("/a.b/s", "a\nb", True),
    ("/a.b/", "a\nb", False),
    ("/(a+)+$/", "a" * 100_000 + "b", False),  # catastrophic for a backtracking engine; linear for RE2
    ("/région/", "la région", True),
])
def test_filter_grammar(term, text, matches):
    assert parse_pattern(term).search(text) is matches


@pytest.mark.parametrize("term, message", [
    ("/(a)\\1/", "RE2"),
    ("/a(?=b)/", "lookaround"),
    ("/x/q", "unknown flag 'q'"),
    ("/[/", "missing ]"),
    ("//", "empty pattern"),
    ("  ", "empty word"),
])
def test_bad_patterns_are_config_errors_with_file_and_line(tmp_path, term, message):
    config = write_config(tmp_path, [{"id": "a", "url": "http://a.test/feed"}],
                          [{"id": "o", "title": "O", "include": ["fine", term]}])
    result = run_cli("check", config=config)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"{config}:") and ": outputs[0].include[1]: " in line
    assert message in line and "Traceback" not in result.stderr


def rss(language: str | None, items: list[tuple[str, str, datetime]]) -> str:
    body = "".join(f"<item><title>{title}</title><link>http://x.test/{abs(hash(title))}</link>"
                   f"<description>{text}</description><pubDate>{when.strftime('%a, %d %b %Y %H:%M:%S +0000')}"
                   f"</pubDate></item>" for title, text, when in items)
    lang = f"<language>{language}</language>" if language else ""
    return (f"<?xml version='1.0'?><rss version='2.0'><channel><title>S</title><link>http://x.test/</link>"
            f"<description>d</description>{lang}{body}</channel></rss>")


@pytest.fixture
def store_config(tmp_path):
    """Three sources (English, French, undeclared language) polled into a real store."""
    day, hour = timedelta(days=1), timedelta(hours=1)
    feeds = {
        "en": rss("en-GB", [("Mali harvest fails", "Drought in the Sahel", NOW - day),
                            ("Sponsored: a new phone", "Buy it", NOW - 2 * day),
                            ("Somalia election", "Votes counted", NOW - 10 * day)]),
        "fr": rss("fr", [("Le Sahel en crise", "La région souffre", NOW - day - hour),
                         ("Élections au Mali", "Résultats", NOW - 40 * day)]),
        "none": rss(None, [("Sahel aid arrives", "Trucks reached Mali", NOW - day - 2 * hour)]),
    }
    for name, text in feeds.items():
        (tmp_path / f"{name}.xml").write_text(text, encoding="utf-8")
    sources = [{"id": "en", "url": "file:en.xml", "tags": ["english", "news"]},
               {"id": "fr", "url": "file:fr.xml", "tags": ["news"]},
               {"id": "none", "url": "file:none.xml"}]

    def make(**output):
        path = write_config(tmp_path, sources, [{"id": "o", "title": "O", **output}])
        config = load_config(path)
        store = Store(config.state)
        for source in config.sources:
            poll(store, config, source, HostLimiter(), now=NOW)
        return store, config

    return make


def titles(store, config) -> list[str]:
    return [e.title for e in select_entries(store, config, config.outputs[0], now=NOW)]


@pytest.mark.parametrize("output, expected", [
    ({}, ["Mali harvest fails", "Le Sahel en crise", "Sahel aid arrives", "Sponsored: a new phone",
          "Somalia election", "Élections au Mali"]),
    ({"include": ["Mali"]}, ["Mali harvest fails", "Sahel aid arrives", "Élections au Mali"]),
    ({"include": ["Mali", "/\\bSahel\\b/i"], "exclude": ["aid"]}, ["Mali harvest fails", "Le Sahel en crise",
                                                                   "Élections au Mali"]),
    ({"exclude": ["sponsored", "/^Som/"]}, ["Mali harvest fails", "Le Sahel en crise", "Sahel aid arrives",
                                            "Élections au Mali"]),
    ({"sources": ["fr"]}, ["Le Sahel en crise", "Élections au Mali"]),
    ({"tags": ["english"]}, ["Mali harvest fails", "Sponsored: a new phone", "Somalia election"]),
    ({"tags": ["news"], "since": "5d"}, ["Mali harvest fails", "Le Sahel en crise", "Sponsored: a new phone"]),
    ({"languages": ["en"]}, ["Mali harvest fails", "Sponsored: a new phone", "Somalia election"]),
    ({"languages": ["fr", "en-gb"], "limit": 2}, ["Mali harvest fails", "Le Sahel en crise"]),
    ({"include": ["région"]}, ["Le Sahel en crise"]),  # the text is searched too, not only the title
])
def test_selection(store_config, output, expected):
    store, config = store_config(**output)
    try:
        assert titles(store, config) == expected
    finally:
        store.close()
