"""Where a feed's links point: every link we publish is absolute (SPEC §4).

An item's link is resolved the way Miniflux resolves it: against xml:base
(feedparser applies it while it parses), then the document's own URL when that
is http(s), then the feed's site link (RSS channel `<link>`, Atom
`rel="alternate"`, JSON Feed `home_page_url`). A `file:` document's path is no
base: a reader far away cannot follow it. A link nothing resolves is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from ..redaction import public_url
from .sanitize import xml_safe

WEB_SCHEMES = ("http", "https")
MAX_URL = 4096


def document_base(url: str, headers: dict[str, str]) -> str:
    """The document's own URL as a base: its Content-Location (relative to the URL) or the URL; "" unless http(s).

    Without credentials (redaction.public_url): a link resolved against it is published.
    """
    located = public_url(join(url, (headers.get("content-location") or "").strip()) or url)
    return located if _is_web(located) else ""


@dataclass(frozen=True)
class Resolver:
    """Resolves one document's links: `base` is its http(s) URL or "", `site` its absolute site link or None."""

    base: str = ""
    site: str | None = None

    @classmethod
    def for_document(cls, base: str, site_link: str | None) -> Resolver:
        """The resolver of a document at `base` whose feed names `site_link` (itself resolved against `base`)."""
        return cls(base, web_link(join(base, _clean(site_link))))

    def item(self, link: str | None) -> tuple[str | None, str | None]:
        """(the link to publish, the link to identify the item by) for an item's raw link.

        The first is absolute http(s) or None (javascript:, data:, file: …, or
        relative with nothing to resolve it); the second is that same link, or
        the relative link as written when nothing resolves it, so that the
        item's identity does not fall back to its text.
        """
        link = _clean(link)
        if not link or len(link) > MAX_URL:
            return None, None
        resolved = join(self.base, link) if self.base else link
        if resolved and _is_web(resolved):
            return (resolved, resolved) if len(resolved) <= MAX_URL else (None, None)  # the usual case
        if resolved and not _scheme(resolved) and self.site:
            resolved = join(self.site, resolved)
        if not resolved:
            return None, None
        if not _scheme(resolved):
            return None, resolved
        published = web_link(resolved)
        return published, published

    def web(self, link: str | None) -> str | None:
        """An absolute http(s) link for a page the item names (its canonical URL), or None."""
        return self.item(link)[0]


def web_link(link: str | None) -> str | None:
    """The link when it is absolute http(s) and not overlong, else None."""
    return link if link and len(link) <= MAX_URL and _is_web(link) else None


def _clean(link: str | None) -> str | None:
    return xml_safe(str(link)).strip() or None if link else None


def join(base: str, link: str | None) -> str | None:
    """`link` against `base` (as written when there is no base); None when either is malformed."""
    if not link:
        return None
    try:
        return urljoin(base, link) if base else link
    except ValueError:  # a malformed base or link ("http://[::1"): nothing to resolve
        return None


def _scheme(link: str) -> str:
    try:
        return urlsplit(link).scheme.lower()
    except ValueError:
        return "?"  # unreadable: treated as a scheme we do not publish


def _is_web(link: str) -> bool:
    """Absolute http(s) with a host; the common `http://host…` / `https://host…` is told without urlsplit."""
    head = link[:8].lower()
    rest = link[8:] if head == "https://" else link[7:] if head.startswith("http://") else None
    if rest and rest[0] not in "/?#[\\":
        return True
    try:
        parts = urlsplit(link)
    except ValueError:
        return False
    return parts.scheme.lower() in WEB_SCHEMES and bool(parts.netloc)
