"""The store's contract, run on both backends (a SQLite file and a PostgreSQL schema) through the `store` fixture."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta, timezone

import pytest

from aggregator.dedup.copies import SourceContext
from aggregator.errors import FailureKind, StoreError
from aggregator.dedup.links import canonical_link
from aggregator.models import Enclosure, Entry, SourceState
from aggregator.run.pipeline import item_values
from aggregator.run.prepare import prepare_item
from aggregator.models import from_text, to_text
from aggregator.store import Store, story_uid
from aggregator.store.migrations import MIGRATIONS

NOW = datetime(2021, 9, 28, 10, 0, tzinfo=timezone.utc)


def new_item(store: Store, source_id: str, key: str, link: str | None, published: datetime,
             story_uid_of: tuple[str, str] | None = None, enclosures: tuple[Enclosure, ...] = ()) -> tuple[int, int]:
    """(item id, story id) of a new item stored as a poll stores it, in a story of its own."""
    entry = Entry(key=key, title=f"Title {key}", link=link, published=published, authors=("Ann",),
                  categories=("world", "politics"), summary="<p>Text</p>", language="en", enclosures=enclosures)
    with store.transaction() as db:
        story = Store.create_story(db, story_uid(*(story_uid_of or (source_id, key))), NOW)
        values = {"key": key, **item_values(entry, prepare_item(entry, SourceContext(source_id), NOW), NOW, None), "canonical_link": canonical_link(link)}
        item = Store.insert_item(db, story, source_id, values)
    return item, story


def test_migrations_are_applied_once_in_order(state_location):
    first = Store(state_location)
    applied = [tuple(r) for r in first.query("SELECT version, applied FROM schema_migrations ORDER BY version")]
    first.close()
    again = Store(state_location)
    assert [tuple(r) for r in again.query("SELECT version, applied FROM schema_migrations ORDER BY version")] == applied
    again.close()
    assert [v for v, _ in applied] == list(range(1, len(MIGRATIONS) + 1))


def test_source_state_round_trips_every_field(store):
    state = SourceState(
        id="wsws", state="failing", configured_url="https://a.test/feed", url="https://b.test/feed",
        etag='"abc"', last_modified="Mon, 27 Sep 2021 10:00:00 GMT", body_hash="f" * 64,
        last_poll=NOW, last_success=NOW - timedelta(hours=1), last_status=503, errors=3,
        next_poll=NOW + timedelta(minutes=30), retry_after=NOW + timedelta(minutes=5), last_error="fetch: 503",
        last_failure=FailureKind.HTTP, feed_title="WSWS", feed_link="https://wsws.test/", feed_id="tag:wsws", feed_updated=NOW,
        min_interval=3600,
    )
    with store.transaction() as db:
        Store.save_source_state(db, SourceState(id="wsws"))
        Store.save_source_state(db, state)  # an upsert: the second write replaces the first
    new_item(store, "wsws", "k1", "https://wsws.test/a", NOW)
    assert store.source_state("wsws") == SourceState(**{**state.__dict__, "entries": 1})
    assert store.source_states() == {"wsws": store.source_state("wsws")}
    assert store.source_state("unknown") == SourceState(id="unknown")


def test_a_story_uid_is_created_once_and_keeps_its_republication_date(store):
    with store.transaction() as db:
        first = Store.create_story(db, "urn:uuid:1", NOW)
        again = Store.create_story(db, "urn:uuid:1", NOW + timedelta(days=1))
        other = Store.create_story(db, "urn:uuid:2", NOW)
    assert first == again != other
    rows = store.story_rows([first, other])
    assert (rows[first]["uid"], rows[first]["republished"]) == ("urn:uuid:1", "2021-09-28T10:00:00Z")
    assert rows[other]["uid"] == "urn:uuid:2"


def test_items_are_stored_read_back_and_updated(store):
    item_id, story_id = new_item(store, "wsws", "k1", "https://wsws.test/a", NOW - timedelta(days=1))
    with store.transaction() as db:
        known = Store.item_hashes(db, "wsws", ["k1", "k2"])
        Store.update_item(db, item_id, {"title": "Changed", "updated": NOW, "categories": ("x",)})
    assert set(known) == {"k1"} and known["k1"][0] == item_id and known["k1"][2] == "2021-09-27T10:00:00Z"
    assert known["k1"][3] == story_id
    [item] = store.items_of_story(story_id)
    assert (item.id, item.story_id, item.key, item.title) == (item_id, story_id, "k1", "Changed")
    assert (item.authors, item.categories, item.language) == (("Ann",), ("x",), "en")
    assert (item.published, item.updated, item.first_seen) == (NOW - timedelta(days=1), NOW, NOW)
    assert item.published.tzinfo is not None


def test_an_items_enclosures_are_stored_in_order_and_read_back(store):
    episode = (Enclosure("https://cdn.example/ep1.mp3", "audio/mpeg", 105003355),
               Enclosure("https://cdn.example/ep1.ogg"))
    item_id, story_id = new_item(store, "pod", "k1", "https://pod.test/1", NOW, enclosures=episode)
    plain_id, plain_story = new_item(store, "pod", "k2", "https://pod.test/2", NOW)
    assert store.items_of_story(story_id)[0].enclosures == episode
    assert store.items_of_story(plain_story)[0].enclosures == ()
    with store.transaction() as db:
        Store.update_item(db, item_id, {"enclosures": episode[1:]})
    assert store.items_by_id([item_id])[0].enclosures == episode[1:]


def test_one_key_per_source_is_enforced_and_a_failed_poll_leaves_nothing(store):
    new_item(store, "wsws", "k1", "https://wsws.test/a", NOW)
    with pytest.raises(StoreError) as error:
        with store.transaction() as db:
            Store.create_story(db, "urn:uuid:partial", NOW)
            Store.insert_item(db, 1, "wsws", {"key": "k1", "title": "again", "published": NOW, "updated": NOW,
                                              "first_seen": NOW, "raw_hash": "x"})
    assert "\n" not in str(error.value)
    assert store.query("SELECT count(*) FROM stories WHERE uid = ?", ("urn:uuid:partial",))[0][0] == 0
    assert store.query("SELECT count(*) FROM items")[0][0] == 1


def test_copies_by_canonical_link_within_the_window(store):
    later, _ = new_item(store, "b", "k", "https://x.test/story", NOW)
    earlier, _ = new_item(store, "a", "k", "https://www.x.test/story/?utm_source=rss", NOW - timedelta(days=2))
    new_item(store, "c", "k", "https://x.test/story", NOW - timedelta(days=30))
    new_item(store, "d", "k", "https://x.test/other", NOW)
    with store.transaction() as db:
        found = Store.items_by_values(db, "canonical_link", ["x.test/story"], NOW - timedelta(days=7),
                                      NOW + timedelta(days=7))
    assert sorted(found) == sorted([("x.test/story", earlier, to_text(NOW - timedelta(days=2))),
                                    ("x.test/story", later, to_text(NOW))])


def test_a_merge_decision_is_recorded_and_can_be_revised(store):
    first, story = new_item(store, "a", "k", "https://x.test/s", NOW)
    second, _ = new_item(store, "b", "k", "https://x.test/s", NOW)
    with store.transaction() as db:
        Store.record_merge(db, second, story, first, "same canonical link", 1.0, NOW)
        Store.record_merge(db, second, story, first, "same title", 0.75, NOW + timedelta(hours=1))
    rows = [tuple(r) for r in store.query("SELECT * FROM merges")]
    assert rows == [(second, story, first, "same title", 0.75, "2021-09-28T11:00:00Z", None)]


def test_publishing_history_counts_the_week_before_now(store):
    for n, age in enumerate((timedelta(hours=1), timedelta(days=3), timedelta(days=8), -timedelta(days=1))):
        new_item(store, "s", f"k{n}", f"https://s.test/{n}", NOW - age)
    new_item(store, "other", "k", "https://o.test/1", NOW - timedelta(days=30))
    with store.transaction() as db:
        history = Store.publishing_history(db, "s", NOW)
        nothing = Store.publishing_history(db, "unknown", NOW)
    assert (history.last_week, history.oldest) == (2, NOW - timedelta(days=8))
    assert (nothing.last_week, nothing.oldest) == (0, None)


def test_sqlite_style_sql_runs_unchanged(store):
    """The idioms other modules write in sqlite3's style work on PostgreSQL too."""
    with store.transaction() as db:
        db.execute("INSERT OR IGNORE INTO stories (uid, republished) VALUES (?, ?)", ("u-1", "2021"))
        db.execute("INSERT OR IGNORE INTO stories (uid, republished) VALUES (?, ?)", ("u-1", "2022"))
        cursor = db.execute("INSERT INTO stories (uid, republished) VALUES (:uid, :when)", {"uid": "u-%?", "when": "x"})
        last = cursor.lastrowid
        returned = db.execute("INSERT INTO stories (uid, republished) VALUES (?, ?) RETURNING id", ("u-3", "y")).fetchone()
        Store.save_source_state(db, SourceState(id="s", errors=2))
        Store.save_source_state(db, SourceState(id="t", errors=True))
    row = store.query("SELECT id, uid FROM stories WHERE uid LIKE 'u-%?' AND republished <> '?'")[0]
    assert (row["uid"], row[1], row["id"]) == ("u-%?", "u-%?", last)
    assert returned[0] == last + 1
    assert store.query("SELECT republished FROM stories WHERE uid = ?", ("u-1",))[0][0] == "2021"
    assert store.query("SELECT sum(errors), count(*) FROM sources")[0][:] == (3, 2)
    assert store.query("SELECT avg(errors) FROM sources")[0][0] == 1.5
    assert list(store.query("SELECT id, uid FROM stories LIMIT 1")[0].keys()) == ["id", "uid"]


def test_a_bad_query_is_a_one_line_store_error(store):
    with pytest.raises(StoreError) as error:
        store.query("SELECT no_such_column FROM stories")
    assert "no_such_column" in str(error.value) and "\n" not in str(error.value)


def test_writers_of_one_key_take_turns(state_location):
    """A second writer locking the same story key waits until the first commits, then sees its rows."""
    first, second = Store(state_location), Store(state_location)
    seen: list[int] = []
    waiting = threading.Event()

    def writer():
        waiting.set()
        with second.transaction() as db:
            second.lock(db, "story", ["link x.test/a"])
            seen.append(db.execute("SELECT count(*) FROM stories").fetchone()[0])

    try:
        with first.transaction() as db:
            first.lock(db, "story", ["link x.test/a"])
            Store.create_story(db, "urn:uuid:first", NOW)
            thread = threading.Thread(target=writer)
            thread.start()
            waiting.wait()
            thread.join(0.3)
            assert thread.is_alive() and seen == []  # still waiting for our commit
        thread.join(10)
        assert seen == [1]
    finally:
        first.close()
        second.close()


def test_processes_opening_a_new_state_together_migrate_it_once(state_location):
    start = threading.Barrier(4)
    opened, failed = [], []

    def open_store():
        start.wait()
        try:
            opened.append(Store(state_location))
        except StoreError as exc:
            failed.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert failed == [] and len(opened) == 4
        assert opened[0].query("SELECT count(*) FROM schema_migrations")[0][0] == len(MIGRATIONS)
    finally:
        for store in opened:
            store.close()


def test_grouped_transactions_land_whole_and_together(tmp_path):
    """`once` groups its polls' commits: each transaction is still all or nothing, and the group lands at the end."""
    store, reader = Store(tmp_path / "state.db"), Store(tmp_path / "state.db")
    with store.grouped_commits(seconds=3600):
        new_item(store, "a", "k1", "https://a.test/1", NOW)
        with pytest.raises(RuntimeError):
            with store.transaction() as db:
                Store.save_source_state(db, SourceState(id="a", etag='"lost"'))
                raise RuntimeError("a poll failing half way")
        new_item(store, "a", "k2", "https://a.test/2", NOW)
        with store.snapshot() as db:  # what this process reads includes what it has written
            assert db.execute("SELECT count(*) FROM items").fetchone()[0] == 2
        assert reader.query("SELECT count(*) FROM items")[0][0] == 0  # not committed yet
    assert [r[0] for r in reader.query("SELECT key FROM items ORDER BY key")] == ["k1", "k2"]
    assert reader.source_state("a").etag is None  # the failed transaction left nothing
    store.close()
    reader.close()


def test_grouped_polls_write_no_temporary_files(tmp_path):
    """Each poll in a group is a savepoint, whose pages' old images SQLite keeps to roll it back: in temporary
    files by default, written again at every poll (a cold `once` over 50 feeds wrote 223 MB to them, four
    times its state). They are kept in memory; the open files show where (SQLite names its own `etilqs_*`)."""
    store = Store(tmp_path / "state.db")

    def temporary_files() -> list[str]:
        links = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                links.append(os.readlink(f"/proc/self/fd/{fd}"))
            except FileNotFoundError:  # the descriptor listdir read the folder with
                pass
        return [link for link in links if "etilqs" in link]

    with store.grouped_commits(seconds=3600):
        for number in range(300):
            new_item(store, "a", f"k{number}", f"https://a.test/{number}", NOW)
        assert temporary_files() == []
    store.close()


def test_a_group_commits_once_its_time_is_up(tmp_path):
    store, reader = Store(tmp_path / "state.db"), Store(tmp_path / "state.db")
    with store.grouped_commits(seconds=0):
        new_item(store, "a", "k1", "https://a.test/1", NOW)
        assert reader.query("SELECT count(*) FROM items")[0][0] == 1
    store.close()
    reader.close()


def test_stored_times_are_utc_rfc3339_that_read_back_and_sort_as_time():
    east = timezone(timedelta(hours=2))
    assert to_text(datetime(2026, 11, 30, 10, 5, 3, 999999, tzinfo=east)) == "2026-11-30T08:05:03Z"
    early = datetime(5, 1, 2, 3, 4, 5, tzinfo=timezone.utc)  # strftime("%Y") wrote "5": unreadable, misordered
    assert to_text(early) == "0005-01-02T03:04:05Z" and from_text(to_text(early)) == early
    assert to_text(early) < to_text(datetime(1970, 1, 1, tzinfo=timezone.utc))
