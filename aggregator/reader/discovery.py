"""WebSub discovery (W3C WebSub §4): the hubs and the topic a fetched feed names, from its bytes and headers.

HTTP `Link` headers come first; only when they name no hub are the feed's own
links read: Atom's `<link rel="hub">` and `rel="self"` children of `<feed>`,
RSS's `<atom:link>` children of `<channel>` (RSS 1.0 too), JSON Feed's `hubs`
and `feed_url`. Entry-level links never count, and the document is read only
up to its first entry, without DTDs or network access (a document declaring
entities is not read here). Pure: bytes in, a Discovery (or None) out.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from lxml import etree
from requests.utils import parse_header_links

ATOM = "http://www.w3.org/2005/Atom"
ENTRY_TAGS = {"entry", "item"}
FEED_TAGS = {"feed", "channel", "RDF", "rss"}
MAX_HUBS = 10
MAX_URL = 2048


@dataclass(frozen=True)
class Discovery:
    hubs: tuple[str, ...]  # as advertised, absolute http(s) URLs
    topic: str  # the rel="self" URL, or the URL fetched when the feed names none

    @property
    def hub(self) -> str:
        """The hub to subscribe at: the first HTTPS one (WebSub §8.2), else the first."""
        return next((h for h in self.hubs if h.startswith("https://")), self.hubs[0])


def discover(body: bytes | None, headers: dict[str, str], url: str) -> Discovery | None:
    """The hubs and topic that `Link` headers, else the document, advertise; None when no hub is named."""
    found = _from_headers(headers.get("link", ""), url)
    if found is None and body:
        if body.lstrip()[:1] == b"{":
            found = _from_json(body, url)
        elif b"hub" in body and b"<!ENTITY" not in body:  # most feeds are not read at all; nor one declaring
            found = _from_xml(body, url)  # entities (which parse.py checks for bombs later)
    if found is None:
        return None
    hubs, topic = found
    hubs = tuple(dict.fromkeys(h for h in (_web_url(url, h) for h in hubs) if h))[:MAX_HUBS]
    if not hubs:
        return None
    return Discovery(hubs, _web_url(url, topic) or url)


def _from_headers(value: str, url: str) -> tuple[list[str], str | None] | None:
    if not value:
        return None
    hubs, topic = [], None
    try:
        links = parse_header_links(value)
    except (ValueError, IndexError):
        return None
    for link in links:
        rels = link.get("rel", "").lower().split()
        if "hub" in rels:
            hubs.append(link.get("url", ""))
        if "self" in rels and topic is None:
            topic = link.get("url")
    return (hubs, topic) if hubs else None


def _from_xml(body: bytes, url: str) -> tuple[list[str], str | None] | None:
    hubs, topic, depth_of_feed = [], None, None
    events = etree.iterparse(io.BytesIO(body), events=("start", "end"), resolve_entities=False, load_dtd=False,
                             no_network=True, huge_tree=False, recover=True)
    depth = 0
    try:
        for event, element in events:
            if event == "end":
                depth -= 1
                element.clear(keep_tail=False)
                continue
            depth += 1
            name = etree.QName(element).localname if isinstance(element.tag, str) else ""
            if name in ENTRY_TAGS:
                break
            if name in FEED_TAGS:
                depth_of_feed = depth if depth_of_feed is None or name == "channel" else depth_of_feed
                continue
            if name != "link" or depth_of_feed is None or depth != depth_of_feed + 1:
                continue
            rels = (element.get("rel") or "").lower().split()
            href = element.get("href")
            if href and "hub" in rels:
                hubs.append(href)
            elif href and "self" in rels and topic is None:
                topic = href
    except etree.LxmlError:
        pass
    return (hubs, topic) if hubs else None


def _from_json(body: bytes, url: str) -> tuple[list[str], str | None] | None:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("hubs"), list):
        return None
    hubs = [h.get("url") for h in document["hubs"] if isinstance(h, dict) and isinstance(h.get("url"), str)
            and str(h.get("type", "")).lower() in ("websub", "")]
    topic = document.get("feed_url") if isinstance(document.get("feed_url"), str) else None
    return (hubs, topic) if hubs else None


def _web_url(base: str, href: str | None) -> str | None:
    """An absolute http(s) URL, or None."""
    if not href or len(href) > MAX_URL:
        return None
    absolute = urljoin(base, href.strip()) if base.startswith(("http://", "https://")) else href.strip()
    parts = urlsplit(absolute)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in absolute for c in " \r\n\t"):
        return None
    return absolute
