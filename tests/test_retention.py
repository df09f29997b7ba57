"""Retention (SPEC §6.1) through the command line, the clock moved with faketime.

A story is pruned once its republication date is older than `retention.keep`
and no output's documents can still change it; a pruned item its source still
lists never comes back; its tombstone goes once a new body of the source has
left it out for `keep`; the archive pages already written keep every story.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from lxml import etree

from conftest import ROOT, run_cli, write_config

from aggregator.config import load_config
from aggregator.store import Store

ATOM = "{http://www.w3.org/2005/Atom}"
NOW = datetime.now(timezone.utc).replace(microsecond=0)

pytestmark = pytest.mark.skipif(shutil.which("faketime") is None,
                                reason="faketime is not installed (Debian package faketime; .ci/run installs it)")


def at(when: datetime, *args: str, config: Path, check: bool = True) -> subprocess.CompletedProcess:
    """The real command line with the clock starting at `when` (libfaketime)."""
    command = ["faketime", when.strftime("%Y-%m-%d %H:%M:%S"), sys.executable, "-m", "aggregator", "-c",
               str(config), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=str(ROOT),
                            env={**os.environ, "TZ": "UTC", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    if check and result.returncode != 0:
        raise AssertionError(f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    assert "Traceback" not in result.stderr, result.stderr
    return result


def rss(items: list[tuple[int, datetime]], extra: str = "") -> str:
    """A feed listing story n (published at its date) for each (n, date), newest first."""
    body = "".join(
        f"<item><title>Story number {n} about the harbour</title><link>https://news.example/{n}</link>"
        f"<guid>story-{n}</guid><pubDate>{format_datetime(when)}</pubDate>"
        f"<description>Paragraph {n}: the harbour, the cranes and the boats, reported on day {n}.</description></item>"
        for n, when in sorted(items, key=lambda pair: pair[1], reverse=True))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>'
            f"<link>https://news.example/</link>{extra}{body}</channel></rss>")


def documents(out: Path) -> dict[str, list[str]]:
    """Entry ids of every Atom document of the output folder, by file."""
    found = {}
    for path in sorted(out.rglob("*.atom")):
        root = etree.parse(str(path)).getroot()
        found[str(path.relative_to(out))] = [e.findtext(f"{ATOM}id") for e in root.iter(f"{ATOM}entry")]
    return found


def store_of(config: Path) -> dict:
    return json.loads(run_cli("status", "--json", config=config, check=True).stdout)["store"]


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request, tmp_path) -> str:
    if request.param == "sqlite":
        return "state/aggregator.db"
    return request.getfixturevalue("postgres_url")


def test_a_pruned_story_never_comes_back_while_its_source_lists_it(tmp_path, feed_server, state):
    first = [(n, NOW - timedelta(hours=10 - n)) for n in range(10)]
    url = feed_server.serve("/news.rss", rss(first))
    config = write_config(tmp_path, [{"id": "news", "url": url}], [{"id": "all", "title": "All", "limit": 3}],
                          state=state, retention={"keep": "90d"})
    at(NOW, "once", config=config)
    before = documents(tmp_path / "out")
    pages = {name: ids for name, ids in before.items() if name.startswith("archive/")}
    assert sum(len(ids) for ids in before.values()) == 10  # 3 current; archive pages of 3, 3 and 1

    later = NOW + timedelta(days=100)
    feed_server.serve("/news.rss", rss([*first, (10, later - timedelta(hours=1))]))  # still lists all ten
    dry = at(later, "prune", "--dry-run", config=config).stdout
    assert re.search(r"would prune 6 stories \(6 items", dry), dry
    assert store_of(config)["stories"] == 10
    story_pages = sorted((tmp_path / "out" / "stories").glob("*.html"))
    report = at(later, "prune", config=config).stdout
    assert re.search(r"pruned 6 stories \(6 items", report), report
    assert store_of(config)["stories"] == 4 and store_of(config)["tombstones"] == 6
    # the pruned stories' pages stay, and the state forgets what they were rendered from (it would only grow)
    assert sorted((tmp_path / "out" / "stories").glob("*.html")) == story_pages and len(story_pages) == 10
    store = Store(load_config(config).state)
    recorded = [r[0] for r in store.query("SELECT path FROM rendered") if "stories" in Path(r[0]).parts]
    store.close()
    assert len(recorded) == 4, recorded
    at(later, "once", config=config)
    after = documents(tmp_path / "out")
    ids = [uid for listed in after.values() for uid in listed]
    assert len(ids) == len(set(ids)) == 11  # every story once: nothing pruned came back as a new entry
    for name, listed in pages.items():  # archive pages keep what they held
        if len(listed) == 3:
            assert after[name] == listed
    stats = store_of(config)
    assert stats["stories"] == 5 and stats["tombstones"] == 6 and stats["last_prune"]
    status = json.loads(run_cli("status", "--json", config=config, check=True).stdout)["sources"][0]
    assert status["entries"] == 5

    pruned = before["archive/all/1.atom"][0]
    explained = at(later, "explain", pruned, config=config).stdout
    assert "was pruned on" in explained and "tombstone: item" in explained

    # The source stops listing the six; their tombstones go once that is older than `keep`.
    feed_server.serve("/news.rss", rss([(n, when) for n, when in first if n >= 6] + [(10, later)]))
    at(later + timedelta(days=1), "once", config=config)
    at(later + timedelta(days=92), "prune", config=config)
    assert at(later + timedelta(days=92), "explain", pruned, config=config, check=False).returncode == 1


def test_a_pruned_item_under_a_new_key_is_known_by_its_content(tmp_path, feed_server):
    text = " ".join(f"word{n} of the long report on the harbour cranes" for n in range(30))
    item = (f"<item><title>The harbour report</title><guid>{{guid}}</guid><link>https://news.example/r</link>"
            f"<pubDate>{format_datetime(NOW - timedelta(hours=2))}</pubDate><description>{text}</description></item>")
    feed = '<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>{}</channel></rss>'
    url = feed_server.serve("/news.rss", feed.format(item.format(guid="old-guid")))
    config = write_config(tmp_path, [{"id": "news", "url": url}], [{"id": "all", "title": "All", "limit": 1}],
                          retention={"keep": "30d"})
    at(NOW, "once", config=config)
    feed_server.serve("/news.rss", feed.format(item.format(guid="new-guid")
                                               + item.format(guid="fresh").replace("harbour report", "Fresh one")))
    later = NOW + timedelta(days=40)
    at(later, "once", config=config)  # the fresh item pushes the report out of the current document
    at(later, "prune", config=config)
    assert store_of(config)["tombstones"] >= 1
    feed_server.serve("/news.rss", feed.format(item.format(guid="renamed-guid")))
    at(later + timedelta(hours=1), "once", config=config)
    titles = [e.findtext(f"{ATOM}title") for path in (tmp_path / "out").glob("*.atom")
              for e in etree.parse(str(path)).getroot().iter(f"{ATOM}entry")]
    assert titles.count("The harbour report") <= 1


def test_the_index_keeps_only_the_dedup_window_and_space_comes_back(tmp_path, feed_server):
    paragraph = "<p>" + " ".join(f"harbour{n} crane{n} boat{n} dock{n}" for n in range(60)) + "</p>"
    items = "".join(
        f"<item><title>Long story {n}</title><guid>long-{n}</guid><link>https://news.example/long/{n}</link>"
        f"<pubDate>{format_datetime(NOW - timedelta(minutes=n))}</pubDate>"
        f"<description><![CDATA[<p>Story {n}.</p>{paragraph * 4}]]></description></item>" for n in range(300))
    url = feed_server.serve("/news.rss", f'<?xml version="1.0"?><rss version="2.0"><channel><title>N</title>'
                            f"{items}</channel></rss>")
    config = write_config(tmp_path, [{"id": "news", "url": url, "max_entries": 1000}],
                          [{"id": "all", "title": "All", "limit": 5}], retention={"keep": "60d"},
                          dedup={"window": "14d"})
    at(NOW, "once", config=config)
    database = tmp_path / "state" / "aggregator.db"
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(DISTINCT item_id) FROM near_keys").fetchone()[0] == 300
    at(NOW + timedelta(days=20), "prune", config=config)  # inside keep: nothing pruned, but the index trimmed
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM near_keys").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM fingerprints").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM items").fetchone()[0] == 300
    size = database.stat().st_size
    report = at(NOW + timedelta(days=70), "prune", config=config).stdout
    assert "pruned 295 stories" in report, report
    assert database.stat().st_size < size / 2


def test_retention_forever_prunes_nothing_and_keep_is_checked(tmp_path, feed_server):
    url = feed_server.serve("/news.rss", rss([(n, NOW - timedelta(hours=n)) for n in range(5)]))
    config = write_config(tmp_path, [{"id": "news", "url": url}], [{"id": "all", "title": "All", "limit": 1}],
                          retention={"keep": "forever"})
    at(NOW, "once", config=config)
    assert "retention is off" in at(NOW + timedelta(days=3650), "prune", config=config).stdout
    assert store_of(config)["stories"] == 5
    bad = write_config(tmp_path, [{"id": "news", "url": url}], retention={"keep": "sometimes"})
    result = run_cli("check", config=bad)
    assert result.returncode == 2 and re.search(r"aggregator\.yaml:\d+: retention\.keep: .*forever", result.stderr)


def test_run_prunes_by_itself_once_a_day(tmp_path, feed_server):
    url = feed_server.serve("/news.rss", rss([(n, NOW - timedelta(hours=n)) for n in range(6)]))
    config = write_config(tmp_path, [{"id": "news", "url": url, "interval": "1h"}],
                          [{"id": "all", "title": "All", "limit": 2}], retention={"keep": "10d"})
    at(NOW, "once", config=config)
    log = tmp_path / "run.log"
    with log.open("w") as handle:
        daemon = subprocess.Popen(["faketime", (NOW + timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S"),
                                   sys.executable, "-m", "aggregator", "-c", str(config), "run"],
                                  stdout=handle, stderr=subprocess.STDOUT, cwd=str(ROOT), start_new_session=True,
                                  env={**os.environ, "TZ": "UTC", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    try:
        deadline = datetime.now() + timedelta(seconds=90)
        while "retention: pruned" not in log.read_text() and datetime.now() < deadline and daemon.poll() is None:
            subprocess.run(["sleep", "0.2"])
    finally:  # faketime runs the daemon as its child and passes no signal on: stop the whole group
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(10)
    assert "retention: pruned 4 stories" in log.read_text(), log.read_text()
    assert store_of(config)["stories"] == 2
