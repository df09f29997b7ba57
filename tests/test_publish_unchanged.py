"""Publishing renders only the documents whose entries (or settings) changed, and never trusts a file someone touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aggregator.output import archive, publish
from aggregator.config import load_config
from aggregator.output.publish import publish_outputs
from aggregator.reader.hosts import HostLimiter
from aggregator.run.pipeline import poll
from aggregator.store import Store
from conftest import write_config
from test_outputs_archive import atom_feed


class TwoOutputs:
    """Sources a and b (file feeds), outputs a and b showing one source each, all formats, limit 2 (archives)."""

    def __init__(self, directory: Path, monkeypatch):
        self.directory = directory
        for sid in "ab":
            (directory / f"{sid}.atom").write_text(atom_feed([1, 2, 3]).replace("src.test", f"{sid}.test"))
        self.path = write_config(directory, [{"id": sid, "url": f"file:{sid}.atom"} for sid in "ab"],
                                 [{"id": sid, "title": sid.upper(), "sources": [sid], "limit": 2,
                                   "formats": ["atom", "rss", "json"]} for sid in "ab"])
        self.config = load_config(self.path)
        self.store = Store(self.config.state)
        self.out = self.config.output_dir
        self.rendered: list[str] = []
        render = publish.render

        def spy(config, document, fmt, entries):
            self.rendered.append(document.name(fmt))
            return render(config, document, fmt, entries)
        monkeypatch.setattr(publish, "render", spy)
        for source in self.config.sources:
            poll(self.store, self.config, source, HostLimiter())

    def publish(self, unless_unchanged: bool = False) -> tuple[list[str], list[str]]:
        """(documents rendered, files written) by one publish."""
        self.rendered.clear()
        written = publish_outputs(self.store, self.config, unless_unchanged=unless_unchanged)
        return sorted(self.rendered), sorted(p.relative_to(self.out).as_posix() for p in written
                                             if p.name not in ("feed.xsl", "index.opml")
                                             and p.suffix not in (".html", ".css"))  # pages: test_pages.py


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = TwoOutputs(tmp_path, monkeypatch)
    yield site
    site.store.close()


def test_an_unchanged_publish_renders_nothing_and_a_new_story_renders_only_its_output(site):
    rendered, written = site.publish()
    assert rendered == written == ["a.atom", "a.json", "a.rss", "archive/a/1.atom", "archive/a/1.json",
                                   "archive/a/1.rss", "archive/b/1.atom", "archive/b/1.json", "archive/b/1.rss",
                                   "b.atom", "b.json", "b.rss"]
    assert site.publish() == ([], [])

    (site.directory / "b.atom").write_text(atom_feed([1, 2, 3, 4]).replace("src.test", "b.test"))
    poll(site.store, site.config, site.config.sources[1], HostLimiter())
    rendered, written = site.publish()
    assert rendered == written == ["archive/b/1.atom", "archive/b/1.json", "archive/b/1.rss",  # page 1 fills,
                                   "archive/b/2.atom", "archive/b/2.json", "archive/b/2.rss",  # page 2 opens
                                   "b.atom", "b.json", "b.rss"]
    assert site.publish() == ([], [])


@pytest.mark.parametrize("unless_unchanged", [False, True])
def test_a_file_removed_or_edited_by_hand_is_rendered_again(site, unless_unchanged):
    site.publish()
    before = (site.out / "a.json").read_bytes()
    (site.out / "a.json").write_bytes(b"{}")
    (site.out / "b.atom").unlink()
    (site.out / "archive" / "a" / "1.rss").unlink()
    assert site.publish(unless_unchanged) == (["a.json", "archive/a/1.rss", "b.atom"],
                                              ["a.json", "archive/a/1.rss", "b.atom"])
    assert (site.out / "a.json").read_bytes() == before


@pytest.mark.parametrize("unless_unchanged", [False, True])
def test_a_changed_setting_renders_again(site, unless_unchanged):
    site.publish()
    site.path.write_text(site.path.read_text().replace("title: B", "title: Bee"))
    site.config = load_config(site.path)
    rendered, written = site.publish(unless_unchanged)
    assert "b.atom" in written and "a.atom" in rendered and "a.atom" not in written  # same bytes: not rewritten
    assert json.loads((site.out / "b.json").read_text())["title"] == "Bee"


def test_once_reads_no_story_when_nothing_changed_since_the_last_publish(site, monkeypatch):
    """What `once` does after its polls: at 600,000 stored items, selecting them all again took seconds."""
    site.publish()
    prepare = archive.prepare
    monkeypatch.setattr(archive, "prepare", lambda *args: pytest.fail("read the stories although nothing changed"))
    poll(site.store, site.config, site.config.sources[0], HostLimiter())  # the same body: nothing new
    assert site.publish(unless_unchanged=True) == ([], [])
    monkeypatch.setattr(archive, "prepare", prepare)
    (site.directory / "b.atom").write_text(atom_feed([1, 2, 3, 4]).replace("src.test", "b.test"))
    poll(site.store, site.config, site.config.sources[1], HostLimiter())
    assert "b.atom" in site.publish(unless_unchanged=True)[1]


def test_a_story_stored_but_not_yet_published_is_published_even_if_its_feed_changed_back(site):
    """A feed flapping between two versions (a CDN serving old and new) must not hide what one of them brought."""
    site.publish()
    original = (site.directory / "b.atom").read_text()
    (site.directory / "b.atom").write_text(atom_feed([1, 2, 3, 4]).replace("src.test", "b.test"))
    poll(site.store, site.config, site.config.sources[1], HostLimiter())  # story 4 stored; no publish (a crash)
    (site.directory / "b.atom").write_text(original)
    poll(site.store, site.config, site.config.sources[1], HostLimiter())  # back to the body last published
    site.publish(unless_unchanged=True)
    assert "Story 4" in (site.out / "b.atom").read_text()


def test_an_output_that_ages_stories_out_is_always_published(site, monkeypatch):
    site.path.write_text(site.path.read_text().replace("title: B", "title: B\n  since: 30d"))
    site.config = load_config(site.path)
    site.publish()
    monkeypatch.setattr(archive, "prepare", lambda *args: pytest.fail("read"))
    with pytest.raises(pytest.fail.Exception):
        site.publish(unless_unchanged=True)
