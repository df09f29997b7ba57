"""StoryEntries → JSON Feed 1.1 (https://jsonfeed.org/version/1.1), the same entries as the Atom document.

JSON Feed has no place for a source or a republication date, so each item
carries them in an `_aggregator` extension object (extensions start with an
underscore; `about` says where they are documented). Keys are written in a
fixed order, so the same entries give the same bytes.
"""

from __future__ import annotations

import json

from .. import PROJECT_URL
from ..config import Config
from ..models import StoryEntry, to_text as rfc3339
from ..reader.sanitize import plain_text
from .documents import PAGE, UNKNOWN_TYPE, Document, entry_body, feed_url

VERSION = "https://jsonfeed.org/version/1.1"
ABOUT = f"{PROJECT_URL}#feed-extensions"  # the README section documenting `_aggregator`


def render(config: Config, document: Document, entries: list[StoryEntry]) -> bytes:
    output = document.output
    feed: dict = {
        "version": VERSION,
        "title": document.title(),
        "home_page_url": feed_url(config, document.name(PAGE)),  # the document's HTML page
        "feed_url": feed_url(config, document.name("json")),
    }
    if output.subtitle:
        feed["description"] = output.subtitle
    links = dict(document.history_links(config, "json"))
    if "prev-archive" in links:  # JSON Feed pages backwards in time with next_url
        feed["next_url"] = links["prev-archive"]
    if output.logo or output.icon:
        feed["icon"] = output.logo or output.icon
    if output.icon:
        feed["favicon"] = output.icon
    feed["authors"] = [{"name": output.author or output.title}]
    if output.language:
        feed["language"] = output.language
    if config.hubs and document.page is None:
        feed["hubs"] = [{"type": "WebSub", "url": hub} for hub in config.hubs]
    feed["_aggregator"] = _feed_extension(document, links)
    feed["items"] = [_item(output, entry) for entry in entries]
    return (json.dumps(feed, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _feed_extension(document: Document, links: dict[str, str]) -> dict:
    extension: dict = {"about": ABOUT}
    if document.page is not None:
        extension["archive"] = True
    for rel in ("current", "prev-archive", "next-archive"):
        if rel in links:
            extension[rel.replace("-", "_")] = links[rel]
    return extension


def _item(output, entry: StoryEntry) -> dict:
    item: dict = {"id": entry.uid}
    if entry.link:
        item["url"] = entry.link
    item["title"] = entry.title
    body = entry_body(output, entry)
    if body:
        item["content_html"] = body
    else:
        item["content_text"] = entry.title
    summary = plain_text(entry.summary) if entry.summary and entry.content else ""
    if summary:
        item["summary"] = summary
    item["date_published"] = rfc3339(entry.published)
    item["date_modified"] = rfc3339(entry.updated)
    if entry.authors:
        item["authors"] = [{"name": name} for name in entry.authors]
    if entry.categories:
        item["tags"] = list(entry.categories)
    if entry.language:
        item["language"] = entry.language
    if entry.enclosures:  # mime_type is required, size_in_bytes left out when unknown
        item["attachments"] = [{"url": e.url, "mime_type": e.type or UNKNOWN_TYPE,
                                **({} if e.length is None else {"size_in_bytes": e.length})} for e in entry.enclosures]
    item["_aggregator"] = _item_extension(entry)
    return item


def _item_extension(entry: StoryEntry) -> dict:
    source = entry.source
    described = {"id": source.feed_id, "title": source.title}
    if source.self_url:
        described["feed_url"] = source.self_url
    if source.site_url:
        described["home_page_url"] = source.site_url
    described["updated"] = rfc3339(source.updated)
    extension: dict = {"about": ABOUT, "source": described, "republished": rfc3339(entry.republished)}
    if entry.related:
        extension["related"] = [{"title": c.title, "url": c.link, "source": c.source_title} for c in entry.related]
    return extension
