"""Realistic generated feeds and a loopback server for the benchmarks.

Feeds are RSS 2.0 and Atom documents whose item counts and sizes are drawn
from the real feeds in tests/fixtures/corpus/real/ (about 60 items and 240 KB
each by default), with article text taken from those feeds; a share of items
is cross-posted between feeds (another guid, a tracking parameter on the
link, a decorated title), as republishers do.

The server runs in its own process, serves every feed from memory, honours
ETag/Last-Modified for the feeds that have validators, and can change a
fraction of the feeds between rounds. It can listen on several ports, each
a host:port of its own to the aggregator's politeness rules, and counts the
requests it answered.
"""

from __future__ import annotations

import hashlib
import html
import multiprocessing
import random
import re
import threading
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "corpus" / "real"
BASE_TIME = datetime(2026, 11, 1, tzinfo=timezone.utc)


def corpus_paragraphs() -> list[str]:
    """Paragraphs of real article HTML (links, emphasis, images and all), to fill generated items."""
    import feedparser

    paragraphs = []
    for path in sorted(CORPUS.rglob("*")):
        if path.suffix not in (".xml", ".rss", ".atom", ".rdf"):
            continue
        for entry in feedparser.parse(path.read_bytes()).entries:
            text = entry.get("content", [{}])[0].get("value") or entry.get("summary") or ""
            for part in re.split(r"</p>|<br\s*/?>|\n\n", text):
                plain = " ".join(re.sub(r"<[^>]+>", " ", part).split())
                if 80 <= len(plain) <= 1500 and "<" in part:
                    paragraphs.append(part.strip() + "</p>")
    return paragraphs


def _own_words(paragraph: str, mark: str) -> str:
    """The paragraph with every third word of its text made this story's own.

    Items are built from a pool of real paragraphs; without this, unrelated
    items would share whole paragraphs, which real articles do not, and the
    near-duplicate index would be measured on an unrealistic candidate storm.
    """
    def mark_words(match: re.Match) -> str:
        words = match.group(1).split(" ")
        return ">" + " ".join(w + mark if i % 3 == 0 and w.isalpha() else w for i, w in enumerate(words)) + "<"

    return re.sub(r">([^<]+)<", mark_words, paragraph)


class FeedSet:
    """N feeds, deterministic for a seed; `change(fraction)` adds a new item to that share of them."""

    def __init__(self, count: int, seed: int = 1, items: int = 60, item_bytes: int = 2900,
                 cross_post: float = 0.07, no_validators: float = 0.0):
        self.rng = random.Random(seed)
        self.paragraphs = corpus_paragraphs()
        self.count, self.items, self.item_bytes = count, items, item_bytes
        self.no_validators = set(self.rng.sample(range(count), int(count * no_validators)))
        self.stories: list[list[dict]] = [[self._story(f, i) for i in range(items)] for f in range(count)]
        for f in range(count):  # cross-post a share of items from a random other feed
            for i in range(int(items * cross_post)):
                other = self.rng.randrange(count)
                if other != f:
                    original = self.stories[other][i + 1]
                    self.stories[f][-(i + 1)] = {
                        **original, "guid": f"urn:x-bench:feed{f}-repost-{i}",
                        "link": original["link"] + "?utm_source=feed&utm_medium=rss",
                        "title": original["title"] + f" | Feed {f}",
                        "published": original["published"] + timedelta(hours=3)}
        self.version = [0] * count
        self.bodies = [self.render(f) for f in range(count)]

    def _story(self, feed: int, index: int, serial: int = 0) -> dict:
        text, size = [], 0
        mark = f"{feed}x{index}x{serial}"
        while size < self.item_bytes:
            paragraph = _own_words(self.rng.choice(self.paragraphs), mark)
            text.append(paragraph)
            size += len(paragraph)
        words = html.unescape(re.sub(r"<[^>]+>", " ", self.rng.choice(self.paragraphs))).split()[:10]
        words = [w + mark if i % 3 == 0 else w for i, w in enumerate(words)]  # titles are unique too
        return {
            "guid": f"https://site{feed}.example/story/{index}-{serial}",
            "link": f"https://site{feed}.example/{2026}/{index:04d}/story-{serial}",
            "title": " ".join(words) + f" ({feed}.{index}.{serial})",
            "published": BASE_TIME - timedelta(hours=index * 3 + feed % 7) + timedelta(minutes=serial),
            "content": "".join(text),
        }

    def change(self, fraction: float) -> list[int]:
        """Add a new item on top of `fraction` of the feeds; returns the feeds changed."""
        changed = self.rng.sample(range(self.count), int(self.count * fraction))
        for f in changed:
            self.version[f] += 1
            story = self._story(f, 0, self.version[f])
            story["published"] = BASE_TIME + timedelta(hours=self.version[f])
            self.stories[f] = [story] + self.stories[f][:-1]
            self.bodies[f] = self.render(f)
        return changed

    def render(self, f: int) -> bytes:
        return (self._atom(f) if f % 2 else self._rss(f)).encode("utf-8")

    def _rss(self, f: int) -> str:
        items = "".join(
            f"<item><title>{html.escape(s['title'])}</title><link>{html.escape(s['link'])}</link>"
            f"<guid isPermaLink=\"false\">{s['guid']}</guid><pubDate>{format_datetime(s['published'])}</pubDate>"
            f"<description>{html.escape(s['content'])}</description></item>" for s in self.stories[f])
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Feed {f}</title>'
                f"<link>https://site{f}.example/</link><description>Generated feed {f}</description>{items}"
                "</channel></rss>")

    def _atom(self, f: int) -> str:
        entries = "".join(
            f"<entry><title>{html.escape(s['title'])}</title><link href=\"{html.escape(s['link'])}\"/>"
            f"<id>{s['guid']}</id><published>{s['published'].isoformat()}</published>"
            f"<updated>{s['published'].isoformat()}</updated><author><name>Writer {f}</name></author>"
            f"<content type=\"html\">{html.escape(s['content'])}</content></entry>" for s in self.stories[f])
        return (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
                f"<title>Feed {f}</title><id>urn:x-bench:feed:{f}</id><link href=\"https://site{f}.example/\"/>"
                f"<updated>{BASE_TIME.isoformat()}</updated>{entries}</feed>")


def _serve(port_queue, commands, count: int, seed: int, no_validators: float, hosts: int = 1):
    feeds = FeedSet(count, seed=seed, no_validators=no_validators)
    etags = [hashlib.md5(b).hexdigest() for b in feeds.bodies]
    lock = threading.Lock()
    answered = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            match = re.fullmatch(r"/feed/(\d+)", self.path)
            if not match or int(match.group(1)) >= count:
                self.send_error(404)
                return
            f = int(match.group(1))
            with lock:
                body, etag = feeds.bodies[f], f'"{etags[f]}"'
                answered[0] += 1
            validators = f not in feeds.no_validators
            if validators and self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            if validators:
                self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(body)

    servers = []
    for _ in range(hosts):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.request_queue_size = 256
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    port_queue.put([server.server_address[1] for server in servers])
    while True:
        command = commands.get()
        if command is None:
            break
        name, value = command
        reply = "ok"
        with lock:
            if name == "change":
                for f in feeds.change(value):
                    etags[f] = hashlib.md5(feeds.bodies[f]).hexdigest()
            elif name == "validators":
                feeds.no_validators = set() if value else set(range(count))
            elif name == "answered":
                reply = answered[0]
        port_queue.put(reply)
    for server in servers:
        server.shutdown()


class FeedServer:
    """The loopback feed server, in a process of its own so it does not share our GIL."""

    def __init__(self, count: int, seed: int = 1, no_validators: float = 0.0, hosts: int = 1):
        self.count = count
        self._replies = multiprocessing.Queue()
        self._commands = multiprocessing.Queue()
        self.process = multiprocessing.Process(target=_serve, args=(self._replies, self._commands, count, seed,
                                                                    no_validators, hosts), daemon=True)
        self.process.start()
        self.ports = self._replies.get(timeout=600)
        self.port = self.ports[0]

    def urls(self) -> list[str]:
        """Feed f is served on the (f mod hosts)-th port."""
        return [f"http://127.0.0.1:{self.ports[f % len(self.ports)]}/feed/{f}" for f in range(self.count)]

    def answered(self) -> int:
        """Requests answered so far (200s and 304s)."""
        self._commands.put(("answered", None))
        return self._replies.get(timeout=600)

    def change(self, fraction: float) -> None:
        self._commands.put(("change", fraction))
        self._replies.get(timeout=600)

    def validators(self, on: bool) -> None:
        self._commands.put(("validators", on))
        self._replies.get(timeout=600)

    def stop(self) -> None:
        self._commands.put(None)
        self.process.join(timeout=10)
