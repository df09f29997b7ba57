"""A published site to test the HTML pages on: several sources in both directions, hostile text, an archive.

Shared by test_pages.py (the files) and test_pages_browser.py (a real browser on `aggregator run`).
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

from conftest import ROOT, write_config
from hostile import rss, rss_item, xss_payloads

LONG_URL = "https://news.example/" + "a-very-long-path-segment-without-any-break" * 6
LONG_WORD = "Donaudampfschifffahrtsgesellschaftskapitänswitwenrentenversicherungsanstalt" * 2


def english_feed() -> bytes:
    """An English source: authors, categories, a remote image, a long URL and a long word, and one story
    (the frog) that the digest source carries too, so it has a related copy."""
    items = [
        _item("Scientists discover new species of frog in Amazon rainforest", "https://alpha.example/2021/frog",
              "<p>A team found a tiny frog. " + "The frog sings at night in the canopy. " * 12
              + '</p><p><img src="https://images.alpha.example/frog.jpg" alt="The frog"></p>'
              + f'<p>More at <a href="{LONG_URL}">{LONG_URL}</a> and {LONG_WORD}.</p>',
              "Mon, 27 Sep 2021 10:00:00 GMT", ["Ana Lima", "Bo Chen"], ["science", "nature"]),
        _item("Council approves new bike lanes", "https://alpha.example/2021/bikes",
              "<p>The city council voted for twelve kilometres of protected lanes.</p>",
              "Sun, 26 Sep 2021 09:00:00 GMT", ["Dee Park"], ["city"]),
    ]
    items += [_item(f"Morning briefing {n}", f"https://alpha.example/2021/briefing-{n}",
                    f"<p>Briefing number {n}: the news of the day in a few lines.</p>",
                    f"Sat, {25 - n:02d} Sep 2021 07:00:00 GMT", ["Desk"], []) for n in range(1, 6)]
    return _channel("Alpha News", "https://alpha.example/", "en", items)


def digest_feed() -> bytes:
    """A republisher carrying the frog story under its own title decoration (a related copy), later."""
    return _channel("Beta Digest", "https://beta.example/", "en", [
        _item("Scientists discover new species of frog in Amazon rainforest | Beta Digest",
              "https://alpha.example/2021/frog?utm_source=rss",
              "<p>A team found a tiny frog. " + "The frog sings at night in the canopy. " * 12 + "</p>",
              "Tue, 28 Sep 2021 08:00:00 GMT", [], []),
    ])


def unknown_language_feed() -> bytes:
    """A source declaring no language at all: its titles and summaries get dir="auto"."""
    items = [_item("Ein Titel ohne erklärte Sprache", "https://gamma.example/1", "<p>Text ohne Sprachangabe.</p>",
                   "Fri, 24 Sep 2021 12:00:00 GMT", [], [])]
    return _channel("Gamma", "https://gamma.example/", None, items)


def hostile_feed() -> bytes:
    """Every XSS payload of the hostile corpus as a title, an author and a category, and as content."""
    items = []
    for n, (_, payload) in enumerate(xss_payloads()):
        escaped = html.escape(payload)
        items.append(f"<item><title>{escaped}</title><link>https://hostile.example/{n}</link>"
                     f"<guid>hostile-{n}</guid><pubDate>Thu, 23 Sep 2021 10:{n % 60:02d}:00 GMT</pubDate>"
                     f"<dc:creator>{escaped}</dc:creator><category>{escaped}</category>"
                     f"<description>{escaped}</description></item>")
    return rss("".join(items), title=html.escape('<script>alert("feed")</script>Hostile'),
               link="https://hostile.example/").replace(b'<rss version="2.0">',
                                                        b'<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">')


def _item(title, link, description, date, authors, categories) -> str:
    body = rss_item(html.escape(title), link, html.escape(description), date, guid=link)
    extra = "".join(f"<dc:creator>{html.escape(a)}</dc:creator>" for a in authors)
    extra += "".join(f"<category>{html.escape(c)}</category>" for c in categories)
    return body.replace("</item>", extra + "</item>")


def _channel(title: str, link: str, language: str | None, items: list[str]) -> bytes:
    lang = f"<language>{language}</language>" if language else ""
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
            f'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>{title}</title><link>{link}</link>'
            f"<description>{title}</description>{lang}{''.join(items)}</channel></rss>").encode("utf-8")


def build_site(directory: Path, **extra) -> Path:
    """The feeds and a config in `directory`; outputs: `world` (limit 4, so it has archive pages), `persian`
    (language fa), `hostile`. Returns the config path; publish with `once`."""
    (directory / "alpha.rss").write_bytes(english_feed())
    (directory / "beta.rss").write_bytes(digest_feed())
    (directory / "gamma.rss").write_bytes(unknown_language_feed())
    (directory / "hostile.rss").write_bytes(hostile_feed())
    shutil.copy(ROOT / "config" / "samples" / "persian.rss", directory / "persian.rss")
    sources = [{"id": "alpha", "url": "file:alpha.rss", "tags": ["world"]},
               {"id": "beta", "url": "file:beta.rss", "tags": ["world"]},
               {"id": "gamma", "url": "file:gamma.rss", "tags": ["world"]},
               {"id": "persian", "url": "file:persian.rss", "tags": ["world", "fa"]},
               {"id": "hostile", "url": "file:hostile.rss"}]
    outputs = [{"id": "world", "title": "World", "subtitle": "Both directions", "tags": ["world"], "limit": 4,
                "formats": ["atom", "rss", "json"]},
               {"id": "persian", "title": "شعر", "tags": ["fa"], "language": "fa"},
               {"id": "hostile", "title": '<img src=x onerror="alert(1)">Hostile', "sources": ["hostile"],
                "limit": 500}]
    return write_config(directory, sources, outputs, **extra)
