"""OPML (SPEC §2): real subscription lists import as sources, export imports back to the same sources,
and the output folder's index.opml lists the outputs."""

from __future__ import annotations

import io
import shutil

import pytest
from lxml import etree
from ruamel.yaml import YAML

from aggregator.config import ID_PATTERN, load_config
from aggregator.dedup.links import canonical_link
from aggregator.output.opml import read_outlines
from conftest import FIXTURES, ROOT, run_cli, write_config

OPML = FIXTURES / "corpus" / "real" / "opml"
CORPUS = [OPML / "Subs.opml", OPML / "google-reader-subscriptions.xml"]


def source_list(yaml_text: str) -> list[dict]:
    return YAML(typ="safe").load(io.StringIO(yaml_text))["sources"]


def exported(config) -> list[dict]:
    result = run_cli("opml", "export", config=config, check=True)
    root = etree.fromstring(result.stdout.encode("utf-8"))
    assert root.tag == "opml" and root.get("version") == "2.0"
    return [dict(o.attrib) for o in root.iter("outline")]


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_import_prints_one_valid_source_per_distinct_feed(tmp_path, path):
    config = write_config(tmp_path, [{"id": "existing", "url": "http://example.test/feed"}])
    result = run_cli("opml", "import", str(path), config=config, check=True)
    sources = source_list(result.stdout)
    distinct = {canonical_link(o.xml_url) for o in read_outlines(path.read_bytes())}
    assert len(sources) == len(distinct) > 50
    assert len({s["id"] for s in sources}) == len(sources)
    assert all(ID_PATTERN.match(s["id"]) for s in sources)
    assert all(s["url"].startswith(("http://", "https://")) and s["title"] for s in sources)


def test_repeats_in_the_file_are_skipped_and_same_titles_get_distinct_ids(tmp_path):
    config = write_config(tmp_path, [{"id": "existing", "url": "http://example.test/feed"}])
    result = run_cli("opml", "import", str(CORPUS[0]), config=config, check=True)
    sources = source_list(result.stdout)
    katie = [s for s in sources if s["title"] == "Katie Floyd"]
    assert len(katie) == 1  # listed twice, once with a trailing slash
    assert "skipped http://feed.katiefloyd.com/: listed twice" in result.stderr
    fireball = sorted(s["id"] for s in sources if s["title"] == "Daring Fireball")
    assert fireball == ["daring-fireball", "daring-fireball-2"]  # two different feed URLs, one title


def test_import_write_appends_to_the_config_keeping_comments_and_round_trips_through_export(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    config = tmp_path / "config" / "aggregator.yaml"
    before = load_config(config)
    result = run_cli("opml", "import", "--write", str(CORPUS[0]), config=config, check=True)
    assert "added" in result.stdout
    after = load_config(config)
    text = config.read_text()
    assert "# Real web feeds: uncomment to poll them." in text and "#   hubs: [https://pubsubhubbub" in text
    added = after.sources[len(before.sources):]
    assert [s.id for s in after.sources[:len(before.sources)]] == [s.id for s in before.sources]
    assert run_cli("check", config=config).returncode == 0
    again = run_cli("opml", "import", str(CORPUS[0]), config=config, check=True)
    assert "no new sources" in again.stdout  # every feed is now a source

    outlines = exported(config)
    assert [(o["xmlUrl"], o["title"]) for o in outlines] == [(s.url, s.title or s.id) for s in after.sources]
    assert {o["xmlUrl"] for o in outlines} >= {s.url for s in added}

    # The export imports into an empty config as the same sources, tags included (the bundled samples are
    # file: sources, which an import takes only when the operator allows them).
    (tmp_path / "export.opml").write_text(run_cli("opml", "export", config=config, check=True).stdout)
    (tmp_path / "fresh").mkdir()
    fresh = write_config(tmp_path / "fresh", [])
    reimported = source_list(run_cli("opml", "import", "--allow-files", str(tmp_path / "export.opml"),
                                     config=fresh, check=True).stdout)
    expected = [(s.url, s.title or s.id, list(s.tags)) for s in after.sources]
    assert [(s["url"], s["title"], s.get("tags", [])) for s in reimported] == expected


def test_folders_and_categories_become_tags(tmp_path):
    opml = tmp_path / "folders.opml"
    opml.write_text("""<?xml version="1.0"?><opml version="2.0"><head><title>t</title></head><body>
      <outline text="World News"><outline text="WSWS" xmlUrl="https://www.wsws.org/en/rss.xml" category="/politics,/a/b/Africa"/></outline>
      <outline text="Loose" xmlUrl="https://loose.example/feed"/>
      <outline text="Mail" xmlUrl="mailto:someone@example.org"/>
    </body></opml>""")
    config = write_config(tmp_path, [])
    result = run_cli("opml", "import", str(opml), config=config, check=True)
    assert source_list(result.stdout) == [
        {"id": "wsws", "url": "https://www.wsws.org/en/rss.xml", "title": "WSWS", "tags": ["world-news", "politics", "africa"]},
        {"id": "loose", "url": "https://loose.example/feed", "title": "Loose"},
    ]
    assert "mailto:someone@example.org: not an http, https or file URL" in result.stderr


@pytest.mark.parametrize("content, message", [
    (b"<opml><body><outline", "not well-formed XML"),
    (b"<rss version='2.0'><channel/></rss>", "not OPML"),
])
def test_a_broken_file_is_one_line_and_exit_2(tmp_path, content, message):
    path = tmp_path / "bad.opml"
    path.write_bytes(content)
    result = run_cli("opml", "import", str(path), config=write_config(tmp_path, []))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    missing = run_cli("opml", "import", str(tmp_path / "nope.opml"), config=write_config(tmp_path, []))
    assert missing.returncode == 2 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr


def test_external_entities_are_not_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    path = tmp_path / "xxe.opml"
    path.write_text(f"""<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file://{secret}">]>
      <opml version="2.0"><body><outline text="&x;" xmlUrl="https://a.example/feed"/></body></opml>""")
    result = run_cli("opml", "import", str(path), config=write_config(tmp_path, []))
    assert "TOP-SECRET" not in result.stdout + result.stderr


def test_index_opml_lists_every_output(tmp_path):
    (tmp_path / "empty.atom").write_text("<feed xmlns='http://www.w3.org/2005/Atom'><id>x</id><title>t</title>"
                                         "<updated>2021-01-01T00:00:00Z</updated></feed>")
    config = write_config(tmp_path, [{"id": "a", "url": "file:empty.atom"}],
                          [{"id": "world", "title": "World news", "subtitle": "From everywhere"},
                           {"id": "tech", "title": "Technology", "language": "en"}])
    run_cli("publish", config=config, check=True)
    root = etree.parse(str(tmp_path / "out" / "index.opml")).getroot()
    assert root.get("version") == "2.0"
    outlines = [dict(o.attrib) for o in root.iter("outline")]
    assert [(o["title"], o["xmlUrl"]) for o in outlines] == [
        ("World news", "http://feeds.test/world.atom"), ("Technology", "http://feeds.test/tech.atom")]
    assert outlines[0]["description"] == "From everywhere" and outlines[1]["language"] == "en"
    assert [o["htmlUrl"] for o in outlines] == ["http://feeds.test/world.html", "http://feeds.test/tech.html"]
    assert [o.title for o in read_outlines((tmp_path / "out" / "index.opml").read_bytes())] == ["World news",
                                                                                                   "Technology"]


def test_export_after_a_poll_names_each_source_with_the_site_it_learnt(tmp_path):
    """Export reads the state when there is one: the feed's site link from its last poll."""
    shutil.copy(FIXTURES / "feeds" / "republisher.rss", tmp_path / "feed.xml")
    config = write_config(tmp_path, [{"id": "rep", "url": "file:feed.xml"}])
    run_cli("once", config=config, check=True)
    [outline] = exported(config)
    assert outline["xmlUrl"] == (tmp_path / "feed.xml").as_uri() and outline.get("htmlUrl", "").startswith("http")
