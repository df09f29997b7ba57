"""Bytes → ParsedFeed. The only importer of feedparser: its dicts never leave this module."""

from __future__ import annotations

import calendar
import hashlib
import html
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import urljoin

import feedparser

from . import fastparse
from .errors import ParseError
from .models import Entry, FeedInfo, ParsedFeed
from .sanitize import plain_text, xml_safe

EARLIEST_TRUSTED = datetime(1990, 1, 1, tzinfo=timezone.utc)
FUTURE_SLACK = timedelta(days=1)
MAX_TITLE = 1000
MAX_TEXT = 512 * 1024
UPDATE_PERIODS = {"hourly": 3600, "daily": 86400, "weekly": 604800, "monthly": 2592000, "yearly": 31536000}


def parse_feed(body: bytes, headers: dict[str, str] | None = None, *, url: str = "",
               now: datetime | None = None, max_entries: int = 500, fast: bool = True) -> ParsedFeed:
    """Parse a feed document; raise ParseError when the bytes are not a feed at all.

    Clean RSS 2.0 and Atom documents take the lxml fast path; `fast=False`
    forces feedparser, the reference the fast path is tested against.
    """
    now = now or datetime.now(timezone.utc)
    headers = dict(headers or {})
    headers.setdefault("content-location", url)
    quick = fastparse.read(body, headers.get("content-type", "")) if fast else None
    if quick is not None:
        feed, raw_entries, warning = quick["feed"], quick["entries"], None
    else:
        feed, raw_entries, warning = _feedparser(body, headers)
    base = headers.get("content-location") or url
    info = FeedInfo(
        title=plain_text(feed.get("title")) or None,
        link=_web_link(_absolute(base, feed.get("link"))),
        id=xml_safe(feed.get("id", "")).strip() or None,
        updated=_date(feed, ("updated_parsed", "published_parsed"), now),
        language=_language(feed.get("language")),
        ttl=_ttl(feed),
        **_skips(body),
    )
    entries = tuple(_entry(raw, base, info.language, now) for raw in raw_entries[:max_entries])
    return ParsedFeed(info=info, entries=entries, warning=warning)


def _feedparser(body: bytes, headers: dict[str, str]) -> tuple[dict, list, str | None]:
    """The reference parser, for every document the fast path declines."""
    try:
        result = feedparser.parse(body, response_headers=headers, sanitize_html=False,
                                  resolve_relative_uris=False)
    except Exception as exc:  # feedparser promises bozo, but broken encodings have escaped it before
        raise ParseError(f"unreadable feed: {exc.__class__.__name__}: {exc}") from exc
    if not result.get("version") and not result.entries:
        reason = result.get("bozo_exception")
        hint = "an HTML page, not a feed" if body.lstrip()[:100].lower().startswith((b"<!doctype html", b"<html")) else "not an RSS or Atom feed"
        raise ParseError(f"{hint}" + (f" ({_one_line(reason)})" if reason else ""))
    warning = _one_line(result.get("bozo_exception")) if result.get("bozo") else None
    return result.feed, result.entries, warning


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
    link = _web_link(_absolute(base, raw.get("link")))
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
    )


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
        parsed = dict.get(node, key)  # FeedParserDict.get maps updated → published, with a warning
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


_SKIP_HOURS = re.compile(rb"<skipHours\b[^>]*>(.*?)</skipHours\s*>", re.S | re.I)
_SKIP_DAYS = re.compile(rb"<skipDays\b[^>]*>(.*?)</skipDays\s*>", re.S | re.I)
_HOUR = re.compile(rb"<hour\b[^>]*>\s*(\d{1,2})\s*</hour", re.I)
_DAY = re.compile(rb"<day\b[^>]*>\s*([A-Za-z]+)\s*</day", re.I)
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _skips(body: bytes) -> dict:
    """RSS 2.0 skipHours/skipDays, read from the bytes: feedparser keeps only the last <hour> of them."""
    hours = _SKIP_HOURS.search(body)
    days = _SKIP_DAYS.search(body)
    return {
        "skip_hours": frozenset(int(h) for h in _HOUR.findall(hours.group(1)) if int(h) < 24) if hours else frozenset(),
        "skip_days": frozenset(d.decode().lower() for d in _DAY.findall(days.group(1))
                               if d.decode().lower() in DAY_NAMES) if days else frozenset(),
    }


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split())[:300]
