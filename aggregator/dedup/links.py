"""Canonical links: the form two links to one article share, however each outlet decorated it.

Pure functions over strings.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that say how a reader arrived, never which page it is. Kept to names that
# are tracking everywhere: dropping a parameter that does identify a page (`id`, `p`, `cid` on
# some sites) would make two different articles look like one.
TRACKING_PARAMS = {
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "mc_cid", "mc_eid", "yclid", "igshid",
    "ref", "ref_src", "ref_url", "referrer", "source", "cmpid", "ncid", "sr_share", "spm", "_hsenc",
    "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id", "rss", "at_medium", "at_campaign", "ito", "s_cid",
    "smid", "partner", "via", "share", "from", "xtor", "__s", "ocid", "soc_src", "soc_trk", "cmp",
}
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "__twitter", "_ga", "vero_", "itm_", "trk_", "amp_")
# Parameters AMP caches, viewers and readers add: say how the page was served, never which page it is.
AMP_PARAMS = {"usqp", "amp_js_v", "amp_gsa", "amp_r", "amp_tf", "aoh", "ampshare", "outputtype"}
AMP_FLAG_VALUES = {"", "1", "true", "yes", "amp"}  # `?amp`, `?amp=1`: the AMP version of the same page
DEFAULT_PORTS = {"http": 80, "https": 443}
# Link wrappers that carry the real target in a parameter: (host suffix, path, parameter).
REDIRECTS = (("google.com", "/url", ("url", "q")), ("facebook.com", "/l.php", ("u",)))


def canonical_link(url: str | None) -> str | None:
    """The form two links to one article share, however each outlet decorated it.

    Unwraps redirect wrappers and AMP caches and viewers (`amp_page`), then
    folds scheme (http/https), host case, ``www.`` and ``amp.``, default ports,
    fragments, tracking parameters, AMP's marks on a path or query (`/amp/`,
    `/amp`, `.amp.html`, `?amp`, `?amp=1`, `outputType=amp`), query order
    and a trailing slash. The scheme is dropped so http and https copies
    compare equal.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port, hostname = parts.port, parts.hostname  # each parses the network location again
    except ValueError:
        return url.strip() or None
    if parts.scheme.lower() not in DEFAULT_PORTS or not hostname:
        return url.strip() or None
    host = hostname.lower().rstrip(".")
    target = _redirect_target(host, parts.path, parts.query)
    if target and target != url:
        return canonical_link(target)
    host = host[4:] if host.startswith("www.") else host
    host = _without_amp_host(host)
    if port and port not in DEFAULT_PORTS.values():
        host = f"{host}:{port}"
    query = _page_query(parts.query) if parts.query else ""
    path = amp_free_path((_SLASHES.sub("/", parts.path) if "//" in parts.path else parts.path) or "/")
    if len(path) > 1:
        path = path.rstrip("/")
    return urlunsplit(("", host, path, query, ""))[2:]


_SLASHES = re.compile(r"/{2,}")


def _page_query(query: str) -> str:
    """A query without the parameters that say how a reader arrived or how the page was served, sorted."""
    return urlencode(sorted((k, v) for k, v in parse_qsl(query, keep_blank_values=True) if not _serving_param(k, v)))


def _serving_param(name: str, value: str) -> bool:
    """A query parameter that says how a reader arrived or how the page was served (tracking, AMP)."""
    name = name.lower()
    if name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES) or name in AMP_PARAMS:
        return name != "outputtype" or value.lower() == "amp"
    return name == "amp" and value.lower() in AMP_FLAG_VALUES


_AMP_SEGMENT = re.compile(r"/amp(?=/|$)", re.IGNORECASE)
_AMP_SUFFIX = re.compile(r"\.amp(?=\.html?$|$)", re.IGNORECASE)


def amp_free_path(path: str) -> str:
    """A path without AMP's marks: an `amp` segment anywhere (`/amp/x`, `/x/amp`, `/x/amp/`), and
    `.amp` before `.html` or at the end (`x.amp.html`, `x.amp`)."""
    if "amp" not in path.lower():
        return path
    path = _AMP_SUFFIX.sub("", _AMP_SEGMENT.sub("", path))
    return path or "/"


def _without_amp_host(host: str) -> str:
    """`amp.example.com` as `example.com`; a host of two labels (`amp.dev`) is a site of its own."""
    if host.startswith("amp.") and host.count(".") >= 2:
        host = host[4:]
        return host[4:] if host.startswith("www.") else host
    return host


AMP_CACHE_SUFFIX = ".cdn.ampproject.org"


def amp_page(host: str, path: str) -> str | None:
    """The page an AMP cache or viewer URL serves, as `https://host/path` (its query is the caller's), or None.

    `https://www-example-com.cdn.ampproject.org/c/s/www.example.com/a` (the
    cache: `c` content, `v` viewer, `i` image, `s` for https) and
    `https://www.google.com/amp/s/www.example.com/a` (Google's viewer) both
    serve `example.com/a`.
    """
    if host.endswith(AMP_CACHE_SUFFIX):
        match = re.match(r"^/(?:c|v|i|r)/(s/)?([^/]+\.[^/]+)(/.*)?$", path)
    elif host in ("google.com", "www.google.com") or re.fullmatch(r"(?:www\.)?google\.[a-z.]{2,6}", host):
        match = re.match(r"^/amp/(s/)?([^/]+\.[^/]+)(/.*)?$", path)
    else:
        return None
    if not match:
        return None
    secure, target_host, rest = match.groups()
    return f"{'https' if secure else 'http'}://{target_host}{rest or '/'}"


def _redirect_target(host: str, path: str, query: str) -> str | None:
    if page := amp_page(host, path):
        return page + (f"?{query}" if query else "")
    for suffix, wrapper_path, names in REDIRECTS:
        if (host == suffix or host.endswith("." + suffix)) and path == wrapper_path:
            values = dict(parse_qsl(query))
            for name in names:
                if values.get(name, "").startswith(("http://", "https://")):
                    return values[name]
    return None


def identifies_page(canonical: str | None) -> bool:
    """False for a site's home page: a link there says nothing about which story an item is."""
    if not canonical:
        return False
    path_and_query = canonical.partition("/")[2]
    return bool(path_and_query.strip("/"))


def link_host(canonical: str | None) -> str | None:
    return canonical.partition("/")[0] if canonical else None
