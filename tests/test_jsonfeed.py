"""JSON Feed 1.0/1.1 read by reader/jsonfeed.py into the same ParsedFeed as any feed (issue 15.8), and refused
with one ParseError when hostile: pure parse tests; the CLI tests are in test_defects_reader.py."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from aggregator.errors import ParseError
from aggregator.reader.parse import parse_feed
from conftest import FIXTURES

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
EXAMPLE = FIXTURES / "corpus" / "feedparser" / "json" / "example.json"  # feedparser's own JSON Feed test document


def parse(document, content_type: str = "application/feed+json", **kwargs):
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return parse_feed(body, {"content-type": content_type}, url="https://example.org/feed.json", now=NOW, **kwargs)


def test_feedparsers_example_document():
    feed = parse(EXAMPLE.read_bytes(), "application/json")
    assert (feed.info.title, feed.info.link, feed.info.id) == (
        "My Example Feed", "https://example.org/", "https://example.org/feed.json")
    second, first = feed.entries
    assert (second.key, second.title, second.link) == ("guid:2", "post 2", "https://example.org/second-item")
    assert second.categories == ("test", "JSON") and second.authors == ("me",)  # the feed's author (1.0 `author`)
    assert second.content == "This is a second item."  # content_text, escaped as HTML
    assert (first.key, first.title, first.authors) == ("guid:1", "", ("you",))
    assert first.content.startswith("<p>Hello, world!</p>")  # HTML as given: the sanitiser comes later


@pytest.mark.parametrize("content_type", ["", "text/plain", "application/octet-stream", "application/feed+json"])
def test_recognised_by_its_first_byte_whatever_it_is_served_as(content_type):
    body = b"\xef\xbb\xbf \n" + json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "T",
                                            "items": [{"id": 1, "title": "One"}]}).encode()
    assert [e.key for e in parse(body, content_type).entries] == ["guid:1"]


def test_xml_served_as_json_is_still_read_as_xml():
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>X</title><item><title>A</title></item></channel></rss>'
    assert parse(body, "application/json").info.title == "X"


def test_titles_summaries_and_names_are_plain_text():
    """JSON Feed's title and summary are plain text (jsonfeed.org 1.1: "HTML is not allowed"): text that reads
    like markup stays as written, the summary is escaped into HTML, and a name keeps what reads like a tag."""
    feed = parse({"version": "https://jsonfeed.org/version/1.1", "title": "Desk <b>x</b> &amp; co", "items": [
        {"id": "1", "title": "Why <script> tags & <div>s matter", "summary": "Use the <canvas> element",
         "content_html": "<p>Body</p>", "authors": [{"name": "Ann <a@b>"}]},
        {"id": "2", "title": "Escaped &lt;b&gt; <b>literal</b>"},
    ]})
    assert feed.info.title == "Desk <b>x</b> &amp; co"
    first, second = feed.entries
    assert (first.title, first.summary, first.authors) == (
        "Why <script> tags & <div>s matter", "Use the &lt;canvas&gt; element", ("Ann <a@b>",))
    assert second.title == "Escaped &lt;b&gt; <b>literal</b>"


def test_dates_languages_and_the_key_chain():
    feed = parse({"version": "https://jsonfeed.org/version/1.1", "language": "fr-FR", "items": [
        {"url": "https://e.example/show", "title": "Ep 2", "date_published": "2021-09-27T10:00:00+02:00",
         "date_modified": "2021-09-28T10:00:00.123456Z", "attachments": [{"url": "https://cdn.example/2.mp3"}]},
        {"url": "https://e.example/show", "title": "Ep 1", "date_published": "2021-09-20T10:00:00",
         "attachments": [{"url": "https://cdn.example/1.mp3"}], "language": "en"},
        {"url": "https://e.example/unique", "title": "Notes", "date_published": "2099-01-01T00:00:00Z"},
    ]})
    two, one, notes = feed.entries
    assert two.published == datetime(2021, 9, 27, 8, 0, tzinfo=timezone.utc)
    assert two.updated == datetime(2021, 9, 28, 10, 0, tzinfo=timezone.utc)
    assert one.published == datetime(2021, 9, 20, 10, 0, tzinfo=timezone.utc)  # zoneless: taken as UTC
    assert notes.published is None  # more than a day ahead: missing, as in every feed
    assert (two.language, one.language) == ("fr-fr", "en")
    assert two.key == "link:https://e.example/show enclosure:https://cdn.example/2.mp3"
    assert notes.key == "link:https://e.example/unique"


def test_attachments_are_the_items_enclosures():
    """Every attachment (not only the first, which still makes the key), as RSS and Atom enclosures are read:
    URLs resolved against the document's URL, only http(s) ones, each once; mime_type and size_in_bytes
    kept when they are a MIME type and a positive number."""
    feed = parse({"version": "https://jsonfeed.org/version/1.1", "items": [
        {"url": "https://e.example/show", "title": "Ep", "attachments": [
            {"url": "https://cdn.example/1.mp3", "mime_type": "audio/mpeg", "size_in_bytes": 12345678},
            {"url": "/media/1.ogg", "mime_type": "audio/ogg", "title": "Ogg"},
            {"url": "javascript:alert(1)", "mime_type": "audio/mpeg"},
            {"url": "https://cdn.example/1.mp3", "mime_type": "audio/x-copy"},
            {"url": "https://cdn.example/1.m4a", "mime_type": ["audio/mp4"], "size_in_bytes": True},
            {"mime_type": "audio/mpeg"}, "https://cdn.example/not-an-object.mp3"]},
        {"url": "https://e.example/other", "title": "Notes"},
    ]})
    episode, notes = feed.entries
    assert [(e.url, e.type, e.length) for e in episode.enclosures] == [
        ("https://cdn.example/1.mp3", "audio/mpeg", 12345678), ("https://example.org/media/1.ogg", "audio/ogg", None),
        ("https://cdn.example/1.m4a", None, None)]
    assert notes.enclosures == ()


def test_limits_apply_as_to_any_feed():
    items = [{"id": str(n), "title": "T" * 5000, "content_html": "x" * (600 * 1024),
              "tags": [f"tag{k}" for k in range(80)], "authors": [{"name": "N" * 500}]} for n in range(20)]
    feed = parse({"version": "https://jsonfeed.org/version/1", "items": items}, max_entries=5)
    assert len(feed.entries) == 5
    entry = feed.entries[0]
    assert len(entry.title) == 1000 and len(entry.content) == 512 * 1024
    assert len(entry.categories) == 50 and len(entry.authors[0]) == 200


def test_values_of_the_wrong_type_are_ignored():
    feed = parse({"version": "https://jsonfeed.org/version/1.1", "title": ["no"], "home_page_url": {"x": 1},
                  "authors": "nobody", "items": [
                      {"id": True, "url": 5, "title": {"t": 1}, "tags": "a,b", "date_published": 2021,
                       "content_html": None, "content_text": "text", "attachments": "x", "authors": [1, None]},
                      [], "string", 7]})
    assert feed.info.title is None and feed.info.link is None
    (entry,) = feed.entries
    assert (entry.guid, entry.link, entry.title, entry.categories, entry.authors) == (None, None, "", (), ())
    assert entry.content == "text" and entry.key.startswith("hash:")


@pytest.mark.parametrize("body, message", [
    (b"[" * 200_000 + b"]" * 200_000, "nested too deep"),
    (b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": 1}', "not valid JSON"),
    (b'{"version": "https://jsonfeed.org/version/1", "items": [], "n": ' + b"9" * 5000 + b"}", "not valid JSON"),
    (b'"just a string"', "not a JSON Feed"),
    (b"[1, 2]", "not a JSON Feed"),
    (b'{"results": []}', "not a JSON Feed"),
    (b'{"version": "https://jsonfeed.org/version/1.1", "items": {"id": 1}}', "not a list"),
])
def test_hostile_json_is_one_parse_error(body, message):
    with pytest.raises(ParseError) as caught:
        parse(body, "application/json")
    text = str(caught.value)
    assert text.startswith("parse: ") and message in text and "\n" not in text and len(text) < 400, text
