"""StoryEntries → Atom (feedgen, with our extension for atom:source and republished); atomic writes.

feedgen never leaves this module. Rendering is deterministic for the same
entries, so an unchanged output renders to the same bytes and is not rewritten.
"""

from __future__ import annotations

import glob
import html
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from . import NAMESPACE, PROJECT_URL, __version__
from .config import Config, OutputConfig
from .errors import PublishError
from .models import StoryEntry
from .sanitize import xml_safe

ATOM = "http://www.w3.org/2005/Atom"
EMPTY_FEED_UPDATED = datetime(1970, 1, 1, tzinfo=timezone.utc)


def rfc3339(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class RepublicationFeed(BaseExtension):
    """Declares our namespace on the feed element."""

    def extend_ns(self):
        return {"agg": NAMESPACE}


class RepublicationEntry(BaseEntryExtension):
    """Adds what feedgen cannot: a full atom:source (RFC 4287 §4.2.11), titled related links, agg:republished.

    feedgen builds Atom with unqualified tag names under a default namespace,
    so the Atom elements here are unqualified too.
    """

    def __init__(self):
        self._entry: StoryEntry | None = None

    def republication(self, entry: StoryEntry) -> None:
        self._entry = entry

    def extend_atom(self, element):
        entry, source = self._entry, self._entry.source
        for copy in entry.related:
            etree.SubElement(element, "link", rel="related", type="text/html", href=copy.link,
                             title=xml_safe(f"{copy.source_title}: {copy.title}"))
        source_element = etree.SubElement(element, "source")
        etree.SubElement(source_element, "id").text = xml_safe(source.feed_id)
        etree.SubElement(source_element, "title").text = xml_safe(source.title)
        etree.SubElement(source_element, "updated").text = rfc3339(source.updated)
        etree.SubElement(source_element, "link", rel="self", href=source.self_url)
        if source.site_url:
            etree.SubElement(source_element, "link", rel="alternate", type="text/html", href=source.site_url)
        if not entry.authors:  # the entry then takes its author from atom:source (RFC 4287 §4.2.1)
            author = etree.SubElement(source_element, "author")
            etree.SubElement(author, "name").text = xml_safe(source.title)
        self._republished(element)
        return element

    def extend_rss(self, item):
        self._republished(item)
        return item

    def _republished(self, element) -> None:
        etree.SubElement(element, f"{{{NAMESPACE}}}republished").text = rfc3339(self._entry.republished)


def attribution_html(template: str | None, entry: StoryEntry) -> str:
    """The visible "Originally published by …" line most readers need, since few show atom:source."""
    if not template:
        return ""
    text = template.format(source=entry.source.title, link=entry.link or "", source_url=entry.source.self_url,
                           published=entry.published, republished=entry.republished)
    return f'<p class="aggregator-attribution"><em>{html.escape(text)}</em></p>'


def feed_url(config: Config, name: str) -> str:
    return config.base_url + name


def build_feed(config: Config, output: OutputConfig, entries: list[StoryEntry]) -> FeedGenerator:
    fg = FeedGenerator()
    fg.register_extension("aggregator", RepublicationFeed, RepublicationEntry)
    fg.id(feed_url(config, f"{output.id}.atom"))
    fg.title(xml_safe(output.title))
    if output.subtitle:
        fg.subtitle(xml_safe(output.subtitle))
    fg.link(href=feed_url(config, f"{output.id}.atom"), rel="self", type="application/atom+xml")
    fg.link(href=config.base_url, rel="alternate", type="text/html")
    for hub in config.hubs:
        fg.link(href=hub, rel="hub")
    fg.author(name=xml_safe(output.author or output.title))
    fg.generator("aggregator", __version__, PROJECT_URL)
    fg.updated(max((e.updated for e in entries), default=EMPTY_FEED_UPDATED))
    if output.language:
        fg.language(output.language)
    if output.icon:
        fg.icon(output.icon)
    if output.logo:
        fg.logo(output.logo)
    if output.rights:
        fg.rights(xml_safe(output.rights))
    # feedgen prepends added entries; add oldest first so the document lists newest first.
    for entry in reversed(entries):
        _add_entry(fg, output, entry)
    return fg


def _add_entry(fg: FeedGenerator, output: OutputConfig, entry: StoryEntry) -> None:
    fe = fg.add_entry()
    fe.id(entry.uid)
    fe.title(xml_safe(entry.title))
    if entry.link:
        fe.link(href=entry.link)  # feedgen 1.0 drops a link's attributes; a bare Atom link is rel=alternate
    for name in entry.authors:
        fe.author(name=xml_safe(name))
    for term in entry.categories:
        fe.category(term=xml_safe(term))
    body = attribution_html(output.attribution, entry) + (entry.content or entry.summary or "")
    if body:
        fe.content(xml_safe(body), type="html")
    if entry.summary and entry.content:
        fe.summary(xml_safe(entry.summary), type="html")
    fe.published(entry.published)
    fe.updated(entry.updated)
    fe.aggregator.republication(entry)


def render_atom(config: Config, output: OutputConfig, entries: list[StoryEntry]) -> bytes:
    return build_feed(config, output, entries).atom_str(pretty=True, encoding="UTF-8", xml_declaration=True)


def write_atomic(path: Path, data: bytes) -> bool:
    """Replace `path` with `data` (write beside, fsync, rename); False when it already holds them."""
    try:
        if path.read_bytes() == data:
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


def publish_output(config: Config, output: OutputConfig, entries: list[StoryEntry]) -> list[Path]:
    """Write every format of one output; the paths actually rewritten."""
    path = config.output_dir / f"{output.id}.atom"
    return [path] if write_atomic(path, render_atom(config, output, entries)) else []
