"""Credentials out of everything we show: the userinfo and the secret-looking query values of URLs, masked.

A source URL may carry credentials (``http://user:secret@host/feed.rss?token=KEY``). Only the request
to that source sends them; `status`, the status page, logs, error messages, `opml export` and the
outputs see them through `redact`, which masks

- the userinfo of every ``scheme://user:password@`` (all of it: a user name is often the key itself),
- the value of every query, fragment or path-segment (``;jsessionid=…``) parameter whose name is
  secret-looking: one of its words (split at ``_``, ``-``, ``.``) or the whole name is in SECRET_WORDS
  (``token``, ``api_key``, ``X-Amz-Signature``, ``apiKey``, ``jwt``; not ``keyword`` or ``monkey``).

`public_url` drops what `redact` masks, for a URL whose parts are published: the base the relative
links of a source's feed are resolved against.

`redact` takes a URL or any message with URLs and query strings in it (``more than 5 redirects (last to
http://u:p@host/x?sig=…)``, urllib3's ``… with url: /feed?token=…``), and is pure and idempotent.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "***"

SECRET_WORDS = frozenset({
    "token", "key", "password", "passwd", "pwd", "pass", "secret", "auth", "authorization", "sig",
    "signature", "session", "sid", "credential", "credentials", "apikey", "accesstoken", "authtoken",
    "apitoken", "accesskey", "secretkey", "privatekey", "clientsecret", "sessionid", "jsessionid", "phpsessid",
    "jwt", "bearer",
})

_USERINFO = re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]*@")
# a value ends at the next parameter or "?": a path segment's ;jsessionid=… is masked up to the query
_PARAMETER = re.compile(r"([?&;#])([^=&;#?\s]+)=([^&;#?\s'\"()<>]*)")
_PATH_PARAMETER = re.compile(r";([^=;/]+)=[^;/]*")  # ;name=value in a path segment


def secret_name(name: str) -> bool:
    """Whether a query parameter called `name` looks like it carries a credential."""
    lowered = unquote_plus(name).lower()
    words = re.split(r"[^a-z0-9]+", lowered)
    return any(word in SECRET_WORDS for word in words) or re.sub(r"[^a-z0-9]", "", lowered) in SECRET_WORDS


def redact(text: str) -> str:
    """`text` (a URL, or a message naming URLs) with userinfo and secret-looking parameter values masked."""
    if "@" in text:
        text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    if "=" in text:
        text = _PARAMETER.sub(_masked_parameter, text)
    return text


def _masked_parameter(match: re.Match) -> str:
    separator, name, value = match.groups()
    if value and value != MASK and secret_name(name):
        return f"{separator}{name}={MASK}"
    return match.group(0)


def public_url(url: str) -> str:
    """`url` without its userinfo, its secret-looking query parameters and its fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""  # unreadable: nothing of it is published
    if "@" not in parts.netloc and "=" not in parts.query and ";" not in parts.path and not parts.fragment:
        return url
    path = _PATH_PARAMETER.sub(lambda m: "" if secret_name(m[1]) else m[0], parts.path)
    query = "".join(part for part in re.split(r"(?=[&;])", parts.query)
                    if not secret_name(part.lstrip("&;").partition("=")[0])).lstrip("&;")
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], path, query, ""))
