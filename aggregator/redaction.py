"""Credentials out of everything we show: the userinfo and the secret-looking query values of URLs, masked.

A source URL may carry credentials (``http://user:secret@host/feed.rss?token=KEY``). Only the request
to that source sends them; `status`, the status page, logs, error messages, `opml export` and the
outputs see them through `redact`, which masks

- the userinfo of every ``scheme://user:password@`` (all of it: a user name is often the key itself),
- the value of every query (or fragment) parameter whose name is secret-looking: one of its words
  (split at ``_``, ``-``, ``.``) or the whole name is in SECRET_WORDS (``token``, ``api_key``,
  ``X-Amz-Signature``, ``apiKey``; not ``keyword`` or ``monkey``).

It takes a URL or any message with URLs and query strings in it (``more than 5 redirects (last to
http://u:p@host/x?sig=…)``, urllib3's ``… with url: /feed?token=…``), and is pure and idempotent.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

MASK = "***"

SECRET_WORDS = frozenset({
    "token", "key", "password", "passwd", "pwd", "pass", "secret", "auth", "authorization", "sig",
    "signature", "session", "sid", "credential", "credentials", "apikey", "accesstoken", "authtoken",
    "apitoken", "accesskey", "secretkey", "privatekey", "clientsecret", "sessionid",
})

_USERINFO = re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]*@")
_PARAMETER = re.compile(r"([?&;#])([^=&;#?\s]+)=([^&;#\s'\"()<>]*)")


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
