"""Issue 15, reading sources: one test per defect, through the real CLI (subprocess), its files and its status.

Each test is marked xfail(strict=True) until its defect is fixed; the fixer removes the mark.
Only the CLI, the files it writes and `status --json` are used: no aggregator internals.
"""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from lxml import etree

from conftest import FIXTURES, run_cli, status_json, write_config
from hostile import run_cli_measured

ATOM = "{http://www.w3.org/2005/Atom}"
REAL = FIXTURES / "corpus" / "real"
DEFECTS = FIXTURES / "defects"


def atom_entries(path) -> list[etree._Element]:
    return etree.parse(str(path)).getroot().findall(f"{ATOM}entry")


def atom_titles(path) -> list[str]:
    return [e.findtext(f"{ATOM}title") for e in atom_entries(path)]


# 15.1 ------------------------------------------------------------------------------------------------------

def test_a_percent_escaped_file_url_is_decoded_once_and_shown_as_written(tmp_path):
    """Asserts: `file:feeds/local%20feed.atom` and `file:///…/local%20feed.atom` both read the file named
    `local feed.atom` (3 entries published, state ok), and `status` shows each URL exactly as configured
    (no `%2520`). Today: ENOENT on the literal `local%20feed.atom`, status shows `local%2520feed.atom`."""
    (tmp_path / "feeds").mkdir()
    shutil.copy(FIXTURES / "feeds" / "dates.atom", tmp_path / "feeds" / "local feed.atom")
    relative = "file:feeds/local%20feed.atom"
    absolute = (tmp_path / "feeds").as_uri() + "/local%20feed.atom"
    config = write_config(tmp_path, [{"id": "rel", "url": relative}, {"id": "abs", "url": absolute}])
    result = run_cli("once", config=config, check=True)
    rows = status_json(config)
    for source_id in ("rel", "abs"):
        assert rows[source_id]["state"] == "ok" and rows[source_id]["entries"] == 3, (rows[source_id], result.stdout)
    assert rows["rel"]["url"] == relative and rows["abs"]["url"] == absolute, rows
    assert len(atom_entries(tmp_path / "out" / "all.atom")) == 3  # one story, two copies each


# 15.3 ------------------------------------------------------------------------------------------------------

def _gzip_bomb(decoded_size: int) -> bytes:
    """A small gzip member that inflates to `decoded_size` bytes of a would-be feed (NULs after the head)."""
    import zlib

    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1024 * 1024)
    parts = [compressor.compress(b'<?xml version="1.0"?><rss version="2.0"><channel><title>')]
    parts += [compressor.compress(block) for _ in range(decoded_size // len(block))]
    parts.append(compressor.flush())
    return b"".join(parts)


def test_gzip_bodies_without_content_encoding_are_read_and_bombs_refused(tmp_path, feed_server):
    """Asserts: a real feed (heise.atom, 15 entries) gzipped is read (a) over http as `feed.xml.gz`
    (application/xml), (b) over http as application/x-gzip, (c) from a file: `.xml.gz`, (d) from a file: made
    of two gzip members (`cat a.gz b.gz`), (e) over http as a `.gz` file also sent with Content-Encoding: gzip;
    each source is ok with 15 entries. A truncated `.gz` file fails with a one-line error saying so. And a
    gzip bomb (64 MB decoded, < 100 KB on the wire) with max_bytes 1MB is refused over http and from file:
    with an error naming max_bytes, the process staying under 300 MB.
    Before the fix: the gzip bytes went to the parser ("not an RSS or Atom feed")."""
    feed = (REAL / "rss-parser" / "heise.atom").read_bytes()
    packed = gzip.compress(feed)
    bomb = _gzip_bomb(64 * 1024 * 1024)
    assert len(bomb) < 100 * 1024
    (tmp_path / "local.xml.gz").write_bytes(packed)
    (tmp_path / "members.xml.gz").write_bytes(gzip.compress(feed[:5000]) + gzip.compress(feed[5000:]))
    (tmp_path / "truncated.xml.gz").write_bytes(packed[:len(packed) // 2])
    (tmp_path / "bomb.xml.gz").write_bytes(bomb)
    sources = [
        {"id": "http-gz", "url": feed_server.serve("/feed.xml.gz", packed, content_type="application/xml")},
        {"id": "http-x-gzip", "url": feed_server.serve("/feed", packed, content_type="application/x-gzip")},
        {"id": "file-gz", "url": "file:local.xml.gz"},
        {"id": "file-members", "url": "file:members.xml.gz"},
        {"id": "http-twice", "url": feed_server.serve("/twice.xml.gz", gzip.compress(packed),
                                                      content_type="application/x-gzip",
                                                      headers={"Content-Encoding": "gzip"})},
        {"id": "file-truncated", "url": "file:truncated.xml.gz"},
        {"id": "http-bomb", "url": feed_server.serve("/bomb.xml.gz", bomb, content_type="application/x-gzip"),
         "max_bytes": "1MB"},
        {"id": "file-bomb", "url": "file:bomb.xml.gz", "max_bytes": "1MB"},
    ]
    config = write_config(tmp_path, sources)
    result = run_cli_measured("once", config=config)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    rows = status_json(config)
    for source_id in ("http-gz", "http-x-gzip", "file-gz", "file-members", "http-twice"):
        assert rows[source_id]["state"] == "ok" and rows[source_id]["entries"] == 15, rows[source_id]
    truncated = rows["file-truncated"]
    assert truncated["state"] == "failing" and "gzip" in truncated["last_error"], truncated
    assert "\n" not in truncated["last_error"], truncated
    for source_id in ("http-bomb", "file-bomb"):
        assert rows[source_id]["state"] == "failing", rows[source_id]
        assert "max_bytes" in rows[source_id]["last_error"], rows[source_id]
    assert result.max_rss_mb < 300


# 15.8 ------------------------------------------------------------------------------------------------------

JSON_FEED_11 = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "JSON Desk",
    "home_page_url": "https://json.example/",
    "feed_url": "https://json.example/feed.json",
    "language": "en",
    "authors": [{"name": "Desk Editor"}],
    "items": [
        {"id": "https://json.example/1", "url": "https://json.example/stories/1",
         "title": "First JSON story", "content_html": "<p>First <b>body</b></p>",
         "summary": "First summary", "date_published": "2021-09-27T08:00:00Z",
         "date_modified": "2021-09-28T09:30:00Z", "authors": [{"name": "Ann Writer"}],
         "tags": ["politics"], "language": "en"},
        {"id": "2", "external_url": "https://elsewhere.example/original",
         "url": "https://json.example/stories/2", "title": "Second JSON story",
         "content_text": "Plain second body", "date_published": "2021-09-26T12:00:00Z"},
    ],
}
JSON_FEED_10 = {
    "version": "https://jsonfeed.org/version/1",
    "title": "Old JSON Desk",
    "home_page_url": "https://old-json.example/",
    "author": {"name": "Old Desk"},
    "items": [
        {"id": "old-1", "url": "https://old-json.example/a", "title": "Version one story",
         "content_text": "Body one", "date_published": "2021-09-25T10:00:00+02:00",
         "author": {"name": "Bob Writer"}, "tags": ["economy"]},
    ],
}


def test_json_feed_sources_are_parsed_into_entries(tmp_path, feed_server):
    """Asserts: a JSON Feed 1.1 served as application/feed+json, the same served as application/json, and a
    JSON Feed 1.0 read from a file: (recognised by sniffing) are each ok; the Atom output carries their titles,
    links (url), published/updated dates, authors (authors / 1.0 author), categories (tags) and text.
    Today: `parse: not an RSS or Atom feed`."""
    body11 = json.dumps(JSON_FEED_11).encode()
    (tmp_path / "old.json").write_text(json.dumps(JSON_FEED_10))
    config = write_config(tmp_path, [
        {"id": "jf11", "url": feed_server.serve("/feed.json", body11, content_type="application/feed+json")},
        {"id": "jf11-plain", "url": feed_server.serve("/plain.json", body11.replace(b"JSON Desk", b"Plain Desk")
                                                      .replace(b"json.example/", b"plain.example/")
                                                      .replace(b"JSON story", b"story as application/json"),
                                                      content_type="application/json")},
        {"id": "jf10", "url": "file:old.json"},
    ])
    run_cli("once", config=config, check=True)
    rows = status_json(config)
    assert {k: (r["state"], r["entries"]) for k, r in rows.items()} == {
        "jf11": ("ok", 2), "jf11-plain": ("ok", 2), "jf10": ("ok", 1)}, rows
    entries = {e.findtext(f"{ATOM}title"): e for e in atom_entries(tmp_path / "out" / "all.atom")}
    first = entries["First JSON story"]
    assert alternate_links(first) == ["https://json.example/stories/1"]
    assert first.findtext(f"{ATOM}published").startswith("2021-09-27T08:00:00")
    assert first.findtext(f"{ATOM}updated").startswith("2021-09-28T09:30:00")
    assert [a.findtext(f"{ATOM}name") for a in first.findall(f"{ATOM}author")] == ["Ann Writer"]
    assert "politics" in {c.get("term") for c in first.findall(f"{ATOM}category")}
    assert "<b>body</b>" in (first.findtext(f"{ATOM}content") or "")
    assert "Plain second body" in (entries["Second JSON story"].findtext(f"{ATOM}content") or
                                   entries["Second JSON story"].findtext(f"{ATOM}summary") or "")
    assert [a.findtext(f"{ATOM}name") for a in entries["Second JSON story"].findall(f"{ATOM}author")] == [
        "Desk Editor"]  # an item without authors has the feed's (JSON Feed 1.1)
    old = entries["Version one story"]
    assert old.findtext(f"{ATOM}published").startswith("2021-09-25T08:00:00")
    assert [a.findtext(f"{ATOM}name") for a in old.findall(f"{ATOM}author")] == ["Bob Writer"]
    assert "economy" in {c.get("term") for c in old.findall(f"{ATOM}category")}


def alternate_links(entry) -> list[str]:
    """An Atom entry's own alternate links (a link without rel is one, RFC 4287 §4.2.7.2)."""
    return [link.get("href") for link in entry.findall(f"{ATOM}link") if link.get("rel", "alternate") == "alternate"]


def test_json_feed_limits_and_hostile_json(tmp_path, feed_server):
    """Asserts: JSON Feed items go through the limits every feed does: a 5,000-character title is cut to
    1,000, a date years ahead counts as missing (published = first seen), max_entries caps the items, a
    relative `url` resolves against the document's URL, an item with only `external_url` links there, and
    values of the wrong type are ignored, not fatal. A JSON document nested 100,000 deep, one that is not
    JSON, a JSON array, a JSON object that is no feed, and a feed whose `items` is a string each fail their
    source with a one-line `parse:` error, no traceback, while the good source is published."""
    items = [{"id": f"n{n}", "url": f"/posts/{n}", "title": f"Numbered {n}", "content_text": f"Body {n}",
              "date_published": f"2021-09-{10 + n:02d}T10:00:00Z"} for n in range(6)]
    items += [
        {"id": "long", "url": "https://limits.example/long", "title": "L" * 5000, "content_html": "<p>x</p>",
         "date_published": "2099-01-01T00:00:00Z"},
        {"id": "ext", "external_url": "https://elsewhere.example/original", "title": "Linked elsewhere",
         "content_text": "About that", "date_published": "2021-09-01T10:00:00Z"},
        {"id": "types", "url": "https://limits.example/types", "title": "Wrong types", "tags": "not-a-list",
         "authors": {"name": "not a list"}, "date_published": 20210901, "content_html": ["not", "text"],
         "summary": "Still readable", "attachments": [None, 3]},
        "not an object", None,
    ]
    good = {"version": "https://jsonfeed.org/version/1.1", "title": "Limits", "home_page_url": 42, "items": items}
    url = feed_server.serve("/limits.json", json.dumps(good), content_type="application/feed+json")
    hostile = {
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "broken": b'{"version": "https://jsonfeed.org/version/1.1", "items": [',
        "array": b"[1, 2, 3]",
        "other": json.dumps({"name": "some API", "results": []}).encode(),
        "items-string": json.dumps({"version": "https://jsonfeed.org/version/1", "items": "none"}).encode(),
    }
    sources = [{"id": "limits", "url": url, "max_entries": 9}]
    for name, body in hostile.items():
        sources.append({"id": name, "url": feed_server.serve(f"/{name}.json", body, content_type="application/json")})
    config = write_config(tmp_path, sources)
    result = run_cli("once", config=config, check=True)
    assert "Traceback" not in result.stderr, result.stderr
    rows = status_json(config)
    assert rows["limits"]["state"] == "ok" and rows["limits"]["entries"] == 9, rows["limits"]
    for name in hostile:
        error = rows[name]["last_error"] or ""
        assert rows[name]["state"] == "failing" and error.startswith("parse: ") and "\n" not in error, rows[name]
    entries = {e.findtext(f"{ATOM}title"): e for e in atom_entries(tmp_path / "out" / "all.atom")}
    assert alternate_links(entries["Numbered 0"]) == [feed_server.url("/posts/0")]
    assert alternate_links(entries["Linked elsewhere"]) == ["https://elsewhere.example/original"]
    long_title = next(t for t in entries if t.startswith("LLL"))
    assert len(long_title) == 1000
    assert entries[long_title].findtext(f"{ATOM}published")[:4] != "2099"
    wrong = entries["Wrong types"]
    assert "Still readable" in (wrong.findtext(f"{ATOM}content") or "")
    assert wrong.findall(f"{ATOM}author") == [] and "not-a-list" not in {
        c.get("term") for c in wrong.findall(f"{ATOM}category")}


# 15.9 ------------------------------------------------------------------------------------------------------

def test_podcast_episodes_linking_one_show_page_stay_separate(tmp_path):
    """Asserts: the 4 episodes of a podcast feed with no guids, every <link> the show page (a real capture,
    The Omni Show, with its guids taken out; see tests/fixtures/defects/ORIGIN.md) become 4 entries; and in a
    feed whose items share one link and have no enclosure, items with distinct title+date stay distinct.
    Today: one entry per feed (the key falls back to the shared link)."""
    shutil.copy(DEFECTS / "omnishow-no-guid.rss", tmp_path / "podcast.rss")
    base = datetime(2021, 9, 20, 10, 0, tzinfo=timezone.utc)
    items = "".join(f"<item><title>Weekly letter {n}</title><link>https://letters.example/</link>"
                    f"<pubDate>{format_datetime(base + timedelta(days=7 * n))}</pubDate>"
                    f"<description>Letter number {n}</description></item>" for n in range(3))
    (tmp_path / "letters.rss").write_text(
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Letters</title>'
        f"<link>https://letters.example/</link><description>d</description>{items}</channel></rss>")
    config = write_config(tmp_path, [{"id": "omni", "url": "file:podcast.rss"},
                                     {"id": "letters", "url": "file:letters.rss"}])
    run_cli("once", config=config, check=True)
    rows = status_json(config)
    assert rows["omni"]["entries"] == 4 and rows["letters"]["entries"] == 3, rows
    titles = atom_titles(tmp_path / "out" / "all.atom")
    assert len([t for t in titles if t.startswith("Weekly letter")]) == 3, titles
    assert len(titles) == 7, titles


# 15.13 -----------------------------------------------------------------------------------------------------

NEWS_RU = ("<rss version=\"2.0\"><channel><title>Новости</title><link>https://ru.example/</link>"
           "<description>Последние новости дня</description>"
           + "".join(f"<item><title>Новости дня: выпуск {n}</title><link>https://ru.example/news/{n}</link>"
                     f"<guid>https://ru.example/news/{n}</guid><pubDate>Mon, 2{n} Sep 2021 10:00:00 GMT</pubDate>"
                     f"<description>Сегодня в городе прошло собрание жителей, обсуждали новости района "
                     f"и планы на осень. Выпуск номер {n}.</description></item>" for n in range(3))
           + "</channel></rss>")


def test_an_undeclared_windows_1251_feed_is_detected_and_flagged(tmp_path, feed_server):
    """Asserts: a windows-1251 feed with no XML declaration, served as `text/xml` without charset, is
    republished with the Cyrillic titles (`Новости дня: выпуск 0`, no `Íîâîñòè`), and `status` (JSON `warning`
    and the plain table's warnings) says the encoding was guessed, naming windows-1251. So is feedparser's
    undeclared KOI8-R document read from a file:. A UTF-8 feed with one stray byte stays UTF-8 (one character
    replaced, the warning saying so). Left untouched and unflagged: the same Cyrillic text declared as
    windows-1251 in its XML declaration, and as UTF-8 served text/xml without charset.
    Before the fix: republished as latin-1 mojibake, status silent."""
    told = {"utf": "Синоптики обещают дожди и похолодание по всей области до конца недели.",
            "decl": "На рынке подорожали овощи, а цены на хлеб и молоко остались прежними.",
            "plain": "Школьники вернулись за парты после каникул, в районе открыли новую библиотеку."}

    def retitled(marker: str) -> str:  # another story per marker: dedup must not join them
        return (NEWS_RU.replace("Новости дня", f"Новости {marker}").replace("ru.example", f"{marker}.example")
                .replace("Сегодня в городе прошло собрание жителей, обсуждали новости района и планы на осень.",
                         told[marker]))

    stray = retitled("utf").encode("utf-8").replace("выпуск 1".encode(), "выпуск 1".encode() + b"\xff", 1)
    (tmp_path / "koi8r.xml").write_bytes((FIXTURES / "corpus" / "feedparser" / "illformed" / "chardet"
                                          / "koi8r.xml").read_bytes())
    config = write_config(tmp_path, [
        {"id": "ru", "url": feed_server.serve("/news.xml", NEWS_RU.encode("windows-1251"), content_type="text/xml")},
        {"id": "koi8", "url": "file:koi8r.xml"},
        {"id": "stray", "url": feed_server.serve("/stray.xml", stray, content_type="application/xml")},
        {"id": "declared", "url": feed_server.serve(
            "/declared.xml", ('<?xml version="1.0" encoding="windows-1251"?>' + retitled("decl")).encode("windows-1251"),
            content_type="text/xml")},
        {"id": "utf8", "url": feed_server.serve("/utf8.xml", retitled("plain").encode("utf-8"), content_type="text/xml")},
    ])
    run_cli("once", config=config, check=True)
    text = (tmp_path / "out" / "all.atom").read_text(encoding="utf-8")
    assert "Íîâîñòè" not in text
    titles = set(atom_titles(tmp_path / "out" / "all.atom"))
    assert titles >= {f"Новости дня: выпуск {n}" for n in range(3)}
    assert "Как пережить новогоднюю ночь" in titles
    assert titles >= {f"Новости {m}: выпуск {n}" for m in ("decl", "plain") for n in range(3)}
    assert {"Новости utf: выпуск 0", "Новости utf: выпуск 1\ufffd", "Новости utf: выпуск 2"} <= titles, titles
    rows = status_json(config)
    assert all(row["state"] == "ok" for row in rows.values()), rows
    assert "encoding" in rows["ru"]["warning"] and "windows-1251" in rows["ru"]["warning"], rows["ru"]
    assert "koi8" in rows["koi8"]["warning"].lower(), rows["koi8"]
    assert "UTF-8 with 1 invalid byte replaced" in rows["stray"]["warning"], rows["stray"]
    assert rows["declared"]["warning"] is None and rows["utf8"]["warning"] is None, rows
    table = run_cli("status", config=config, check=True).stdout
    assert "warnings:" in table and "ru: encoding guessed: read as windows-1251" in table, table


# 15.14 -----------------------------------------------------------------------------------------------------

OPML_WITH_FILES = """<?xml version="1.0" encoding="utf-8"?>
<opml version="2.0"><head><title>Subscriptions</title></head><body>
  <outline text="Real feed" title="Real feed" type="rss" xmlUrl="https://real.example/feed.xml"/>
  <outline text="Passwords" title="Passwords" type="rss" xmlUrl="file:///etc/passwd"/>
  <outline text="Local" title="Local" type="rss" xmlUrl="file:relative/feed.xml"/>
</body></opml>
"""


def test_opml_import_skips_file_outlines_unless_allowed(tmp_path):
    """Asserts: `opml import` of an OPML with an https outline and two file: outlines prints only the https
    source and says (stderr) that each file: outline was skipped; `--write` leaves no file: URL in the config;
    `--allow-files` accepts them (exit 0, file:///etc/passwd listed).
    Today: file:///etc/passwd becomes a source, `--write` writes it, `--allow-files` is an unknown option."""
    config = write_config(tmp_path, [{"id": "existing", "url": "http://example.test/feed"}])
    opml = tmp_path / "subs.opml"
    opml.write_text(OPML_WITH_FILES)
    printed = run_cli("opml", "import", str(opml), config=config, check=True)
    assert "https://real.example/feed.xml" in printed.stdout
    assert "file:" not in printed.stdout, printed.stdout
    assert "file:///etc/passwd" in printed.stderr and "skipped" in printed.stderr, printed.stderr
    assert "--allow-files" in printed.stderr  # says how to take them on purpose

    run_cli("opml", "import", "--write", str(opml), config=config, check=True)
    written = config.read_text()
    assert "https://real.example/feed.xml" in written and "file:" not in written, written

    allowed = run_cli("opml", "import", "--allow-files", str(opml), config=config)
    assert allowed.returncode == 0, allowed.stderr
    assert "file:///etc/passwd" in allowed.stdout


def test_a_feed_that_is_not_well_formed_xml_is_read_as_far_as_it_goes_and_says_so(tmp_path):
    """A real feed cut off mid-way (what a server that fails mid-response serves), one with a mismatched tag
    and one cut off inside its channel title: each source stays ok with the entries that could be read, and
    `status` (the table's warnings and `--json`'s `warning`) says the XML is not well-formed, where; the
    whole feed beside them has no warning, nor has one whose every item is read all the same. Before: all
    three looked healthy, nothing recorded."""
    feed = (REAL / "rss-parser" / "heise.atom").read_bytes()
    (tmp_path / "whole.atom").write_bytes(feed)
    (tmp_path / "cut.atom").write_bytes(feed[:len(feed) // 2])
    (tmp_path / "mismatched.rss").write_bytes(
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><item><title>A</title>'
        b"<link>https://mismatch.example/a</link></item><item><title>B</title></channel></rss>")
    (tmp_path / "stub.rss").write_bytes(b"<rss><channel><title>x</titl")
    # healthy enough: every item is read (blank lines before <?xml, as PHP sites send; &nbsp; and a stray &)
    (tmp_path / "blank.atom").write_bytes(b"\n\n" + feed.replace(b"heise", b"heise-blank"))
    (tmp_path / "loose.rss").write_bytes(
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>T&nbsp;</title><item><title>A & B</title>'
        b"<link>https://loose.example/a</link></item></channel></rss>")
    config = write_config(tmp_path, [{"id": name, "url": f"file:{file}"} for name, file in (
        ("whole", "whole.atom"), ("cut", "cut.atom"), ("mismatched", "mismatched.rss"), ("stub", "stub.rss"),
        ("blank", "blank.atom"), ("loose", "loose.rss"))])
    run_cli("once", config=config, check=True)
    rows = status_json(config)
    assert all(row["state"] == "ok" for row in rows.values()), rows
    for name, entries in (("whole", 15), ("blank", 15), ("loose", 1)):
        assert rows[name]["warning"] is None and rows[name]["entries"] == entries, rows[name]
    assert 0 < rows["cut"]["entries"] < 15, rows["cut"]
    for name in ("cut", "mismatched", "stub"):
        warning = rows[name]["warning"]
        assert warning and warning.startswith("not well-formed XML") and "line" in warning, rows[name]
    table = run_cli("status", config=config, check=True).stdout
    assert "warnings:" in table and "mismatched: not well-formed XML" in table, table
