"""Issue 15, what the outputs carry: one test per defect, through the real CLI and the files it writes.

Each test is marked xfail(strict=True) until its defect is fixed; the fixer removes the mark.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from lxml import etree

from conftest import run_cli, status_json, write_config
from test_daemon import daemons, fetch, free_port, wait_for  # noqa: F401 (daemons is a fixture)

ATOM = "{http://www.w3.org/2005/Atom}"
START = datetime(2021, 9, 1, tzinfo=timezone.utc)


def atom(path: Path):
    return etree.parse(str(path)).getroot()


def by_title(root) -> dict[str, etree._Element]:
    return {e.findtext(f"{ATOM}title"): e for e in root.findall(f"{ATOM}entry")}


def rss_items(path: Path) -> dict[str, etree._Element]:
    return {i.findtext("title"): i for i in etree.parse(str(path)).getroot().findall("channel/item")}


def json_items(path: Path) -> dict[str, dict]:
    return {i.get("title"): i for i in json.loads(path.read_text())["items"]}


def rss_doc(title: str, items: list[tuple[str, str]], channel_link: str | None = None, extra: str = "") -> str:
    link = f"<link>{channel_link}</link>" if channel_link else ""
    body = "".join(f"<item><title>{t}</title><link>{href}</link><guid isPermaLink=\"false\">{t}</guid>"
                   f"<pubDate>Mon, 27 Sep 2021 1{n}:00:00 GMT</pubDate><description>Text of {t}</description></item>"
                   for n, (t, href) in enumerate(items))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
            f"<channel><title>{title}</title>{link}<description>d</description>{extra}{body}</channel></rss>")


def absolute_web(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


# 15.2 ------------------------------------------------------------------------------------------------------

def test_relative_item_links_are_resolved_or_left_out(tmp_path, feed_server):
    """Asserts: an item link `/en/games/…` is resolved against, in order, xml:base, the document's http(s)
    URL, then the channel <link>; where nothing resolves it (file: source, no channel link) the entry is kept
    without a link. Checked in Atom (link rel=alternate), RSS (<link>) and JSON Feed (url); and no link of
    any kind in the three documents is relative. Today: `/en/games/relative-one` published as is."""
    (tmp_path / "site.rss").write_text(rss_doc("Games site", [("Relative one", "/en/games/relative-one")],
                                               "https://www.games.example/"))
    (tmp_path / "nolink.rss").write_text(rss_doc("No site", [("Unresolvable", "/en/games/unresolvable")]))
    (tmp_path / "based.atom").write_text(
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
        'xml:base="https://base.example/news/"><id>tag:base.example,2021:f</id><title>Based</title>'
        "<updated>2021-09-27T12:00:00Z</updated><entry><id>tag:base.example,2021:1</id><title>Based one</title>"
        '<link href="item-1.html"/><updated>2021-09-27T12:00:00Z</updated><summary>z</summary></entry></feed>')
    over_http = feed_server.serve("/feeds/games.rss", rss_doc("Games over http", [("Over http", "/en/games/over-http")],
                                                              "https://other-site.example/"))
    config = write_config(tmp_path, [
        {"id": "site", "url": "file:site.rss"},
        {"id": "nolink", "url": "file:nolink.rss"},
        {"id": "based", "url": "file:based.atom"},
        {"id": "http", "url": over_http},
    ], [{"id": "all", "title": "All", "formats": ["atom", "rss", "json"]}])
    run_cli("once", config=config, check=True)
    out = tmp_path / "out"
    expected = {
        "Relative one": "https://www.games.example/en/games/relative-one",  # the feed's site link
        "Based one": "https://base.example/news/item-1.html",  # xml:base
        "Over http": feed_server.url("/en/games/over-http"),  # the document's URL before the site link
        "Unresolvable": None,  # nothing resolves it: no link, entry kept
    }
    entries, items, jitems = by_title(atom(out / "all.atom")), rss_items(out / "all.rss"), json_items(out / "all.json")
    assert set(entries) == set(items) == set(jitems) == set(expected)
    for title, link in expected.items():
        alternate = entries[title].find(f"{ATOM}link[@rel='alternate']")
        if alternate is None:
            alternate = entries[title].find(f"{ATOM}link[@href]")
        assert (alternate.get("href") if alternate is not None else None) == link, title
        assert items[title].findtext("link") == link, title
        assert jitems[title].get("url") == link, title
    root = atom(out / "all.atom")
    hrefs = [e.get("href") for e in root.iter(f"{ATOM}link")]
    rss_links = [e.text for e in etree.parse(str(out / "all.rss")).getroot().iter("link") if e.text]
    json_urls = [i[k] for i in jitems.values() for k in ("url", "external_url") if i.get(k)]
    relative = [u for u in hrefs + rss_links + json_urls if not urlsplit(u).scheme]
    assert relative == []


def test_html_resolves_against_the_resolved_link_and_an_unresolved_entry_keeps_its_id(tmp_path):
    """Asserts: relative URLs inside an item's HTML resolve against the item link once that is resolved
    (against the channel link of a file: feed); an item with no guid whose relative link nothing resolves is
    published without a link and without its HTML's relative URLs (the link text stays), and when its text
    changes at the source it stays one entry with the same id (its key is the link as written, not a hash of
    its text)."""
    def document(text: str) -> str:
        return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Games</title>'
                "<link>https://www.games.example/</link><description>d</description>"
                "<item><title>Pictured</title><link>/en/games/pictured/</link><guid isPermaLink=\"false\">p</guid>"
                "<pubDate>Mon, 27 Sep 2021 10:00:00 GMT</pubDate>"
                '<description>&lt;img src="pic.png"&gt; &lt;a href="../other"&gt;other&lt;/a&gt;</description></item>'
                "</channel></rss>")

    (tmp_path / "pictured.rss").write_text(document(""))
    lonely = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Lonely</title>'
              "<description>d</description><item><title>No guid, relative link</title><link>/en/lonely</link>"
              "<pubDate>Mon, 27 Sep 2021 11:00:00 GMT</pubDate><description>{} &lt;img src=\"x.png\"&gt; "
              "&lt;a href=\"../more\"&gt;more&lt;/a&gt;</description></item></channel></rss>")
    (tmp_path / "lonely.rss").write_text(lonely.format("First text"))
    config = write_config(tmp_path, [{"id": "pictured", "url": "file:pictured.rss"},
                                     {"id": "lonely", "url": "file:lonely.rss"}])
    run_cli("once", config=config, check=True)
    entries = by_title(atom(tmp_path / "out" / "all.atom"))
    content = entries["Pictured"].findtext(f"{ATOM}content")
    assert 'src="https://www.games.example/en/games/pictured/pic.png"' in content, content
    assert 'href="https://www.games.example/en/games/other"' in content, content
    first = entries["No guid, relative link"]
    assert first.find(f"{ATOM}link[@rel='alternate']") is None and first.find(f"{ATOM}link[@href]") is None
    lonely_html = first.findtext(f"{ATOM}content")  # nothing resolves its URLs either: they are left out
    assert "x.png" not in lonely_html and "../more" not in lonely_html and ">more</a>" in lonely_html, lonely_html
    (tmp_path / "lonely.rss").write_text(lonely.format("Second text, edited at the source"))
    run_cli("once", config=config, check=True)
    entries = by_title(atom(tmp_path / "out" / "all.atom"))
    assert len(entries) == 2 and status_json(config)["lonely"]["entries"] == 1
    edited = entries["No guid, relative link"]
    assert edited.findtext(f"{ATOM}id") == first.findtext(f"{ATOM}id")
    assert "Second text" in edited.findtext(f"{ATOM}content")


def test_relative_links_stored_by_an_older_version_are_not_published(tmp_path):
    """Asserts: an item link an earlier version stored relative (it kept `/en/…` as given) is left out by the
    next `publish` (new code renders every document again), in all three formats, while the entry stays."""
    (tmp_path / "site.rss").write_text(rss_doc("Games site", [("Stored relative", "https://www.games.example/x")],
                                               "https://www.games.example/"))
    config = write_config(tmp_path, [{"id": "site", "url": "file:site.rss"}],
                          [{"id": "all", "title": "All", "formats": ["atom", "rss", "json"]}])
    run_cli("once", config=config, check=True)
    with sqlite3.connect(tmp_path / "state" / "aggregator.db") as db:  # what the version before 15.2 stored
        assert db.execute("UPDATE items SET link = '/en/games/x'").rowcount == 1
        db.execute("DELETE FROM rendered")  # as after an upgrade: the documents are rendered again
    run_cli("publish", config=config, check=True)
    out = tmp_path / "out"
    entry = by_title(atom(out / "all.atom"))["Stored relative"]
    assert [link.get("href") for link in entry.findall(f"{ATOM}link")] == []  # the entry's own links
    assert rss_items(out / "all.rss")["Stored relative"].findtext("link") is None
    assert "url" not in json_items(out / "all.json")["Stored relative"]


# 15.4 ------------------------------------------------------------------------------------------------------

def numbered_atom(count: int) -> str:
    entries = "".join(
        f"<entry><id>tag:src.test,2021:{n}</id><title>Story {n}</title><link href='http://src.test/{n}'/>"
        f"<updated>{(START + timedelta(hours=n)).isoformat()}</updated><summary>Text of story {n}</summary></entry>"
        for n in range(1, count + 1))
    return ("<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
            f"<id>tag:src.test,2021:feed</id><title>Source</title><updated>{START.isoformat()}</updated>"
            f"<link rel='alternate' href='http://src.test/'/>{entries}</feed>")


def test_no_document_reached_by_prev_archive_is_empty(tmp_path):
    """Asserts: with limit 4, after 8, 10, 12 and 13 stories, every document reached from all.atom through
    prev-archive links holds at least one entry, every story is in exactly one of them, and a page once full
    never changes. Today: as soon as page 1 fills (8 stories), an empty page 2 is created and linked."""
    feed = tmp_path / "source.atom"
    config = write_config(tmp_path, [{"id": "src", "url": "file:source.atom"}],
                          [{"id": "all", "title": "All", "limit": 4}])
    out = tmp_path / "out"
    frozen: dict[str, bytes] = {}
    for count in (8, 10, 12, 13):
        feed.write_text(numbered_atom(count))
        run_cli("once", config=config, check=True)
        seen, name, empty = [], "all.atom", []
        while name:
            root = atom(out / name)
            titles = [e.findtext(f"{ATOM}title") for e in root.findall(f"{ATOM}entry")]
            if not titles:
                empty.append(name)
            seen += titles
            prev = root.find(f"{ATOM}link[@rel='prev-archive']")
            name = prev.get("href")[len("http://feeds.test/"):] if prev is not None else None
        assert empty == [], (count, empty)
        assert sorted(seen) == sorted(f"Story {n}" for n in range(1, count + 1)), count
        for path, data in frozen.items():
            assert (out / path).read_bytes() == data, f"{path} changed after it was full"
        for page in (out / "archive" / "all").glob("*.atom"):
            if len(atom(page).findall(f"{ATOM}entry")) == 4:
                frozen.setdefault(str(page.relative_to(out)), page.read_bytes())


# 15.7 ------------------------------------------------------------------------------------------------------

SECRET_USER, SECRET_PASSWORD, SECRET_TOKEN = "reader", "s3cretPassw0rd", "KEYtok3n99"


def test_local_paths_and_credentials_appear_nowhere_but_in_the_request(tmp_path, feed_server, daemons):
    """Asserts: with a file: source (an RSS file with no id), a missing file: source, an http source
    `http://reader:s3cret…@host/feed.rss?token=KEY…` and a redirect loop under such a URL, (a) the feed server
    saw the credentials (Basic auth and the token), (b) no file written under out/ contains the local folder,
    a `file:` URL, the password or the token, (c) `status`, `status --json`, what `once` prints (the lines `run` logs) and the `run`
    server's status page (/) contain neither the password, the token nor the local folder, file: sources being
    shown as configured, the private one as `http://***@host/feed.rss?token=***`, the redirect loop's and the
    missing file's errors naming them masked / as configured; (d) the file source's atom:source id is a tag:
    URI naming the source; (e) `opml export` masks the credentials, `--with-credentials` prints them. Today: atom:source
    carries file:///…, the full credentials URL is in atom:source/RSS source/JSON and on the status page."""
    (tmp_path / "local.rss").write_text(rss_doc("Local desk", [("Local story", "https://local.example/1")],
                                                "https://local.example/"))
    relative = ('<item><title>Relative text</title><link>/posts/rel-2.html</link><guid>perma/3.html</guid>'
                '<pubDate>Mon, 27 Sep 2021 09:00:00 GMT</pubDate><description>&lt;a href="other.html"&gt;on&lt;/a&gt;'
                ' &lt;a href="#top"&gt;up&lt;/a&gt; &lt;img src="pic.png"&gt;</description></item>')
    feed_server.serve("/feed.rss", rss_doc("Private desk", [("Private story", "https://private.example/1"),
                                                            ("Relative story", "/posts/rel-1.html"),
                                                            ("Fragment story", "#item-1")],
                                           extra=relative))  # no site link: the relative links resolve

    def loop_to(target: str):
        def handler(request):
            request.send_response(302)
            request.send_header("Location", target)
            request.send_header("Content-Length", "0")
            request.end_headers()
        return handler

    feed_server.serve("/loop-a", handler=loop_to("/loop-b"))
    feed_server.serve("/loop-b", handler=loop_to("/loop-a"))
    host = feed_server.base.split("://", 1)[1]
    private = f"http://{SECRET_USER}:{SECRET_PASSWORD}@{host}/feed.rss?token={SECRET_TOKEN}"
    looping = f"http://{SECRET_USER}:{SECRET_PASSWORD}@{host}/loop-a?token={SECRET_TOKEN}"
    port, local_folder = free_port(), str(tmp_path)
    config = write_config(tmp_path, [
        {"id": "local", "url": "file:local.rss"},
        {"id": "missing", "url": "file:missing.rss"},
        {"id": "private", "url": private},
        {"id": "looping", "url": looping},
    ], [{"id": "all", "title": "All", "formats": ["atom", "rss", "json"]}],
        server={"listen": f"127.0.0.1:{port}"}, defaults={"interval": 60})
    once = run_cli("once", config=config, check=True)
    said = once.stdout + once.stderr  # the per-source lines `once` prints are the lines `run` logs
    assert "looping: error" in said, said
    assert not [w for w in (local_folder, SECRET_PASSWORD, SECRET_TOKEN) if w in said], said

    seen = feed_server.seen("/feed.rss")
    assert seen and SECRET_TOKEN in seen[0].path  # the request itself still carries the credentials
    assert seen[0].headers.get("authorization") == "Basic " + base64.b64encode(
        f"{SECRET_USER}:{SECRET_PASSWORD}".encode()).decode()

    forbidden = (local_folder, "file:", SECRET_PASSWORD, SECRET_TOKEN)
    leaks = {str(p.relative_to(tmp_path / "out")): [w for w in forbidden if w in p.read_text(errors="replace")]
             for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert {k: v for k, v in leaks.items() if v} == {}

    rows = status_json(config)
    assert rows["local"]["url"] == "file:local.rss" and rows["missing"]["url"] == "file:missing.rss", rows
    assert rows["private"]["state"] == "ok" and rows["looping"]["state"] == "failing", rows
    for text in (json.dumps(rows), run_cli("status", config=config, check=True).stdout):
        assert not [w for w in (local_folder, SECRET_PASSWORD, SECRET_TOKEN) if w in text], text
    assert "redirects" in rows["looping"]["last_error"] and "***@" in rows["looping"]["last_error"], rows["looping"]
    assert rows["missing"]["last_error"].startswith("fetch: cannot read file:missing.rss"), rows["missing"]
    assert rows["private"]["url"] == f"http://***@{host}/feed.rss?token=***", rows["private"]
    exported = run_cli("opml", "export", config=config, check=True).stdout  # masked: OPML files are handed on
    assert SECRET_PASSWORD not in exported and SECRET_TOKEN not in exported and "token=***" in exported
    assert private in run_cli("opml", "export", "--with-credentials", config=config, check=True).stdout

    entries = by_title(atom(tmp_path / "out" / "all.atom"))  # against the feed's URL less its credentials
    links = {t: [link.get("href") for link in entries[t].iter(f"{ATOM}link") if link.get("rel", "alternate") ==
                 "alternate"][0] for t in ("Relative story", "Fragment story", "Relative text")}
    assert links == {"Relative story": f"http://{host}/posts/rel-1.html", "Fragment story": f"http://{host}/feed.rss#item-1",
                     "Relative text": f"http://{host}/posts/rel-2.html"}, links
    content = entries["Relative text"].findtext(f"{ATOM}summary") or entries["Relative text"].findtext(f"{ATOM}content")
    assert f'href="http://{host}/posts/other.html"' in content and f'src="http://{host}/posts/pic.png"' in content, content
    entry = entries["Local story"]
    source_id = entry.find(f"{ATOM}source").findtext(f"{ATOM}id")
    assert source_id.startswith("tag:") and "local" in source_id, source_id

    daemon = daemons(config)
    wait_for(lambda: fetch(port, "/")[0] == 200, timeout=30, what="the status page", log=daemon.log)
    status, _, body = fetch(port, "/")  # (/metrics is not served at all today: not part of this defect)
    text = body.decode("utf-8", "replace")
    assert status == 200 and not [w for w in (local_folder, SECRET_PASSWORD, SECRET_TOKEN) if w in text], text


# 15.10 -----------------------------------------------------------------------------------------------------

IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]+$")


def test_every_id_written_is_a_valid_iri(tmp_path, feed_server):
    """Asserts: for RSS channels carrying `<guid>95148ACD-C1A3-…</guid>` (not a URI), atom:source/atom:id is
    the feed's self URL when it has one (atom:link rel=self), else the polled http URL or a tag: URI — never
    the guid resolved against the document URL; and every atom:id in the output is an absolute IRI with no
    file: scheme. Today: `file://tmp/…/95148ACD-…` and `http://127.0.0.1:…/AAAA1111-…`."""
    guid_a, guid_b = "95148ACD-C1A3-4F2B-9A4E-6C1B2D3E4F50", "AAAA1111-C1A3-4F2B-9A4E-6C1B2D3E4F50"
    (tmp_path / "a.rss").write_text(rss_doc("Guid channel", [("Item A", "https://guid.example/a")],
                                            "https://guid.example/",
                                            f'<guid>{guid_a}</guid><atom:link rel="self" '
                                            'href="https://guid.example/feed.rss"/>'))
    url_b = feed_server.serve("/b.rss", rss_doc("Guid channel two", [("Item B", "https://guid2.example/b")],
                                                "https://guid2.example/", f"<guid>{guid_b}</guid>"))
    config = write_config(tmp_path, [{"id": "a", "url": "file:a.rss"}, {"id": "b", "url": url_b}])
    run_cli("once", config=config, check=True)
    root = atom(tmp_path / "out" / "all.atom")
    entries = by_title(root)
    source_a = entries["Item A"].find(f"{ATOM}source").findtext(f"{ATOM}id")
    source_b = entries["Item B"].find(f"{ATOM}source").findtext(f"{ATOM}id")
    assert source_a == "https://guid.example/feed.rss", source_a
    assert source_b == url_b or source_b.startswith("tag:"), source_b
    ids = [e.text for e in root.iter(f"{ATOM}id")]
    assert all(IRI.match(i) and not i.startswith("file:") for i in ids), ids
