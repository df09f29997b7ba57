"""Bytes → ParsedFeed. The only importer of feedparser: its dicts never leave this module."""

from __future__ import annotations

import calendar
import hashlib
import html
import io
import re
from collections import Counter
from datetime import datetime, timezone
from urllib.parse import urlsplit
from xml.sax import SAXParseException

import feedparser
from feedparser.encodings import convert_to_utf8
from feedparser.sanitizer import replace_doctype
from feedparser.util import FeedParserDict
from lxml import etree

from . import encoding, fastparse, hints, jsonfeed
from .enclosures import enclosures, key_url
from .dates import parsed_time, trusted_date
from ..errors import ParseError
from ..models import Entry, FeedInfo, ParsedFeed
from .sanitize import looks_like_html, plain_text, spaced_text, xml_safe
from .urls import Resolver, document_base, join

PAGE_TYPES = ("text/html", "application/xhtml+xml")
LOSSY_XML_ERRORS = frozenset({"mismatched tag", "unclosed token", "no element found", "unclosed CDATA section",
                              "junk after document element"})  # expat's: what follows is read loosely, or lost
MAX_TITLE = 1000
MAX_TEXT = 512 * 1024
MAX_RAW_TEXT = 64 * 1024  # markup read to find a title or name: the cost of stripping it stays bounded
MAX_NAMES = 50  # authors or categories kept per entry
MAX_NAME = 200
#: Entity expansion allowed on top of the document itself: a few real feeds declare an entity or two.
MAX_ENTITY_EXPANSION = 1024 * 1024
#: "ENTITY" as it appears in the encodings feedparser decodes (UTF-7 and the CJK ones are ASCII-compatible).
ENTITY_MARKERS = tuple({"ENTITY".encode(e) for e in ("ascii", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be",
                                                     "cp037")})
CHARREF = re.compile(rb"&#([xX][0-9a-fA-F]+|[0-9]+);?")
ENTITY_ERRORS = {"ERR_RESOURCE_LIMIT", "ERR_ENTITY_LOOP", "ERR_ENTITY_AMPLIFICATION"}


def parse_feed(body: bytes, headers: dict[str, str] | None = None, *, url: str = "",
               now: datetime | None = None, max_entries: int = 500, fast: bool = True) -> ParsedFeed:
    """Parse a feed document; raise ParseError when the bytes are not a feed at all.

    JSON Feed documents are read by jsonfeed.py; clean RSS 2.0 and Atom
    documents take the lxml fast path; `fast=False` forces feedparser, the
    reference the fast path is tested against, for every XML document.
    """
    now = now or datetime.now(timezone.utc)
    if body[:1].isspace() and (stripped := body.lstrip())[:1] == b"<":
        body = stripped  # blank lines before <?xml (PHP's): no XML parser takes them
    base = document_base(url, headers or {})
    headers = {k: v for k, v in (headers or {}).items() if k != "content-location"}
    if base:
        headers["content-location"] = base  # feedparser's base for links (under xml:base); never a file: path
    content_type = headers.get("content-type", "")
    if jsonfeed.recognised(body, content_type):
        quick = jsonfeed.read(body)  # feedparser does not read JSON Feed
    else:
        quick = fastparse.read(body, content_type) if fast else None
    guessed = None
    if quick is not None:
        feed, raw_entries, warning = quick["feed"], quick["entries"], None
    else:
        guessed = encoding.decode_or_guess(body, headers)  # None for every feed its declared encoding fits
        if guessed is not None:
            body, headers = guessed.body, guessed.headers
        feed, raw_entries, warning = _reference(body, headers)
    resolver = Resolver.for_document(base, feed.get("link"))
    info = FeedInfo(
        title=_plain(feed.get("title"), feed.get("title_detail"))[:MAX_TITLE] or None,
        link=resolver.site,
        id=xml_safe(feed.get("id") or "").strip() or None,
        self_link=_self_link(feed, resolver),
        updated=trusted_date(feed, ("updated_parsed", "published_parsed"), now),
        language=_language(feed.get("language")),
        ttl=hints.ttl(feed.get("ttl"), feed.get("sy_updateperiod"), feed.get("sy_updatefrequency")),
        **hints.skips(body),
    )
    links = [resolver.item(_page_link(raw)) for raw in raw_entries]
    shared = _shared_links(raw_entries, links, resolver)
    entries = tuple(_entry(raw, link, shared, resolver, info.language, now)
                    for raw, link in zip(raw_entries[:max_entries], links))
    return ParsedFeed(info=info, entries=entries, warning=warning,
                      encoding_warning=guessed.warning if guessed else None)


def _reference(body: bytes, headers: dict[str, str]) -> tuple[dict, list, str | None]:
    """feedparser, for every document the fast path declines: (feed, entries, warning)."""
    check_entities(body, headers)
    result = _feedparser(body, headers)
    if not result.get("version") and not result.entries:
        reason = result.get("bozo_exception")
        hint = "an HTML page, not a feed" if body.lstrip()[:100].lower().startswith((b"<!doctype html", b"<html")) else "not an RSS or Atom feed"
        raise ParseError(f"{hint}" + (f" ({_one_line(reason)})" if reason else ""))
    exc = result.get("bozo_exception")  # only XML broken where content is lost: not a stray & or an encoding note
    warning = (f"not well-formed XML at line {exc.getLineNumber()}, column {exc.getColumnNumber()}: "
               f"{_one_line(exc.getMessage())}; read as far as it goes"
               if isinstance(exc, SAXParseException) and exc.getMessage() in LOSSY_XML_ERRORS else None)
    return _unresolved_id(result), result.entries, warning


def _unresolved_id(result: dict) -> dict:
    """The feed without an RSS channel id that feedparser may have made up.

    feedparser resolves a channel's <guid> against the document's URL, so a
    photocast's `95148ACD-…` comes out as `http://host/95148ACD-…`, a URL
    nobody published. RSS defines no channel id; one on the document's own
    scheme and host may be such a resolved guid, so it is dropped (the
    output then names the source by its feed URL, SPEC §4); any other is kept.
    """
    feed, feed_id = result.feed, result.feed.get("id")
    if not feed_id or not str(result.get("version", "")).startswith("rss"):
        return feed
    base = urlsplit((feed.get("title_detail") or {}).get("base") or result.get("href") or "")
    if urlsplit(str(feed_id))[:2] != base[:2]:
        return feed
    feed = FeedParserDict(feed)
    del feed["id"]
    return feed


def _feedparser(body: bytes, headers: dict[str, str]) -> dict:
    """feedparser's result, with the character references it crashes on removed first."""
    try:
        return _feedparser_once(drop_bad_charrefs(body), headers)
    except (UnicodeError, ValueError, OverflowError):
        pass  # a bad reference in an encoding the byte pattern cannot see (UTF-16/32): retry from UTF-8
    try:
        data = drop_bad_charrefs(convert_to_utf8(headers, body, FeedParserDict()))
        return _feedparser_once(data, {**headers, "content-type": "application/xml"})
    except Exception as exc:  # feedparser promises bozo, but broken encodings have escaped it before
        raise ParseError(f"unreadable feed: {exc.__class__.__name__}: {_one_line(exc)}") from exc


def _feedparser_once(body: bytes, headers: dict[str, str]) -> dict:
    # A stream, never bytes: feedparser opens a bytes argument as a file when one has that name.
    return feedparser.parse(io.BytesIO(body), response_headers=headers, sanitize_html=False,
                            resolve_relative_uris=False)


def drop_bad_charrefs(body: bytes) -> bytes:
    """Remove numeric character references to code points XML forbids (&#xD800;, &#0;, &#x110000;).

    feedparser's loose parser raises on surrogates and on numbers past
    U+10FFFF, which would fail the whole feed for one character.
    """
    if b"&#" not in body:
        return body
    return CHARREF.sub(_charref_or_nothing, body)


def _charref_or_nothing(match: re.Match) -> bytes:
    digits = match.group(1)
    if len(digits) > 9:
        return b""
    code = int(digits[1:], 16) if digits[:1] in b"xX" else int(digits)
    allowed = code in (9, 10, 13) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF
    return match.group(0) if allowed else b""


def check_entities(body: bytes, headers: dict[str, str]) -> None:
    """Refuse documents whose internal entities would expand out of bounds (billion laughs, quadratic blowup).

    feedparser drops nested entity declarations but keeps plain-text ones, and
    its loose parser expands those at every reference: one 100 KB entity used
    20,000 times is 2 GB. This looks at the document exactly as feedparser will
    (its own encoding conversion and DOCTYPE rewrite), then bounds both paths:
    the loose parser's expansion is counted, and the bytes the strict parser
    gets are parsed once by libxml2, whose amplification limit stops nesting
    in microseconds. Documents without the word ENTITY cost six byte searches.
    External entities and DTDs are never loaded by either parser.
    """
    if not any(marker in body for marker in ENTITY_MARKERS):
        return
    try:
        data = convert_to_utf8(headers, body, FeedParserDict())
        _, data, entities = replace_doctype(data)
    except Exception:  # feedparser reports the same problem as bozo when it parses
        return
    expansion = sum(len(value.encode("utf-8")) * data.count(f"&{name};".encode("utf-8"))
                    for name, value in entities.items())
    if expansion > MAX_ENTITY_EXPANSION:
        raise ParseError(f"the feed's XML entities expand to {expansion // 1024} KB "
                         f"(limit {MAX_ENTITY_EXPANSION // 1024} KB): an entity-expansion attack; refused")
    parser = etree.XMLParser(resolve_entities="internal", load_dtd=False, no_network=True, recover=True,
                             huge_tree=False)
    try:
        etree.fromstring(data, parser)
    except etree.LxmlError:
        pass
    bomb = next((e for e in parser.error_log if e.type_name in ENTITY_ERRORS
                 and ("entit" in e.message.lower() or "amplification" in e.message.lower())), None)
    if bomb is not None:
        raise ParseError(f"the feed's XML entities expand out of bounds ({_one_line(bomb.message)}): "
                         "an entity-expansion attack; refused")


def entry_key(guid: str | None, link: str | None, shared: bool, enclosure: str | None, title: str,
              date: int | None, text: str) -> str:
    """An item's identity inside its source (SPEC §6): the one place that decides it, first usable of:

    1. its guid (RSS guid, Atom id, JSON Feed id), as given: `guid:…`;
    2. its link, while no other item of the document has it (`shared` false): `link:<url>`;
    3. a link other items share (podcasts link every episode to the show page) with the item's
       enclosure URL: `link:<url> enclosure:<url>`;
    4. a shared link without an enclosure, with a hash of the title and date (seconds since the
       epoch, as the feed gives it): `link:<url> title:<hash>`;
    5. with neither guid nor link, a hash of the title and text: `hash:…`.

    The link is the resolved one, or the one written when nothing resolves it
    (the entry is then published without a link, under the same key). An item
    the document lists twice over (same guid, enclosure, title and date) does
    not make its link shared: its key stays `link:<url>`.
    """
    if guid:
        return "guid:" + guid
    if link and not shared:
        return "link:" + link
    if link and enclosure:
        return f"link:{link} enclosure:{enclosure}"
    if link:
        return f"link:{link} title:" + _digest(f"{title}\n{'' if date is None else date}")
    return "hash:" + _digest(f"{title}\n{text}")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _shared_links(raw_entries: list, links: list[tuple[str | None, str | None]], resolver: Resolver) -> frozenset:
    """The links (as items are identified by them) that several distinct items of the document carry."""
    counts = Counter(link for _, link in links if link)
    if len(counts) == sum(counts.values()):
        return frozenset()  # every link once: the usual feed costs one count
    seen: dict[str, tuple] = {}
    shared = set()
    for raw, (_, link) in zip(raw_entries, links):
        if not link or counts[link] < 2 or link in shared:
            continue
        signature = (raw.get("id"), key_url(raw, resolver), raw.get("title"), _key_date(raw))
        if seen.setdefault(link, signature) != signature:
            shared.add(link)
    return frozenset(shared)


def _key_date(raw: dict) -> int | None:
    """The item's date as the feed writes it, unclamped: a key must not change as the clock moves."""
    for key in ("published_parsed", "updated_parsed"):
        parsed = parsed_time(raw, key)
        if parsed:
            try:
                return calendar.timegm(parsed)
            except (OverflowError, ValueError, TypeError):
                return None
    return None


def _entry(raw: dict, links: tuple[str | None, str | None], shared: frozenset, resolver: Resolver,
           feed_language: str | None, now: datetime) -> Entry:
    link, key_link = links
    guid = xml_safe(str(raw.get("id") or "")).strip()[:2000] or None
    summary = _html(raw.get("summary_detail")) or None
    content = None
    for part in raw.get("content") or ():
        if part.get("value"):
            content = _html(part)
            break
    if content and summary and plain_text(content) == plain_text(summary):
        summary = None
    title = _plain(raw.get("title"), raw.get("title_detail"))[:MAX_TITLE]
    authors = _names(a.get("name") or a.get("email") for a in raw.get("authors") or () if isinstance(a, dict))
    if not any(authors) and raw.get("author"):
        authors = _names([raw.get("author")])
    categories = _names(t.get("label") or t.get("term") for t in raw.get("tags") or () if isinstance(t, dict))
    language = None
    for detail in (raw.get("title_detail"), raw.get("summary_detail"), *(raw.get("content") or ())):
        if isinstance(detail, dict) and detail.get("language"):
            language = _language(detail["language"])
            break
    shared_link = key_link in shared
    return Entry(
        key=entry_key(guid, key_link, shared_link, key_url(raw, resolver) if shared_link else None, title,
                      _key_date(raw) if shared_link else None, content or summary or ""),
        title=title,
        link=link,
        guid=guid,
        summary=summary,
        content=content,
        authors=tuple(a for a in authors if a),
        categories=tuple(c for c in categories if c),
        published=trusted_date(raw, ("published_parsed", "created_parsed"), now),
        updated=trusted_date(raw, ("updated_parsed",), now),
        language=language or feed_language,
        canonical=_canonical(raw, resolver),
        enclosures=enclosures(raw, resolver),
    )


def _page_link(raw: dict) -> str | None:
    """The entry's link: of its HTML rel="alternate" links (type text/html, XHTML, or none), the first without
    hreflang (the page in the feed's language), else the first; else the article an Atom <content src> points
    at; none when its alternates are all of other types; without alternates, the link its parser took (RSS
    <link>, a permalink guid)."""
    alternates = [link for link in raw.get("links") or () if isinstance(link, dict) and link.get("href")
                  and link.get("rel", "alternate") == "alternate"]
    pages = [link for link in alternates if (link.get("type") or "text/html").lower() in PAGE_TYPES]
    page = next((link for link in pages if not link.get("hreflang")), pages[0] if pages else None)
    if page:
        return page["href"]
    return _content_src(raw) or (None if alternates else raw.get("link"))


def _content_src(raw: dict) -> str | None:
    """An Atom <content src>, against the xml:base in effect there (feedparser resolves links, not a src)."""
    for part in raw.get("content") or ():
        if isinstance(part, dict) and part.get("src"):
            return join(part.get("base") or "", xml_safe(str(part["src"])).strip())
    return None


def _canonical(raw: dict, resolver: Resolver) -> str | None:
    """The page's own canonical URL: feedburner:origLink, or a link with rel="canonical"."""
    for link in raw.get("links") or ():
        if isinstance(link, dict) and link.get("rel") == "canonical" and link.get("href"):
            return resolver.web(link["href"])
    return resolver.web(raw.get("feedburner_origlink"))


def _html(detail: dict | None) -> str | None:
    """Content as HTML: plain-text parts are escaped, over-long ones truncated."""
    if not isinstance(detail, dict) or not detail.get("value"):
        return None
    value = xml_safe(str(detail["value"]))[:MAX_TEXT]
    if detail.get("type") == "text/plain":
        value = html.escape(value).replace("\n\n", "<br><br>")
    return value


def _plain(value, detail: dict | None = None) -> str:
    """A title or name as plain text (SPEC §4), by the content type its parser gives it: a text/plain value
    is plain text already and only has its whitespace normalised; HTML and XHTML lose their tags and decode
    their references once. A name, typed by no parser, is HTML when it looks like HTML, as feedparser guesses
    an RSS title (WordPress escapes its names and terms inside CDATA: `Tom &amp;amp; Jerry`)."""
    value = str(value or "")[:MAX_RAW_TEXT]
    kind = detail.get("type") if isinstance(detail, dict) else None
    if kind == "text/plain" or (kind is None and not looks_like_html(value)):
        return spaced_text(value)
    return plain_text(value)


def _names(values) -> tuple[str, ...]:
    """Distinct plain-text names, each and their number bounded: a feed cannot make an entry huge this way."""
    names = dict.fromkeys(_plain(v)[:MAX_NAME] for v in values)
    return tuple(name for name in names if name)[:MAX_NAMES]


def _self_link(feed: dict, resolver: Resolver) -> str | None:
    """The feed's own rel="self" link (atom:link in RSS, link in Atom), when it is absolute http(s)."""
    for link in feed.get("links") or ():
        if isinstance(link, dict) and link.get("rel") == "self" and link.get("href"):
            return resolver.web(link["href"])
    return None


def _language(value: str | None) -> str | None:
    value = (value or "").strip().lower().replace("_", "-")
    return value[:35] or None


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split())[:300]
