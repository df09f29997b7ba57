"""Canonical forms that decide whether two copies are the same story: links, titles, text.

Pure functions over strings; dedupe.py weighs what they produce.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .sanitize import plain_text

TRACKING_PARAMS = {
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "mc_cid", "mc_eid", "yclid", "igshid",
    "ref", "ref_src", "ref_url", "referrer", "source", "src", "cmpid", "ncid", "sr_share", "spm",
    "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id", "rss", "feed", "at_medium", "at_campaign",
    "ito", "s_cid", "cid", "share", "smid", "partner", "via",
}
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "__twitter", "_ga", "vero_")
DEFAULT_PORTS = {"http": "80", "https": "443"}


def canonical_link(url: str | None) -> str | None:
    """The form two links to one article share, however each outlet decorated it.

    Folds scheme (http/https), host case, ``www.``, default ports, fragments,
    tracking parameters, query order and a trailing slash. The scheme is
    dropped from the result so http and https copies compare equal.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip() or None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return url.strip() or None
    host = parts.hostname.lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    if port and str(port) not in DEFAULT_PORTS.values():
        host = f"{host}:{port}"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in TRACKING_PARAMS and not k.lower().startswith(TRACKING_PREFIXES)
    )
    path = re.sub(r"/{2,}", "/", parts.path) or "/"
    if len(path) > 1:
        path = path.rstrip("/")
    return urlunsplit(("", host, path, urlencode(query), ""))[2:]


_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)


def normalised_title(title: str | None) -> str:
    """Case, punctuation, whitespace and Unicode forms folded."""
    text = unicodedata.normalize("NFKC", title or "").casefold()
    text = _PUNCTUATION.sub(" ", text)
    return " ".join(text.split())


def normalised_text(fragment: str | None) -> str:
    """The words of an entry's HTML, for hashing and similarity."""
    text = unicodedata.normalize("NFKC", plain_text(fragment)).casefold()
    return " ".join(_PUNCTUATION.sub(" ", text).split())


def content_hash(text: str) -> str | None:
    """A hash of the normalised text; None for texts too short to identify a story."""
    if len(text.split()) < 20:
        return None
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
