"""StoryEntries → Atom and RSS (feedgen's feed, our extensions, entries built with lxml) and JSON Feed; atomic writes.

feedgen never leaves this module. Rendering is deterministic for the same
entries, so an unchanged document renders to the same bytes and is not
rewritten; Rendered remembers what each file was rendered from, so it is
not rendered either. Each output has a current document per format and,
once entries fall out of it, numbered archive pages (RFC 5005) that
archive.py fills.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import os
import pickle
import sys
import tempfile
import time
from copy import deepcopy
from dataclasses import dataclass, replace
from email.utils import format_datetime
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from lxml import etree  # before feedgen: feedgen.util uses lxml.etree without importing it
from lxml.etree import SubElement
from feedgen.ext.base import BaseExtension  # noqa: I001
from feedgen.ext.dc import DcExtension
from feedgen.feed import FeedGenerator

from . import NAMESPACE, PROJECT_URL, __version__, jsonfeed
from .config import Config, OutputConfig
from .errors import PublishError
from .documents import (ARCHIVE_DIR, MEDIA_TYPES, STYLESHEET, Document, entry_body, feed_url, rfc3339,
                        updated_of)
from .models import SourceMeta, StoryEntry
from .sanitize import xml_safe

if TYPE_CHECKING:
    from .store import Store

ATOM = "http://www.w3.org/2005/Atom"
HISTORY = "http://purl.org/syndication/history/1.0"  # RFC 5005
REPUBLISHED = f"{{{NAMESPACE}}}republished"
CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"
DC_CREATOR = "{http://purl.org/dc/elements/1.1/}creator"


class RepublicationFeed(BaseExtension):
    """Declares our namespace; adds what feedgen cannot put into RSS, and the browser stylesheet."""

    def __init__(self):
        self._document: Document | None = None
        self._links: list[tuple[str, str]] = []

    def extend_ns(self):
        return {"agg": NAMESPACE}

    def document(self, document: Document, links: list[tuple[str, str]]) -> None:
        self._document, self._links = document, links

    def extend_atom(self, feed):
        self._stylesheet(feed)
        self._archive_marker(feed)
        return feed

    def extend_rss(self, feed):
        self._stylesheet(feed)
        channel = feed.find("channel")
        for rel, href in self._links:  # feedgen writes only rel="self" into RSS
            etree.SubElement(channel, f"{{{ATOM}}}link", rel=rel, href=href)
        self._archive_marker(channel)
        return feed

    def _stylesheet(self, root) -> None:
        root.addprevious(etree.ProcessingInstruction(
            "xml-stylesheet", f'type="text/xsl" href="{self._document.stylesheet}"'))

    def _archive_marker(self, element) -> None:
        if self._document.page is not None:  # RFC 5005 §4: an archive document says so
            etree.SubElement(element, f"{{{HISTORY}}}archive", nsmap={"fh": HISTORY})


class EntryWriter(BaseExtension):
    """Appends the entries, registered last so they follow every feed-level element as feedgen's own would.

    The entries are built with lxml here rather than through feedgen's
    FeedEntry: its per-entry bookkeeping was most of the time a 5,000-entry
    output took to render. The elements, their order and their attributes
    are what feedgen 1.0 wrote (tests/golden/ holds the bytes), plus what it
    cannot write: a full atom:source (RFC 4287 §4.2.11), titled related
    links and agg:republished. Atom elements are unqualified, as feedgen's
    are (its root declares the Atom namespace as a plain attribute).
    """

    def __init__(self):
        self._output: OutputConfig | None = None
        self._entries: list[StoryEntry] = []

    def entries(self, output: OutputConfig, entries: list[StoryEntry]) -> None:
        self._output, self._entries = output, entries

    def extend_atom(self, feed):
        sources: dict[tuple[SourceMeta, bool], etree._Element] = {}  # each source's atom:source, built once
        for entry in self._entries:
            key = (entry.source, not entry.authors)
            if key not in sources:
                sources[key] = _atom_source(*key)
            _atom_entry(feed, self._output, entry, sources[key])
        return feed

    def extend_rss(self, feed):
        channel = feed.find("channel")
        for entry in self._entries:
            _rss_item(channel, self._output, entry)
        return feed


def _atom_entry(feed, output: OutputConfig, entry: StoryEntry, source_element) -> None:
    title, body = xml_safe(entry.title), entry_body(output, entry)
    element = SubElement(feed, "entry")
    SubElement(element, "id").text = entry.uid
    SubElement(element, "title").text = title
    SubElement(element, "updated").text = entry.updated.isoformat()
    for name in entry.authors:
        name = xml_safe(name)
        if name:
            SubElement(SubElement(element, "author"), "name").text = name
    if body:
        SubElement(element, "content", type="html").text = body
    elif not entry.link:  # RFC 4287 §4.1.1 wants a content element then: the title, as JSON Feed's content_text
        SubElement(element, "content", type="text").text = title
    if entry.link:
        SubElement(element, "link", href=entry.link)  # no rel: a bare Atom link is rel="alternate"
    if entry.summary and entry.content:
        summary = SubElement(element, "summary")
        summary.text = xml_safe(entry.summary) or None
        summary.set("type", "html")
    for term in entry.categories:
        SubElement(element, "category", term=xml_safe(term))
    SubElement(element, "published").text = entry.published.isoformat()
    for copy in entry.related:
        SubElement(element, "link", rel="related", type="text/html", href=copy.link,
                   title=xml_safe(f"{copy.source_title}: {copy.title}"))
    element.append(deepcopy(source_element))
    SubElement(element, REPUBLISHED).text = rfc3339(entry.republished)


def _atom_source(source: SourceMeta, with_author: bool):
    """atom:source, the whole of it (RFC 4287 §4.2.11); an entry naming no author takes the source's (§4.2.1)."""
    element = etree.Element("source")
    SubElement(element, "id").text = xml_safe(source.feed_id)
    SubElement(element, "title").text = xml_safe(source.title)
    SubElement(element, "updated").text = rfc3339(source.updated)
    SubElement(element, "link", rel="self", href=source.self_url)
    if source.site_url:
        SubElement(element, "link", rel="alternate", type="text/html", href=source.site_url)
    if with_author:
        SubElement(SubElement(element, "author"), "name").text = xml_safe(source.title)
    return element


def _rss_item(channel, output: OutputConfig, entry: StoryEntry) -> None:
    title, body = xml_safe(entry.title), entry_body(output, entry)
    description = xml_safe(entry.summary) if entry.summary and entry.content else None
    item = SubElement(channel, "item")
    SubElement(item, "title").text = title
    if entry.link:
        SubElement(item, "link").text = entry.link
    if description and body:  # RSS has no summary: the summary is the description, the body content:encoded
        SubElement(item, "description").text = description
        SubElement(item, CONTENT_ENCODED).text = body
    elif description or body:
        SubElement(item, "description").text = description or body
    guid = SubElement(item, "guid")  # the Atom entry id
    guid.text = entry.uid
    guid.set("isPermaLink", "false")
    for term in entry.categories:
        SubElement(item, "category").text = xml_safe(term)
    SubElement(item, "pubDate").text = format_datetime(entry.published)  # the original date
    SubElement(item, "source", url=entry.source.self_url).text = xml_safe(entry.source.title)
    SubElement(item, REPUBLISHED).text = rfc3339(entry.republished)
    for name in entry.authors:  # RSS <author> needs an e-mail address; dc:creator carries a name
        SubElement(item, DC_CREATOR).text = xml_safe(name)


def build_feed(config: Config, document: Document, fmt: str, entries: list[StoryEntry]) -> FeedGenerator:
    output = document.output
    fg = FeedGenerator()
    fg.register_extension("aggregator", RepublicationFeed)
    if fmt == "rss":  # for the channel's dc:creator
        fg.register_extension("dc", DcExtension, atom=False, rss=True)
    fg.register_extension("entries", EntryWriter)
    self_url = feed_url(config, document.name(fmt))
    history = document.history_links(config, fmt)
    hubs = [("hub", hub) for hub in config.hubs] if document.page is None else []  # pages never change
    fg.aggregator.document(document, hubs + history)
    fg.entries.entries(output, entries)
    fg.id(feed_url(config, document.name("atom")))
    fg.title(xml_safe(document.title()))
    if output.subtitle or fmt == "rss":  # RSS requires a description
        fg.subtitle(xml_safe(output.subtitle or output.title))
    fg.link(href=self_url, rel="self", type=MEDIA_TYPES[fmt])
    if fmt == "atom":
        for rel, href in hubs + history:
            fg.link(href=href, rel=rel, **({} if rel == "hub" else {"type": MEDIA_TYPES[fmt]}))
    fg.link(href=config.base_url, rel="alternate", type="text/html")  # last: feedgen makes it RSS's <link>
    _feed_metadata(fg, output, fmt)
    fg.updated(updated_of(entries))
    return fg


def _feed_metadata(fg: FeedGenerator, output: OutputConfig, fmt: str) -> None:
    author = xml_safe(output.author or output.title)
    fg.author(name=author)
    if fmt == "rss":
        fg.dc.dc_creator(author)
    fg.generator("aggregator", __version__, PROJECT_URL)
    if output.language:
        fg.language(output.language)
    if output.icon:
        fg.icon(output.icon)
    if output.logo:
        fg.logo(output.logo)  # also RSS's <image>
    elif output.icon and fmt == "rss":
        fg.image(url=output.icon)
    if output.rights:
        fg.rights(xml_safe(output.rights))


def render(config: Config, document: Document, fmt: str, entries: list[StoryEntry]) -> bytes:
    """One document in one format, as the bytes to write."""
    if fmt == "json":
        return jsonfeed.render(config, document, entries)
    fg = build_feed(config, document, fmt, entries)
    to_bytes = fg.atom_str if fmt == "atom" else fg.rss_str
    return to_bytes(pretty=True, encoding="UTF-8", xml_declaration=True)


def render_atom(config: Config, output: OutputConfig, entries: list[StoryEntry]) -> bytes:
    return render(config, Document(output), "atom", entries)


def write_atomic(path: Path, data: bytes) -> bool:
    """Replace `path` with `data` (write beside, fsync, rename); False when it already holds them."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:  # a large document is not read in vain
            return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise PublishError(f"cannot read {path}: {exc.strerror}") from exc
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        _remove_stale_temporaries(path)
    except OSError as exc:
        hint = "free some disk space" if exc.errno in (28, 27, 122) else "check that the output folder is writable"
        raise PublishError(f"cannot write {path}: {exc.strerror or exc}; {hint}") from exc
    finally:
        if tmp:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return True


def _remove_stale_temporaries(path: Path, age: float = 60.0) -> None:
    """A writer killed mid-write (kill -9, power loss) leaves its temporary file; sweep old ones away."""
    cutoff = time.time() - age
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
        except OSError:
            pass


@dataclass(frozen=True)
class ArchivePage:
    """An archive page to (re)write: its number, every entry it holds, whether it is now full."""

    number: int
    entries: tuple[StoryEntry, ...]
    full: bool
    formats: tuple[str, ...]  # the formats to write (a full page is only written where missing)


@dataclass(frozen=True)
class ArchiveUpdate:
    newest: int | None  # the newest archive page: the current document's prev-archive
    pages: Iterable[ArchivePage] = ()  # may be lazy: each page is loaded when it is written


class Rendered:
    """What each published file was rendered from, kept in the store, so an unchanged document is not rendered again.

    Rendering, not writing, is the cost of a large document (write_atomic
    already leaves identical bytes alone, but only after they were rendered).
    A document is skipped when the digest of everything its bytes depend on
    (this code and the libraries that shape them, the configuration, the
    document's place, its entries) and its file (size, times, inode: nobody
    touched it since) are what they were when it was last written. Any doubt
    renders again; the records are saved once per output, and losing them
    only costs a render.
    """

    def __init__(self, store: Store | None, config: Config):
        self._store = store
        settings = replace(config, outputs=tuple(replace(o, include=_texts(o.include), exclude=_texts(o.exclude))
                                                 for o in config.outputs))
        # (patterns as their text: a compiled pattern's repr changes between runs)
        self._settings = hashlib.blake2b(_renderer() + repr(settings).encode(), digest_size=20).digest()
        self._done: list[tuple[str, str, str]] = []
        self._entries: tuple[list[StoryEntry] | None, bytes] = (None, b"")  # the last list digested, for each format

    def digest(self, document: Document, fmt: str, entries: list[StoryEntry]) -> str:
        if entries is not self._entries[0]:  # the same values pickle to the same bytes
            sink = _HashSink()
            pickle.Pickler(sink, protocol=5).dump(entries)  # streamed: a large document's text is not copied
            self._entries = (entries, sink.digest.digest())
        digest = hashlib.blake2b(self._settings + self._entries[1], digest_size=20)
        digest.update(repr((fmt, document.output.id, document.page, document.full, document.prev_archive)).encode())
        return digest.hexdigest()

    def inputs(self) -> str:
        """A digest of what every document depends on besides time: this code, the config, and how many new
        bodies each source has had (every change to the stories comes with one) and where it lives."""
        digest = hashlib.blake2b(self._settings, digest_size=20)
        digest.update(repr(self._store.body_changes()).encode())
        return digest.hexdigest()

    def nothing_to_publish(self, config: Config, inputs: str, published_inputs: str | None) -> bool:
        """Whether publishing everything again would write nothing: the inputs of the last complete publish,
        no output that ages stories out (`since`), and every file of every output as it was written."""
        if inputs != published_inputs or any(o.since for o in config.outputs):
            return False
        files = self._store.rendered_files()
        current = {str(config.output_dir / Document(o).name(fmt)) for o in config.outputs for fmt in o.formats}
        pages = tuple(f"{config.output_dir / ARCHIVE_DIR / o.id}{os.sep}" for o in config.outputs)
        return (current <= files.keys()
                and all(_signature(Path(path)) == signature for path, signature in files.items()
                        if path in current or path.startswith(pages))
                and all((config.output_dir / name).is_file() for name in (STYLESHEET, "index.opml")))

    def unchanged(self, path: Path, digest: str) -> bool:
        if self._store is None:
            return False
        signature = _signature(path)
        return bool(signature) and self._store.rendered(str(path)) == (digest, signature)

    def done(self, path: Path, digest: str) -> None:
        self._done.append((str(path), digest, _signature(path)))

    def save(self) -> None:
        if self._store is not None and self._done:
            self._store.record_rendered(self._done)
        self._done = []


class _HashSink:
    """A write-only file that hashes what it is given."""

    def __init__(self):
        self.digest = hashlib.blake2b(digest_size=20)
        self.write = self.digest.update


def _texts(patterns) -> tuple[str, ...]:
    return tuple(p.text for p in patterns)


def _signature(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return ""
    return f"{st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino}"


@functools.cache
def _renderer() -> bytes:
    """This package's code and the versions of what renders: an upgrade renders every document once more."""
    digest = hashlib.blake2b(digest_size=20)
    package = resources.files(__package__)
    for name in sorted(p.name for p in package.iterdir() if p.name.endswith(".py")):
        digest.update(name.encode() + b"\0" + package.joinpath(name).read_bytes())
    versions = [sys.version, etree.LXML_VERSION, etree.LIBXML_VERSION, *(metadata.version(d) for d in ("feedgen", "nh3"))]
    digest.update(repr(versions).encode())
    return digest.digest()


def publish_output(config: Config, output: OutputConfig, entries: list[StoryEntry],
                   archive: ArchiveUpdate | None = None, rendered: Rendered | None = None) -> list[Path]:
    """Write every format of one output, archive pages first; the paths actually rewritten.

    Pages are written before the current document, so a crash between the two
    can repeat an entry for one publish but never lose one. With `rendered`,
    documents unchanged since they were last written are not rendered.
    """
    written: list[Path] = []
    archive = archive or ArchiveUpdate(None)
    rendered = rendered or Rendered(None, config)
    try:
        for page in archive.pages:
            document, page_entries = Document(output, page=page.number, full=page.full), list(page.entries)
            for fmt in page.formats:
                _publish_document(config, document, fmt, page_entries, rendered, written)
        current = Document(output, prev_archive=archive.newest)
        for fmt in output.formats:
            _publish_document(config, current, fmt, entries, rendered, written)
    finally:
        rendered.save()
    return written


def _publish_document(config: Config, document: Document, fmt: str, entries: list[StoryEntry], rendered: Rendered,
                      written: list[Path]) -> None:
    path = config.output_dir / document.name(fmt)
    digest = rendered.digest(document, fmt, entries)
    if rendered.unchanged(path, digest):
        return
    if write_atomic(path, render(config, document, fmt, entries)):
        written.append(path)
    rendered.done(path, digest)


def stylesheet_bytes() -> bytes:
    return resources.files(__package__).joinpath(STYLESHEET).read_bytes()


def publish_site(config: Config) -> list[Path]:
    """The files shared by every output: the browser stylesheet and index.opml listing the outputs."""
    from .opml import outputs_opml

    written = []
    for name, data in ((STYLESHEET, stylesheet_bytes()), ("index.opml", outputs_opml(config))):
        path = config.output_dir / name
        if write_atomic(path, data):
            written.append(path)
    return written
