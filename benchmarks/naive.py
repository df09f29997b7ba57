"""The baseline: the merge script an operator writes in an afternoon.

Sequential requests + feedparser + feedgen: fetch every feed (no validators),
parse it, and write one Atom feed of the newest 100 entries.
Usage: python benchmarks/naive.py OUTFILE URL...   (or URLs on stdin with -)
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import feedparser
import requests
from feedgen.feed import FeedGenerator


def main(out: str, urls: list[str]) -> None:
    session = requests.Session()
    entries = []
    for url in urls:
        try:
            response = session.get(url, timeout=30)
        except requests.RequestException:
            continue
        feed = feedparser.parse(response.content)
        for entry in feed.entries:
            when = entry.get("published_parsed") or entry.get("updated_parsed")
            entries.append((datetime(*when[:6], tzinfo=timezone.utc) if when else datetime.now(timezone.utc),
                            entry, feed.feed.get("title", url)))
    entries.sort(key=lambda e: e[0], reverse=True)
    fg = FeedGenerator()
    fg.id("urn:x-naive:merged")
    fg.title("Merged")
    fg.link(href="http://127.0.0.1/merged.atom", rel="self")
    for when, entry, source in reversed(entries[:100]):
        fe = fg.add_entry()
        fe.id(entry.get("id") or entry.get("link") or str(when))
        fe.title(entry.get("title", ""))
        fe.link(href=entry.get("link", ""))
        fe.published(when)
        fe.updated(when)
        fe.content(entry.get("summary", ""), type="html")
        fe.source(url=entry.get("link", ""), title=source)
    fg.atom_file(out)


if __name__ == "__main__":
    urls = sys.argv[2:]
    if urls == ["-"]:
        urls = sys.stdin.read().split()
    main(sys.argv[1], urls)
