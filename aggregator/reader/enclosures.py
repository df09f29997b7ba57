"""An item's enclosures (RSS <enclosure>, Atom rel="enclosure", JSON Feed attachments), read from the dicts its
parser gives: feedparser's `enclosures`, which the fast path and jsonfeed.py shape alike ({href, type, length}).

An enclosure's URL is resolved as the item's link is (urls.Resolver) and only
an absolute http(s) one is kept: a file:, javascript: or data: URL, or a
relative one nothing resolves, is no file a reader can fetch. Each URL is kept
once (its first listing), in the feed's order, a handful at most.
"""

from __future__ import annotations

import re
from itertools import islice
from typing import Iterator

from ..models import Enclosure
from .urls import Resolver

MAX_ENCLOSURES = 10  # kept per item
MAX_LISTED = 100  # looked at per item: a feed listing thousands costs no more than this
MAX_TYPE = 127  # RFC 6838: a type and a subtype of at most 63 characters each
MAX_DIGITS = 18  # a length under 10^18 bytes fits every store and reader
MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
#: What feedparser gives an Atom enclosure that names no type (the default of an HTML link): it says nothing.
NO_TYPE = "text/html"


def enclosures(raw: dict, resolver: Resolver) -> tuple[Enclosure, ...]:
    """The item's enclosures: absolute http(s) URLs, each once, in order, at most MAX_ENCLOSURES."""
    found: dict[str, Enclosure] = {}
    for listed in _listed(raw):
        url = resolver.item(listed["href"])[0]
        if url and url not in found:
            found[url] = Enclosure(url, _media_type(listed.get("type")), _length(listed.get("length")))
            if len(found) == MAX_ENCLOSURES:
                break
    return tuple(found.values())


def key_url(raw: dict, resolver: Resolver) -> str | None:
    """The first enclosure's URL as the item's identity takes it (parse.entry_key): resolved, else as written."""
    first = next(_listed(raw), None)
    return resolver.item(first["href"])[1] if first else None


def _listed(raw: dict) -> Iterator[dict]:
    """The enclosures the item's parser lists with a URL."""
    for listed in islice(raw.get("enclosures") or (), MAX_LISTED):
        if isinstance(listed, dict) and listed.get("href"):
            yield listed


def _media_type(value) -> str | None:
    """A MIME type (RFC 6838 names), lowercase and without parameters; None for anything else."""
    if not isinstance(value, str):
        return None
    kind = value.split(";")[0].strip().lower()
    return kind if len(kind) <= MAX_TYPE and kind != NO_TYPE and MEDIA_TYPE.match(kind) else None


def _length(value) -> int | None:
    """A size in bytes: a positive whole number (feeds write 0, or nothing, for a size they do not know)."""
    if isinstance(value, str):
        value = value.strip()
        value = int(value) if value.isascii() and value.isdigit() and len(value) <= MAX_DIGITS else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value < 10 ** MAX_DIGITS else None
