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
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "__twitter", "_ga", "vero_", "itm_", "trk_")
DEFAULT_PORTS = {"http": 80, "https": 443}
# Link wrappers that carry the real target in a parameter: (host suffix, path, parameter).
REDIRECTS = (("google.com", "/url", ("url", "q")), ("facebook.com", "/l.php", ("u",)))


def canonical_link(url: str | None) -> str | None:
    """The form two links to one article share, however each outlet decorated it.

    Unwraps redirect wrappers, then folds scheme (http/https), host case,
    ``www.``, default ports, fragments, tracking parameters, query order and a
    trailing slash. The scheme is dropped so http and https copies compare equal.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip() or None
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        return url.strip() or None
    host = parts.hostname.lower().rstrip(".")
    target = _redirect_target(host, parts.path, parts.query)
    if target and target != url:
        return canonical_link(target)
    host = host[4:] if host.startswith("www.") else host
    if port and port not in DEFAULT_PORTS.values():
        host = f"{host}:{port}"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in TRACKING_PARAMS and not k.lower().startswith(TRACKING_PREFIXES)
    )
    path = re.sub(r"/{2,}", "/", parts.path) or "/"
    if len(path) > 1:
        path = path.rstrip("/")
    return urlunsplit(("", host, path, urlencode(query), ""))[2:]


def _redirect_target(host: str, path: str, query: str) -> str | None:
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
