"""Parsing over self-describing fixture files: each states what it is and what must come out."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from aggregator.errors import ParseError
from aggregator.reader.parse import parse_feed
from conftest import FIXTURES

CASES = sorted((FIXTURES / "parse").iterdir())
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def expectations(path: Path) -> tuple[list[str], str | None]:
    text = path.read_text(encoding="utf-8")
    raises = re.search(r"^Raises:\s*(\w+)", text, re.M)
    return re.findall(r"^Expect:\s*(.+)$", text, re.M), raises.group(1) if raises else None


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_fixture(path):
    expects, raises = expectations(path)
    assert expects or raises, f"{path.name} states no expectation"
    if raises:
        with pytest.raises(ParseError):
            parse_feed(path.read_bytes(), url="https://example.org/feed", now=NOW)
        return
    feed = parse_feed(path.read_bytes(), url="https://example.org/feed", now=NOW)
    for expression in expects:
        assert eval(expression, {"feed": feed, "datetime": datetime, "timezone": timezone}), expression


def test_every_date_is_aware_utc_across_the_corpus():
    for path in sorted((FIXTURES / "corpus" / "real").rglob("*")):
        if path.suffix not in (".xml", ".rss", ".atom", ".rdf"):
            continue
        try:
            feed = parse_feed(path.read_bytes(), url="https://example.org/feed", now=NOW)
        except ParseError:
            continue
        for entry in feed.entries:
            for when in (entry.published, entry.updated):
                assert when is None or when.utcoffset().total_seconds() == 0, path.name


def test_max_entries_caps_one_poll():
    body = (FIXTURES / "corpus" / "real" / "rss-parser" / "guardian.rss").read_bytes()
    assert len(parse_feed(body, max_entries=10).entries) == 10
