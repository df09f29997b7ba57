"""Atom, RSS 2.0 and JSON Feed documents of one output: golden files from a fixed clock, and what SPEC §4 asks of each.

Set UPDATE_GOLDEN=1 to rewrite tests/golden/ after an intended change; review the diff.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from lxml import etree

from aggregator import NAMESPACE
from aggregator.config import load_config
from aggregator.output.documents import Document
from aggregator.models import Enclosure, RelatedCopy, SourceMeta, StoryEntry
from aggregator.output.atom import render
from conftest import write_config

GOLDEN = Path(__file__).parent / "golden"
UTC = timezone.utc
ATOM = "{http://www.w3.org/2005/Atom}"
AGG = f"{{{NAMESPACE}}}"
DC = "{http://purl.org/dc/elements/1.1/}"
HISTORY = "{http://purl.org/syndication/history/1.0}"
JSON_FEED_1_1 = "https://jsonfeed.org/version/1.1"

WSWS = SourceMeta(id="wsws", title="World Socialist Web Site", feed_id="https://www.wsws.org/en/rss.xml",
                  self_url="https://www.wsws.org/en/rss.xml", site_url="https://www.wsws.org/en",
                  updated=datetime(2021, 9, 27, 18, 0, tzinfo=UTC))
BLOG = SourceMeta(id="blog", title="A Blog & Co", feed_id="tag:blog.example,2021:feed",
                  self_url="http://blog.example/feed.atom", site_url=None,
                  updated=datetime(2021, 9, 26, 9, 30, tzinfo=UTC))


def sample_entries() -> list[StoryEntry]:
    """Three stories, newest first: a shared one with a related copy, one without authors, one with markup in text."""
    return [
        StoryEntry(
            uid="urn:uuid:00000000-0000-5000-8000-000000000003", republished=datetime(2021, 9, 28, 8, 0, tzinfo=UTC),
            published=datetime(2021, 9, 27, 10, 0, tzinfo=UTC), updated=datetime(2021, 9, 27, 12, 30, tzinfo=UTC),
            title="Drought in the Sahel: Mali's harvest fails", link="https://www.wsws.org/en/articles/2021/09/27/mali.html",
            summary="<p>A short summary.</p>", content="<p>The full <b>article</b> text.</p>",
            authors=("Jean Dupont",), categories=("world", "Africa"), language="en", source=WSWS,
            related=(RelatedCopy("Mali harvest fails", "http://blog.example/mali", "A Blog & Co"),),
        ),
        StoryEntry(
            uid="urn:uuid:00000000-0000-5000-8000-000000000002", republished=datetime(2021, 9, 27, 9, 0, tzinfo=UTC),
            published=datetime(2021, 9, 26, 9, 0, tzinfo=UTC), updated=datetime(2021, 9, 26, 9, 0, tzinfo=UTC),
            title="Weekly notes", link="http://blog.example/notes", summary="<p>Notes &amp; links</p>",
            content=None, authors=(), categories=(), language=None, source=BLOG,
        ),
        StoryEntry(
            uid="urn:uuid:00000000-0000-5000-8000-000000000001", republished=datetime(2021, 9, 25, 7, 0, tzinfo=UTC),
            published=datetime(2021, 9, 24, 23, 15, tzinfo=UTC), updated=datetime(2021, 9, 25, 1, 0, tzinfo=UTC),
            title="<Tags> & ampersands in a title — déjà vu", link="https://www.wsws.org/en/articles/2021/09/24/x.html",
            summary=None, content="<p>Body</p>", authors=("A. Writer", "B. Writer"), categories=("world",),
            language="fr", source=WSWS,
        ),
    ]


OUTPUT = {
    "id": "world", "title": "World news", "subtitle": "Articles republished from independent outlets",
    "formats": ["atom", "rss", "json"], "icon": "https://feeds.example/icon.png",
    "logo": "https://feeds.example/logo.png", "author": "The Republisher", "rights": "CC BY 4.0 where the source allows",
    "language": "en", "attribution": "Republished from {source}, {published:%d.%m.%Y}",
}


def sample_config(directory: Path):
    """A config whose one output sets every metadata key, with a hub, published at https://feeds.example/."""
    path = write_config(directory, [{"id": "wsws", "url": "https://www.wsws.org/en/rss.xml"},
                                    {"id": "blog", "url": "http://blog.example/feed.atom"}],
                        [OUTPUT], websub={"hubs": ["https://hub.example/"]})
    path.write_text(path.read_text().replace("http://feeds.test/", "https://feeds.example/"))
    return load_config(path)


@pytest.fixture
def config(tmp_path):
    return sample_config(tmp_path)


def documents(config) -> dict[str, tuple[Document, str]]:
    output = config.outputs[0]
    current = Document(output, prev_archive=4)
    page = Document(output, page=3, full=True)
    return {"world.atom": (current, "atom"), "world.rss": (current, "rss"), "world.json": (current, "json"),
            "world-archive-3.atom": (page, "atom")}


@pytest.mark.parametrize("name", ["world.atom", "world.rss", "world.json", "world-archive-3.atom"])
def test_rendering_matches_the_golden_file(config, name):
    document, fmt = documents(config)[name]
    rendered = render(config, document, fmt, sample_entries())
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_bytes(rendered)
    assert rendered == golden.read_bytes(), f"{name} differs from tests/golden/{name}; UPDATE_GOLDEN=1 to accept"
    assert render(config, document, fmt, sample_entries()) == rendered  # same entries, same bytes



def edge_entries() -> list[StoryEntry]:
    """What sample_entries() leaves out: no link, summary only, several related copies, control characters,
    enclosures (one of unknown type and size)."""
    first, notes, last = sample_entries()
    return [
        replace(first, link=None, summary=None, related=(
            RelatedCopy("Copy \x01one", "http://blog.example/1", "A Blog & Co"),
            RelatedCopy("Copy <two>", "https://other.example/2", "Other \"quoted\"")), enclosures=EPISODE),
        replace(notes, title="Weekly\x0b notes \U0001F600", authors=("Ana \x02Lopez",), categories=("a&b", "c")),
        replace(last, source=replace(BLOG, site_url="http://blog.example/"), summary="<p>Only a summary</p>",
                content=None, enclosures=EPISODE[1:]),
    ]


EPISODE = (Enclosure("https://cdn.example/mali.mp3?a=1&b=2", "audio/mpeg", 12345678),
           Enclosure("https://cdn.example/mali-transcript"))


@pytest.mark.parametrize("name, fmt, page", [("plain.atom", "atom", None), ("plain-archive-2.rss", "rss", 2)])
def test_plain_output_edge_entries_match_the_golden_file(tmp_path, name, fmt, page):
    """An output with no optional metadata and no attribution line, over entries the world goldens lack."""
    path = write_config(tmp_path, [{"id": "wsws", "url": "https://www.wsws.org/en/rss.xml"}],
                        [{"id": "plain", "title": "Plain", "attribution": False}])
    config = load_config(path)
    document = Document(config.outputs[0], page=page, full=page is not None)
    rendered = render(config, document, fmt, edge_entries())
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_bytes(rendered)
    assert rendered == golden.read_bytes(), f"{name} differs from tests/golden/{name}; UPDATE_GOLDEN=1 to accept"

def test_enclosures_in_every_format(config):
    """Atom: every enclosure, its type and length only when known (RFC 4287: a length is a byte count);
    RSS 2.0 allows one: the first, with the three attributes it requires (length 0 when unknown, as RSS
    Best Practices has it); JSON Feed: every one, mime_type required, size_in_bytes when known."""
    entries = edge_entries()
    document = Document(config.outputs[0])
    atom = etree.fromstring(render(config, document, "atom", entries)).findall(f"{ATOM}entry")
    assert [[dict(link.attrib) for link in e.findall(f"{ATOM}link[@rel='enclosure']")] for e in atom] == [
        [{"rel": "enclosure", "href": "https://cdn.example/mali.mp3?a=1&b=2", "type": "audio/mpeg",
          "length": "12345678"}, {"rel": "enclosure", "href": "https://cdn.example/mali-transcript"}],
        [], [{"rel": "enclosure", "href": "https://cdn.example/mali-transcript"}]]
    rss = etree.fromstring(render(config, document, "rss", entries)).findall("channel/item")
    assert [[dict(e.attrib) for e in item.findall("enclosure")] for item in rss] == [
        [{"url": "https://cdn.example/mali.mp3?a=1&b=2", "length": "12345678", "type": "audio/mpeg"}], [],
        [{"url": "https://cdn.example/mali-transcript", "length": "0", "type": "application/octet-stream"}]]
    feed = json.loads(render(config, document, "json", entries))
    assert json_feed_problems(feed) == []
    assert [item.get("attachments") for item in feed["items"]] == [
        [{"url": "https://cdn.example/mali.mp3?a=1&b=2", "mime_type": "audio/mpeg", "size_in_bytes": 12345678},
         {"url": "https://cdn.example/mali-transcript", "mime_type": "application/octet-stream"}], None,
        [{"url": "https://cdn.example/mali-transcript", "mime_type": "application/octet-stream"}]]


def test_atom_entry_carries_source_both_dates_and_related_copies(config):
    root = etree.fromstring(render(config, Document(config.outputs[0]), "atom", sample_entries()))
    first = root.find(f"{ATOM}entry")
    assert first.findtext(f"{ATOM}id") == "urn:uuid:00000000-0000-5000-8000-000000000003"
    assert first.findtext(f"{ATOM}published").startswith("2021-09-27T10:00:00")
    assert first.findtext(f"{ATOM}updated").startswith("2021-09-27T12:30:00")
    assert first.findtext(f"{AGG}republished") == "2021-09-28T08:00:00Z"
    source = first.find(f"{ATOM}source")
    assert source.findtext(f"{ATOM}id") == WSWS.feed_id
    assert source.findtext(f"{ATOM}title") == "World Socialist Web Site"
    assert source.find(f"{ATOM}link[@rel='self']").get("href") == WSWS.self_url
    assert source.find(f"{ATOM}link[@rel='alternate']").get("href") == WSWS.site_url
    related = first.find(f"{ATOM}link[@rel='related']")
    assert related.get("href") == "http://blog.example/mali" and related.get("title") == "A Blog & Co: Mali harvest fails"
    assert "Republished from World Socialist Web Site, 27.09.2021" in first.findtext(f"{ATOM}content")
    assert root.findtext(f"{ATOM}updated").startswith("2021-09-27T12:30:00")  # the newest entry's updated


def test_rss_item_has_original_pubdate_source_guid_and_republished(config):
    root = etree.fromstring(render(config, Document(config.outputs[0]), "rss", sample_entries()))
    items = root.findall("channel/item")
    assert [i.findtext("guid") for i in items] == [e.uid for e in sample_entries()]
    for item, entry in zip(items, sample_entries()):
        assert item.find("guid").get("isPermaLink") == "false"
        assert item.findtext("pubDate") == format_datetime(entry.published)  # the original date, RFC 822
        assert item.find("source").get("url") == entry.source.self_url
        assert item.findtext("source") == entry.source.title
        assert item.findtext(f"{AGG}republished") == entry.republished.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert item.findtext("link") == entry.link
        assert item.findtext("title") == entry.title
    assert [c.text for c in items[2].findall(f"{DC}creator")] == ["A. Writer", "B. Writer"]


def json_feed_problems(feed: dict) -> list[str]:
    """What JSON Feed 1.1 requires (https://jsonfeed.org/version/1.1), checked field by field."""
    problems = []
    if feed.get("version") != JSON_FEED_1_1:
        problems.append("version must be the 1.1 URL")
    if not isinstance(feed.get("title"), str) or not feed["title"]:
        problems.append("title is required")
    if not isinstance(feed.get("items"), list):
        return problems + ["items is required"]
    for key in ("home_page_url", "feed_url", "next_url", "icon", "favicon"):
        if key in feed and not str(feed[key]).startswith(("http://", "https://")):
            problems.append(f"{key} must be a URL")
    for author in feed.get("authors", []):
        if not {"name", "url", "avatar"} & set(author):
            problems.append("an author needs name, url or avatar")
    for hub in feed.get("hubs", []):
        if set(hub) < {"type", "url"}:
            problems.append("a hub needs type and url")
    ids = [item.get("id") for item in feed["items"]]
    if len(set(ids)) != len(ids):
        problems.append("item ids repeat")
    for item in feed["items"]:
        if not isinstance(item.get("id"), str) or not item["id"]:
            problems.append("an item needs a string id")
        if not isinstance(item.get("content_html"), str) and not isinstance(item.get("content_text"), str):
            problems.append(f"item {item.get('id')} needs content_html or content_text")
        for key in ("date_published", "date_modified"):
            if key in item:
                try:
                    datetime.fromisoformat(item[key].replace("Z", "+00:00"))
                except ValueError:
                    problems.append(f"item {item.get('id')}: {key} is not RFC 3339")
        if not isinstance(item.get("tags", []), list):
            problems.append("tags must be a list")
        for attachment in item.get("attachments", []):
            if not isinstance(attachment.get("url"), str) or not isinstance(attachment.get("mime_type"), str):
                problems.append(f"item {item.get('id')}: an attachment needs url and mime_type")
            if not isinstance(attachment.get("size_in_bytes", 0), int):
                problems.append(f"item {item.get('id')}: size_in_bytes must be a number")
    for key in [*feed, *(k for item in feed["items"] for k in item)]:
        if key not in JSON_FEED_KEYS and not key.startswith("_"):
            problems.append(f"unknown key {key!r} (extensions start with _)")
    return problems


JSON_FEED_KEYS = {
    "version", "title", "home_page_url", "feed_url", "description", "user_comment", "next_url", "icon", "favicon",
    "authors", "language", "expired", "hubs", "items", "id", "url", "external_url", "content_html", "content_text",
    "summary", "image", "banner_image", "date_published", "date_modified", "tags", "attachments",
}


def test_json_feed_meets_1_1_and_carries_source_and_republished(config):
    feed = json.loads(render(config, Document(config.outputs[0], prev_archive=4), "json", sample_entries()))
    assert json_feed_problems(feed) == []
    assert feed["next_url"] == "https://feeds.example/archive/world/4.json"
    assert feed["hubs"] == [{"type": "WebSub", "url": "https://hub.example/"}]
    first = feed["items"][0]
    assert first["date_published"] == "2021-09-27T10:00:00Z"
    assert first["date_modified"] == "2021-09-27T12:30:00Z"
    assert first["_aggregator"]["republished"] == "2021-09-28T08:00:00Z"
    assert first["_aggregator"]["source"] == {
        "id": WSWS.feed_id, "title": WSWS.title, "feed_url": WSWS.self_url, "home_page_url": WSWS.site_url,
        "updated": "2021-09-27T18:00:00Z"}
    assert first["_aggregator"]["related"] == [
        {"title": "Mali harvest fails", "url": "http://blog.example/mali", "source": "A Blog & Co"}]
    assert first["summary"] == "A short summary."  # JSON Feed's summary is plain text


def test_all_formats_carry_the_same_entries_in_the_same_order(config):
    document = Document(config.outputs[0])
    atom = etree.fromstring(render(config, document, "atom", sample_entries()))
    rss = etree.fromstring(render(config, document, "rss", sample_entries()))
    feed = json.loads(render(config, document, "json", sample_entries()))
    atom_ids = [e.findtext(f"{ATOM}id") for e in atom.findall(f"{ATOM}entry")]
    assert atom_ids == [i.findtext("guid") for i in rss.findall("channel/item")]
    assert atom_ids == [i["id"] for i in feed["items"]]
    assert atom_ids == [e.uid for e in sample_entries()]
    titles = [e.findtext(f"{ATOM}title") for e in atom.findall(f"{ATOM}entry")]
    assert titles == [i.findtext("title") for i in rss.findall("channel/item")] == [i["title"] for i in feed["items"]]


def test_feed_metadata_appears_in_every_format(config):
    document = Document(config.outputs[0])
    atom = etree.fromstring(render(config, document, "atom", sample_entries()))
    assert atom.findtext(f"{ATOM}icon") == OUTPUT["icon"]
    assert atom.findtext(f"{ATOM}logo") == OUTPUT["logo"]
    assert atom.findtext(f"{ATOM}author/{ATOM}name") == OUTPUT["author"]
    assert atom.findtext(f"{ATOM}rights") == OUTPUT["rights"]
    assert atom.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    assert atom.find(f"{ATOM}link[@rel='hub']").get("href") == "https://hub.example/"
    assert atom.find(f"{ATOM}link[@rel='self']").get("href") == "https://feeds.example/world.atom"
    channel = etree.fromstring(render(config, document, "rss", sample_entries())).find("channel")
    assert channel.findtext("image/url") == OUTPUT["logo"]
    assert channel.findtext("copyright") == OUTPUT["rights"]
    assert channel.findtext("language") == "en"
    assert channel.findtext(f"{DC}creator") == OUTPUT["author"]
    assert channel.find(f"{ATOM}link[@rel='hub']").get("href") == "https://hub.example/"
    assert channel.find(f"{ATOM}link[@rel='self']").get("href") == "https://feeds.example/world.rss"
    feed = json.loads(render(config, document, "json", sample_entries()))
    assert (feed["icon"], feed["favicon"]) == (OUTPUT["logo"], OUTPUT["icon"])
    assert feed["authors"] == [{"name": OUTPUT["author"]}] and feed["language"] == "en"


@pytest.mark.parametrize("attribution, expected", [
    ("Republished from {source}, {published:%d.%m.%Y}", "Republished from World Socialist Web Site, 27.09.2021"),
    ("Via {source} ({link}) on {republished:%Y-%m-%d}",
     "Via World Socialist Web Site (https://www.wsws.org/en/articles/2021/09/27/mali.html) on 2021-09-28"),
    (False, None),
])
def test_attribution_template_is_per_output_and_in_every_format(tmp_path, attribution, expected):
    path = write_config(tmp_path, [{"id": "wsws", "url": "https://www.wsws.org/en/rss.xml"}],
                        [{"id": "a", "title": "A", "attribution": attribution}])
    output = load_config(path).outputs[0]
    document = Document(output)
    config = load_config(path)
    atom = etree.fromstring(render(config, document, "atom", sample_entries()[:1])).find(f"{ATOM}entry")
    rss = etree.fromstring(render(config, document, "rss", sample_entries()[:1])).find("channel/item")
    item = json.loads(render(config, document, "json", sample_entries()[:1]))["items"][0]
    bodies = [atom.findtext(f"{ATOM}content"), rss.findtext("{http://purl.org/rss/1.0/modules/content/}encoded"),
              item["content_html"]]
    for body in bodies:
        assert "The full <b>article</b> text." in body
        if expected:
            assert expected in body
        else:
            assert "aggregator-attribution" not in body


def test_archive_page_links_and_marker(config):
    root = etree.fromstring(render(config, Document(config.outputs[0], page=3, full=True), "rss", sample_entries()))
    channel = root.find("channel")
    links = {link.get("rel"): link.get("href") for link in channel.findall(f"{ATOM}link")}
    assert links["current"] == "https://feeds.example/world.rss"
    assert links["prev-archive"] == "https://feeds.example/archive/world/2.rss"
    assert links["next-archive"] == "https://feeds.example/archive/world/4.rss"
    assert links["self"] == "https://feeds.example/archive/world/3.rss"
    assert channel.find(f"{HISTORY}archive") is not None
    first_page = etree.fromstring(render(config, Document(config.outputs[0], page=1), "atom", []))
    rels = {link.get("rel") for link in first_page.findall(f"{ATOM}link")}
    assert "prev-archive" not in rels and "next-archive" not in rels and "current" in rels
