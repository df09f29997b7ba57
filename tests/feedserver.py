"""A real HTTP server on 127.0.0.1 for tests: serves feed bodies, honours validators, records requests.

It also records concurrency: the most requests it had in flight at once
(`peak`, one host:port's share of the politeness rule) and every path
requested while another request for the same path was still in flight
(`overlaps`). `delay` holds each answer that long, so overlaps have a window.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/xml"
    validators: bool = True  # send ETag/Last-Modified and answer 304 to matching conditional requests
    handler: Callable | None = None  # handler(request_handler) writes a whole custom response


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]
    time: float
    status: int = 0
    peer: tuple = ()  # the client's address and port: one per connection


class FeedServer:
    def __init__(self, host: str = "127.0.0.1", ssl_context=None):
        self.routes: dict[str, Route] = {}
        self.requests: list[SeenRequest] = []
        self.lock = threading.Lock()
        self.delay = 0.0
        self.gate = threading.Event()  # answers wait while it is cleared (to start several clients together)
        self.gate.set()
        self.in_flight: dict[str, int] = {}
        self.overlaps: list[str] = []
        self.peak = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                with server.lock:
                    server.in_flight[path] = server.in_flight.get(path, 0) + 1
                    if server.in_flight[path] > 1:
                        server.overlaps.append(path)
                    server.peak = max(server.peak, sum(server.in_flight.values()))
                self._counted = path
                try:
                    self._answer()
                finally:
                    self._answered()

            def _answered(self):
                """No longer in flight: before the first byte goes out, so the client cannot already ask again."""
                if self._counted:
                    with server.lock:
                        server.in_flight[self._counted] -= 1
                    self._counted = None

            def _answer(self):
                seen = SeenRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, time.time(),
                                   peer=self.client_address[:2])
                with server.lock:
                    server.requests.append(seen)
                    route = server.routes.get(self.path.split("?")[0])
                server.gate.wait(30)
                if server.delay:
                    time.sleep(server.delay)
                if route is None:
                    seen.status = 404
                    self._send(404, {}, b"not found")
                    return
                if route.handler:
                    route.handler(self)
                    return
                headers = {"Content-Type": route.content_type, **route.headers}
                if route.validators and route.status == 200:
                    etag = '"' + hashlib.sha1(route.body).hexdigest() + '"'
                    headers.update({"ETag": etag, "Last-Modified": "Mon, 27 Sep 2021 10:00:00 GMT"})
                    if self.headers.get("If-None-Match") == etag:
                        seen.status = 304
                        self._send(304, {"ETag": etag}, b"")
                        return
                seen.status = route.status
                self._send(route.status, headers, route.body)

            def _send(self, status, headers, body):
                self._answered()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.scheme = "http"
        if ssl_context is not None:  # HTTPS: the listening socket does the TLS handshake on accept
            self.httpd.socket = ssl_context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def serve(self, path: str, body: bytes | str = b"", **kwargs) -> str:
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.routes[path] = Route(body=body, **kwargs)
        return self.url(path)

    def seen(self, path: str) -> list[SeenRequest]:
        with self.lock:
            return [r for r in self.requests if r.path.split("?")[0] == path]

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
