"""Publishing reads only what can change the documents, and writes what a publish reading everything would.

After any sequence of polls (new stories, backdated ones, edited archived
ones, a better copy from a second source), the files are byte for byte those a
publish that reads the whole store writes; a publish whose record a crash lost
neither drops nor repeats a story.
"""

from __future__ import annotations

import filecmp
import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

from lxml import etree

from conftest import run_cli, write_config

ATOM = "{http://www.w3.org/2005/Atom}"
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def rss(name: str, items: dict[int, tuple[datetime, str]]) -> str:
    body = "".join(
        f"<item><title>{name} story {n}</title><link>https://{name}.example/{n}</link><guid>{name}-{n}</guid>"
        f"<pubDate>{format_datetime(when)}</pubDate><description>{text}</description></item>"
        for n, (when, text) in sorted(items.items(), key=lambda kv: kv[1][0], reverse=True))
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{name}</title>{body}</channel></rss>'


def entry_ids(out: Path, output: str = "all") -> list[str]:
    """Entry ids of every Atom document of one output: its current document and its archive pages."""
    paths = [out / f"{output}.atom", *(out / "archive" / output).glob("*.atom")]
    return [e.findtext(f"{ATOM}id") for path in paths for e in etree.parse(str(path)).getroot().iter(f"{ATOM}entry")]


def same_files(one: Path, two: Path) -> list[str]:
    """The files that differ (or exist on one side only) between two output folders, hidden ones aside."""
    names = {p.relative_to(one) for p in one.rglob("*") if p.is_file() and not p.name.startswith(".")}
    names |= {p.relative_to(two) for p in two.rglob("*") if p.is_file() and not p.name.startswith(".")}
    return sorted(str(n) for n in names if not ((one / n).is_file() and (two / n).is_file()
                                               and filecmp.cmp(one / n, two / n, shallow=False)))


def test_an_incremental_publish_writes_what_a_full_one_would(tmp_path, feed_server):
    alpha = {n: (NOW - timedelta(hours=40 - n), f"Alpha text {n} about the harbour") for n in range(12)}
    beta: dict[int, tuple[datetime, str]] = {}
    urls = [feed_server.serve("/alpha.rss", rss("alpha", alpha)), feed_server.serve("/beta.rss", rss("beta", beta))]
    config = write_config(tmp_path, [{"id": "alpha", "url": urls[0]}, {"id": "beta", "url": urls[1], "priority": 5}],
                          [{"id": "all", "title": "All", "limit": 4, "formats": ["atom", "rss", "json"]},
                           {"id": "filtered", "title": "Harbour", "limit": 3, "include": ["harbour"]}])
    run_cli("once", config=config, check=True)
    rounds = [
        lambda: alpha.update({n: (NOW - timedelta(hours=30 - n), f"Alpha text {n} about the harbour")
                              for n in range(12, 18)}),
        lambda: alpha.update({99: (NOW - timedelta(days=30), "A backdated story about the harbour")}),
        lambda: alpha.update({0: (alpha[0][0], "Alpha text 0, corrected, about the harbour")}),  # archived, edited
        lambda: alpha.update({n: (NOW - timedelta(hours=20 - n), f"Alpha text {n} about the city")
                              for n in range(18, 30)}),
        lambda: beta.update({1: (NOW, "Beta's own story about the harbour")}),
    ]
    for change in rounds:
        change()
        feed_server.serve("/alpha.rss", rss("alpha", alpha))
        feed_server.serve("/beta.rss", rss("beta", beta))
        run_cli("once", config=config, check=True)
        for output in ("all", "filtered"):
            ids = entry_ids(tmp_path / "out", output)
            assert len(ids) == len(set(ids))  # every story in exactly one document

    full = tmp_path / "full"
    shutil.copytree(tmp_path / "out", full / "out")
    shutil.copytree(tmp_path / "state", full / "state")
    shutil.copy(config, full / "aggregator.yaml")
    with sqlite3.connect(full / "state" / "aggregator.db") as db:  # as if never published incrementally
        db.execute("DELETE FROM publications")
        db.execute("DELETE FROM archived")
    run_cli("publish", config=full / "aggregator.yaml", check=True)
    assert same_files(tmp_path / "out", full / "out") == []
    assert len(entry_ids(tmp_path / "out")) == 12 + 6 + 1 + 12 + 1


def test_a_publish_whose_record_was_lost_neither_drops_nor_repeats_a_story(tmp_path, feed_server):
    items = {n: (NOW - timedelta(hours=50 - n), f"Text {n}") for n in range(6)}
    url = feed_server.serve("/a.rss", rss("a", items))
    config = write_config(tmp_path, [{"id": "a", "url": url}], [{"id": "all", "title": "All", "limit": 3}])
    run_cli("once", config=config, check=True)
    database = tmp_path / "state" / "aggregator.db"
    with sqlite3.connect(database) as db:
        stale = db.execute("SELECT output_id, settings, current, newest_page FROM publications").fetchall()
        archived = db.execute("SELECT output_id, story_id FROM archived").fetchall()
    items.update({n: (NOW - timedelta(hours=50 - n), f"Text {n}") for n in range(6, 14)})
    feed_server.serve("/a.rss", rss("a", items))
    run_cli("once", config=config, check=True)
    with sqlite3.connect(database) as db:  # the files in place, the store as before them: a crash between the two
        db.execute("DELETE FROM publications")
        db.executemany("INSERT INTO publications VALUES (?, ?, ?, ?)", stale)
        db.execute("DELETE FROM archived")
        db.executemany("INSERT INTO archived VALUES (?, ?)", archived)
        db.execute("INSERT INTO publish_queue SELECT 'all', id FROM stories")
    run_cli("publish", config=config, check=True)
    ids = entry_ids(tmp_path / "out")
    assert len(ids) == len(set(ids)) == 14
