"""The HTML pages (SPEC §4.1) as files, published by the real CLI: well-formed HTML5, links that lead somewhere,
hostile text inert, nothing loaded from elsewhere, lang and dir on every entry, only changed pages rewritten."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit

import html5lib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from aggregator.config import load_config
from aggregator.models import RelatedCopy, SourceMeta, StoryEntry
from aggregator.output.documents import Document
from aggregator.output.pages import Site
from aggregator.output.rendered import Rendered
from aggregator.run.lifeline import LazyPool
from conftest import run_cli, write_config
from hostile import xss_payloads
from pages_site import LONG_URL, build_site

ATOM = "{http://www.w3.org/2005/Atom}"


def _strict(path: Path):
    """html5lib's strict parser (any parse error fails the test), into an lxml tree."""
    parser = html5lib.HTMLParser(tree=html5lib.getTreeBuilder("lxml"), strict=True, namespaceHTMLElements=False)
    try:
        return parser.parse(path.read_bytes())
    except html5lib.html5parser.ParseError as exc:
        raise AssertionError(f"{path.name}: {exc} {parser.errors[:3]}") from None


def pages(out: Path) -> list[Path]:
    return sorted(out.rglob("*.html"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pages")
    config = build_site(directory)
    result = run_cli("once", config=config, check=True)
    return {"config": config, "out": directory / "out", "stdout": result.stdout}


def test_every_kind_of_page_is_written(site):
    out = site["out"]
    for name in ("index.html", "world.html", "persian.html", "hostile.html", "pages.css",
                 "archive/world/1.html", "archive/world/2.html"):
        assert (out / name).is_file(), name
    stories = list((out / "stories").glob("*.html"))
    titles = len(etree.parse(str(out / "hostile.atom")).getroot().findall(f"{ATOM}entry"))
    assert len(stories) >= titles + 4 + 1 + 1  # hostile, persian, gamma, and the world's stories


def test_every_page_parses_as_html5_without_errors(site):
    found = pages(site["out"])
    assert len(found) > 50
    for path in found:
        _strict(path)


def test_every_local_link_points_to_a_file_that_exists(site):
    out = site["out"]
    checked = 0
    for path in pages(out):
        tree = _strict(path)
        for element in tree.iter():
            for attribute in ("href", "src"):
                value = element.get(attribute) if isinstance(element.tag, str) else None
                if not value or urlsplit(value).scheme:
                    continue
                target = (path.parent / unquote(urlsplit(value).path)).resolve()
                assert target.is_file(), f"{path.relative_to(out)}: {value}"
                assert target.is_relative_to(out.resolve())
                checked += 1
    assert checked > 200


def test_hostile_titles_and_texts_come_out_inert(site):
    out = site["out"]
    hostile = [out / "hostile.html", out / "index.html"] + [
        p for p in (out / "stories").glob("*.html") if "hostile.example" in p.read_text(encoding="utf-8")]
    assert len(hostile) > 50
    for path in hostile:
        tree = _strict(path)
        assert tree.xpath("//script | //iframe | //object | //embed | //form | //style | //base | //meta[@http-equiv]") == [], path
        for element in tree.iter():
            if not isinstance(element.tag, str):
                continue
            for name, value in element.attrib.items():
                assert not name.lower().startswith("on"), (path.name, element.tag, name)
                assert name != "style", (path.name, element.tag)
                if name in ("href", "src") and not (element.tag == "link" and element.get("rel") == "icon"):
                    assert not re.match(r"\s*(javascript|vbscript|data):", value, re.I), (path.name, value)
    river = _strict(out / "hostile.html")
    assert any("alert(" in "".join(h.itertext()) for h in river.iter("h2"))  # what survives is text
    assert '<img src=x onerror="alert(1)">Hostile' in "".join(river.find(".//h1").itertext())


@pytest.mark.parametrize("family, payload", xss_payloads())
def test_a_hostile_value_in_any_field_renders_as_its_text(tmp_path, family, payload):
    """Straight into the templates, past the sanitiser's plain-text titles: autoescaping alone keeps it text."""
    config = load_config(write_config(tmp_path, [], [{"id": "x", "title": payload, "subtitle": payload}]))
    when = datetime(2021, 9, 27, tzinfo=timezone.utc)
    source = SourceMeta("s", payload, "tag:s", "https://s.example/feed", f"https://s.example/?q={payload}", when)
    entry = StoryEntry("urn:uuid:751a1133-060c-556e-9534-49041a9e087c", when, when, when, payload,
                       f"https://s.example/{payload}", payload, None, (payload,), (payload,), None, source,
                       (RelatedCopy(payload, "https://t.example/", payload),))
    site = Site(config, Rendered(None, config))
    river = tmp_path / "x.html"
    river.write_bytes(site.river(Document(config.outputs[0]), [entry]))
    story = tmp_path / "story.html"
    story.write_bytes(site.story(entry))
    for path in (river, story):
        tree = _strict(path)
        assert tree.xpath("//script | //iframe | //object | //embed | //svg | //style | //form") == []
        assert not [(e.tag, n) for e in tree.iter() if isinstance(e.tag, str) for n in e.attrib
                    if n.lower().startswith("on") or n == "style"]
        assert not [v for v in tree.xpath("//body//@href") if re.match(r"\s*(javascript|vbscript|data):", v, re.I)]
    heading = "".join(_strict(river).find(".//h2").itertext())
    assert heading == payload  # exactly the text it was
    assert "".join(_strict(story).find(".//title").itertext()).startswith(payload)


def test_pages_load_nothing_from_elsewhere(site):
    out = site["out"]
    for path in pages(out):
        tree = _strict(path)
        for element in tree.xpath("//img | //video | //audio | //source | //track | //picture | //script"):
            src = element.get("src") or ""
            assert not urlsplit(src).scheme.startswith("http") and not src.startswith("//"), (path.name, src)
        for link in tree.iter("link"):
            if link.get("rel") == "stylesheet":
                assert not urlsplit(link.get("href")).scheme
    frog = _story(out, "Scientists discover new species of frog")
    media = frog.xpath("//a[@class='media-link']")
    assert [(a.get("href"), a.text) for a in media] == [("https://images.alpha.example/frog.jpg", "[image: The frog]")]


def _story(out: Path, title: str):
    for path in (out / "stories").glob("*.html"):
        tree = _strict(path)
        if title in "".join(tree.find(".//h1").itertext()):
            return tree
    raise AssertionError(f"no story page for {title!r}")


def test_a_river_entry_links_the_original_its_source_and_its_story_and_shows_both_dates(site):
    out = site["out"]
    river = _strict(out / "world.html")
    frog = next(a for a in river.iter("article") if "frog" in "".join(a.find("h2").itertext()))
    assert frog.find("h2/a").get("href") == "https://alpha.example/2021/frog"
    assert frog.xpath(".//bdi[@class='source']/a/@href") == ["https://alpha.example/"]
    assert frog.xpath(".//bdi[@class='source']/a/text()") == ["Alpha News"]
    assert frog.xpath(".//p[@class='authors']/bdi/text()") == ["Ana Lima", "Bo Chen"]
    times = frog.xpath(".//p[@class='attribution']/time")
    assert [t.get("datetime") for t in times][0] == "2021-09-27T10:00:00Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", times[1].get("datetime"))
    assert times[0].text == "2021-09-27"  # the default date_format
    text = " ".join(" ".join(frog.itertext()).split())
    assert "First published 2021-09-27 by Alpha News · republished" in text
    assert frog.xpath(".//p[@class='related']/a/bdi/text()") == ["Beta Digest"]
    assert len(frog.find(".//p[@class='summary']").text.split()) <= 61  # the first ~60 words
    story = frog.xpath(".//p[@class='more']/a/@href")[0]
    assert re.fullmatch(r"stories/[0-9a-f-]{36}\.html", story)
    atom = etree.parse(str(out / "world.atom")).getroot()
    entry = next(e for e in atom.iter(f"{ATOM}entry") if "frog" in e.findtext(f"{ATOM}title"))
    assert story == f"stories/{entry.findtext(f'{ATOM}id').removeprefix('urn:uuid:')}.html"  # keyed by the story id


def test_a_story_page_has_the_full_content_dates_authors_categories_copies_and_canonical(site):
    page = _story(site["out"], "Scientists discover new species of frog")
    assert page.xpath("//link[@rel='canonical']/@href") == ["https://alpha.example/2021/frog"]
    content = " ".join(page.find(".//div[@class='content']").itertext())
    assert content.count("The frog sings at night") == 12
    assert LONG_URL in page.xpath("//div[@class='content']//a/@href")
    assert page.xpath("//p[@class='categories']/bdi/text()") == ["world", "science", "nature"]
    assert page.xpath("//p[@class='authors']/bdi/text()") == ["Ana Lima", "Bo Chen"]
    assert len(page.xpath("//p[@class='attribution']/time[@datetime]")) == 2
    assert page.xpath("//p[@class='related']/a/@href") == ["https://alpha.example/2021/frog?utm_source=rss"]
    assert page.xpath("//link[@rel='alternate'][@type='application/atom+xml']/@href")  # autodiscovery


def test_entries_carry_their_language_and_direction(site):
    out = site["out"]
    river = _strict(out / "world.html")
    assert (river.getroot().get("lang"), river.getroot().get("dir")) == ("en", "ltr")
    by_title = {"".join(a.find("h2").itertext()): a for a in river.iter("article")}
    for path in sorted((out / "archive" / "world").glob("*.html")):
        by_title.update({"".join(a.find("h2").itertext()): a for a in _strict(path).iter("article")})
    persian = by_title["بشنو این نی چون شکایت می‌کند"]
    assert (persian.get("lang"), persian.get("dir")) == ("fa", "rtl")
    english = by_title["Council approves new bike lanes"]
    assert (english.get("lang"), english.get("dir")) == ("en", "ltr")
    unknown = by_title["Ein Titel ohne erklärte Sprache"]
    assert unknown.get("lang") == "" and unknown.get("dir") is None
    assert unknown.find("h2").get("dir") == "auto" and unknown.find("p[@class='summary']").get("dir") == "auto"
    for meta in persian.iter("div"):  # the attribution line is in the page's language, names isolated
        assert (meta.get("lang"), meta.get("dir")) == ("en", "ltr")
    assert persian.xpath(".//bdi[@class='source']/a/text()") == ["گنجینهٔ شعر فارسی (نمونه)"]


def test_a_page_follows_its_outputs_language_and_the_date_format(tmp_path):
    config = build_site(tmp_path, output={"dir": "out", "base_url": "http://feeds.test/",
                                          "date_format": "%d %B %Y"})
    run_cli("once", config=config, check=True)
    river = _strict(tmp_path / "out" / "persian.html")
    assert (river.getroot().get("lang"), river.getroot().get("dir")) == ("fa", "rtl")
    first = river.find(".//article//p[@class='attribution']/time")
    assert first.get("datetime") == "2018-01-31T20:30:00Z"
    assert first.text == "۳۱ ژانویه ۲۰۱۸"  # Persian digits and month name
    world = _strict(tmp_path / "out" / "world.html")
    assert world.find(".//article//p[@class='attribution']/time").text == "27 September 2021"


def test_archive_pages_follow_the_feed_archives_with_prev_and_next(site):
    out = site["out"]
    current = _strict(out / "world.html")
    pages_on_disk = sorted(int(p.stem) for p in (out / "archive" / "world").glob("*.atom"))
    newest = pages_on_disk[-1]
    holding = [n for n in pages_on_disk  # the current page links the newest page that holds stories (SPEC 15.4)
               if etree.parse(str(out / "archive" / "world" / f"{n}.atom")).find(f"{ATOM}entry") is not None]
    assert current.xpath("//head/link[@rel='prev']/@href") == [f"archive/world/{holding[-1]}.html"]
    first = _strict(out / "archive" / "world" / "1.html")
    assert first.xpath("//head/link[@rel='prev']") == []
    assert first.xpath("//head/link[@rel='next']/@href") == ["2.html"]
    last = _strict(out / "archive" / "world" / f"{newest}.html")
    assert last.xpath("//head/link[@rel='next']/@href") == ["../../world.html"]
    atom_ids = {e.findtext(f"{ATOM}id") for e in etree.parse(str(out / "archive/world/1.atom")).iter(f"{ATOM}entry")}
    html_keys = {a.get("href").rsplit("/", 1)[1][:-5] for a in first.xpath("//p[@class='more']/a")}
    assert html_keys == {uid.removeprefix("urn:uuid:") for uid in atom_ids}  # the same stories as the feed page


def test_each_feed_document_links_its_page(site):
    out = site["out"]
    atom = etree.parse(str(out / "world.atom")).getroot()
    assert [(l.get("href"), l.get("type")) for l in atom.findall(f"{ATOM}link[@rel='alternate']")] == [
        ("http://feeds.test/world.html", "text/html")]
    page = etree.parse(str(out / "archive/world/1.atom")).getroot()
    assert page.find(f"{ATOM}link[@rel='alternate']").get("href") == "http://feeds.test/archive/world/1.html"
    assert etree.parse(str(out / "world.rss")).getroot().findtext("channel/link") == "http://feeds.test/world.html"
    assert json.loads((out / "world.json").read_text())["home_page_url"] == "http://feeds.test/world.html"
    river = _strict(out / "world.html")
    assert river.xpath("//head/link[@rel='alternate']/@href") == ["world.atom", "world.rss", "world.json"]


def test_the_index_lists_every_output_with_its_page_feeds_and_newest_date(site):
    index = _strict(site["out"] / "index.html")
    sections = {s.find("h2/a").get("href"): s for s in index.iter("section") if s.find("h2/a") is not None}
    assert list(sections) == ["world.html", "persian.html", "hostile.html"]
    world = sections["world.html"]
    assert world.xpath(".//p[@class='subscribe']/a/@href") == ["world.html", "world.atom", "world.rss", "world.json"]
    assert world.find(".//time").get("datetime") == "2021-09-27T10:00:00Z"  # the frog, newest published
    assert (sections["persian.html"].get("lang"), sections["persian.html"].get("dir")) == ("fa", "rtl")
    assert index.xpath("//a[@href='index.opml']")


def _mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


def test_only_changed_pages_are_rewritten_and_story_pages_outlive_their_documents(tmp_path):
    config = build_site(tmp_path)
    run_cli("once", config=config, check=True)
    out = tmp_path / "out"
    before = _mtimes(out)
    assert "0 files rewritten" in run_cli("publish", config=config, check=True).stdout

    alpha = (tmp_path / "alpha.rss").read_text(encoding="utf-8")
    (tmp_path / "alpha.rss").write_text(alpha.replace("twelve kilometres", "fourteen kilometres"), encoding="utf-8")
    run_cli("once", config=config, check=True)
    after = _mtimes(out)
    changed = sorted(name for name in after if after[name] != before.get(name))
    stories = [name for name in changed if name.startswith("stories/")]
    assert len(stories) == 1 and "fourteen kilometres" in (out / stories[0]).read_text(encoding="utf-8")
    assert not any(name.startswith(("stories/", "archive/world/1.")) for name in changed if name not in stories)

    story_pages = {p.name for p in (out / "stories").glob("*.html")}
    text = config.read_text().replace("sources:\n  - hostile", "sources:\n  - alpha")
    config.write_text(text)  # the hostile output now shows alpha: its stories leave every document
    run_cli("publish", config=config, check=True)
    assert story_pages <= {p.name for p in (out / "stories").glob("*.html")}


def test_a_theme_overrides_a_template_and_check_reports_one_that_does_not_compile(tmp_path):
    theme = tmp_path / "theme"
    theme.mkdir()
    (theme / "story.html").write_text('{% extends "base.html" %}{% block main %}<p class="themed">'
                                      "{{ e.title }}</p>{% endblock %}\n", encoding="utf-8")
    config = build_site(tmp_path, output={"dir": "out", "base_url": "http://feeds.test/", "templates": "theme"})
    run_cli("once", config=config, check=True)
    story = next((tmp_path / "out" / "stories").glob("*.html"))
    assert '<p class="themed">' in story.read_text(encoding="utf-8")
    _strict(story)

    (theme / "story.html").write_text("<p>fine</p>\n{% if e.title %}\n<p>{{ e.title </p>\n", encoding="utf-8")
    result = run_cli("check", config=config)
    assert result.returncode == 2
    assert re.search(rf"^{re.escape(str(theme / 'story.html'))}:3: output\.templates: story\.html: ", result.stderr,
                     re.M), result.stderr
    assert "Traceback" not in result.stderr
    assert run_cli("publish", config=config).returncode == 2


@pytest.mark.parametrize("output, message", [
    ({"templates": "nowhere"}, "output.templates: 'nowhere' is not a folder"),
    ({"date_format": "%Y-%q"}, "output.date_format: bad date format '%Y-%q': %q is not a date directive"),
    ({"date_format": ""}, "output.date_format: an empty date format"),
])
def test_page_settings_are_checked_with_file_and_line(tmp_path, output, message):
    config = write_config(tmp_path, [], [], output={"dir": "out", **output})
    key = next(iter(output))
    line = next(n for n, text in enumerate(config.read_text().splitlines(), 1) if f"{key}:" in text)
    result = run_cli("check", config=config)
    assert result.returncode == 2 and f"{config}:{line}: {message}" in result.stderr, result.stderr


def test_a_folder_sync_sweeps_only_old_temporaries(tmp_path):
    """What a writer killed mid-write left in a folder of story pages goes at the next sync once a minute old;
    a temporary being written now, and every page, stay."""
    import os
    import time

    from aggregator.output.files import sync_folder, write_atomic

    folder = tmp_path / "stories"
    write_atomic(folder / "a.html", b"<p>a</p>", durable=False)
    old, fresh = folder / ".b.html.x1y2.tmp", folder / ".c.html.z3w4.tmp"
    for leftover in (old, fresh):
        leftover.write_bytes(b"half")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    (folder / "notes.tmp").write_bytes(b"not ours")
    sync_folder(folder)
    assert sorted(p.name for p in folder.iterdir()) == [".c.html.z3w4.tmp", "a.html", "notes.tmp"]


def test_story_pages_rendered_by_worker_processes_are_those_rendered_in_place(tmp_path):
    """A first publish hands its story pages to a pool (one task per POOL_MIN_PAGES): the same bytes in the
    same files as rendering them here, every one on disk by finish()."""
    config = load_config(write_config(tmp_path, [], [{"id": "x", "title": "X", "language": "fa"}]))
    when = datetime(2021, 9, 27, tzinfo=timezone.utc)
    source = SourceMeta("s", "World Socialist Web Site", "tag:s", "https://s.example/feed", "https://s.example/", when)
    entries = [StoryEntry(f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, str(n))}", when, when, when, f"خبر {n} story",
                          f"https://s.example/{n}", None, f"<p>Paragraph <b>{n}</b> متن</p>", ("A",), ("c",), "fa",
                          source) for n in range(150)]
    pool = LazyPool(2, ["aggregator.output.pages"])
    try:
        pooled = Site(config, Rendered(None, config), pool)
        assert pooled.stories(entries) == []  # handed to the pool, not written yet
        written = pooled.finish()
    finally:
        pool.shutdown()
    assert len(written) == len(entries)
    here = dataclasses.replace(config, output_dir=tmp_path / "here")
    in_place = Site(here, Rendered(None, here)).stories(entries)
    assert sorted(p.name for p in in_place) == sorted(p.name for p in written)
    for path in written:
        assert path.read_bytes() == (here.output_dir / "stories" / path.name).read_bytes()
    assert pooled.stories(entries) == [] and pooled.finish() == []  # seen by this publish: nothing to do again


def test_a_page_is_world_readable_whatever_the_umask_and_a_killed_writers_temporary_is_reused(tmp_path):
    """The web server serving the folder runs as another user: pages are 0644 under a umask of 077. A writer
    killed mid-write left its own temporary (its process and thread in the name): writing again truncates
    it and moves it into place, leaving nothing behind."""
    import os
    import threading

    from aggregator.output.files import write_atomic

    folder = tmp_path / "stories"
    folder.mkdir()
    own = folder / f".a.html.{os.getpid()}-{threading.get_ident()}.tmp"
    own.write_bytes(b"half of an older, longer page")
    previous = os.umask(0o077)
    try:
        assert write_atomic(folder / "a.html", b"<p>a</p>", durable=False)
        assert write_atomic(tmp_path / "new" / "b.html", b"<p>b</p>")  # a folder that does not exist yet
    finally:
        os.umask(previous)
    assert (folder / "a.html").read_bytes() == b"<p>a</p>" and not own.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["a.html"]
    for page in (folder / "a.html", tmp_path / "new" / "b.html"):
        assert page.stat().st_mode & 0o777 == 0o644


_WORDS = ["news", "خبر", "Straße", "a", "ночь", "東京", "&amp;", "&#233;t&#233;", "R&amp;D"]


@st.composite
def _article(draw):
    """HTML as the sanitiser leaves it: paragraphs and list items of words, some in inline tags."""
    blocks = []
    for _ in range(draw(st.integers(0, 40))):
        words = [draw(st.sampled_from(_WORDS)) for _ in range(draw(st.integers(0, 30)))]
        inline = draw(st.sampled_from(["", "b", "a href=\"https://s.example/?a=1&amp;b=2\"", "em"]))
        if inline and words:
            tag = inline.split()[0]
            words[len(words) // 2] = f"<{inline}>{words[len(words) // 2]}</{tag}>"
        glue = draw(st.sampled_from([" ", "", "\n"]))
        block = draw(st.sampled_from(["p", "li", "h2"]))
        blocks.append(f"<{block}>{glue.join(words)}</{block}>")
    return "".join(blocks)


@settings(max_examples=300, deadline=None)
@given(_article(), st.integers(1, 80))
def test_a_summary_made_from_the_contents_opening_is_that_of_the_whole_content(content, words):
    """A river's summary of a content-only entry is its first words: looking at an opening of a long article
    gives the words, and the ellipsis, that stripping the whole of it would."""
    from aggregator.output.pageview import BLOCK_START, summary_text
    from aggregator.reader.sanitize import plain_text

    when = datetime(2021, 9, 27, tzinfo=timezone.utc)
    source = SourceMeta("s", "S", "tag:s", "https://s.example/feed", "https://s.example/", when)
    entry = StoryEntry("urn:uuid:751a1133-060c-556e-9534-49041a9e087c", when, when, when, "t",
                       "https://s.example/1", None, content, (), (), None, source)
    whole = plain_text(BLOCK_START.sub(r" \g<0>", content)).split()
    expected = " ".join(whole) if len(whole) <= words else " ".join(whole[:words]) + " …"
    assert summary_text(entry, words) == expected
