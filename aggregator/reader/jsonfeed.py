"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1) read into the shape parse.py turns into a ParsedFeed.

feedparser does not read JSON Feed, so this module does, and hands parse.py the
same kind of dicts the lxml fast path does ({'feed': {...}, 'entries': [...]},
keyed like feedparser's result): titles, texts, names, dates and links then go
through the very limits every other feed does. A JSON document is hostile like
any other: every value is checked for its type (a wrong one is ignored, as a
missing one would be), nesting is bounded, and what is not a JSON Feed at all
is one ParseError.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from ..errors import ParseError
from .enclosures import MAX_LISTED

JSON_TYPES = ("application/feed+json", "application/json", "text/json")
VERSION = re.compile(r"^https?://jsonfeed\.org/version/1(\.\d+)?/?$")
MAX_ITEM_NAMES = 50  # authors or tags read per item (parse.py keeps at most as many)


def recognised(body: bytes, content_type: str) -> bool:
    """Whether the document is JSON: it starts with `{`, or is served as JSON and does not start like XML."""
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        return True
    mime = content_type.split(";")[0].strip().lower()
    return (mime in JSON_TYPES or mime.endswith("+json")) and not head.startswith(b"<")


def read(body: bytes) -> dict:
    """{'feed': {...}, 'entries': [{...}]} from a JSON Feed document; ParseError when it is not one."""
    document = _load(body)
    if not isinstance(document, dict):
        raise ParseError("JSON, but not a JSON Feed (the document is not an object); check the source URL")
    version, items = document.get("version"), document.get("items")
    if not (isinstance(version, str) and VERSION.match(version.strip())) and not isinstance(items, list):
        raise ParseError("JSON, but not a JSON Feed (no \"version\": \"https://jsonfeed.org/version/1.1\" "
                         "and no \"items\" list); check the source URL")
    if items is not None and not isinstance(items, list):
        raise ParseError(f"a JSON Feed whose \"items\" is {_kind(items)}, not a list")
    authors = _authors(document)
    feed = {key: value for key, value in (
        ("title", _text(document.get("title"))),
        ("link", _text(document.get("home_page_url"))),
        ("id", _text(document.get("feed_url"))),  # the feed's own URL is the closest thing it has to an id
        ("language", _text(document.get("language"))),
    ) if value}
    if "title" in feed:
        feed["title_detail"] = {"type": "text/plain", "value": feed["title"]}  # plain text, as an item's title
    language = feed.get("language")
    entries = [_item(item, authors, language) for item in items or () if isinstance(item, dict)]
    return {"feed": feed, "entries": entries}


def _load(body: bytes):
    """The parsed JSON; nesting deeper than the interpreter's recursion limit (1,000) is refused, not a crash."""
    text = body.decode("utf-8-sig", errors="replace")
    try:
        return json.loads(text)
    except RecursionError:
        raise ParseError("a JSON document nested too deep to read (over 1,000 levels); refused") from None
    except ValueError as exc:  # JSONDecodeError, and integers too long to convert
        raise ParseError(f"not valid JSON ({' '.join(str(exc).split())[:200]})") from None


def _item(item: dict, feed_authors: list[dict], feed_language: str | None) -> dict:
    language = _text(item.get("language")) or feed_language
    title = _text(item.get("title"))
    entry: dict = {
        "title": title,
        "title_detail": {"type": "text/plain", "value": title, "language": language},
        "authors": _authors(item) or feed_authors,  # JSON Feed: an item without authors has the feed's
        "tags": [{"term": tag} for tag in _list(item.get("tags"))[:MAX_ITEM_NAMES] if isinstance(tag, str)],
        "enclosures": [{"href": a["url"], "type": a.get("mime_type"), "length": a.get("size_in_bytes")}
                       for a in _list(item.get("attachments"))[:MAX_LISTED]
                       if isinstance(a, dict) and isinstance(a.get("url"), str)],
    }
    identifier = item.get("id")
    if isinstance(identifier, (str, int)) and not isinstance(identifier, bool):
        entry["id"] = str(identifier)
    link = _text(item.get("url")) or _text(item.get("external_url"))
    if link:
        entry["link"] = link
    summary = _text(item.get("summary"))
    if summary:
        entry["summary_detail"] = {"type": "text/plain", "value": summary, "language": language}
    html, plain = _text(item.get("content_html")), _text(item.get("content_text"))
    if html or plain:
        entry["content"] = [{"type": "text/html" if html else "text/plain", "value": html or plain,
                             "language": language}]
    for key, field in (("published_parsed", "date_published"), ("updated_parsed", "date_modified")):
        when = _date(item.get(field))
        if when is not None:
            entry[key] = when
    return entry


def _authors(node: dict) -> list[dict]:
    """JSON Feed 1.1 `authors`, else 1.0 `author`, as feedparser's author dicts."""
    people = [p for p in _list(node.get("authors")) if isinstance(p, dict)] or (
        [node["author"]] if isinstance(node.get("author"), dict) else [])
    return [{"name": name} for name in (_text(p.get("name")) for p in people[:MAX_ITEM_NAMES]) if name]


def _date(value) -> time.struct_time | None:
    """An RFC 3339 date (some feeds write RFC 822 ones) as a UTC struct_time; a zoneless one is taken as UTC."""
    text = _text(value)
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    try:
        return when.astimezone(timezone.utc).timetuple()
    except (OverflowError, ValueError):
        return None


def _text(value) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _kind(value) -> str:
    return {dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
