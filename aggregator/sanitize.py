"""Republished HTML made safe (nh3, the Ammonia binding) and text made fit for XML.

A whitelist sanitiser: anything not listed (script, frames, objects, forms,
styles, event handlers) is dropped; links and images are made absolute against
the item's link so they work in a reader far from the source site.
"""

from __future__ import annotations

import contextvars
import html
import re
from urllib.parse import urljoin, urlsplit

import nh3

_base_url: contextvars.ContextVar[str | None] = contextvars.ContextVar("base_url", default=None)

URL_ATTRIBUTES = {"href", "src", "cite", "longdesc", "poster"}
SAFE_SCHEMES = {"http", "https", "mailto", "ftp", "tel", "data"}
RASTER_DATA = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp)(;[a-z0-9=._-]+)*(;base64)?,", re.IGNORECASE)
# Characters XML 1.0 forbids: C0 controls but tab/newline/return, lone surrogates, U+FFFE/U+FFFF.
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _rewrite_url(tag: str, attribute: str, value: str) -> str | None:
    if attribute not in URL_ATTRIBUTES:
        return value
    value = value.strip()
    if value[:8].lower().startswith(("https://", "http://")):
        return value  # already absolute, and most are: urljoin is the costliest step of sanitising
    if value.lower().startswith("data:"):
        return value if tag == "img" and attribute == "src" and RASTER_DATA.match(value) else None
    base = _base_url.get()
    absolute = urljoin(base, value) if base else value
    scheme = urlsplit(absolute).scheme.lower()
    if scheme and scheme not in SAFE_SCHEMES:
        return None
    return absolute


_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES.setdefault("img", set()).add("title")
_ATTRIBUTES.setdefault("a", set()).add("title")
_ATTRIBUTES.update({"audio": {"src", "controls"}, "video": {"src", "controls", "poster", "width", "height"},
                    "source": {"src", "type"}})

_CLEANER = nh3.Cleaner(
    tags=(nh3.ALLOWED_TAGS | {"audio", "video", "source", "picture"}) - {"area", "map"},
    clean_content_tags={"script", "style", "iframe", "frame", "frameset", "object", "embed", "applet",
                        "noscript", "template", "svg", "math", "form", "select", "textarea", "button"},
    attributes=_ATTRIBUTES,
    attribute_filter=_rewrite_url,
    url_schemes=SAFE_SCHEMES,
    link_rel="noopener noreferrer",
)


def clean_html(fragment: str | None, base_url: str | None = None) -> str | None:
    """Sanitised HTML with absolute URLs; None stays None."""
    if not fragment:
        return None
    token = _base_url.set(base_url)
    try:
        cleaned = _CLEANER.clean(xml_safe(fragment))
    finally:
        _base_url.reset(token)
    return cleaned.strip() or None


_TAG_STRIPPER = nh3.Cleaner(tags=set(), clean_content_tags={"script", "style"}, attributes={}, link_rel=None)


def plain_text(fragment: str | None) -> str:
    """Text with every tag removed and entities decoded: what a title must be."""
    if not fragment:
        return ""
    text = html.unescape(_TAG_STRIPPER.clean(xml_safe(fragment))) if "<" in fragment or "&" in fragment else fragment
    return " ".join(xml_safe(text).split())


def xml_safe(text: str) -> str:
    """Drop characters XML cannot carry, so one bad title cannot make an output invalid."""
    return XML_FORBIDDEN.sub("", text)
