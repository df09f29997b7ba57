"""Shared helpers of the hostile-input tests: hostile feeds, hostile server behaviours, measured CLI runs.

Each server behaviour is a Route handler for tests/feedserver.py; each feed
builder says in its docstring what the case is.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).parent.parent
HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
ATOM = "{http://www.w3.org/2005/Atom}"


def hostile_fixture(name: str, **values: str) -> bytes:
    """A fixture file with its {placeholders} filled in (plain replace: XML is full of braces)."""
    text = (HOSTILE / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text.encode("utf-8")


def rss(items: str, title: str = "Hostile source", link: str = "https://hostile.example/") -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>{title}</title>'
            f'<link>{link}</link><description>d</description>{items}</channel></rss>').encode("utf-8")


def rss_item(title: str, link: str, description: str = "", pub: str = "Mon, 27 Sep 2021 10:00:00 GMT",
             guid: str | None = None) -> str:
    return (f"<item><title>{title}</title><link>{link}</link><guid>{guid or link}</guid>"
            f"<pubDate>{pub}</pubDate><description>{description}</description></item>")


def quadratic_blowup(entity_size: int = 100_000, references: int = 20_000) -> bytes:
    """One 100 KB internal entity referenced 20,000 times: ~195 KB that expands to 2 GB."""
    head = f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "{"A" * entity_size}">\n]>\n'
    return (head + '<rss version="2.0"><channel><title>Quadratic</title><link>https://hostile.example/</link>'
            '<item><title>bomb</title><link>https://hostile.example/q</link><description>'
            + "&a;" * references + "</description></item></channel></rss>").encode("ascii")


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    max_rss_mb: float
    seconds: float


def run_cli_measured(*args: str, config: Path, timeout: float = 120, memory_limit: int = 3 * 1024**3,
                     file_size_limit: int | None = None, env: dict | None = None) -> Measured:
    """The real CLI as a subprocess, with its peak memory, under an address-space (and file-size) limit."""

    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        if file_size_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "aggregator", "-c", str(config), *args], cwd=str(ROOT),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limits,
                               env={**os.environ, **(env or {})})
    out, err = [], []
    readers = [threading.Thread(target=lambda s=s, b=b: b.append(s.read()), daemon=True)
               for s, b in ((process.stdout, out), (process.stderr, err))]
    for r in readers:
        r.start()
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.02)
    process.returncode = os.waitstatus_to_exitcode(status)
    for r in readers:
        r.join(5)
    return Measured(process.returncode, "".join(out), "".join(err), usage.ru_maxrss / 1024,
                    time.monotonic() - started)


def output_entries(path: Path) -> list[etree._Element]:
    """The entries of an Atom output, parsed strictly (a broken file fails the test here)."""
    return etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)).getroot().findall(
        f"{ATOM}entry")


def entry_text(entry: etree._Element, tag: str) -> str:
    node = entry.find(f"{ATOM}{tag}")
    return node.text or "" if node is not None else ""


# Server behaviours: Route handlers for tests/feedserver.py.

def trickle(where: str = "body", interval: float = 0.2, stop: threading.Event | None = None):
    """Never finishes: one byte per `interval` of an endless header line, or of an endless body (`sized`: one
    that says its length).

    Every read gets a byte well within any per-read timeout, so only a
    deadline on the whole request ends it.
    """
    stop = stop or threading.Event()

    def handler(request):
        if where == "headers":
            request.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        elif where == "sized":  # a body promising its length, as most servers send it
            request.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 100000\r\n\r\n"
                                b'<?xml version="1.0"?><rss version="2.0"><channel><title>')
        else:
            request.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nConnection: close\r\n\r\n"
                                b'<?xml version="1.0"?><rss version="2.0"><channel><title>')
        request.close_connection = True
        try:
            while not stop.wait(interval):
                request.wfile.write(b"a")
                request.wfile.flush()
        except OSError:
            return

    return handler


def hang(stop: threading.Event, seconds: float = 60.0):
    """Accepts the request and never answers (until the test ends)."""

    def handler(request):
        stop.wait(seconds)
        request.close_connection = True

    return handler


def inflating(decoded_size: int, encoding: str = "gzip"):
    """A small compressed body that inflates to `decoded_size` bytes (a gzip bomb)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31 if encoding == "gzip" else 15)
    block = b"\0" * (1024 * 1024)
    parts = [compressor.compress(b'<?xml version="1.0"?><rss version="2.0"><channel><title>')]
    for _ in range(decoded_size // len(block)):
        parts.append(compressor.compress(block))
    parts.append(compressor.flush())
    payload = b"".join(parts)

    def handler(request):
        request.send_response(200)
        request.send_header("Content-Type", "application/rss+xml")
        request.send_header("Content-Encoding", encoding)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        try:
            request.wfile.write(payload)
        except OSError:
            pass

    handler.payload_size = len(payload)
    return handler


def redirect(location: str, status: int = 302):
    def handler(request):
        request.send_response(status)
        request.send_header("Location", location)
        request.send_header("Content-Length", "0")
        request.end_headers()

    return handler


# What a sanitised fragment may not contain (SPEC §7).

FORBIDDEN_TAGS = {"script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "form", "input",
                  "button", "textarea", "select", "isindex", "meta", "base", "link", "svg", "math", "noscript",
                  "template", "xml", "xmp", "plaintext", "title", "html", "head", "body", "bgsound", "marquee"}
FORBIDDEN_ATTRIBUTES = {"style", "srcdoc", "formaction", "action", "background", "dynsrc", "lowsrc", "srcset",
                        "data", "datasrc", "datafld", "dataformatas", "xlink:href", "http-equiv"}
URL_ATTRIBUTES = {"href", "src", "cite", "poster", "longdesc"}
SAFE_SCHEMES = {"http", "https", "mailto", "ftp", "tel"}
RASTER_DATA = re.compile(r"data:image/(png|jpeg|jpg|gif|webp)[;,]")


def browser_url(value: str) -> str:
    """A URL attribute as a browser reads it: outer spaces and C0 controls stripped, tabs and newlines removed."""
    value = value.strip("".join(map(chr, range(0x21))))
    return re.sub("[\t\n\r]", "", value).lower()


class _Checker(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            value = value or ""
            if name.startswith("on") or name in FORBIDDEN_ATTRIBUTES:
                self.problems.append(f"<{tag} {name}>")
            elif name in URL_ATTRIBUTES:
                url = browser_url(value)
                scheme = re.match(r"^([a-z][a-z0-9+.-]*):", url)
                if scheme and scheme.group(1) == "data":
                    if not (tag == "img" and name == "src" and RASTER_DATA.match(url)):
                        self.problems.append(f"<{tag} {name}={value[:40]!r}>")
                elif scheme and scheme.group(1) not in SAFE_SCHEMES:
                    self.problems.append(f"<{tag} {name}={value[:40]!r}>")

    handle_startendtag = handle_starttag


def unsafe_html(fragment: str | None) -> list[str]:
    """What in a fragment could execute in a reader: empty when it is safe."""
    checker = _Checker()
    checker.feed(fragment or "")
    checker.close()
    return checker.problems


def xss_payloads() -> list[tuple[str, str]]:
    """(family, payload) from fixtures/hostile/xss.txt."""
    family, payloads = "", []
    for line in (HOSTILE / "xss.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            family = line[3:]
        elif line.strip() and not line.startswith("#"):
            payloads.append((family, line))
    return payloads
