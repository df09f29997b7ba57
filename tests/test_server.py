"""The output folder served by the real waitress server: media types, validators and 304s, gzip, the index page."""

from __future__ import annotations

import gzip
import http.client
import json
import os
from datetime import datetime, timezone

import pytest

from aggregator.config import load_config
from aggregator.models import SourceState
from aggregator.output.files import write_atomic
from aggregator.run.server import App, Server
from aggregator.store import Store
from conftest import write_config

ATOM = b"<?xml version='1.0' encoding='UTF-8'?>\n<feed xmlns='http://www.w3.org/2005/Atom'>" + b"<!-- padding -->" * 64 + b"</feed>\n"


@pytest.fixture
def site(tmp_path):
    """A served output folder with one of each kind of file, and a store holding two sources' health."""
    config_path = write_config(tmp_path, [
        {"id": "good", "url": "http://example.org/good.xml"},
        {"id": "evil", "url": "http://example.org/evil.xml"},
        {"id": "private", "url": "https://reader:s3cretPassw0rd@example.org/p.xml?token=KEYtok3n99&page=2"},
        {"id": "local", "url": "file:local.rss"},
    ], [{"id": "world", "title": "World <news>", "subtitle": "From everywhere", "formats": ["atom", "rss", "json"]}],
        server={"listen": "127.0.0.1:8080"})  # the test serves on a free port instead
    config = load_config(config_path)
    out = config.output_dir
    (out / "archive" / "world").mkdir(parents=True)
    (out / "stories").mkdir()
    files = {"world.atom": ATOM, "world.rss": b"<rss version='2.0'><channel/></rss>",
             "world.json": b'{"version": "https://jsonfeed.org/version/1.1"}', "feed.xsl": b"<xsl:stylesheet/>",
             "index.opml": b"<opml version='2.0'/>", ".world.atom.123.tmp": b"half a fi",
             "archive/world/1.atom": ATOM, "world.html": b"<!DOCTYPE html><title>World</title>",
             "stories/0f3e.html": b"<!DOCTYPE html><title>A story</title>", "pages.css": b"body{margin:0}"}
    for name, body in files.items():
        (out / name).write_bytes(body)
    (tmp_path / "secret.txt").write_text("not for the web")
    os.symlink(tmp_path / "secret.txt", out / "link.txt")
    store = Store(config.state)
    with store.transaction() as db:
        now = datetime(2024, 3, 4, 12, 0, tzinfo=timezone.utc)
        Store.save_source_state(db, SourceState("good", state="ok", last_poll=now, last_success=now, next_poll=now))
        Store.save_source_state(db, SourceState("evil", state="failing", errors=3, last_poll=now,
                                                last_error='parse: <script>alert("x")</script>'))
    health = {"ok": True}
    server = Server(App(lambda: config, store, lambda: (health["ok"], {"sources": {"ok": 1}})),
                    ("127.0.0.1", 0)).start()
    yield config, server.address[1], health
    server.stop()
    store.close()


def get(port: int, path: str, method: str = "GET", **headers) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


@pytest.mark.parametrize("name, media_type", [
    ("world.atom", "application/atom+xml"), ("world.rss", "application/rss+xml"),
    ("world.json", "application/feed+json"), ("feed.xsl", "text/xsl"), ("index.opml", "text/x-opml"),
    ("archive/world/1.atom", "application/atom+xml"), ("world.html", "text/html"),
    ("stories/0f3e.html", "text/html"), ("pages.css", "text/css"),
])
def test_each_kind_of_file_is_served_with_its_media_type(site, name, media_type):
    config, port, _ = site
    status, headers, body = get(port, "/" + name)
    assert status == 200
    assert headers["content-type"] == media_type + "; charset=utf-8"
    assert body == (config.output_dir / name).read_bytes()


def test_conditional_requests_get_304_until_the_file_changes(site):
    config, port, _ = site
    _, first, _ = get(port, "/world.atom")
    assert first["etag"] and first["last-modified"]
    status, headers, body = get(port, "/world.atom", **{"If-None-Match": first["etag"]})
    assert (status, body) == (304, b"")
    assert headers["etag"] == first["etag"]
    status, _, body = get(port, "/world.atom", **{"If-Modified-Since": first["last-modified"]})
    assert (status, body) == (304, b"")
    status, _, _ = get(port, "/world.atom", **{"If-None-Match": '"something-else"'})
    assert status == 200
    write_atomic(config.output_dir / "world.atom", ATOM.replace(b"padding", b"changed"))
    status, headers, body = get(port, "/world.atom", **{"If-None-Match": first["etag"]})
    assert status == 200 and b"changed" in body
    assert headers["etag"] != first["etag"]


def test_gzip_for_clients_that_accept_it(site):
    config, port, _ = site
    status, headers, body = get(port, "/world.atom", **{"Accept-Encoding": "gzip, deflate"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == (config.output_dir / "world.atom").read_bytes()
    assert len(body) < len(ATOM) and headers["vary"] == "Accept-Encoding"
    status, plain, body = get(port, "/world.atom", **{"Accept-Encoding": "gzip;q=0, identity"})
    assert "content-encoding" not in plain and body == ATOM
    assert plain["etag"] != headers["etag"]  # two representations, two validators
    status, _, body = get(port, "/world.atom", **{"Accept-Encoding": "gzip", "If-None-Match": headers["etag"]})
    assert (status, body) == (304, b"")


def test_head_sends_the_headers_without_the_body(site):
    _, port, _ = site
    status, headers, body = get(port, "/world.atom", method="HEAD")
    assert status == 200 and body == b""
    assert headers["content-length"] == str(len(ATOM))


@pytest.mark.parametrize("path", [
    "/../state/aggregator.db", "/%2e%2e/state/aggregator.db", "/archive/../../aggregator.yaml",
    "/.world.atom.123.tmp", "/link.txt", "/archive/world/", "/archive", "/missing.atom",
])
def test_nothing_outside_the_published_files_is_served(site, path):
    _, port, _ = site
    status, _, body = get(port, path)
    assert status == 404
    assert b"not for the web" not in body and b"SQLite" not in body


def test_only_get_and_head(site):
    _, port, _ = site
    status, headers, _ = get(port, "/world.atom", method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_the_root_is_the_published_index_page(site):
    config, port, _ = site
    status, headers, body = get(port, "/")
    assert status == 404  # not published yet: nothing pretends to be the index
    write_atomic(config.output_dir / "index.html", b"<!DOCTYPE html><title>Feeds</title>" + b"<p>x</p>" * 64)
    for path in ("/", "/index.html"):
        status, headers, body = get(port, path, **{"Accept-Encoding": "gzip"})
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        assert gzip.decompress(body) == (config.output_dir / "index.html").read_bytes()
        status, _, body = get(port, path, **{"If-None-Match": headers["etag"], "Accept-Encoding": "gzip"})
        assert (status, body) == (304, b"")


def test_the_status_page_lists_outputs_with_subscribe_links_and_every_sources_health(site):
    config, port, _ = site
    status, headers, body = get(port, "/status")
    page = body.decode()
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert "World &lt;news&gt;" in page and "From everywhere" in page
    for name in ("world.atom", "world.rss", "world.json"):
        assert f'href="{name}"' in page
    assert "http://feeds.test/world.atom" in page  # the public address to paste into a reader
    assert '<link rel="alternate" type="application/atom+xml"' in page
    assert ">good</a></td><td>ok</td>" in page
    assert ">evil</a></td><td>failing</td>" in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "<script>" not in page
    assert "<td>private</td>" in page  # a URL with credentials is not linked at all (they are masked everywhere)
    assert not [w for w in ("s3cretPassw0rd", "KEYtok3n99", str(config.path.parent)) if w in page], page


def test_healthz_reports_the_daemons_health(site):
    _, port, health = site
    status, headers, body = get(port, "/healthz")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"status": "ok", "sources": {"ok": 1}}
    health["ok"] = False
    status, _, body = get(port, "/healthz")
    assert status == 503 and json.loads(body)["status"] == "unavailable"
