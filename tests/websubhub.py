"""A small WebSub hub (W3C WebSub §5–7) on 127.0.0.1, standing in for the internet's hubs in tests.

It does what the recommendation asks of a hub, and records what it saw:

- POST / with hub.callback, hub.mode, hub.topic (hub.lease_seconds and hub.secret optional) answers 202 and
  then, on a thread of its own, verifies intent: GET callback?hub.mode=…&hub.topic=…&hub.challenge=…&
  hub.lease_seconds=…; the subscription becomes active only on a 2xx whose body is the challenge. A secret of
  200 bytes or more is refused (400). A re-request overrides the old subscription only once verified.
- `publish(topic, body)` distributes a body to every active subscriber of the topic: a POST with the topic's
  Content-Type, `Link: <hub>; rel="hub", <topic>; rel="self"` and, when the subscription has a secret,
  `X-Hub-Signature: sha256=…` (or the algorithm asked for). `forge=True` signs with a wrong key.
- `deny(topic, reason)` sends hub.mode=denied to the topic's subscribers.
- `refuse` makes it answer subscription requests with that status; `deny_requests` denies them instead of
  verifying; `lease` caps the leases it grants.

Over HTTPS when given an ssl_context (a trustme certificate the daemon is told to trust).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode

import requests


@dataclass
class Subscription:
    callback: str
    topic: str
    secret: str | None
    lease: int
    verified_at: float


@dataclass
class Hub:
    ssl_context: object = None
    refuse: int | None = None  # answer subscription requests with this status instead of 202
    deny_requests: str | None = None  # deny every request with this reason instead of verifying it
    lease: int | None = None  # the longest lease granted (else as asked, else 10 days)
    requests: list = field(default_factory=list)  # the forms of the subscription requests received
    verifications: list = field(default_factory=list)  # (mode, topic, callback status, echoed the challenge)
    active: dict = field(default_factory=dict)  # (topic, callback) -> Subscription

    def __post_init__(self):
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode("utf-8")).items()}
                status, text = hub._request(form, self.headers.get("Content-Type", ""))
                body = text.encode()
                self.close_connection = True  # no keep-alive: a stopped hub answers nobody
                self.send_response(status)
                self.send_header("Connection", "close")
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if self.ssl_context is not None:
            self.httpd.socket = self.ssl_context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{'https' if self.ssl_context else 'http'}://{host}:{port}/"

    def start(self) -> "Hub":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # the subscriber's side of the protocol

    def _request(self, form: dict, content_type: str) -> tuple[int, str]:
        with self.lock:
            self.requests.append(dict(form))
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return 400, "expected application/x-www-form-urlencoded"
        missing = [k for k in ("hub.callback", "hub.mode", "hub.topic") if not form.get(k)]
        if missing:
            return 400, f"missing {', '.join(missing)}"
        if form["hub.mode"] not in ("subscribe", "unsubscribe"):
            return 400, "hub.mode must be subscribe or unsubscribe"
        if len(form.get("hub.secret", "").encode()) >= 200:
            return 400, "hub.secret must be under 200 bytes"
        if self.refuse:
            return self.refuse, "refused by the test"
        threading.Thread(target=self._verify, args=(form,), daemon=True).start()
        return 202, "verifying"

    def _verify(self, form: dict) -> None:
        callback, topic, mode = form["hub.callback"], form["hub.topic"], form["hub.mode"]
        if self.deny_requests:
            self._get(callback, {"hub.mode": "denied", "hub.topic": topic, "hub.reason": self.deny_requests})
            return
        asked = int(form.get("hub.lease_seconds") or 864000)
        lease = min(asked, self.lease) if self.lease else asked
        challenge = secrets.token_hex(16)
        response = self._get(callback, {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge,
                                        "hub.lease_seconds": str(lease)})
        ok = response is not None and 200 <= response.status_code < 300 and response.text == challenge
        with self.lock:
            self.verifications.append((mode, topic, response.status_code if response is not None else None, ok))
            if ok and mode == "subscribe":
                self.active[(topic, callback)] = Subscription(callback, topic, form.get("hub.secret"), lease,
                                                              time.time())
            elif ok:
                self.active.pop((topic, callback), None)

    @staticmethod
    def _get(callback: str, params: dict):
        joiner = "&" if "?" in callback else "?"
        try:
            return requests.get(callback + joiner + urlencode(params), timeout=10)
        except requests.RequestException:
            return None

    # the publisher's side

    def subscribers(self, topic: str) -> list[Subscription]:
        now = time.time()
        with self.lock:
            return [s for (t, _), s in self.active.items() if t == topic and s.verified_at + s.lease > now]

    def publish(self, topic: str, body: bytes, content_type: str = "application/rss+xml",
                algorithm: str = "sha256", forge: bool = False, signature: str | None = None) -> list[int]:
        """Distribute `body` to the topic's subscribers; the status each callback answered."""
        statuses = []
        for subscription in self.subscribers(topic):
            headers = {"Content-Type": content_type, "Link": f'<{self.url}>; rel="hub", <{topic}>; rel="self"'}
            if signature is not None:  # as given ("" sends none)
                if signature:
                    headers["X-Hub-Signature"] = signature
            elif subscription.secret:
                key = ("not " + subscription.secret) if forge else subscription.secret
                digest = hmac.new(key.encode(), body, getattr(hashlib, algorithm)).hexdigest()
                headers["X-Hub-Signature"] = f"{algorithm}={digest}"
            statuses.append(requests.post(subscription.callback, data=body, headers=headers, timeout=10).status_code)
        return statuses

    def deny(self, topic: str, reason: str) -> None:
        for subscription in self.subscribers(topic):
            self._get(subscription.callback, {"hub.mode": "denied", "hub.topic": topic, "hub.reason": reason})
            with self.lock:
                self.active.pop((topic, subscription.callback), None)
