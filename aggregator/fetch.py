"""HTTP and file: reads: conditional GET, a whole-request deadline, the decoded-size cap.

All of HTTP caching, redirects and limits live here, so the rest of the pipeline
sees one FetchResult or one FetchError.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from email.utils import parsedate_to_datetime
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urljoin, urlsplit
from urllib.request import url2pathname

import requests

from . import USER_AGENT
from .errors import FetchError
from .models import FetchResult

MAX_REDIRECTS = 5
CHUNK = 64 * 1024
ACCEPT = "application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5"

_local = threading.local()


def session() -> requests.Session:
    """One Session per worker thread: connection reuse without sharing a pool across threads."""
    s = getattr(_local, "session", None)
    if s is None:
        s = requests.Session()
        s.headers.update({"User-Agent": USER_AGENT, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"})
        s.max_redirects = MAX_REDIRECTS
        _local.session = s
    return s


def host_key(url: str) -> str:
    """host:port, the unit of politeness limits."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return f"{(parts.hostname or '').lower()}:{port}"


def fetch(url: str, *, etag: str | None = None, last_modified: str | None = None,
          timeout: float = 30.0, max_bytes: int = 10 * 1024**2) -> FetchResult:
    if url.startswith("file:"):
        return _read_file(url, max_bytes)
    return _fetch_http(url, etag, last_modified, timeout, max_bytes)


def _read_file(url: str, max_bytes: int) -> FetchResult:
    path = Path(url2pathname(urlsplit(url).path))
    try:
        with path.open("rb") as f:
            body = f.read(max_bytes + 1)
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(body) > max_bytes:
        raise FetchError(f"{path} is larger than max_bytes ({max_bytes} bytes)")
    return FetchResult(url=url, status=200, body=body, headers={"content-location": url})


class _Deadline:
    """Shuts the response's socket when the whole-request deadline passes, so a trickle cannot outlast it."""

    def __init__(self, seconds: float):
        self.expired = False
        self._response = None
        self._timer = threading.Timer(max(seconds, 0.001), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, response: requests.Response) -> None:
        self._response = response
        if self.expired:
            self._expire()

    def _expire(self) -> None:
        self.expired = True
        response = self._response
        if response is None:
            return
        connection = getattr(response.raw, "connection", None)
        sock = getattr(connection, "sock", None)
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def cancel(self) -> None:
        self._timer.cancel()


def _fetch_http(url: str, etag: str | None, last_modified: str | None,
                timeout: float, max_bytes: int) -> FetchResult:
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    started = time.monotonic()
    deadline = _Deadline(timeout)
    current, hops, all_permanent = url, 0, True
    try:
        while True:
            remaining = timeout - (time.monotonic() - started)
            if remaining <= 0:
                raise FetchError(f"timed out after {timeout:g}s")
            response = session().get(current, headers=headers, stream=True, allow_redirects=False,
                                     timeout=(min(remaining, 10.0), remaining))
            deadline.watch(response)
            if response.is_redirect:
                hops += 1
                target = urljoin(current, response.headers.get("Location", ""))
                response.close()
                if hops > MAX_REDIRECTS:
                    raise FetchError(f"more than {MAX_REDIRECTS} redirects (last to {target})", response.status_code)
                all_permanent = all_permanent and response.status_code in (301, 308)
                current = target
                continue
            permanent = current if hops and all_permanent else None
            return _read_response(response, current, permanent, max_bytes, deadline, timeout)
    except FetchError:
        raise
    except requests.exceptions.SSLError as exc:
        raise FetchError(f"TLS error: {_reason(exc)}") from exc
    except requests.exceptions.ConnectTimeout as exc:
        raise FetchError(f"connection timed out after {timeout:g}s") from exc
    except requests.exceptions.ConnectionError as exc:
        if deadline.expired:
            raise FetchError(f"timed out after {timeout:g}s") from exc
        raise FetchError(f"cannot connect: {_reason(exc)}") from exc
    except requests.exceptions.Timeout as exc:
        raise FetchError(f"timed out after {timeout:g}s") from exc
    except requests.exceptions.RequestException as exc:
        if deadline.expired:
            raise FetchError(f"timed out after {timeout:g}s") from exc
        raise FetchError(f"request failed: {_reason(exc)}") from exc
    finally:
        deadline.cancel()


def _read_response(response: requests.Response, url: str, permanent: str | None, max_bytes: int,
                   deadline: _Deadline, timeout: float) -> FetchResult:
    status = response.status_code
    headers = {k.lower(): v for k, v in response.headers.items()}
    if status == 304:
        response.close()
        return FetchResult(url=url, status=304, body=None, headers=headers, permanent_url=permanent,
                           etag=headers.get("etag"), last_modified=headers.get("last-modified"),
                           max_age=_max_age(headers))
    if status != 200:
        response.close()
        raise FetchError(f"HTTP {status} {response.reason or ''}".strip(), status, headers.get("retry-after"))
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(f"body larger than max_bytes ({max_bytes} bytes); raise max_bytes if it is a real feed")
            chunks.append(chunk)
            if deadline.expired:
                raise FetchError(f"timed out after {timeout:g}s")
    finally:
        response.close()
    if deadline.expired:
        raise FetchError(f"timed out after {timeout:g}s")
    headers.setdefault("content-location", url)
    return FetchResult(url=url, status=200, body=b"".join(chunks), headers=headers, permanent_url=permanent,
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
    """The innermost readable cause, without urllib3's object reprs."""
    text = str(exc.args[0] if exc.args else exc)
    match = re.search(r"\(Caused by \w+\((?:'[^']*'|<[^>]*>),?\s*'?(.*?)'?\)\)?$", text)
    if match and match.group(1):
        text = match.group(1)
    text = re.sub(r"<urllib3\.[^>]*>:\s*", "", text)
    return text.strip()[:300] or exc.__class__.__name__
