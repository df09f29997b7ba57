"""`aggregator run` as a subprocess against loopback feed servers, with second-scale intervals.

Intervals under 5m are used as written (SPEC §5.2), so these sources are
polled every fraction of a second and a few seconds show the whole schedule.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from lxml import etree

from conftest import ROOT, run_cli, status_json, write_config
from feedserver import FeedServer

ATOM = "{http://www.w3.org/2005/Atom}"
REPUBLISHED = "{https://github.com/aggregator-project/aggregator/ns/1.0}republished"
FAST = 0.3  # seconds between polls of a test source


def rss(name: str, count: int, start: int = 0) -> str:
    """An RSS feed with `count` items named <name>-<n>, newest first, an hour apart."""
    base = datetime(2024, 3, 4, 12, 0, tzinfo=timezone.utc)
    items = "".join(
        f"<item><title>{name} story {n}</title><link>http://example.org/{name}/{n}</link>"
        f"<guid>{name}-{n}</guid><pubDate>{format_datetime(base + timedelta(hours=n))}</pubDate></item>"
        for n in reversed(range(start, start + count)))
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{name}</title>' \
           f"<link>http://example.org/{name}</link>{items}</channel></rss>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 15.0, what: str = "condition", log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    detail = f"\n--- daemon log ---\n{log.read_text()}" if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}{detail}")


class Daemon:
    """`aggregator -c CONFIG run` in a subprocess, its log in a file (a pipe could fill and block it)."""

    def __init__(self, config: Path, name: str = "daemon", env: dict | None = None):
        self.config = config
        self.log = config.parent / f"{name}.log"
        self._log_file = self.log.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "aggregator", "-c", str(config), "run"],
                                        stdout=self._log_file, stderr=subprocess.STDOUT, cwd=str(ROOT),
                                        env={**os.environ, **(env or {})})

    def text(self) -> str:
        return self.log.read_text()

    def wait_log(self, fragment: str, timeout: float = 15.0, count: int = 1) -> None:
        wait_for(lambda: self.text().count(fragment) >= count, timeout, f"{fragment!r} in the log", self.log)

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        finally:
            self._log_file.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log_file.close()


@pytest.fixture
def daemons():
    started: list[Daemon] = []

    def start(config: Path, name: str = "daemon", env: dict | None = None) -> Daemon:
        daemon = Daemon(config, name, env)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


@pytest.fixture
def second_server():
    server = FeedServer().start()
    yield server
    server.stop()


def fetch(port: int, path: str, **headers) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    except OSError:
        return 0, {}, b""
    finally:
        conn.close()


def entries(document: bytes) -> dict[str, tuple[str, str]]:
    """Atom entry id → (title, republished)."""
    root = etree.fromstring(document)
    return {e.findtext(f"{ATOM}id"): (e.findtext(f"{ATOM}title"), e.findtext(REPUBLISHED))
            for e in root.iter(f"{ATOM}entry")}


def titles(document: bytes) -> set[str]:
    return {title for title, _ in entries(document).values()}


def test_outputs_are_published_served_with_304s_and_new_items_appear(tmp_path, feed_server, daemons):
    port = free_port()
    names = [f"s{n}" for n in range(8)]
    sources = [{"id": name, "url": feed_server.serve(f"/{name}.xml", rss(name, 2))} for name in names]
    config = write_config(tmp_path, sources, defaults={"interval": FAST}, server={"listen": f"127.0.0.1:{port}"})
    daemon = daemons(config)

    def served():
        status, _, body = fetch(port, "/all.atom")
        return body if status == 200 and len(titles(body)) == 16 else None

    first = wait_for(served, what="all 16 entries served", log=daemon.log)
    status, headers, _ = fetch(port, "/all.atom")
    assert headers["content-type"] == "application/atom+xml; charset=utf-8"
    status, again, body = fetch(port, "/all.atom", **{"If-None-Match": headers["etag"]})
    assert (status, body) == (304, b"")
    status, _, body = fetch(port, "/all.atom", **{"If-Modified-Since": headers["last-modified"]})
    assert status == 304

    # the daemon itself polls conditionally: the sources see If-None-Match and answer 304
    wait_for(lambda: any(r.status == 304 for r in feed_server.seen("/s0.xml")), what="a 304 to the daemon")

    feed_server.serve("/s3.xml", rss("s3", 3))  # a new item at one source
    newer = wait_for(lambda: (lambda b: b if "s3 story 2" in titles(b) else None)(fetch(port, "/all.atom")[2]),
                     what="the new item in the served feed", log=daemon.log)
    assert {k: v for k, v in entries(newer).items() if k in entries(first)} == entries(first)  # nothing else moved

    status, headers, page = fetch(port, "/")  # the published index.html
    assert status == 200 and b'href="all.atom"' in page and b'href="all.html"' in page, page
    assert headers["content-type"] == "text/html; charset=utf-8"
    status, _, page = fetch(port, "/status")  # the operator's view
    assert status == 200 and b">s3</a></td><td>ok</td>" in page
    status, _, health = fetch(port, "/healthz")
    assert status == 200 and b'"status": "ok"' in health

    assert daemon.stop() == 0
    log = daemon.text()
    assert "Traceback" not in log
    # eight sources brought new items within the first second; the outputs were not rewritten eight times
    publishes = [line for line in log.splitlines() if " published " in line and "all.atom" in line]
    assert 1 <= len(publishes) <= 4, log


def slow(seconds: float, stop: threading.Event, body: str):
    """A route handler that answers only after `seconds` (or never, if the test ends first)."""

    def handler(request):
        if stop.wait(seconds):
            return
        try:
            request._send(200, {"Content-Type": "application/rss+xml"}, body.encode())
        except OSError:
            pass

    return handler


def test_redirects_gone_retry_after_failures_and_hanging_servers(tmp_path, feed_server, second_server, daemons):
    stop = threading.Event()
    new_url = feed_server.serve("/new.xml", rss("moved", 1))
    feed_server.serve("/old.xml", status=301, headers={"Location": new_url})
    feed_server.serve("/temp.xml", status=302, headers={"Location": feed_server.serve("/elsewhere.xml", rss("t", 1))})
    feed_server.serve("/gone.xml", b"gone", status=410)
    feed_server.serve("/limited.xml", b"slow down", status=429, headers={"Retry-After": "2"})
    feed_server.serve("/broken.xml", b"oops", status=500)
    second_server.serve("/hang.xml", handler=slow(30, stop, rss("hang", 1)))
    second_server.serve("/stuck.xml", handler=slow(30, stop, rss("stuck", 1)))
    sources = [
        {"id": "good", "url": feed_server.serve("/good.xml", rss("good", 1))},
        {"id": "moved", "url": feed_server.url("/old.xml")},
        {"id": "temporary", "url": feed_server.url("/temp.xml")},
        {"id": "gone", "url": feed_server.url("/gone.xml")},
        {"id": "limited", "url": feed_server.url("/limited.xml")},
        {"id": "broken", "url": feed_server.url("/broken.xml")},
        {"id": "hang", "url": second_server.url("/hang.xml"), "timeout": 1},
        {"id": "stuck", "url": second_server.url("/stuck.xml"), "timeout": 60},
    ]
    config = write_config(tmp_path, sources, defaults={"interval": FAST})
    daemon = daemons(config)
    try:
        daemon.wait_log("hang: error: fetch: timed out after 1s", timeout=20)
        wait_for(lambda: len(feed_server.seen("/limited.xml")) >= 2, timeout=10, what="a retry after Retry-After",
                 log=daemon.log)
        wait_for(lambda: len(feed_server.seen("/new.xml")) >= 3, what="polls at the adopted URL", log=daemon.log)
        wait_for(lambda: len(feed_server.seen("/broken.xml")) >= 3, what="retries of a failing source", log=daemon.log)
        wait_for(lambda: len(feed_server.seen("/good.xml")) >= 5, what="the good source polled throughout")
        started = time.monotonic()
        assert daemon.stop() == 0  # "stuck" is in flight: abandoned after the grace period, not waited for
        assert time.monotonic() - started < 9
    finally:
        stop.set()

    assert len(feed_server.seen("/old.xml")) == 1  # 301: the new URL is used from then on
    assert len(feed_server.seen("/temp.xml")) >= 2  # 302: followed each time, not adopted
    assert len(feed_server.seen("/gone.xml")) == 1  # 410: never polled again
    limited = [r.time for r in feed_server.seen("/limited.xml")]
    assert all(later - earlier >= 1.9 for earlier, later in zip(limited, limited[1:])), limited
    broken = [r.time for r in feed_server.seen("/broken.xml")]
    gaps = [later - earlier for earlier, later in zip(broken, broken[1:])]
    assert gaps[-1] > 2 * FAST  # backing off, and still polling

    rows = status_json(config)
    assert rows["moved"]["url"] == new_url and rows["moved"]["state"] == "ok"
    assert rows["temporary"]["url"] == feed_server.url("/temp.xml") and rows["temporary"]["state"] == "ok"
    assert rows["gone"]["state"] == "gone" and rows["gone"]["next_poll"] is None
    assert rows["limited"]["state"] == "failing" and rows["limited"]["last_status"] == 429
    assert rows["broken"]["state"] == "failing" and rows["broken"]["errors"] >= 3
    assert rows["broken"]["next_poll"] is not None
    assert "timed out" in rows["hang"]["last_error"]
    assert rows["good"]["state"] == "ok" and rows["good"]["errors"] == 0
    assert rows["stuck"]["entries"] == 0

    table = run_cli("status", config=config, check=True).stdout
    assert f"moved: moved permanently to {new_url}; set `url: {new_url}` for it in {config}:" in table
    assert "gone: gone (HTTP 410), no longer polled" in table
    assert "HTTP 500" in table and "HTTP 429" in table
    assert "Traceback" not in daemon.text()


def test_a_reload_while_polls_are_in_flight_retries_nothing_each_second(tmp_path, feed_server, daemons):
    """A SIGHUP that changes sources whose polls are in flight (their host answers after 4 s): each such poll
    is left to finish and schedule the next, without a skipped run retried (and logged) every second."""
    feed_server.delay = 4.0
    sources = [{"id": f"slow{n}", "url": feed_server.serve(f"/s{n}.xml", rss(f"s{n}", 1)), "interval": "1s",
                "timeout": "30s"} for n in range(3)]
    config = write_config(tmp_path, sources)
    daemon = daemons(config)
    wait_for(lambda: len(feed_server.seen("/s2.xml")) >= 1, what="the polls in flight", log=daemon.log)
    config.write_text(config.read_text().replace("timeout: 30s", "timeout: 31s"))
    daemon.send(signal.SIGHUP)
    daemon.wait_log("reloaded")
    wait_for(lambda: daemon.text().count(": 1 new, 0 updated") >= 3, timeout=20, what="the polls done", log=daemon.log)
    assert daemon.text().count("maximum number of running instances") <= 3, daemon.text()
    assert daemon.stop() == 0


def test_sighup_reloads_the_config_and_keeps_the_old_one_when_the_new_is_broken(tmp_path, feed_server, daemons):
    port = free_port()
    a = {"id": "a", "url": feed_server.serve("/a.xml", rss("a", 1))}
    b = {"id": "b", "url": feed_server.serve("/b.xml", rss("b", 1))}
    c = {"id": "c", "url": feed_server.serve("/c.xml", rss("c", 1))}
    settings = {"defaults": {"interval": FAST}, "server": {"listen": f"127.0.0.1:{port}"}}
    config = write_config(tmp_path, [a], **settings)
    daemon = daemons(config)
    served = lambda: titles(fetch(port, "/all.atom")[2]) if fetch(port, "/all.atom")[0] == 200 else set()
    wait_for(lambda: "a story 0" in served(), what="a's item", log=daemon.log)
    assert not feed_server.seen("/b.xml")

    write_config(tmp_path, [a, b], **settings)  # add a source
    daemon.send(signal.SIGHUP)
    wait_for(lambda: "b story 0" in served(), what="b's item after the reload", log=daemon.log)

    write_config(tmp_path, [{**a, "url": feed_server.serve("/a2.xml", rss("a", 2))}, c], **settings)
    daemon.send(signal.SIGHUP)  # remove b, add c, change a's URL
    wait_for(lambda: {"c story 0", "a story 1"} <= served(), what="c's item and a's new URL", log=daemon.log)
    daemon.wait_log("reloaded", count=2)
    time.sleep(FAST * 2)
    polls_of_b = len(feed_server.seen("/b.xml"))

    config.write_text(config.read_text().replace(f"interval: {FAST}", "interval: often"))
    daemon.send(signal.SIGHUP)  # a broken config
    daemon.wait_log("reload failed; still running the previous configuration")
    assert f"{config}:" in daemon.text() and "is not a duration" in daemon.text()
    polls_of_c = len(feed_server.seen("/c.xml"))
    wait_for(lambda: len(feed_server.seen("/c.xml")) >= polls_of_c + 3, what="polling to go on", log=daemon.log)
    assert len(feed_server.seen("/b.xml")) == polls_of_b  # removed: no longer polled
    assert fetch(port, "/healthz")[0] == 200
    assert daemon.stop() == 0


def test_kill_9_then_restart_resumes_the_schedule_and_loses_nothing(tmp_path, feed_server, daemons):
    sources = [
        {"id": "hourly1", "url": feed_server.serve("/h1.xml", rss("h1", 3)), "interval": 60},
        {"id": "hourly2", "url": feed_server.serve("/h2.xml", rss("h2", 3)), "interval": 60},
        {"id": "fast", "url": feed_server.serve("/fast.xml", rss("fast", 2)), "interval": FAST},
    ]
    config = write_config(tmp_path, sources)
    out = tmp_path / "out" / "all.atom"
    first = daemons(config, "first")
    wait_for(lambda: out.exists() and len(titles(out.read_bytes())) == 8, what="all entries", log=first.log)
    wait_for(lambda: len(feed_server.seen("/fast.xml")) >= 3, what="fast polled again")
    before = entries(out.read_bytes())
    rows_before = status_json(config)
    first.process.send_signal(signal.SIGKILL)
    assert first.process.wait(10) == -signal.SIGKILL

    slow_polls = len(feed_server.seen("/h1.xml")), len(feed_server.seen("/h2.xml"))
    fast_polls = len(feed_server.seen("/fast.xml"))
    second = daemons(config, "second")
    wait_for(lambda: len(feed_server.seen("/fast.xml")) >= fast_polls + 3, what="fast polled after the restart",
             log=second.log)
    # a second daemon on the same state refuses to start
    third = run_cli("run", config=config, timeout=30)
    assert third.returncode == 1
    assert f"another `aggregator run` (pid {second.process.pid}) is already using" in third.stderr
    assert "Traceback" not in third.stderr
    assert second.stop() == 0

    assert (len(feed_server.seen("/h1.xml")), len(feed_server.seen("/h2.xml"))) == slow_polls  # not due yet
    assert entries(out.read_bytes()) == before  # same entries, ids and republished dates
    rows_after = status_json(config)
    for source_id in ("hourly1", "hourly2"):
        assert rows_after[source_id]["entries"] == rows_before[source_id]["entries"] == 3
        assert rows_after[source_id]["next_poll"] == rows_before[source_id]["next_poll"]


def test_when_every_server_is_unreachable_the_sources_are_not_charged(tmp_path, daemons):
    sources = [{"id": f"down{n}", "url": f"http://127.0.0.1:{free_port()}/feed.xml"} for n in range(3)]
    config = write_config(tmp_path, sources, defaults={"interval": FAST / 2})
    daemon = daemons(config)
    for source in sources:
        daemon.wait_log(f"{source['id']}: error: fetch: cannot connect", count=4)
    assert daemon.stop(signal.SIGINT) == 0
    rows = status_json(config)
    for source in sources:
        assert rows[source["id"]]["errors"] == 0, rows
        assert "the network was down" in rows[source["id"]]["last_error"]
        assert rows[source["id"]]["state"] == "failing"


def test_one_dead_host_among_live_ones_is_charged(tmp_path, feed_server, daemons):
    sources = [{"id": "dead", "url": f"http://127.0.0.1:{free_port()}/feed.xml"},
               {"id": "alive", "url": feed_server.serve("/alive.xml", rss("alive", 1))}]
    config = write_config(tmp_path, sources, defaults={"interval": FAST / 2})
    daemon = daemons(config)
    daemon.wait_log("dead: error: fetch: cannot connect", count=3)
    assert daemon.stop() == 0
    assert status_json(config)["dead"]["errors"] >= 3


def test_at_most_two_requests_in_flight_per_host_and_spaced(tmp_path, daemons):
    server = FeedServer().start()
    active, peak, lock = [0], [0], threading.Lock()

    def handler(request):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.25)
        with lock:
            active[0] -= 1
        request._send(200, {"Content-Type": "application/rss+xml"}, rss("p", 1).encode())

    try:
        for n in range(5):
            server.serve(f"/p{n}.xml", handler=handler)
        sources = [{"id": f"p{n}", "url": server.url(f"/p{n}.xml"), "interval": 0.2} for n in range(5)]
        config = write_config(tmp_path, sources)
        daemon = daemons(config)
        wait_for(lambda: len(server.requests) >= 12, what="a dozen requests", log=daemon.log)
        assert daemon.stop() == 0
    finally:
        server.stop()
    assert peak[0] == 2
    starts = sorted(r.time for r in server.requests)
    assert min(later - earlier for earlier, later in zip(starts, starts[1:])) >= 0.06  # spaced 0.1s (half of 0.2s)


def test_a_redirect_takes_a_slot_of_the_host_it_leads_to(tmp_path, daemons, feed_server, second_server,
                                                         state_location):
    """Ten sources redirected to the host ten more sources name themselves: it has two requests in flight at
    most, for a daemon alone on SQLite and for a worker on PostgreSQL."""
    second_server.delay = 0.3
    moved = [second_server.serve(f"/c{n}", rss(f"c{n}", 1)) for n in range(10)]
    sources = [{"id": f"x{n}", "url": feed_server.serve(f"/x{n}", status=302, headers={"Location": url}),
                "interval": 0.2} for n, url in enumerate(moved)]
    sources += [{"id": f"c{n}", "url": url + "?y", "interval": 0.2} for n, url in enumerate(moved)]
    config = write_config(tmp_path, sources, state=state_location)
    daemon = daemons(config)
    wanted = {f"/c{n}" for n in range(10)} | {f"/c{n}?y" for n in range(10)}
    wait_for(lambda: wanted <= {r.path for r in second_server.requests}, timeout=30, what="every source polled",
             log=daemon.log)
    assert daemon.stop() == 0
    assert second_server.peak <= 2, second_server.peak
    rows = status_json(config)
    assert len(rows) == 20 and all(row["state"] == "ok" and row["entries"] == 1 for row in rows.values()), rows


def test_run_reports_a_bad_config_or_a_busy_port_in_one_line(tmp_path, feed_server):
    config = write_config(tmp_path, [{"id": "a", "url": feed_server.serve("/a.xml", rss("a", 1)),
                                      "interval": "soon"}])
    result = run_cli("run", config=config, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{config}:") and "sources[0].interval" in result.stderr
    assert not (tmp_path / "state").exists()  # nothing happened before the check

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_config(tmp_path, [{"id": "a", "url": feed_server.url("/a.xml")}],
                              server={"listen": f"127.0.0.1:{port}"})
        result = run_cli("run", config=config, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().endswith(f"aggregator: server: cannot listen on 127.0.0.1:{port}: "
                                          "Address already in use; change server.listen or stop what uses that address")
    assert "Traceback" not in result.stderr


def test_a_burst_of_changes_is_published_once():
    from aggregator.run.publisher import Publisher

    calls, done = [], threading.Event()
    publisher = Publisher(lambda outputs: (calls.append(outputs), done.set()))
    for n in range(50):
        publisher.changed({f"out{n % 3}"})
    assert done.wait(10)
    publisher.changed(None)  # every output, e.g. after a reload
    publisher.stop(timeout=10)  # flushes what is pending
    assert calls == [{"out0", "out1", "out2"}, None]
