"""What an output's documents are called, how they link to each other (RFC 5005), what each entry says.

Shared by the XML renderers (publish.py, feedgen) and the JSON Feed renderer
(jsonfeed.py), so all three formats carry the same names, links and text.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timezone

from ..config import Config, OutputConfig
from ..models import StoryEntry
from ..reader.sanitize import xml_safe

EMPTY_FEED_UPDATED = datetime(1970, 1, 1, tzinfo=timezone.utc)
MEDIA_TYPES = {"atom": "application/atom+xml", "rss": "application/rss+xml", "json": "application/feed+json"}
STYLESHEET = "feed.xsl"
ARCHIVE_DIR = "archive"
PAGE = "html"  # every document's HTML page (pages.py), written beside its feed formats
DOCUMENT_FORMATS = ("atom", "rss", "json", PAGE)  # what an archive page may exist in
#: An enclosure's type when its feed names none, where a format requires one (RSS 2.0, JSON Feed 1.1): any bytes.
UNKNOWN_TYPE = "application/octet-stream"


def formats_of(output: OutputConfig) -> tuple[str, ...]:
    """The files each document of `output` is written as: its feed formats, then its page."""
    return output.formats + (PAGE,)


def feed_url(config: Config, name: str) -> str:
    return config.base_url + name


@dataclass(frozen=True)
class Document:
    """One document of an output: the current one (``page`` None) or archive page ``page``."""

    output: OutputConfig
    page: int | None = None
    full: bool = False  # an archive page that never changes again; it links its successor
    prev_archive: int | None = None  # the current document's newest archive page

    def name(self, fmt: str) -> str:
        if self.page is None:
            return f"{self.output.id}.{fmt}"
        return archive_name(self.output.id, self.page, fmt)

    @property
    def stylesheet(self) -> str:
        """Relative, so the browser loads it from the same origin as the feed."""
        return STYLESHEET if self.page is None else f"../../{STYLESHEET}"

    def history_links(self, config: Config, fmt: str) -> list[tuple[str, str]]:
        """(rel, href) of the RFC 5005 links: prev-archive, next-archive, current."""
        links = []
        if self.page is None:
            if self.prev_archive:
                links.append(("prev-archive", feed_url(config, archive_name(self.output.id, self.prev_archive, fmt))))
            return links
        links.append(("current", feed_url(config, f"{self.output.id}.{fmt}")))
        if self.page > 1:
            links.append(("prev-archive", feed_url(config, archive_name(self.output.id, self.page - 1, fmt))))
        if self.full:
            links.append(("next-archive", feed_url(config, archive_name(self.output.id, self.page + 1, fmt))))
        return links

    def title(self) -> str:
        if self.page is None:
            return self.output.title
        return f"{self.output.title} (archive {self.page})"


def archive_name(output_id: str, page: int, fmt: str) -> str:
    return f"{ARCHIVE_DIR}/{output_id}/{page}.{fmt}"


def attribution_html(template: str | None, entry: StoryEntry) -> str:
    """The visible "Originally published by …" line most readers need, since few show atom:source."""
    if not template:
        return ""
    text = template.format(source=entry.source.title, link=entry.link or "", source_url=entry.source.self_url or "",
                           published=entry.published, republished=entry.republished)
    return f'<p class="aggregator-attribution"><em>{html.escape(text)}</em></p>'


def entry_body(output: OutputConfig, entry: StoryEntry) -> str:
    """The HTML every format carries: the attribution line, then the content (or summary)."""
    return xml_safe(attribution_html(output.attribution, entry) + (entry.content or entry.summary or ""))


def updated_of(entries: list[StoryEntry]) -> datetime:
    return max((e.updated for e in entries), default=EMPTY_FEED_UPDATED)
