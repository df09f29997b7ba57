"""RFC 5005 archives over several publishes: full pages never change, links are consistent, and every story
is in exactly one document (current or one archive page) — none lost, none repeated."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

from lxml import etree

from aggregator.config import load_config
from aggregator.output.publish import WORKER_MODULE, publish_outputs
from aggregator.reader.hosts import HostLimiter
from aggregator.run.lifeline import LazyPool
from aggregator.run.pipeline import poll
from aggregator.store import Store
from conftest import write_config

UTC = timezone.utc
ATOM = "{http://www.w3.org/2005/Atom}"
START = datetime(2021, 9, 1, tzinfo=UTC)
LIMIT = 4


def atom_feed(numbers: list[int], published=lambda n: START + timedelta(hours=n)) -> str:
    entries = "".join(
        f"<entry><id>tag:src.test,2021:{n}</id><title>Story {n}</title>"
        f"<link href='http://src.test/{n}'/><updated>{published(n).isoformat()}</updated>"
        f"<summary>Text of story {n}</summary></entry>" for n in numbers)
    return (f"<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
            f"<id>tag:src.test,2021:feed</id><title>Source</title><updated>{START.isoformat()}</updated>"
            f"<link rel='self' href='http://src.test/feed.atom'/>{entries}</feed>")


class Site:
    """A config with one file: source and one output (limit 4, all formats), polled and published in-process."""

    def __init__(self, directory: Path, **output):
        self.feed = directory / "source.atom"
        self.feed.write_text(atom_feed([]))
        path = write_config(directory, [{"id": "src", "url": "file:source.atom"}],
                            [{"id": "news", "title": "News", "limit": LIMIT, "formats": ["atom", "rss", "json"],
                              **output}])
        self.config = load_config(path)
        self.out = self.config.output_dir
        self.store = Store(self.config.state)

    def publish(self, numbers: list[int], now: datetime | None = None, pool=None, **kwargs) -> list[Path]:
        self.feed.write_text(atom_feed(numbers, **kwargs))
        poll(self.store, self.config, self.config.sources[0], HostLimiter(), now=now)
        return publish_outputs(self.store, self.config, now=now, pool=pool)

    def pages(self) -> list[int]:
        directory = self.out / "archive" / "news"
        return sorted(int(p.stem) for p in directory.glob("*.atom")) if directory.exists() else []

    def atom(self, name: str):
        return etree.parse(str(self.out / name)).getroot()


def ids(root) -> list[str]:
    return [e.findtext(f"{ATOM}id") for e in root.findall(f"{ATOM}entry")]


def titles(root) -> list[str]:
    return [e.findtext(f"{ATOM}title") for e in root.findall(f"{ATOM}entry")]


def links(root) -> dict[str, str]:
    return {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}


def local(site: Site, href: str) -> str:
    assert href.startswith(site.config.base_url)
    return href[len(site.config.base_url):]


def walk_history(site: Site) -> list[str]:
    """Every document from the current one back through prev-archive, checking each link on the way: none
    of them is empty but the current one; the newest page reached links forward to the page after it only
    when that page exists, is empty and links back (a full page's successor, created at once)."""
    names, name = [], "news.atom"
    while name:
        assert (site.out / name).exists(), f"{name} is linked but missing"
        names.append(name)
        root_links = links(site.atom(name))
        if name != "news.atom":
            assert local(site, root_links["current"]) == "news.atom"
            assert ids(site.atom(name)), f"{name} is reached by prev-archive but empty"
        name = local(site, root_links["prev-archive"]) if "prev-archive" in root_links else None
        if name:
            older = links(site.atom(name))
            newer = older.get("next-archive")
            if names[-1] != "news.atom":
                assert newer and local(site, newer) == names[-1], f"{name} next-archive is inconsistent"
            elif newer:
                successor = site.atom(local(site, newer))  # parses: it exists
                assert ids(successor) == [] and local(site, links(successor)["prev-archive"]) == name
    return names


def check_invariants(site: Site, published_titles: set[str]) -> list[str]:
    documents = walk_history(site)
    pages = site.pages()
    empty_newest = bool(pages) and not ids(site.atom(f"archive/news/{pages[-1]}.atom"))
    assert len(documents) == len(pages) + 1 - empty_newest, "every page holding entries is reachable from current"
    seen = [t for name in documents for t in titles(site.atom(name))]
    assert len(seen) == len(set(seen)), "a story is in more than one document"
    assert set(seen) == published_titles, "a story is missing from current and archives"
    current = site.atom("news.atom")
    assert len(ids(current)) == min(LIMIT, len(published_titles))
    for number in site.pages()[:-1]:
        assert len(ids(site.atom(f"archive/news/{number}.atom"))) == LIMIT, "only the newest page is not full"
    if site.pages():
        newest = site.atom(f"archive/news/{site.pages()[-1]}.atom")
        assert "next-archive" not in links(newest) and len(ids(newest)) < LIMIT
    for name in documents + ([f"archive/news/{pages[-1]}.atom"] if empty_newest else []):
        # the RSS and JSON documents page exactly like the Atom one
        rss = etree.parse(str(site.out / name.replace(".atom", ".rss"))).getroot()
        assert [i.findtext("guid") for i in rss.findall("channel/item")] == ids(site.atom(name))
        feed = json.loads((site.out / name.replace(".atom", ".json")).read_text())
        assert [i["id"] for i in feed["items"]] == ids(site.atom(name))
        prev = links(site.atom(name)).get("prev-archive")
        assert feed.get("next_url") == (prev.replace(".atom", ".json") if prev else None)
    return documents


def test_archives_page_through_several_publishes_without_loss_or_repeats(tmp_path):
    site = Site(tmp_path)
    frozen: dict[Path, bytes] = {}
    published: set[str] = set()
    for count in (3, 6, 9, 13, 14, 21, 22):
        site.publish(list(range(1, count + 1)))
        published = {f"Story {n}" for n in range(1, count + 1)}
        for path, data in frozen.items():
            assert path.read_bytes() == data, f"{path.name} changed after it was full"
        check_invariants(site, published)
        for number in site.pages()[:-1]:
            for fmt in ("atom", "rss", "json"):
                path = site.out / "archive" / "news" / f"{number}.{fmt}"
                frozen.setdefault(path, path.read_bytes())
    assert len(site.pages()) >= 3 and len(frozen) >= 3 * 3
    # Pages are filled oldest first: page 1 holds the four oldest stories.
    assert sorted(titles(site.atom("archive/news/1.atom"))) == [f"Story {n}" for n in (1, 2, 3, 4)]
    assert site.publish(list(range(1, 23))) == [], "nothing changed, so nothing is rewritten"


def test_a_late_back_dated_story_goes_to_the_open_page_not_into_a_full_one(tmp_path):
    site = Site(tmp_path)
    site.publish(list(range(1, 15)))  # 14 stories: 4 current, pages 1-2 full, page 3 open with 2
    full = {n: (site.out / f"archive/news/{n}.atom").read_bytes() for n in site.pages()[:-1]}

    def back_dated(n: int) -> datetime:
        return START - timedelta(days=30) if n == 99 else START + timedelta(hours=n)

    site.publish([*range(1, 15), 99], published=back_dated)
    for number, data in full.items():
        assert (site.out / f"archive/news/{number}.atom").read_bytes() == data
    assert "Story 99" in titles(site.atom(f"archive/news/{site.pages()[-1]}.atom"))
    check_invariants(site, {f"Story {n}" for n in (*range(1, 15), 99)})


def test_stories_that_age_past_since_move_to_the_archive(tmp_path):
    site = Site(tmp_path, since="2d")
    now = START + timedelta(hours=10)
    site.publish(list(range(1, 4)), now=now)
    assert len(ids(site.atom("news.atom"))) == 3 and site.pages() == []
    later = now + timedelta(days=5)
    site.publish(list(range(1, 4)), now=later)
    assert ids(site.atom("news.atom")) == []
    assert sorted(titles(site.atom("archive/news/1.atom"))) == ["Story 1", "Story 2", "Story 3"]
    assert links(site.atom("news.atom"))["prev-archive"].endswith("/archive/news/1.atom")


def test_a_page_that_fills_exactly_is_linked_by_current_and_links_its_empty_successor(tmp_path):
    """Issue 15.4: the current document links the full page, not the empty page created after it (which
    exists so that the full page's next-archive, written once and for all, never dangles)."""
    site = Site(tmp_path)
    site.publish(list(range(1, 9)))  # 4 current + exactly one full page
    assert site.pages() == [1, 2]
    assert ids(site.atom("archive/news/2.atom")) == []
    for fmt in ("atom", "rss"):  # the current document's prev-archive (RSS: atom:link) names the full page
        root = etree.parse(str(site.out / f"news.{fmt}")).getroot()
        prev = root.find(f".//{ATOM}link[@rel='prev-archive']").get("href")
        assert local(site, prev) == f"archive/news/1.{fmt}"
    assert json.loads((site.out / "news.json").read_text())["next_url"].endswith("archive/news/1.json")
    assert local(site, links(site.atom("archive/news/1.atom"))["next-archive"]) == "archive/news/2.atom"
    check_invariants(site, {f"Story {n}" for n in range(1, 9)})
    for stale in (site.out / "archive" / "news").glob("2.*"):  # as if page 2 had never been written
        stale.unlink()
    site.publish(list(range(1, 9)))
    assert site.pages() == [1, 2] and ids(site.atom("archive/news/2.atom")) == []
    full = (site.out / "archive" / "news" / "1.atom").read_bytes()
    site.publish(list(range(1, 10)))  # the empty page gets its first story: current now links it
    assert local(site, links(site.atom("news.atom"))["prev-archive"]) == "archive/news/2.atom"
    assert (site.out / "archive" / "news" / "1.atom").read_bytes() == full
    check_invariants(site, {f"Story {n}" for n in range(1, 10)})


def test_pages_written_full_are_indexed_at_once_with_the_ids_they_hold(tmp_path):
    """The next publish (a new process after `once`) then parses none of them: 600 pages took 0.3 s."""
    site = Site(tmp_path)
    site.publish(list(range(1, 15)))  # pages 1-2 written full, page 3 open
    index = site.out / "archive" / "news" / ".full-pages.jsonl"
    lines = [json.loads(line) for line in index.read_text().splitlines()]
    assert lines == [[n, ids(site.atom(f"archive/news/{n}.atom"))] for n in (1, 2)]
    site.publish(list(range(1, 19)))  # page 3 fills: added once, after 1 and 2
    assert [json.loads(line)[0] for line in index.read_text().splitlines()] == [1, 2, 3]
    check_invariants(site, {f"Story {n}" for n in range(1, 19)})


def test_the_index_of_full_pages_survives_a_torn_line_and_a_folder_moved_aside(tmp_path):
    site = Site(tmp_path)
    site.publish(list(range(1, 15)))  # pages 1-2 full, page 3 open
    site.publish(list(range(1, 15)))  # the full pages are read once, into the index
    index = site.out / "archive" / "news" / ".full-pages.jsonl"
    index.write_bytes(index.read_bytes() + b'[3,["urn:uu')  # a crash in the middle of adding a page
    site.publish(list(range(1, 19)))  # page 3 fills
    site.publish(list(range(1, 19)))
    check_invariants(site, {f"Story {n}" for n in range(1, 19)})
    shutil.move(site.out / "archive" / "news", tmp_path / "aside")
    site.publish(list(range(1, 19)))  # the same store in the same process: the archive starts afresh
    assert site.pages() == [1, 2, 3, 4]
    check_invariants(site, {f"Story {n}" for n in range(1, 19)})


def test_a_copy_the_filters_left_out_is_shown_once_it_changes_to_pass_them(tmp_path):
    site = Site(tmp_path, include=["climate"])
    site.publish([1, 2])
    site.publish([1, 2])  # the left-out copies are remembered as such
    assert titles(site.atom("news.atom")) == []
    site.feed.write_text(atom_feed([1, 2]).replace("Text of story 2", "Text of story 2, on climate"))
    poll(site.store, site.config, site.config.sources[0], HostLimiter())
    publish_outputs(site.store, site.config)
    assert titles(site.atom("news.atom")) == ["Story 2"]


def test_a_first_publish_rendered_in_worker_processes_writes_what_one_process_writes(tmp_path):
    """From its second archive page on, a publish with a pool renders documents in its workers: every file the
    same, byte for byte, as a publish of the same state in one process, and the archive as consistent."""
    numbers, now = list(range(150)), START + timedelta(days=30)
    sites = []
    for name in ("here", "pooled"):
        (tmp_path / name).mkdir()
        sites.append(Site(tmp_path / name))
    sites[0].publish(numbers, now=now)
    pool = LazyPool(2, [WORKER_MODULE])
    try:
        sites[1].publish(numbers, now=now, pool=pool)
    finally:
        pool.shutdown()

    def files(site: Site) -> dict[str, bytes]:
        return {p.relative_to(site.out).as_posix(): p.read_bytes() for p in site.out.rglob("*") if p.is_file()}

    here, pooled = files(sites[0]), files(sites[1])
    assert len([name for name in here if name.startswith("archive/news/")]) > 30 * 4  # many pages, each format
    assert sorted(here) == sorted(pooled)
    assert [name for name in here if here[name] != pooled[name]] == []
    check_invariants(sites[1], {f"Story {n}" for n in numbers})
