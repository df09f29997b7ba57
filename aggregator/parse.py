"""Bytes → ParsedFeed. The only importer of feedparser: its dicts never leave this module."""

from __future__ import annotations

import calendar
import hashlib
import html
from datetime import datetime, timedelta, timezone
from urllib.parse import urljoin

import feedparser

from .errors import ParseError
from .models import Entry, FeedInfo, ParsedFeed
from .sanitize import plain_text, xml_safe

EARLIEST_TRUSTED = datetime(1990, 1, 1, tzinfo=timezone.utc)
FUTURE_SLACK = timedelta(days=1)
MAX_TITLE = 1000
MAX_TEXT = 512 * 1024
UPDATE_PERIODS = {"hourly": 3600, "daily": 86400, "weekly": 604800, "monthly": 2592000, "yearly": 31536000}


def parse_feed(body: bytes, headers: dict[str, str] | None = None, *, url: str = "",
               now: datetime | None = None, max_entries: int = 500) -> ParsedFeed:
    """Parse a feed document; raise ParseError when the bytes are not a feed at all."""
    now = now or datetime.now(timezone.utc)
    headers = dict(headers or {})
    headers.setdefault("content-location", url)
    try:
        result = feedparser.parse(body, response_headers=headers, sanitize_html=False,
                                  resolve_relative_uris=False)
    except Exception as exc:  # feedparser promises bozo, but broken encodings have escaped it before
        raise ParseError(f"unreadable feed: {exc.__class__.__name__}: {exc}") from exc
    if not result.get("version") and not result.entries:
        reason = result.get("bozo_exception")
        hint = "an HTML page, not a feed" if body.lstrip()[:100].lower().startswith((b"<!doctype html", b"<html")) else "not an RSS or Atom feed"
        raise ParseError(f"{hint}" + (f" ({_one_line(reason)})" if reason else ""))
    base = headers.get("content-location") or url
    feed = result.feed
    info = FeedInfo(
        title=plain_text(feed.get("title")) or None,
        link=_web_link(_absolute(base, feed.get("link"))),
        id=xml_safe(feed.get("id", "")).strip() or None,
        updated=_date(feed, ("updated_parsed", "published_parsed"), now),
        language=_language(feed.get("language")),
        ttl=_ttl(feed),
    )
    entries = []
    for raw in result.entries[:max_entries]:
        entries.append(_entry(raw, base, info.language, now))
    warning = _one_line(result.get("bozo_exception")) if result.get("bozo") else None
    return ParsedFeed(info=info, entries=tuple(entries), warning=warning)


def entry_key(guid: str | None, link: str | None, title: str, text: str) -> str:
    """An item's identity inside its source, first usable of:

    1. its guid / atom:id, as given;
    2. its link (absolute);
    3. a hash of its title and text, for feeds that give neither.
    """
    if guid:
        return "guid:" + guid
    if link:
        return "link:" + link
    return "hash:" + hashlib.sha256(f"{title}\n{text}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _entry(raw: dict, base: str, feed_language: str | None, now: datetime) -> Entry:
    link = _absolute(base, raw.get("link"))
    guid = xml_safe(str(raw.get("id") or "")).strip()[:2000] or None
    summary = _html(raw.get("summary_detail")) or None
    content = None
    for part in raw.get("content") or ():
        if part.get("value"):
            content = _html(part)
            break
    if content and summary and plain_text(content) == plain_text(summary):
        summary = None
    title = plain_text(raw.get("title"))[:MAX_TITLE]
    authors = tuple(dict.fromkeys(
        plain_text(a.get("name") or a.get("email") or "") for a in raw.get("authors") or () if isinstance(a, dict)
    ))
    if not any(authors) and raw.get("author"):
        authors = (plain_text(raw.get("author")),)
    categories = tuple(dict.fromkeys(
        plain_text(t.get("label") or t.get("term") or "") for t in raw.get("tags") or ()
    ))
    language = None
    for detail in (raw.get("title_detail"), raw.get("summary_detail"), *(raw.get("content") or ())):
        if isinstance(detail, dict) and detail.get("language"):
            language = _language(detail["language"])
            break
    return Entry(
        key=entry_key(guid, link, title, content or summary or ""),
        title=title,
        link=link,
        guid=guid,
        summary=summary,
        content=content,
        authors=tuple(a for a in authors if a),
        categories=tuple(c for c in categories if c),
        published=_date(raw, ("published_parsed", "created_parsed"), now),
        updated=_date(raw, ("updated_parsed",), now),
        language=language or feed_language,
        canonical=_canonical(raw, base),
    )


def _canonical(raw: dict, base: str) -> str | None:
    """The page's own canonical URL: feedburner:origLink, or a link with rel="canonical"."""
    for link in raw.get("links") or ():
        if isinstance(link, dict) and link.get("rel") == "canonical" and link.get("href"):
            return _web_link(_absolute(base, link["href"]))
    return _web_link(_absolute(base, raw.get("feedburner_origlink")))


def _html(detail: dict | None) -> str | None:
    """Content as HTML: plain-text parts are escaped, over-long ones truncated."""
    if not isinstance(detail, dict) or not detail.get("value"):
        return None
    value = xml_safe(str(detail["value"]))[:MAX_TEXT]
    if detail.get("type") == "text/plain":
        value = html.escape(value).replace("\n\n", "<br><br>")
    return value


def _date(node: dict, keys: tuple[str, ...], now: datetime) -> datetime | None:
    """The first trustworthy date: not before 1990, not more than a day ahead."""
    for key in keys:
        parsed = dict.get(node, key)  # not node.get: feedparser would answer updated_parsed with the published date
        if not parsed:
            continue
        try:
            when = datetime.fromtimestamp(calendar.timegm(parsed), tz=timezone.utc)
        except (OverflowError, ValueError, OSError):
            continue
        if EARLIEST_TRUSTED <= when <= now + FUTURE_SLACK:
            return when
    return None


def _absolute(base: str, link: str | None) -> str | None:
    if not link:
        return None
    link = xml_safe(str(link)).strip()
    return urljoin(base, link) if base and not base.startswith("file:") else link


def _web_link(link: str | None) -> str | None:
    return link if link and link.lower().startswith(("http://", "https://")) else None


def _language(value: str | None) -> str | None:
    value = (value or "").strip().lower().replace("_", "-")
    return value[:35] or None


def _ttl(feed: dict) -> int | None:
    """The shortest poll interval the feed itself asks for (RSS ttl, sy:updatePeriod/Frequency)."""
    asks = []
    try:
        if feed.get("ttl"):
            asks.append(int(float(feed["ttl"])) * 60)
    except (TypeError, ValueError):
        pass
    period = UPDATE_PERIODS.get(str(feed.get("sy_updateperiod", "")).strip().lower())
    if period:
        try:
            frequency = max(1, int(feed.get("sy_updatefrequency") or 1))
        except (TypeError, ValueError):
            frequency = 1
        asks.append(period // frequency)
    return max(asks) if asks else None


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split())[:300]
