"""StoryEntries → Atom and RSS: feedgen's feed, our extensions, the entries built with lxml.

feedgen never leaves this module. Rendering is deterministic for the same
entries, so an unchanged document renders to the same bytes (and
files.write_atomic does not rewrite it).
"""

from __future__ import annotations

from copy import deepcopy
from email.utils import format_datetime

from lxml import etree  # before feedgen: feedgen.util uses lxml.etree without importing it
from lxml.etree import SubElement
from feedgen.ext.base import BaseExtension  # noqa: I001
from feedgen.ext.dc import DcExtension
from feedgen.feed import FeedGenerator

from .. import NAMESPACE, PROJECT_URL, __version__
from ..config import Config, OutputConfig
from ..models import SourceMeta, StoryEntry, to_text as rfc3339
from ..reader.sanitize import xml_safe
from . import jsonfeed
from .documents import MEDIA_TYPES, PAGE, UNKNOWN_TYPE, Document, entry_body, feed_url, updated_of

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
    for enclosure in entry.enclosures:  # type and length only when known: a length must be a number of bytes
        link = SubElement(element, "link", rel="enclosure", href=enclosure.url)
        if enclosure.type:
            link.set("type", enclosure.type)
        if enclosure.length is not None:
            link.set("length", str(enclosure.length))
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
    if source.self_url:  # a file: source or one with credentials in its URL has no public feed URL
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
    if entry.enclosures:  # RSS 2.0 allows one per item: the first; it requires all three attributes (RSS Best
        # Practices: a length of 0 when unknown)
        first = entry.enclosures[0]
        SubElement(item, "enclosure", url=first.url, length=str(first.length or 0), type=first.type or UNKNOWN_TYPE)
    guid = SubElement(item, "guid")  # the Atom entry id
    guid.text = entry.uid
    guid.set("isPermaLink", "false")
    for term in entry.categories:
        SubElement(item, "category").text = xml_safe(term)
    SubElement(item, "pubDate").text = format_datetime(entry.published)  # the original date
    if entry.source.self_url:  # url is required: a source with no public feed URL gets no <source> (its name
        # is still in the attribution line)
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
    # the document's own HTML page (pages.py); last: feedgen makes it RSS's <link>
    fg.link(href=feed_url(config, document.name(PAGE)), rel="alternate", type="text/html")
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
