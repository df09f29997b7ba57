"""The whole pipeline through the real CLI: a loopback server, a temp SQLite file, a temp output folder."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from lxml import etree

from conftest import fixture_bytes, run_cli, status_json, write_config

A = "{http://www.w3.org/2005/Atom}"
AGG = "{https://github.com/aggregator-project/aggregator/ns/1.0}"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def entries_by_title(path) -> dict[str, etree._Element]:
    root = etree.parse(str(path)).getroot()
    return {e.findtext(f"{A}title"): e for e in root.findall(f"{A}entry")}


@pytest.fixture
def two_sources(tmp_path, feed_server):
    feed_server.serve("/dates.atom", fixture_bytes("feeds/dates.atom"), content_type="application/atom+xml")
    feed_server.serve("/republisher.rss", fixture_bytes("feeds/republisher.rss"))
    config = write_config(tmp_path, [
        {"id": "dates", "url": feed_server.url("/dates.atom"), "tags": ["world"]},
        {"id": "republisher", "url": feed_server.url("/republisher.rss"), "title": "Republisher Daily"},
    ], [
        {"id": "all", "title": "All stories"},
        {"id": "world", "title": "World", "tags": ["world"]},
    ])
    return config


def test_dates_follow_the_fallback_chain(two_sources):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    run_cli("once", config=two_sources, check=True)
    after = datetime.now(timezone.utc) + timedelta(seconds=1)
    entries = entries_by_title(two_sources.parent / "out" / "world.atom")

    both = entries["With both dates"]
    assert parse_time(both.findtext(f"{A}published")) == datetime(2021, 9, 27, 8, 0, tzinfo=timezone.utc)
    assert parse_time(both.findtext(f"{A}updated")) == datetime(2021, 9, 28, 9, 30, tzinfo=timezone.utc)

    only = entries["Only updated"]
    assert parse_time(only.findtext(f"{A}published")) == datetime(2021, 9, 26, 12, 0, tzinfo=timezone.utc)
    assert parse_time(only.findtext(f"{A}updated")) == datetime(2021, 9, 26, 12, 0, tzinfo=timezone.utc)

    none = entries["No dates"]
    first_seen = parse_time(none.findtext(f"{A}published"))
    assert before <= first_seen <= after
    assert parse_time(none.findtext(f"{A}updated")) >= first_seen

    for entry in entries.values():
        republished = parse_time(entry.findtext(f"{AGG}republished"))
        assert before <= republished <= after


def test_entries_carry_full_atom_source_and_sanitised_content(two_sources, feed_server):
    run_cli("once", config=two_sources, check=True)
    root = etree.parse(str(two_sources.parent / "out" / "all.atom")).getroot()
    assert root.findtext(f"{A}id") == "http://feeds.test/all.atom"
    assert root.find(f"{A}link[@rel='self']").get("href") == "http://feeds.test/all.atom"
    entry = entries_by_title(two_sources.parent / "out" / "all.atom")["With both dates"]
    source = entry.find(f"{A}source")
    assert source.findtext(f"{A}id") == "tag:dates.test,2021:feed"
    assert source.findtext(f"{A}title") == "Dates Test Feed"
    assert parse_time(source.findtext(f"{A}updated")) == datetime(2021, 9, 28, 9, 30, tzinfo=timezone.utc)
    assert source.find(f"{A}link[@rel='self']").get("href") == feed_server.url("/dates.atom")
    assert source.find(f"{A}link[@rel='alternate']").get("href") == "https://dates.test/"
    assert [a.findtext(f"{A}name") for a in entry.findall(f"{A}author")] == ["Ann Writer"]
    assert {c.get("term") for c in entry.findall(f"{A}category")} == {"world", "politics"}
    assert entry.find(f"{A}link").get("href") == "https://dates.test/2021/09/with-both"
    content = entry.findtext(f"{A}content")
    assert "Originally published by Dates Test Feed on 2021-09-27" in content
    assert 'href="https://dates.test/related"' in content
    assert "<script" not in content and "alert(1)" not in content
    assert not entry.findtext(f"{A}id").startswith("tag:dates.test")


def test_conditional_polls_reuse_kept_alive_connections(tmp_path, feed_server):
    """A 304 leaves the connection open for the next poll of that host: 40 sources, 16 polling threads."""
    feed = fixture_bytes("feeds/dates.atom")
    config = write_config(tmp_path, [{"id": f"s{i}", "url": feed_server.serve(f"/s{i}.atom", feed)} for i in range(40)])
    run_cli("once", config=config, check=True)
    warm_from = len(feed_server.requests)
    second = run_cli("once", config=config, check=True)
    assert second.stdout.count("unchanged (304)") == 40
    warm = feed_server.requests[warm_from:]
    assert [r.status for r in warm] == [304] * 40
    assert len({r.peer for r in warm}) <= 16


def test_same_story_from_two_sources_is_one_entry_with_a_related_link(two_sources):
    run_cli("once", config=two_sources, check=True)
    entries = entries_by_title(two_sources.parent / "out" / "all.atom")
    assert "With both dates | Republisher Daily" not in entries
    related = entries["With both dates"].findall(f"{A}link[@rel='related']")
    assert len(related) == 1
    assert related[0].get("title").startswith("Republisher Daily")
    assert "A story only the republisher has" in entries
    assert len(entries) == 4


def test_second_run_is_conditional_stable_and_rewrites_nothing(two_sources, feed_server):
    run_cli("once", config=two_sources, check=True)
    out = two_sources.parent / "out"
    first = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("*.atom")}
    ids = {t: (e.findtext(f"{A}id"), e.findtext(f"{AGG}republished"))
           for t, e in entries_by_title(out / "all.atom").items()}

    second = run_cli("once", config=two_sources, check=True)
    assert "dates: unchanged (304)" in second.stdout
    requests = feed_server.seen("/dates.atom")
    assert len(requests) == 2
    assert requests[1].headers.get("if-none-match", "").startswith('"')
    assert requests[1].status == 304
    assert "0 files rewritten" in second.stdout

    published = run_cli("publish", config=two_sources, check=True)
    assert "0 files rewritten" in published.stdout
    for name, (data, mtime) in first.items():
        assert (out / name).read_bytes() == data
        assert (out / name).stat().st_mtime_ns == mtime
    assert {t: (e.findtext(f"{A}id"), e.findtext(f"{AGG}republished"))
            for t, e in entries_by_title(out / "all.atom").items()} == ids


def _undated_feed(items: int) -> bytes:
    """A JSON Feed with no date anywhere: neither the feed nor its items give one."""
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Undated",
                       "items": [{"id": f"u{n}", "url": f"https://undated.test/{n}", "title": f"Undated {n}",
                                  "content_text": f"Story {n}."} for n in range(items)]}).encode()


def _source_updated(out) -> set[str]:
    """Every atom:source/updated and JSON `_aggregator.source.updated` of the output `all`."""
    atom = {e.findtext(f"{A}updated") for e in etree.parse(str(out / "all.atom")).getroot().iter(f"{A}source")}
    items = json.loads((out / "all.json").read_text(encoding="utf-8"))["items"]
    return atom | {i["_aggregator"]["source"]["updated"] for i in items}


def test_undated_source_keeps_its_updated_until_its_items_change(tmp_path):
    """A source giving no date moves its atom:source/updated only when its items change, not at each poll:
    `once` and `publish` then agree that nothing is to be rewritten."""
    feed = tmp_path / "undated.json"
    feed.write_bytes(_undated_feed(2))
    config = write_config(tmp_path, [{"id": "undated", "url": "file:undated.json"}],
                          [{"id": "all", "title": "All", "formats": ["atom", "json"]}])
    run_cli("once", config=config, check=True)
    out = tmp_path / "out"
    files = {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino) for p in out.rglob("*") if p.is_file()}
    updated = _source_updated(out)
    assert len(updated) == 1

    time.sleep(1.1)  # stored times have whole seconds: a later poll must be at another one
    assert "0 files rewritten" in run_cli("once", config=config, check=True).stdout
    assert "0 files rewritten" in run_cli("publish", config=config, check=True).stdout
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino) for p in files} == files
    assert _source_updated(out) == updated

    time.sleep(1.1)
    feed.write_bytes(_undated_feed(3))
    run_cli("once", config=config, check=True)
    moved = _source_updated(out)
    assert len(moved) == 1 and parse_time(moved.pop()) > parse_time(updated.pop())


def test_a_source_updated_by_its_items_never_moves_back(tmp_path):
    """An RSS channel with no date of its own is as recent as its newest item; when that item leaves the feed
    (the window slides, or the item is taken down), the source's updated stays where it was."""
    def channel(days: list[int]) -> bytes:
        items = "".join(f"<item><title>Day {d}</title><link>https://days.example/{d}</link>"
                        f"<pubDate>{d:02d} Sep 2021 10:00:00 GMT</pubDate></item>" for d in days)
        return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Days</title>'
                f"<link>https://days.example/</link>{items}</channel></rss>").encode()

    feed = tmp_path / "days.rss"
    feed.write_bytes(channel([3, 2, 1]))
    config = write_config(tmp_path, [{"id": "days", "url": "file:days.rss"}],
                          [{"id": "all", "title": "All", "formats": ["atom", "json"]}])
    run_cli("once", config=config, check=True)
    assert _source_updated(tmp_path / "out") == {"2021-09-03T10:00:00Z"}
    feed.write_bytes(channel([2, 1]))
    run_cli("once", config=config, check=True)
    assert _source_updated(tmp_path / "out") == {"2021-09-03T10:00:00Z"}


def test_changed_item_updates_its_entry_keeping_id_and_republished(two_sources, feed_server):
    run_cli("once", config=two_sources, check=True)
    out = two_sources.parent / "out"
    before = entries_by_title(out / "all.atom")["Only updated"]
    changed = fixture_bytes("feeds/dates.atom").replace(
        b"A summary in plain text &amp; nothing else.", b"A corrected summary.").replace(
        b"<updated>2021-09-26T12:00:00Z</updated>\n    <summary>", b"<updated>2021-09-29T12:00:00Z</updated>\n    <summary>")
    feed_server.serve("/dates.atom", changed, content_type="application/atom+xml")
    result = run_cli("once", config=two_sources, check=True)
    assert "dates: updated: 0 new, 1 updated" in result.stdout
    entries = entries_by_title(out / "all.atom")
    after = entries["Only updated"]
    assert len(entries) == 4
    assert after.findtext(f"{A}id") == before.findtext(f"{A}id")
    assert after.findtext(f"{AGG}republished") == before.findtext(f"{AGG}republished")
    assert parse_time(after.findtext(f"{A}updated")) == datetime(2021, 9, 29, 12, 0, tzinfo=timezone.utc)
    # an item dated by its updated alone was first published then: a new updated is a change, not a new date
    assert parse_time(after.findtext(f"{A}published")) == datetime(2021, 9, 26, 12, 0, tzinfo=timezone.utc)
    assert "A corrected summary." in after.findtext(f"{A}content")


def test_limit_orders_newest_published_first(tmp_path, feed_server):
    feed_server.serve("/dates.atom", fixture_bytes("feeds/dates.atom"))
    config = write_config(tmp_path, [{"id": "dates", "url": feed_server.url("/dates.atom")}],
                          [{"id": "two", "title": "Two", "limit": 2}])
    run_cli("once", config=config, check=True)
    root = etree.parse(str(tmp_path / "out" / "two.atom")).getroot()
    titles = [e.findtext(f"{A}title") for e in root.findall(f"{A}entry")]
    assert titles == ["No dates", "With both dates"]
    assert root.findtext(f"{A}updated") == root.find(f"{A}entry").findtext(f"{A}updated")


def test_failing_source_is_recorded_and_others_still_publish(tmp_path, feed_server):
    feed_server.serve("/dates.atom", fixture_bytes("feeds/dates.atom"))
    feed_server.serve("/broken", b"oops", status=500)
    config = write_config(tmp_path, [
        {"id": "dates", "url": feed_server.url("/dates.atom")},
        {"id": "broken", "url": feed_server.url("/broken")},
        {"id": "nowhere", "url": "http://127.0.0.1:9/feed"},
    ])
    result = run_cli("once", config=config)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "broken: error: fetch: HTTP 500" in result.stdout
    assert "nowhere: error: fetch: cannot connect" in result.stdout
    assert "total: 3 sources, 3 new entries" in result.stdout
    rows = status_json(config)
    assert rows["broken"]["state"] == "failing" and rows["broken"]["errors"] == 1
    assert rows["broken"]["last_status"] == 500
    assert rows["dates"]["state"] == "ok" and rows["dates"]["entries"] == 3
    assert set(rows["dates"]) == {"id", "url", "state", "last_poll", "last_success", "last_status", "errors",
                                  "next_poll", "entries", "last_error", "push", "warning"}  # SPEC §2, and 15.13's
    assert rows["dates"]["push"] is None  # no WebSub subscription (SPEC §2)
    assert rows["dates"]["warning"] is None
    assert len(entries_by_title(tmp_path / "out" / "all.atom")) == 3


def test_user_agent_and_file_urls(tmp_path, feed_server):
    feed_server.serve("/dates.atom", fixture_bytes("feeds/dates.atom"))
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "rep.rss").write_bytes(fixture_bytes("feeds/republisher.rss"))
    config = write_config(tmp_path, [
        {"id": "dates", "url": feed_server.url("/dates.atom")},
        {"id": "local", "url": "file:samples/rep.rss"},
    ])
    result = run_cli("once", config=config, check=True)
    assert "local: new: 2 new" in result.stdout
    agent = feed_server.seen("/dates.atom")[0].headers["user-agent"]
    assert agent.startswith("aggregator/") and "(+http" in agent
    assert status_json(config)["local"]["url"] == "file:samples/rep.rss"  # as the config writes it, no local path


def test_once_source_filter_and_unknown_source(two_sources, feed_server):
    result = run_cli("once", "--source", "dates", config=two_sources, check=True)
    assert "dates: new" in result.stdout and "republisher" not in result.stdout
    assert feed_server.seen("/republisher.rss") == []
    unknown = run_cli("once", "--source", "nope", config=two_sources)
    assert unknown.returncode == 2 and "unknown source nope" in unknown.stderr


def test_body_past_max_bytes_is_abandoned(tmp_path, feed_server):
    feed_server.serve("/big", fixture_bytes("feeds/dates.atom"))
    config = write_config(tmp_path, [{"id": "big", "url": feed_server.url("/big"), "max_bytes": 500}])
    result = run_cli("once", config=config, check=True)
    assert "big: error: fetch: body larger than max_bytes (500 bytes)" in result.stdout
    assert status_json(config)["big"]["entries"] == 0


BOMBCAST = "https://dts.podtrac.com/redirect.mp3/www.giantbomb.com/podcasts/download/2823/"
EPISODE = BOMBCAST + "603__Call_of_Tuesday-10-01-2019-6277737276.mp3"


def test_a_podcasts_episodes_keep_their_audio_in_every_format_and_page(tmp_path):
    """A real podcast feed read from a file: copy: each episode's mp3 is an Atom rel="enclosure" link, the
    RSS <enclosure>, a JSON Feed attachment and a link on its story page; a changed enclosure at the source
    is a changed entry (same id, the new length)."""
    feed = tmp_path / "bombcast.rss"
    feed.write_bytes(fixture_bytes("corpus/real/rss-parser/giantbomb-podcast.rss"))
    config = write_config(tmp_path, [{"id": "bombcast", "url": feed.as_uri()}],
                          [{"id": "pod", "title": "Podcast", "formats": ["atom", "rss", "json"], "limit": 3}])
    run_cli("once", config=config, check=True)
    out = tmp_path / "out"
    title = "Giant Bombcast 603: Call of Tuesday"

    atom = entries_by_title(out / "pod.atom")[title]
    assert [dict(link.attrib) for link in atom.findall(f"{A}link[@rel='enclosure']")] == [
        {"rel": "enclosure", "href": EPISODE, "type": "audio/mpeg", "length": "105003355"}]
    item = next(i for i in etree.parse(str(out / "pod.rss")).getroot().iter("item") if i.findtext("title") == title)
    assert [dict(e.attrib) for e in item.findall("enclosure")] == [
        {"url": EPISODE, "length": "105003355", "type": "audio/mpeg"}]
    episode = next(i for i in json.loads((out / "pod.json").read_text())["items"] if i["title"] == title)
    assert episode["attachments"] == [{"url": EPISODE, "mime_type": "audio/mpeg", "size_in_bytes": 105003355}]

    page = (out / "stories" / f"{episode['id'].removeprefix('urn:uuid:')}.html").read_text()
    assert (f'Audio: <a href="{EPISODE}">603__Call_of_Tuesday-10-01-2019-6277737276.mp3</a> '
            "(audio/mpeg, 105.0 MB)") in page
    assert "<audio" not in page and "<source" not in page

    feed.write_bytes(feed.read_bytes().replace(b'length="105003355"', b'length="105003999"'))
    assert "bombcast: updated: 0 new, 1 updated" in run_cli("once", config=config, check=True).stdout
    atom = entries_by_title(out / "pod.atom")[title]
    assert atom.findtext(f"{A}id") == episode["id"]
    assert atom.find(f"{A}link[@rel='enclosure']").get("length") == "105003999"
