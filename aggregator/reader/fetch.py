"""HTTP and file: reads: conditional GET, a whole-request deadline, the decoded-size cap.

All of HTTP caching, redirects and limits live here, so the rest of the pipeline
sees one FetchResult or one FetchError.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from email.utils import parsedate_to_datetime
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urljoin, urlsplit
from urllib.request import getproxies, url2pathname

import requests
import urllib3

from .. import USER_AGENT
from ..errors import FailureKind, FetchError
from ..models import FetchResult
from .body import Body, plain_headers
from .hosts import host_key
from ..redaction import redact
from .transport import AddressPolicy, AddressRefused, Watch, WatchedAdapter

MAX_REDIRECTS = 5
CHUNK = 64 * 1024
ACCEPT = ("application/atom+xml, application/rss+xml, application/feed+json, application/rdf+xml;q=0.9, "
          "application/xml;q=0.8, text/xml;q=0.8, application/json;q=0.8, */*;q=0.5")

#: What a fetch holds while it talks to one host: entered with the URL of the first request to a host:port,
#: left when the fetch is done with that host (a redirect to another one, or the last byte); waiting to enter
#: it does not count against the whole-request deadline.
Slot = Callable[[str], AbstractContextManager]

_local = threading.local()


def session() -> requests.Session:
    """One Session per worker thread: connection reuse without sharing a pool across threads."""
    s = getattr(_local, "session", None)
    if s is None:
        s = requests.Session()
        s.headers.update({"User-Agent": USER_AGENT, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"})
        s.max_redirects = MAX_REDIRECTS
        _read_environment_once(s)
        adapter = WatchedAdapter()
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        _local.session = s
    return s


def _read_environment_once(s: requests.Session) -> None:
    """requests re-reads proxies, CA bundle and netrc from the environment on every request, a third of
    what a 304 costs; without proxies or a netrc (whose rules are per host), read the bundle once instead."""
    if getproxies() or os.environ.get("NETRC") or os.path.exists(os.path.expanduser("~/.netrc")):
        return
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        s.verify = bundle
    s.trust_env = False


def fetch(url: str, *, etag: str | None = None, last_modified: str | None = None,
          timeout: float = 30.0, max_bytes: int = 10 * 1024**2, policy: AddressPolicy | None = None,
          shown: str | None = None, slot: Slot = nullcontext) -> FetchResult:
    """One source read; ``policy`` says which addresses count as internal (default: from the environment);
    ``shown``: how messages name a file: source (the URL as configured, not the local path); ``slot``: what
    the read holds while it talks to a host (default: nothing)."""
    if url.startswith("file:"):
        return _read_file(url, max_bytes, shown or url)
    return _fetch_http(url, etag, last_modified, timeout, max_bytes, policy, slot)


def _read_file(url: str, max_bytes: int, shown: str) -> FetchResult:
    path = Path(url2pathname(urlsplit(url).path))  # the one percent-decoding (config.loader encoded it)
    body = Body(max_bytes, f"{shown} is larger than max_bytes ({max_bytes} bytes)")
    try:
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                body.add(chunk)
    except OSError as exc:
        raise FetchError(f"cannot read {shown}: {exc.strerror or exc.__class__.__name__}", kind=FailureKind.FILE) from exc
    return FetchResult(url=url, status=200, body=body.bytes(), headers={"content-location": url})


def _fetch_http(url: str, etag: str | None, last_modified: str | None,
                timeout: float, max_bytes: int, policy: AddressPolicy | None, slot: Slot) -> FetchResult:
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    policy = policy or AddressPolicy.from_environment()
    watch = Watch(timeout, policy, check_addresses=not _proxied(url))
    current, hops, all_permanent, host = url, 0, True, None
    try:
        with watch, ExitStack() as held:
            while True:
                if host_key(current) != host:  # one host at a time: a redirect elsewhere leaves the last one's slot
                    held.close()
                    host = host_key(current)
                    held.enter_context(slot(current))
                    held.enter_context(watch.running())
                remaining = watch.remaining()
                if remaining <= 0:
                    raise FetchError(f"timed out after {timeout:g}s", kind=FailureKind.TIMEOUT)
                watch.hop = hops
                try:
                    response = session().get(current, headers=headers, stream=True, allow_redirects=False,
                                             timeout=(min(remaining, 10.0), remaining))
                except ValueError as exc:
                    if isinstance(exc, requests.exceptions.RequestException):
                        raise
                    raise _unreadable(exc) from exc  # requests parses a Location even when not following it
                if response.is_redirect:
                    hops += 1
                    response.close()
                    try:
                        target = urljoin(current, response.headers.get("Location", ""))
                        host_key(target)
                    except ValueError as exc:
                        raise _unreadable(exc) from exc
                    if hops > MAX_REDIRECTS:
                        raise FetchError(f"more than {MAX_REDIRECTS} redirects (last to {redact(target)})",
                                         response.status_code, kind=FailureKind.REDIRECT)
                    all_permanent = all_permanent and response.status_code in (301, 308)
                    current = target
                    continue
                permanent = current if hops and all_permanent else None
                return _read_response(response, current, permanent, max_bytes, watch, timeout)
    except FetchError:
        raise
    except AddressRefused as exc:
        raise FetchError(str(exc), kind=FailureKind.ADDRESS) from exc
    except requests.exceptions.RequestException as exc:
        raise _request_error(exc, watch, timeout) from exc


def _unreadable(exc: ValueError) -> FetchError:
    return FetchError(f"redirected to an unreadable URL ({exc})", kind=FailureKind.REDIRECT)  # http://[bad


def _request_error(exc: requests.exceptions.RequestException, watch: Watch, timeout: float) -> FetchError:
    """requests' exception as one line naming what went wrong (refusal and deadline first: they cause others),
    and its kind: whether a connection was made at all decides whether an outage could explain it."""
    cause = _cause(exc)
    if watch.refused:
        return FetchError(watch.refused, kind=FailureKind.ADDRESS)
    if isinstance(exc, requests.exceptions.ConnectTimeout) or (
            isinstance(cause, urllib3.exceptions.ConnectTimeoutError)
            and not isinstance(cause, urllib3.exceptions.NewConnectionError)):
        return FetchError("timed out connecting: no server accepted the connection in time", kind=FailureKind.CONNECT)
    if watch.expired or isinstance(exc, requests.exceptions.Timeout):
        return FetchError(f"timed out after {timeout:g}s (the whole request, connect to last byte)",
                          kind=FailureKind.TIMEOUT)
    if isinstance(exc, requests.exceptions.SSLError):
        return FetchError(f"TLS error: {_reason(exc)}", kind=FailureKind.TLS)
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return FetchError(f"more than {MAX_REDIRECTS} redirects", kind=FailureKind.REDIRECT)
    if isinstance(exc, requests.exceptions.InvalidSchema):
        return FetchError(f"redirected to an unsupported URL scheme: {_reason(exc)}", kind=FailureKind.REDIRECT)
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = _reason(exc)
        if isinstance(cause, urllib3.exceptions.NameResolutionError):
            return FetchError(f"DNS error: {text}; check the host name", kind=FailureKind.DNS)
        if isinstance(cause, urllib3.exceptions.NewConnectionError) or isinstance(
                exc, requests.exceptions.ProxyError):
            return FetchError(f"cannot connect: {text}", kind=FailureKind.CONNECT)
        return FetchError(f"connection broken: {text}", kind=FailureKind.BROKEN)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):  # the body ended before its promised length
        return FetchError(f"request failed: {_reason(exc)}", kind=FailureKind.BROKEN)
    return FetchError(f"request failed: {_reason(exc)}")


def _cause(exc: requests.exceptions.RequestException) -> object:
    """urllib3's own exception under requests' (MaxRetryError's reason), which says how far the request got."""
    inner = exc.args[0] if exc.args else None
    return getattr(inner, "reason", None) or inner


def _proxied(url: str) -> bool:
    """Whether requests would send this URL through a proxy (the address guard cannot see past one)."""
    s = session()
    proxies = s.proxies or (requests.utils.get_environ_proxies(url) if s.trust_env else {})
    return bool(requests.utils.select_proxy(url, proxies))


def _read_response(response: requests.Response, url: str, permanent: str | None, max_bytes: int,
                   deadline: Watch, timeout: float) -> FetchResult:
    status = response.status_code
    headers = {k.lower(): v for k, v in response.headers.items()}
    if status == 304:
        _ = response.content  # a 304 has no body: read, it releases the connection for the next poll to reuse
        response.close()
        return FetchResult(url=url, status=304, body=None, headers=headers, permanent_url=permanent,
                           etag=headers.get("etag"), last_modified=headers.get("last-modified"),
                           max_age=_max_age(headers))
    if status != 200:
        response.close()
        raise FetchError(f"HTTP {status} {response.reason or ''}".strip(), status, headers.get("retry-after"),
                         kind=FailureKind.HTTP)
    body = Body(max_bytes, f"body larger than max_bytes ({max_bytes} bytes); raise max_bytes if it is a real feed")
    try:
        for chunk in response.iter_content(CHUNK):
            body.add(chunk)
            if deadline.expired:
                break
        if deadline.expired:
            raise FetchError(f"timed out after {timeout:g}s (the whole request, connect to last byte)",
                             kind=FailureKind.TIMEOUT)
    except FetchError as exc:
        raise exc.answered(status)
    except requests.exceptions.RequestException as exc:  # the deadline shut a body with a length, or chunks
        raise _request_error(exc, deadline, timeout).answered(status) from exc
    finally:
        response.close()
    headers.setdefault("content-location", url)
    return FetchResult(url=url, status=200, body=body.bytes(), headers=plain_headers(headers, body),
                       permanent_url=permanent,
                       etag=headers.get("etag"), last_modified=headers.get("last-modified"),
                       max_age=_max_age(headers))


def _max_age(headers: dict[str, str]) -> int | None:
    match = re.search(r"max-age\s*=\s*(\d+)", headers.get("cache-control", ""))
    return int(match.group(1)) if match else None


def retry_after(value: str | None, now: datetime) -> datetime | None:
    """The time a Retry-After header (seconds or an HTTP date) forbids polling before."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return now + timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def _reason(exc: Exception) -> str:
    """The innermost readable cause, without urllib3's retry wrapper and connection reprs."""
    inner = exc.args[0] if exc.args else exc
    inner = getattr(inner, "reason", None) or inner  # MaxRetryError carries the real cause
    if isinstance(inner, Exception) and inner.args and isinstance(inner.args[0], Exception):
        inner = inner.args[0]  # urllib3's SSLError wraps ssl's own error
    text = str(inner)
    text = re.sub(r"^\w+\(host='[^']*', port=\d+\):\s*", "", text)
    text = re.sub(r"<urllib3\.[^>]*>:\s*", "", text)
    return " ".join(text.split())[:300] or exc.__class__.__name__
