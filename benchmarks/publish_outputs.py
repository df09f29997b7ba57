"""How long publishing takes for a large store: the first publish (which writes every archive page), a
publish where nothing changed, and one after 20 new stories; with and without include/exclude filters.

    .venv/bin/python benchmarks/publish_outputs.py [STORIES]

Stories are inserted straight into a real SQLite store (one source, 2 KB of HTML each); outputs are
`limit: 100` in all three formats. Prints seconds per step and the number of files written.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import write_config  # noqa: E402

from aggregator.config import load_config  # noqa: E402
from aggregator.pipeline import publish_outputs  # noqa: E402
from aggregator.store import Store, story_uid  # noqa: E402

START = datetime(2020, 1, 1, tzinfo=timezone.utc)
BODY = "<p>" + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 35 + "</p>"


def add_stories(store: Store, first: int, count: int) -> None:
    with store.transaction() as db:
        for n in range(first, first + count):
            when = START + timedelta(hours=n)
            story = Store.create_story(db, story_uid("src", f"k{n}"), when)
            Store.insert_item(db, story, "src", {
                "key": f"k{n}", "guid": f"k{n}", "link": f"https://src.example/{n}", "canonical_link": None,
                "title": f"Story number {n} about {'Mali' if n % 3 else 'Peru'}", "title_key": None,
                "summary": None, "content": BODY, "authors": ("Writer",), "categories": ("news",),
                "language": "en", "published": when, "updated": when, "first_seen": when, "raw_hash": str(n),
                "content_hash": None})


def timed(label: str, action) -> None:
    started = time.perf_counter()
    written = action()
    print(f"{label:<34} {time.perf_counter() - started:7.2f} s  {len(written):5d} files written")


def main(stories: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = write_config(Path(directory), [{"id": "src", "url": "https://src.example/feed"}], [
            {"id": "all", "title": "All", "formats": ["atom", "rss", "json"]},
            {"id": "mali", "title": "Mali", "formats": ["atom", "rss", "json"], "include": ["Mali", "/^Story/"],
             "exclude": ["/number 1\\d\\d\\b/"]},
        ])
        config = load_config(path)
        store = Store(config.state)
        add_stories(store, 0, stories)
        print(f"{stories} stories, 2 outputs x 3 formats, limit 100")
        timed("first publish (all archive pages)", lambda: publish_outputs(store, config))
        timed("publish, nothing changed", lambda: publish_outputs(store, config))
        add_stories(store, stories, 20)
        timed("publish after 20 new stories", lambda: publish_outputs(store, config))
        store.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
