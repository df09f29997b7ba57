"""Republished content is safe: sanitised HTML, plain-text titles, web-only links, XML-clean text.

The XSS payload list (fixtures/hostile/xss.txt) goes through the sanitiser
one payload at a time, then as item content through the real CLI.
"""

from __future__ import annotations

import html
import sqlite3

import lxml.html
import pytest
from lxml import etree

from aggregator.reader.sanitize import SANITIZER, clean_html, plain_text
from conftest import run_cli, status_json, write_config
from hostile import ATOM, output_entries, rss, rss_item, unsafe_html, xss_payloads

BASE = "https://news.example/a/b.html"
PAYLOADS = xss_payloads()


def test_the_checker_sees_what_it_must():
    """The property the payload tests rely on: raw payloads do trip it."""
    assert unsafe_html("<a href=' jav&#x09;ascript:alert(1)'>x</a>")
    assert unsafe_html("<img src=x onerror=alert(1)>")
    assert unsafe_html('<img src="data:image/svg+xml;base64,AAAA">')
    assert not unsafe_html('<img src="data:image/png;base64,AAAA"><a href="https://x.example/">x</a>')
    assert sum(1 for _, payload in PAYLOADS if unsafe_html(payload)) > 100


@pytest.mark.parametrize("family,payload", PAYLOADS, ids=[f"{i:03d}" for i in range(len(PAYLOADS))])
def test_payload_is_neutralised_by_the_sanitiser(family, payload):
    assert unsafe_html(clean_html(payload, BASE)) == []


@pytest.mark.parametrize("family,payload", PAYLOADS, ids=[f"{i:03d}" for i in range(len(PAYLOADS))])
def test_payload_as_a_title_is_text_that_escaping_keeps_inert(family, payload):
    """An HTML title is the text of its markup, decoded once: what reads like a tag in it (a <textarea>'s or a
    <title>'s text) is text, and escaped as every output escapes a title it reads back as itself, inert."""
    text = plain_text(payload)
    assert plain_text(html.escape(text)) == text
    assert unsafe_html(html.escape(text)) == []


def test_safe_markup_survives_and_urls_become_absolute():
    cleaned = clean_html('<p>Hi <a href="../c.html">rel</a> <img src="img.png" alt="i"> '
                         '<img src="data:image/png;base64,iVBORw0KGgo="> <a href="#top">t</a></p>', BASE)
    assert 'href="https://news.example/c.html"' in cleaned
    assert 'src="https://news.example/a/img.png"' in cleaned
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in cleaned
    assert 'href="https://news.example/a/b.html#top"' in cleaned
    assert "<p>" in cleaned


def _payload_feed() -> bytes:
    items = [rss_item(html.escape(payload), f"https://news.example/xss/{i}", html.escape(payload))
             for i, (_, payload) in enumerate(PAYLOADS)]
    items.append(rss_item("Keeps safe markup", "https://news.example/a/b.html", html.escape(
        '<p>Hi <a href="../c.html">rel</a> <img src="data:image/png;base64,iVBORw0KGgo="></p>')))
    items.append(rss_item("&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;Bold&lt;/b&gt; news", "https://news.example/t"))
    items.append(rss_item("&lt;b&gt;Bold&lt;/b&gt; views &lt;img src=x onerror=alert(1)&gt;", "https://news.example/v"))
    items.append(rss_item("Script link", "javascript:alert(document.cookie)", guid="script-link"))
    items.append(rss_item("Data link", "data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;", guid="data-link"))
    return rss("".join(items))


def _bad_characters_feed() -> bytes:
    """Raw control characters (ill-formed XML, so feedparser's loose parser) and references XML forbids."""
    return rss(rss_item("Bad \x01chars\x0b here &#xD800;&#xFFFE;&#1114112;", "https://news.example/bad-chars",
                        "text \x02with\x1f controls &#0;") + rss_item("Good neighbour", "https://news.example/ok"))


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    directory = tmp_path_factory.mktemp("xss")
    (directory / "xss.xml").write_bytes(_payload_feed())
    (directory / "bad.xml").write_bytes(_bad_characters_feed())
    config = write_config(directory, [{"id": "xss", "url": "file:xss.xml"}, {"id": "bad", "url": "file:bad.xml"}],
                          [{"id": "all", "title": "All", "limit": 500, "sources": ["xss"]},
                           {"id": "bad", "title": "Bad characters", "sources": ["bad"]}])
    result = run_cli("once", config=config)
    assert result.returncode == 0, result.stderr
    status = status_json(config)
    assert status["xss"]["state"] == "ok", status["xss"]["last_error"]
    return {"status": status, "all": output_entries(directory / "out" / "all.atom"), "directory": directory}


def test_every_payload_through_the_cli_comes_out_safe(published):
    assert len(published["all"]) == len(PAYLOADS) + 5
    for entry in published["all"]:
        for tag in ("content", "summary"):
            node = entry.find(f"{ATOM}{tag}")
            if node is not None:
                assert node.get("type") == "html"
                assert unsafe_html(node.text) == [], entry.findtext(f"{ATOM}id")
        title = entry.find(f"{ATOM}title")
        assert title.get("type", "text") == "text"
        links = [link.get("href") for link in entry.findall(f"{ATOM}link")]
        assert all(href.startswith(("https://", "http://")) for href in links), links


def test_titles_are_plain_text(published):
    """An RSS title is HTML where feedparser guesses so (HTML it knows, closed) and loses its markup; one it
    reads as plain text (`<script>` is no HTML it knows) is kept whole: no output or page carries either as
    markup, since each escapes a title as text."""
    titles = [e.findtext(f"{ATOM}title") for e in published["all"]]
    assert "Bold views" in titles
    assert "<script>alert(1)</script><b>Bold</b> news" in titles
    out = published["directory"] / "out"
    assert b"<script" not in (out / "all.atom").read_bytes()
    river = lxml.html.parse(str(out / "all.html")).getroot()
    assert river.find(".//script") is None and river.find(".//main//img") is None
    assert "<script>alert(1)</script><b>Bold</b> news" in [h.text_content() for h in river.iter("h2")]


TYPED_TITLES = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Typed</title><id>urn:x-test:typed</id>
<updated>2021-09-28T00:00:00Z</updated>
<entry><title type="text">Why &lt;script&gt; tags &amp; &lt;div&gt;s matter</title><id>urn:x-test:typed-1</id>
<link href="https://typed.example/1"/><updated>2021-09-28T00:00:00Z</updated>
<summary type="text">Use the &lt;canvas&gt; element</summary><author><name>Ann &lt;a@b&gt;</name></author></entry>
<entry><title type="html">Escaped &amp;lt;b&amp;gt; literal&amp;hellip;</title><id>urn:x-test:typed-2</id>
<link href="https://typed.example/2"/><updated>2021-09-27T00:00:00Z</updated>
<summary type="html">&lt;p&gt;Markup &lt;b&gt;gone&lt;/b&gt;&lt;/p&gt;</summary></entry>
</feed>"""


def test_text_titles_stay_whole_in_every_format_and_page(tmp_path):
    """Asserts (SPEC §4, title plain text in every format): an Atom type="text" title, summary and author name
    are text already, and one that reads like markup (`<script>`, `<canvas>`) comes out whole and escaped in
    the Atom, RSS and JSON outputs, the river page and the story page; a type="html" title loses its tags and
    decodes its references once, so an escaped `&lt;b&gt;` is the literal `<b>`."""
    import json

    (tmp_path / "typed.atom").write_text(TYPED_TITLES, encoding="utf-8")
    config = write_config(tmp_path, [{"id": "typed", "url": "file:typed.atom"}],
                          [{"id": "all", "title": "All", "formats": ["atom", "rss", "json"]}])
    run_cli("once", config=config, check=True)
    out = tmp_path / "out"
    text, escaped = "Why <script> tags & <div>s matter", "Escaped <b> literal\u2026"
    atom = output_entries(out / "all.atom")
    assert [e.findtext(f"{ATOM}title") for e in atom] == [text, escaped]
    assert atom[0].findtext(f"{ATOM}author/{ATOM}name") == "Ann <a@b>"
    rss_titles = [i.findtext("title") for i in etree.parse(str(out / "all.rss")).getroot().iter("item")]
    assert rss_titles == [text, escaped]
    items = json.loads((out / "all.json").read_text(encoding="utf-8"))["items"]
    assert [i["title"] for i in items] == [text, escaped]
    river = lxml.html.parse(str(out / "all.html")).getroot()
    assert [h.text_content() for h in river.iter("h2")] == [text, escaped]
    assert [p.text_content() for p in river.find_class("summary")] == ["Use the <canvas> element", "Markup gone"]
    assert "Ann <a@b>" in river.text_content()
    assert river.find(".//script") is None and river.find(".//canvas") is None
    story = lxml.html.parse(str(next(p for p in (out / "stories").glob("*.html")
                                     if "typed.example/1" in p.read_text(encoding="utf-8")))).getroot()
    assert story.findtext(".//title").startswith(text) and story.find(".//h1").text_content() == text
    assert story.find(".//script") is None


def test_links_with_script_schemes_are_dropped(published):
    titles = {e.findtext(f"{ATOM}title"): e for e in published["all"]}
    for title in ("Script link", "Data link"):
        entry = titles[title]
        assert [link.get("href") for link in entry.findall(f"{ATOM}link")] == []


def test_safe_markup_and_relative_urls_through_the_cli(published):
    entry = {e.findtext(f"{ATOM}title"): e for e in published["all"]}["Keeps safe markup"]
    content = entry.findtext(f"{ATOM}content")
    assert 'href="https://news.example/c.html"' in content
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in content


def test_characters_xml_forbids_are_removed(published):
    """One bad title must not fail its feed, let alone an output."""
    assert published["status"]["bad"]["state"] == "ok", published["status"]["bad"]["last_error"]
    titles = [e.findtext(f"{ATOM}title") for e in output_entries(published["directory"] / "out" / "bad.atom")]
    assert sorted(titles) == ["Bad chars here", "Good neighbour"]


def test_deeply_nested_markup_is_sanitised_in_bounded_time(tmp_path):
    """100,000 nested <div> cost the HTML5 tree builder 15 s each (quadratic); three of them must not stall a poll.

    The 60 s subprocess timeout is a hang guard with a wide margin, not a speed measurement.
    """
    deep = "<div>" * 100_000 + "deep text"
    items = "".join(f"<item><title>Deep {i}</title><link>https://deep.example/{i}</link>"
                    f"<description><![CDATA[{deep}]]></description></item>" for i in range(3))
    (tmp_path / "deep.xml").write_bytes(rss(items))
    config = write_config(tmp_path, [{"id": "deep", "url": "file:deep.xml"}])
    result = run_cli("once", config=config, timeout=60)
    assert result.returncode == 0, result.stderr
    entries = output_entries(tmp_path / "out" / "all.atom")
    assert sorted(e.findtext(f"{ATOM}title") for e in entries) == ["Deep 0", "Deep 1", "Deep 2"]
    assert all(unsafe_html(e.findtext(f"{ATOM}content")) == [] for e in entries)


def test_an_item_with_nothing_but_a_guid_is_published_in_every_format(tmp_path):
    """No title, link or text (or a title of nothing but forbidden characters), with and without the attribution
    line: once exits 0 and every output lists every item, in valid documents."""
    import json

    items = ("<item><guid>bare-1</guid></item>"
             "<item><title>\x01\x02</title><guid>bare-2</guid></item>"
             "<item><title>Only a title</title><guid>bare-3</guid></item>")
    (tmp_path / "bare.xml").write_bytes(rss(items))
    formats = ["atom", "rss", "json"]
    config = write_config(tmp_path, [{"id": "bare", "url": "file:bare.xml"}],
                          [{"id": "with", "title": "With", "formats": formats},
                           {"id": "plain", "title": "Plain", "attribution": False, "formats": formats}])
    result = run_cli("once", config=config)
    assert result.returncode == 0, result.stderr
    for output in ("with", "plain"):
        entries = output_entries(tmp_path / "out" / f"{output}.atom")
        assert sorted(e.findtext(f"{ATOM}title") for e in entries) == ["(untitled)", "(untitled)", "Only a title"]
        for entry in entries:  # RFC 4287 4.1.1: no alternate link, so a content element
            alternate = [link for link in entry.findall(f"{ATOM}link") if link.get("rel", "alternate") == "alternate"]
            assert entry.find(f"{ATOM}content") is not None or alternate
        rss_items = etree.parse(str(tmp_path / "out" / f"{output}.rss")).getroot().findall("channel/item")
        assert len(rss_items) == 3
        items_json = json.loads((tmp_path / "out" / f"{output}.json").read_text())["items"]
        assert len(items_json) == 3 and all("content_html" in i or "content_text" in i for i in items_json)


def _story_content(page: str) -> str:
    """What a story page shows of the story's HTML: its content block."""
    return page.split('<div class="content"', 1)[1].split(">", 1)[1].split('</div>\n<div class="meta"', 1)[0].strip()


@pytest.mark.parametrize("stamp", [None, "nh3 0.2.14, policy 0"], ids=["before-stamps", "older-sanitiser"])
def test_a_story_page_cleans_again_html_this_version_did_not_sanitise(tmp_path, stamp):
    """Asserts: a poll stores, with each item's HTML, which sanitiser made it (`items.sanitizer`); a story page
    shows HTML stamped by this version as it is, and sanitises anything else again: HTML stored before the
    stamp existed, or under another nh3 or policy, as if every payload had been stored raw."""
    kept = "<p>Kept <em>as</em> stored</p>"
    (tmp_path / "a.xml").write_bytes(rss(rss_item("Stamped", "https://news.example/s", html.escape(kept))))
    config = write_config(tmp_path, [{"id": "a", "url": "file:a.xml"}])
    run_cli("once", config=config, check=True)
    (page,) = (tmp_path / "out" / "stories").glob("*.html")
    assert _story_content(page.read_text()) == kept
    with sqlite3.connect(tmp_path / "state" / "aggregator.db") as db:
        assert db.execute("SELECT sanitizer FROM items").fetchall() == [(SANITIZER,)]
        db.execute("UPDATE items SET content = ?, sanitizer = ?", ("".join(p for _, p in PAYLOADS), stamp))
        db.execute("DELETE FROM rendered")  # as after an upgrade: every document rendered again
    run_cli("publish", config=config, check=True)
    shown = _story_content(page.read_text())
    assert shown and unsafe_html(shown) == []
