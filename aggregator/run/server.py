"""Serving the output folder over HTTP (`server.listen`): feeds and pages, the operator's /status, /healthz.

A WSGI app run by waitress, a production server. Files are served with the
feed media types, an ETag (a hash of the bytes) and Last-Modified, answered
with 304 to conditional requests, and gzipped for clients that accept it.
Only regular, non-hidden files inside the folder are served (publishing's
temporary files start with a dot). `/` is the published index.html.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Callable

from .. import PROJECT_URL, __version__
from ..config import Config
from ..errors import AggregatorError
from ..redaction import MASK
from ..store import Store
from .status import advice, relative, source_rows

log = logging.getLogger("aggregator.server")

CONTENT_TYPES = {
    ".atom": "application/atom+xml",
    ".rss": "application/rss+xml",
    ".json": "application/feed+json",
    ".xsl": "text/xsl",
    ".opml": "text/x-opml",
    ".xml": "application/xml",
    ".html": "text/html",
    ".css": "text/css",
    ".txt": "text/plain",
}
FORMAT_FILES = (("atom", "Atom"), ("rss", "RSS"), ("json", "JSON Feed"))
CACHE_CONTROL = "public, max-age=60"
MIN_GZIP = 256  # bytes; smaller bodies are not worth compressing
CACHE_FILES = 64
#: Connections served at once: idle ones (a half-sent request, a kept-alive reader) cost a descriptor and a few
#: KB each, no thread, so a thousand of them leave the others answered. Fewer when the descriptor limit is low.
MAX_CONNECTIONS = 4096
RESERVED_DESCRIPTORS = 256  # kept for all but the clients: the state, the polls' sockets, files being written
CHANNEL_TIMEOUT = 30  # seconds a connection may stay silent (a request half sent included) before it is closed


class ServerError(AggregatorError):
    """The server cannot listen (address in use, permission)."""

    stage = "server"


@dataclass(frozen=True)
class Representation:
    body: bytes
    gzipped: bytes | None
    etag: str
    modified: float  # mtime, seconds


class FileCache:
    """The bytes (and gzip) of recently served files, keyed by what fstat says, so a replaced file is re-read."""

    def __init__(self, size: int = CACHE_FILES):
        self._size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple, Representation] = OrderedDict()

    def get(self, path: Path, compressible: bool) -> Representation | None:
        try:
            with path.open("rb") as f:
                info = os.fstat(f.fileno())
                key = (str(path), info.st_ino, info.st_size, info.st_mtime_ns)
                with self._lock:
                    if key in self._items:
                        self._items.move_to_end(key)
                        return self._items[key]
                body = f.read()
        except OSError:  # gone, a folder, unreadable, or a name the filesystem refuses
            return None
        zipped = gzip.compress(body, mtime=0) if compressible and len(body) >= MIN_GZIP else None
        item = Representation(body, zipped, '"' + hashlib.sha1(body).hexdigest()[:24] + '"', info.st_mtime)
        with self._lock:
            self._items[key] = item
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return item


class App:
    """The WSGI application; reads the current config on every request, so a reload takes effect at once."""

    def __init__(self, current: Callable[[], Config], store: Store, health: Callable[[], tuple[bool, dict]],
                 routes: Callable | None = None):
        self.current = current
        self.store = store
        self.health = health
        self.routes = routes  # environ -> (status, body, headers) or None: the daemon's paths (/metrics, /websub/…)
        self.files = FileCache()

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        answer = self.routes(environ) if self.routes else None
        if answer is not None:
            return _send(start_response, *answer, method)
        if method not in ("GET", "HEAD"):
            return _send(start_response, "405 Method Not Allowed", b"only GET and HEAD\n",
                         [("Allow", "GET, HEAD"), ("Content-Type", "text/plain; charset=utf-8")], method)
        path = environ.get("PATH_INFO") or "/"
        try:
            if path == "/":
                path = "/index.html"  # the published page, as any web server serving the folder would answer
            if path == "/status":
                return self.status(start_response, method)
            if path == "/healthz":
                return self.healthz(start_response, method)
            return self.file(environ, start_response, method, path)
        except AggregatorError as exc:
            log.error("%s: %s", path, exc)
            return _send(start_response, "503 Service Unavailable", f"{exc}\n".encode(),
                         [("Content-Type", "text/plain; charset=utf-8")], method)

    def file(self, environ, start_response, method: str, path: str):
        config = self.current()
        target = _inside(config.output_dir, path)
        suffix = target.suffix.lower() if target else ""
        kind = CONTENT_TYPES.get(suffix, "application/octet-stream")
        item = self.files.get(target, kind.startswith("text/") or kind.endswith(("xml", "json"))) if target else None
        if item is None:
            return _send(start_response, "404 Not Found", b"not found\n",
                         [("Content-Type", "text/plain; charset=utf-8")], method)
        zipped = item.gzipped is not None and accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", ""))
        etag = item.etag[:-1] + '-gz"' if zipped else item.etag
        headers = [("ETag", etag), ("Last-Modified", formatdate(item.modified, usegmt=True)),
                   ("Cache-Control", CACHE_CONTROL)]
        if item.gzipped is not None:
            headers.append(("Vary", "Accept-Encoding"))
        if not_modified(environ, (item.etag, item.etag[:-1] + '-gz"'), item.modified):
            return _send(start_response, "304 Not Modified", b"", headers, method)
        if kind.startswith("text/") or kind.endswith(("xml", "json")):
            kind += "; charset=utf-8"
        headers.append(("Content-Type", kind))
        if zipped:
            headers.append(("Content-Encoding", "gzip"))
        return _send(start_response, "200 OK", item.gzipped if zipped else item.body, headers, method)

    def status(self, start_response, method: str):
        config = self.current()
        rows = source_rows(self.store, config, public=True)
        body = render_status(config, rows, datetime.now(timezone.utc)).encode("utf-8")
        return _send(start_response, "200 OK", body, [("Content-Type", "text/html; charset=utf-8"),
                                                      ("Cache-Control", "no-cache")], method)

    def healthz(self, start_response, method: str):
        ok, detail = self.health()
        body = json.dumps({"status": "ok" if ok else "unavailable", **detail}).encode() + b"\n"
        return _send(start_response, "200 OK" if ok else "503 Service Unavailable", body,
                     [("Content-Type", "application/json"), ("Cache-Control", "no-store")], method)


def _send(start_response, status: str, body: bytes, headers: list, method: str):
    if not status.startswith("304"):
        headers = headers + [("Content-Length", str(len(body)))]
    start_response(status, headers)
    return [b""] if method == "HEAD" or status.startswith("304") else [body]


def _inside(root: Path, path: str) -> Path | None:
    """The regular, non-hidden file `path` names inside root, or None (no .., no dotfiles, no escaping links)."""
    parts = path.split("/")[1:]
    if not parts or any(not p or p.startswith(".") or "\\" in p or "\0" in p for p in parts):
        return None
    try:
        base = root.resolve()
        target = base.joinpath(*parts).resolve()
        if not target.is_relative_to(base) or not target.is_file():
            return None
    except (OSError, ValueError):  # a name too long for the filesystem (ENAMETOOLONG), a loop of links
        return None
    return target


def accepts_gzip(header: str) -> bool:
    for part in header.split(","):
        token, _, params = part.strip().partition(";")
        if token.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and _float(q[2:]) == 0)
    return False


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 1.0


def not_modified(environ, etags: tuple[str, ...], modified: float) -> bool:
    """RFC 9110 §13.1: If-None-Match (weak comparison) wins; else If-Modified-Since against the mtime, unless
    it is later than now."""
    match = environ.get("HTTP_IF_NONE_MATCH")
    if match is not None:
        tags = {t.strip().removeprefix("W/") for t in match.split(",")}
        return "*" in tags or any(e in tags for e in etags)
    since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if since:
        try:
            when = parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError, OverflowError):
            return False
        # RFC 9110 §13.1.3: a date later than the server's clock is invalid, and the header is ignored
        return when <= time.time() and int(modified) <= when
    return False


def render_status(config: Config, rows: list[dict], now: datetime) -> str:
    """The operator's page at /status: every output with subscribe links, every source's health.

    Source URLs are shown without credentials, and a file: source as its id alone (no local paths)."""
    e = html.escape
    outputs, discovery = [], []
    for output in config.outputs:
        links = []
        for fmt, label in FORMAT_FILES:
            name = f"{output.id}.{fmt}"
            if fmt in output.formats and (config.output_dir / name).is_file():
                links.append(f'<a href="{e(name)}">{label}</a>')
                discovery.append(f'<link rel="alternate" type="{CONTENT_TYPES["." + fmt]}" '
                                 f'title="{e(output.title)}" href="{e(name)}">')
        subscribe = e(config.base_url + f"{output.id}.atom")
        outputs.append(
            f"<li><h3>{e(output.title)}</h3>" + (f"<p>{e(output.subtitle)}</p>" if output.subtitle else "")
            + f"<p>{' · '.join(links) or 'not published yet'} — subscribe: <code>{subscribe}</code></p></li>")
    sources = []
    for row in rows:
        linked = row["url"].startswith(("http://", "https://")) and MASK not in row["url"]  # no file:, no ***@
        sources.append(
            f'<tr class="{e(row["state"])}"><td>'
            + (f'<a href="{e(row["url"])}">{e(row["id"])}</a>' if linked else e(row["id"])) + '</td>'
            f'<td>{e(row["state"])}</td><td title="{e(row["last_success"] or "")}">{e(relative(row["last_success"], now))}</td>'
            f'<td>{e(row["last_error"] or row["warning"] or "")}</td>'
            f'<td title="{e(row["next_poll"] or "")}">{e(relative(row["next_poll"], now))}</td>'
            f'<td>{row["entries"]}</td></tr>')
    notes = "".join(f"<li>{e(line)}</li>" for line in advice(config, rows, public=True))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
{''.join(discovery)}
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}td,th{{padding:.2em .6em;
text-align:left;vertical-align:top}}tr.failing td,tr.gone td{{color:#a00}}code{{background:#eee}}</style></head>
<body><h1>Status</h1><p><a href="index.html">The published pages</a>. Paste a subscribe address into your feed reader.</p>
<ul>{''.join(outputs)}</ul>
<h2>Sources</h2><table><tr><th>source</th><th>state</th><th>last success</th><th>last error</th>
<th>next poll</th><th>entries</th></tr>{''.join(sources)}</table>
{f'<h2>To do</h2><ul>{notes}</ul>' if notes else ''}
<p><small>aggregator {e(__version__)} · <a href="{e(PROJECT_URL)}">project</a> ·
<a href="healthz">health</a></small></p></body></html>
"""


def raise_descriptor_limit() -> int:
    """Raise this process's soft limit on open descriptors to its hard limit; the soft limit it ends with."""
    try:
        import resource
    except ImportError:  # not a Unix
        return MAX_CONNECTIONS + RESERVED_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_CONNECTIONS + RESERVED_DESCRIPTORS if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):  # macOS refuses more than its OPEN_MAX: keep the soft limit
            pass
    return soft if soft != resource.RLIM_INFINITY else wanted


class Server:
    """waitress serving App on one address, in a thread of its own."""

    def __init__(self, app: App, address: tuple[str, int]):
        import waitress

        host, port = address
        self.connections = max(16, min(MAX_CONNECTIONS, raise_descriptor_limit() - RESERVED_DESCRIPTORS))
        try:
            # poll(), not select(): select cannot watch a descriptor numbered 1024 or more
            self._server = waitress.create_server(
                app, host=host, port=port, threads=4, ident="aggregator", clear_untrusted_proxy_headers=True,
                connection_limit=self.connections, channel_timeout=CHANNEL_TIMEOUT, cleanup_interval=5,
                asyncore_use_poll=True)
        except OSError as exc:
            raise ServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                              "change server.listen or stop what uses that address") from exc
        self.address = (host, getattr(self._server, "effective_port", port))
        self._thread = threading.Thread(target=self._run, name="server", daemon=True)

    def _run(self) -> None:
        try:
            self._server.run()
        except Exception as exc:  # the loop dies only at shutdown, when its sockets are closed under it
            log.debug("server loop ended: %s", exc)

    def start(self) -> "Server":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.task_dispatcher.shutdown(timeout=2)  # requests being answered finish before the sockets close
        self._server.close()
        self._thread.join(timeout=5)
