"""PostgreSQL as the state: concurrent ingestion stays exact, `once` runs on it, migrate-state copies to and from it."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest

from aggregator.store.copy import tables
from aggregator.errors import StoreError
from aggregator.store import Store
from conftest import FIXTURES, ROOT, fixture_bytes, run_cli, status_json, write_config
from test_end_to_end import AGG, A, entries_by_title

INGEST = Path(__file__).parent / "ingest_process.py"
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/test"


def file_sources() -> list[dict]:
    return [{"id": "dates", "url": (FIXTURES / "feeds" / "dates.atom").as_uri()},
            {"id": "republisher", "url": (FIXTURES / "feeds" / "republisher.rss").as_uri(),
             "title": "Republisher Daily"}]


def start_ingest(config: Path, source_id: str, hold: bool = False) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([sys.executable, str(INGEST), str(config), source_id] + (["--hold"] if hold else []),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
    pid = int(process.stdout.readline().split()[1])
    return process, pid


def wait_until_blocked(url: str, process: subprocess.Popen, pid: int) -> None:
    """Until the process waits for a lock another transaction holds, or has finished without waiting."""
    with psycopg.connect(url, autocommit=True) as db:
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            if db.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", (pid,)).fetchone()[0]:
                return
            time.sleep(0.02)


def ingest_at_the_same_moment(url: str, config: Path, first_source: str, second_source: str) -> str:
    """The first process holds its poll's transaction open while the second ingests; the second's output."""
    first, _ = start_ingest(config, first_source, hold=True)
    assert first.stdout.readline().startswith("stored ")
    second, pid = start_ingest(config, second_source)
    wait_until_blocked(url, second, pid)
    first.communicate("\n", timeout=30)
    output, _ = second.communicate(timeout=30)
    assert (first.returncode, second.returncode) == (0, 0)
    return output


def test_two_copies_of_one_story_ingested_at_the_same_moment_are_one_story(tmp_path, postgres_url):
    config = write_config(tmp_path, file_sources(), state=postgres_url)
    ingest_at_the_same_moment(postgres_url, config, "dates", "republisher")
    with closing(Store(postgres_url)) as store:
        stories = store.query("SELECT source_id, story_id FROM items WHERE canonical_link = ?",
                              ("dates.test/2021/09/with-both",))
        assert len(stories) == 2 and len({row["story_id"] for row in stories}) == 1
        assert store.query("SELECT count(*) FROM stories")[0][0] == 4
        assert store.query("SELECT count(*) FROM merges")[0][0] == 1


def test_one_source_ingested_twice_at_the_same_moment_is_stored_once(tmp_path, postgres_url):
    config = write_config(tmp_path, file_sources(), state=postgres_url)
    output = ingest_at_the_same_moment(postgres_url, config, "dates", "dates")
    assert "stored 0 0" in output  # the second saw the first's items once it could look
    with closing(Store(postgres_url)) as store:
        assert store.query("SELECT count(*), count(DISTINCT story_id) FROM items")[0][:] == (3, 3)
        assert store.query("SELECT count(*) FROM stories")[0][0] == 3


def test_once_runs_on_a_postgresql_state(tmp_path, feed_server, postgres_url):
    feed_server.serve("/dates.atom", fixture_bytes("feeds/dates.atom"), content_type="application/atom+xml")
    feed_server.serve("/republisher.rss", fixture_bytes("feeds/republisher.rss"))
    config = write_config(tmp_path, [
        {"id": "dates", "url": feed_server.url("/dates.atom")},
        {"id": "republisher", "url": feed_server.url("/republisher.rss"), "title": "Republisher Daily"},
    ], state=postgres_url)
    first = run_cli("once", config=config, check=True)
    assert "total: 2 sources, 5 new entries" in first.stdout
    entries = entries_by_title(tmp_path / "out" / "all.atom")
    assert len(entries) == 4
    assert entries["With both dates"].find(f"{A}link[@rel='related']").get("title").startswith("Republisher Daily")
    ids = {title: (e.findtext(f"{A}id"), e.findtext(f"{AGG}republished")) for title, e in entries.items()}

    second = run_cli("once", config=config, check=True)
    assert "dates: unchanged (304)" in second.stdout and "0 files rewritten" in second.stdout
    assert {title: (e.findtext(f"{A}id"), e.findtext(f"{AGG}republished"))
            for title, e in entries_by_title(tmp_path / "out" / "all.atom").items()} == ids
    rows = status_json(config)
    assert (rows["dates"]["state"], rows["dates"]["entries"], rows["republisher"]["entries"]) == ("ok", 3, 2)
    assert not (tmp_path / "state").exists()  # no SQLite file on the side


def test_an_unreachable_postgresql_state_is_a_one_line_error(tmp_path):
    config = write_config(tmp_path, file_sources(), state=UNREACHABLE)
    result = run_cli("once", config=config)
    assert result.returncode == 1
    assert result.stderr.startswith("aggregator: store: cannot connect to postgresql://postgres@127.0.0.1:1/test")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_connection_the_server_dropped_fails_one_transaction_then_reconnects(postgres_url):
    with closing(Store(postgres_url)) as store:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (store.db.info.backend_pid,))
        with pytest.raises(StoreError) as error:
            with store.transaction() as db:
                Store.create_story(db, "urn:uuid:lost", datetime.now(timezone.utc))
        assert "check that PostgreSQL is running" in str(error.value) and "\n" not in str(error.value)
        with store.transaction() as db:
            Store.create_story(db, "urn:uuid:kept", datetime.now(timezone.utc))
        assert [row[0] for row in store.query("SELECT uid FROM stories")] == ["urn:uuid:kept"]


def dump(location: str) -> dict[str, list[tuple]]:
    with closing(Store(location)) as store:
        return {t: [tuple(r) for r in store.query(f"SELECT * FROM {t} ORDER BY 1")]
                for t in tables(store) if t != "schema_migrations"}


def test_migrate_state_round_trip_keeps_ids_and_dates(tmp_path, feed_server, postgres_url):
    feed_server.serve("/broken", b"oops", status=503, headers={"Retry-After": "120"})
    sources = file_sources() + [{"id": "broken", "url": feed_server.url("/broken")}]
    original = tmp_path / "sqlite"
    original.mkdir()
    config = write_config(original, sources)
    run_cli("once", config=config, check=True)
    state = str(original / "state" / "aggregator.db")

    there = run_cli("migrate-state", state, postgres_url, check=True)
    assert there.stdout.startswith(f"copied ") and f" rows from {state} to postgresql://" in there.stdout
    assert all(part in there.stdout for part in ("sources 3", "stories 4", "items 5", "merges 1"))
    back = str(tmp_path / "back" / "aggregator.db")
    run_cli("migrate-state", postgres_url, back, check=True)
    before = dump(state)
    assert dump(postgres_url) == before
    assert dump(back) == before
    with closing(Store(back)) as store:
        broken = store.source_state("broken")
    assert (broken.state, broken.errors, broken.last_status) == ("failing", 1, 503) and broken.retry_after

    shared = tmp_path / "postgresql"
    shared.mkdir()
    run_cli("publish", config=write_config(shared, sources, state=postgres_url), check=True)
    assert (shared / "out" / "all.atom").read_bytes() == (original / "out" / "all.atom").read_bytes()
    with closing(Store(postgres_url)) as store, store.transaction() as db:
        assert Store.create_story(db, "urn:uuid:after", datetime.now(timezone.utc)) == 5  # ids go on past the copy


def test_migrate_state_refuses_a_state_that_is_not_empty(tmp_path, postgres_url):
    config = write_config(tmp_path, file_sources())
    run_cli("once", config=config, check=True)
    state = str(tmp_path / "state" / "aggregator.db")
    run_cli("migrate-state", state, postgres_url, check=True)
    again = run_cli("migrate-state", state, postgres_url)
    assert again.returncode == 2
    assert "already holds a state (2 sources, 4 stories" in again.stderr and "5 items, 1 merges" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    assert dump(postgres_url) == dump(state)


def keys_in_distinct_slots(count: int, prefix: str, taken: set[int] = frozenset()) -> tuple[list[str], set[int]]:
    """`count` story keys whose lock slots differ from each other and from `taken`; the keys and their slots."""
    from aggregator.store.backend import LOCK_SLOTS, hash32 as _hash32

    keys, slots = [], set()
    for n in range(count * 2):
        slot = _hash32(f"{prefix}{n}") % LOCK_SLOTS
        if slot not in slots and slot not in taken:
            keys.append(f"{prefix}{n}")
            slots.add(slot)
        if len(keys) == count:
            return keys, slots
    raise AssertionError("not enough distinct slots")


def lock_without_waiting(store: Store, keys: list[str]) -> bool:
    """Whether a transaction of `store` gets these story locks at once (a lock it must wait for fails it)."""
    try:
        with store.transaction() as db:
            db.execute("SET LOCAL lock_timeout = '500ms'")
            store.lock(db, "story", keys)
        return True
    except StoreError as exc:
        assert "lock timeout" in str(exc)
        return False


def test_writers_of_different_stories_do_not_wait_for_each_other_unless_one_locks_very_many(postgres_url):
    from aggregator.store.backend import MAX_SLOTS

    mine, slots = keys_in_distinct_slots(60, "link a.test/")  # a cold poll of a feed of 60 items
    theirs, _ = keys_in_distinct_slots(60, "link b.test/", slots)
    with closing(Store(postgres_url)) as first, closing(Store(postgres_url)) as second:
        with first.transaction() as db:
            first.lock(db, "story", mine)
            assert lock_without_waiting(second, theirs)
            assert not lock_without_waiting(second, [mine[7], theirs[0]])
        many, slots = keys_in_distinct_slots(MAX_SLOTS + 1, "link c.test/")
        with first.transaction() as db:
            first.lock(db, "story", many)  # past MAX_SLOTS: the whole scope, exclusively
            assert db.execute("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() "
                              "AND locktype = 'advisory'").fetchone()[0] == 1
            assert not lock_without_waiting(second, theirs)
        assert lock_without_waiting(second, theirs)
