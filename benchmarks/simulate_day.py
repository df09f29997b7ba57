"""The polls three kinds of source get over simulated days, through the real poll → store → schedule path.

    .venv/bin/python benchmarks/simulate_day.py [--days 2] [--interval 30m]

A loopback HTTP server plays three sources on a simulated clock: one that has
published every hour for a month, one that has published every week for
months, and one that answers HTTP 500. The aggregator starts with an empty
store and polls each source whenever the schedule (aggregator/schedule.py)
says, with pipeline.poll given the simulated time; nothing is mocked but the
clock. Prints each source's polls per simulated day.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import random
import sys
import tempfile
import threading
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.config import load_config, parse_duration  # noqa: E402
from aggregator.reader.hosts import HostLimiter
from aggregator.run.pipeline import poll  # noqa: E402
from aggregator.store import Store  # noqa: E402

START = datetime(2024, 3, 4, 0, 0, tzinfo=timezone.utc)  # the aggregator's first start, a Monday
CLOCK = {"now": START}
KINDS = {"hourly": timedelta(hours=1), "weekly": timedelta(days=7)}
WINDOW = {"hourly": 20, "weekly": 10}  # items a feed document shows, newest first


def feed(kind: str, now: datetime) -> bytes:
    """The source's feed as it stands at `now`: its newest items, one every period since long ago."""
    step = KINDS[kind]
    latest = START - timedelta(days=60)
    latest += step * ((now - latest) // step)
    items = "".join(
        f"<item><title>{kind} {n}</title><guid>{kind}-{(latest - step * n).isoformat()}</guid>"
        f"<link>http://example.org/{kind}/{(latest - step * n):%Y%m%d%H}</link>"
        f"<pubDate>{format_datetime(latest - step * n)}</pubDate></item>" for n in range(WINDOW[kind]))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{kind}</title>'
            f"<link>http://example.org/{kind}</link>{items}</channel></rss>").encode()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        kind = self.path.strip("/").removesuffix(".xml")
        if kind not in KINDS:
            self._send(500, b"internal error")
            return
        body = feed(kind, CLOCK["now"])
        etag = '"' + hashlib.sha1(body).hexdigest() + '"'
        if self.headers.get("If-None-Match") == etag:
            self._send(304, b"", etag)
        else:
            self._send(200, body, etag)

    def _send(self, status: int, body: bytes, etag: str | None = None) -> None:
        self.send_response(status)
        if etag:
            self.send_header("ETag", etag)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def simulate(days: int, interval: str) -> dict[str, list[tuple[datetime, str]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    polls: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "aggregator.yaml"
        path.write_text(
            f"state: state.db\noutput: {{dir: out}}\ndefaults: {{interval: {interval}}}\n"
            "sources:\n"
            f"  - {{id: hourly, url: '{base}/hourly.xml'}}\n"
            f"  - {{id: weekly, url: '{base}/weekly.xml'}}\n"
            f"  - {{id: failing, url: '{base}/failing.xml'}}\n"
            "outputs: [{id: all, title: All}]\n")
        config = load_config(path)
        store = Store(config.state)
        limiter = HostLimiter()
        queue = [(START, n, s.id) for n, s in enumerate(config.sources)]
        end = START + timedelta(days=days)
        while queue:
            when, n, source_id = heapq.heappop(queue)
            if when >= end:
                break
            CLOCK["now"] = when
            result = poll(store, config, config.source(source_id), limiter, now=when)
            outcome = f"{result.new} new" if result.outcome == "new" else (
                f"HTTP {result.status}" if result.outcome == "error" else
                "304" if result.status == 304 else result.outcome)
            polls[source_id].append((when, outcome))
            if result.next_poll:
                heapq.heappush(queue, (result.next_poll, n, source_id))
        store.close()
    server.shutdown()
    return polls


def report(polls: dict[str, list[tuple[datetime, str]]], days: int, interval: str) -> None:
    print(f"simulated {days} day(s) from {START:%Y-%m-%d %H:%M} UTC, fresh store, defaults.interval {interval}")
    for source_id in ("hourly", "weekly", "failing"):
        for day in range(days):
            start = START + timedelta(days=day)
            today = [(t, o) for t, o in polls[source_id] if start <= t < start + timedelta(days=1)]
            gaps = [(b - a).total_seconds() / 60 for (a, _), (b, _) in zip(today, today[1:])]
            spread = f"gaps {min(gaps):.0f}-{max(gaps):.0f} min" if gaps else "no gaps"
            print(f"\n{source_id}, day {day + 1}: {len(today)} polls ({spread})")
            print("  " + ", ".join(f"{t:%H:%M} {o}" for t, o in today))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--interval", default="30m", help="defaults.interval of the simulated config")
    parser.add_argument("--seed", type=int, default=1, help="seed of the schedule's jitter")
    args = parser.parse_args()
    parse_duration(args.interval)
    random.seed(args.seed)
    report(simulate(args.days, args.interval), args.days, args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
