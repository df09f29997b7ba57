"""Items prepared in worker processes are stored exactly as items prepared in place."""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.models import Enclosure, Entry
from aggregator.reader.hosts import HostLimiter
from concurrent.futures.process import BrokenProcessPool

from aggregator.run.lifeline import LazyPool
from aggregator.run.pipeline import poll
from aggregator.run.prepare import Preparer, prepare_feed, raw_hash
from aggregator.store import Store
from conftest import write_config

FEEDS = sorted((Path(__file__).parent / "fixtures" / "corpus" / "real" / "feedjira-2008").glob("*.xml"))
NOW = datetime(2008, 12, 1, tzinfo=timezone.utc)


def stored(tmp_path: Path, name: str, prepare) -> tuple[list, list]:
    """Items, story groups and index keys after polling every feed once."""
    folder = tmp_path / name
    folder.mkdir()
    sources = [{"id": path.stem.lower(), "url": path.as_uri()} for path in FEEDS]
    config = load_config(write_config(folder, sources))
    store = Store(config.state)
    try:
        outcomes = [poll(store, config, source, HostLimiter(), now=NOW, prepare=prepare).outcome
                    for source in config.sources]
        assert outcomes.count("new") == len(FEEDS) - 1  # JoomlapoweredSite.xml is an HTML page
        items = store.query(
            "SELECT i.source_id, i.key, i.title, i.summary, i.content, i.canonical_link, i.title_key, i.title_keys, "
            "i.content_hash, i.published, i.raw_hash, s.uid FROM items i JOIN stories s ON s.id = i.story_id "
            "ORDER BY i.source_id, i.key")
        keys = store.query("SELECT i.source_id, i.key, k.key FROM near_keys k JOIN items i ON i.id = k.item_id "
                           "ORDER BY 1, 2, 3")
    finally:
        store.close()
    return [tuple(r) for r in items], [tuple(r) for r in keys]


def test_worker_processes_store_what_preparing_in_place_stores(tmp_path):
    preparer = Preparer(processes=2)
    try:
        in_workers = stored(tmp_path, "workers", preparer)
        assert preparer._pool is not None  # the feeds of 32 KB or more went to the workers
    finally:
        preparer.close()
    in_place = stored(tmp_path, "in-place", prepare_feed)
    assert len(in_place[0]) > 200 and in_place[1]
    assert in_workers == in_place
    stories = {row[-1] for row in in_place[0]}
    assert len(stories) < len(in_place[0])  # the planet feed repeats posts of the blogs: some stories merged


def test_only_entries_new_or_changed_since_the_latest_stored_are_prepared():
    body = FEEDS[0].read_bytes()
    first = prepare_feed(body, {}, FEEDS[0].as_uri(), NOW, 500, "a", [])
    entries = list(first.feed.entries)
    assert set(first.items) == set(first.hashes) == {e.key for e in entries}
    latest = [(e.key, first.hashes[e.key], e.title) for e in entries[1:]]
    latest[0] = (latest[0][0], "an older version", latest[0][2])
    again = prepare_feed(body, {}, FEEDS[0].as_uri(), NOW, 500, "a", latest)
    assert set(again.items) == {entries[0].key, entries[1].key}
    # Prepared entries come back without their raw HTML (the sanitised copy is in items); the others keep
    # theirs, for the poll that finds one of them changed after all, and every entry's raw hash comes back.
    assert again.hashes == first.hashes
    for entry in again.feed.entries:
        assert (entry.summary is None and entry.content is None) == (entry.key in again.items)
        if entry.key not in again.items:
            assert raw_hash(entry) == first.hashes[entry.key]


def test_an_items_enclosures_are_part_of_its_raw_hash_and_no_others_hash_moved():
    """A changed enclosure is a changed item; an item without enclosures keeps the hash stored for it before
    enclosures were read (else every stored item would count as changed once, its `updated` moved)."""
    entry = Entry(key="guid:1", title="Episode 1", link="https://pod.test/1",
                  published=datetime(2021, 9, 27, 10, tzinfo=timezone.utc))
    assert raw_hash(entry) == "cdece76294b5ffa7b16613f8b17875b8"
    mp3 = replace(entry, enclosures=(Enclosure("https://cdn.example/1.mp3", "audio/mpeg", 1000),))
    longer = replace(entry, enclosures=(Enclosure("https://cdn.example/1.mp3", "audio/mpeg", 1001),))
    assert len({raw_hash(entry), raw_hash(mp3), raw_hash(longer)}) == 3


@pytest.mark.skipif(os.cpu_count() == 1, reason="a pool needs two cores")
def test_a_killed_worker_costs_no_poll():
    preparer = Preparer(processes=2)
    body = FEEDS[1].read_bytes()
    try:
        expected = preparer(body, {}, FEEDS[1].as_uri(), NOW, 500, "a", [])
        for pid in list(preparer._pool._processes):
            os.kill(pid, signal.SIGKILL)
        again = preparer(body, {}, FEEDS[1].as_uri(), NOW, 500, "a", [])  # done in place, the pool replaced
        assert [e.key for e in again.feed.entries] == [e.key for e in expected.feed.entries]
        assert preparer(body, {}, FEEDS[1].as_uri(), NOW, 500, "a", []).items.keys() == expected.items.keys()
    finally:
        preparer.close()


@pytest.mark.skipif(os.cpu_count() == 1, reason="a pool needs two cores")
def test_closing_without_waiting_kills_the_workers_at_once():
    """What `run` does before exiting with polls abandoned: no worker may outlive it."""
    preparer = Preparer(processes=2)
    preparer(FEEDS[1].read_bytes(), {}, FEEDS[1].as_uri(), NOW, 500, "a", [])
    processes = list(preparer._pool._processes.values())
    preparer.close(wait=False)
    for process in processes:
        process.join(5)
        assert process.exitcode is not None
        # The exit code itself is unreliable here: the executor's own thread may read the fork server's
        # report first, leaving 255 ("unknown") to this join. That the process is gone is what counts.
        with pytest.raises(ProcessLookupError):
            os.kill(process.pid, 0)


def test_a_lazy_pool_starts_on_first_work_replaces_a_broken_pool_then_works_in_place():
    pool = LazyPool(2, [])
    try:
        assert pool._pool is None  # nothing started until there is work
        assert pool.submit(pow, 2, 10).result() == 1024
        workers = pool.submit(os.getpid).result()
        assert workers != os.getpid()
        for _ in range(LazyPool.MAX_RESTARTS + 1):
            with pytest.raises(BrokenProcessPool):
                pool.submit(os._exit, 1).result(timeout=30)  # a worker dies (the OOM killer, say)
            assert pool.submit(pow, 3, 2).result(timeout=30) == 9  # broken: replaced, or at last done here
        assert pool.submit(os.getpid).result() == os.getpid()  # after MAX_RESTARTS, work is done in place
    finally:
        pool.shutdown()
