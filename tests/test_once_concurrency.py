"""`once` polls concurrently, but never more than two requests at a time to one host; a progress bar on a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
import time

import pytest

from aggregator.reader.hosts import HostLimiter
from conftest import ROOT, fixture_bytes, run_cli, status_json, write_config
from feedserver import FeedServer


@pytest.mark.parametrize("count", [6, 12])  # in threads of this process; in two poller processes
def test_at_most_two_requests_in_flight_per_host(tmp_path, feed_server, count):
    body = fixture_bytes("feeds/dates.atom")
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def slow(handler):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.4)
        with lock:
            state["now"] -= 1
        handler.send_response(200)
        handler.send_header("Content-Type", "application/atom+xml")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    sources = []
    for i in range(count):
        feed_server.serve(f"/slow{i}", handler=slow)
        sources.append({"id": f"slow{i}", "url": feed_server.url(f"/slow{i}")})
    config = write_config(tmp_path, sources)
    started = time.monotonic()
    result = run_cli("once", config=config, check=True)
    elapsed = time.monotonic() - started
    assert f"total: {count} sources" in result.stdout
    assert state["peak"] == 2, state
    assert elapsed >= count / 2 * 0.4  # 2 at a time, 0.4 s each


def test_a_redirect_takes_a_slot_of_the_host_it_leads_to(tmp_path, feed_server):
    """Ten sources on one host redirected to another, which ten more sources name themselves: that other host
    has its two requests in flight at most, whichever host a source's configured URL is on; and waiting for
    its turn there (5 s in all) does not count against a source's timeout."""
    target = FeedServer().start()
    target.delay = 0.5  # every answer of the redirect target takes that long: the pollers pile up on it
    try:
        feed = fixture_bytes("feeds/dates.atom")
        moved = [target.serve(f"/c{n}", feed) for n in range(10)]
        sources = [{"id": f"x{n}", "url": feed_server.serve(f"/x{n}", status=302, headers={"Location": url}),
                    "timeout": "2s"} for n, url in enumerate(moved)]
        sources += [{"id": f"c{n}", "url": url + "?y", "timeout": "2s"}  # each poller has both kinds
                    for n, url in enumerate(moved)]
        config = write_config(tmp_path, sources)
        result = run_cli("once", config=config, check=True)
    finally:
        target.stop()
    assert "total: 20 sources, 60 new entries, 0 updated, 0 unchanged, 0 failed" in result.stdout, result.stdout
    assert target.peak <= 2 and len(target.requests) == 20, (target.peak, len(target.requests))
    rows = status_json(config)
    assert all(row["state"] == "ok" and row["entries"] > 0 for row in rows.values()) and len(rows) == 20, rows


def test_a_host_is_kept_only_while_a_request_holds_or_waits_for_its_slot():
    """Redirects choose hosts (a hostile feed a new one each poll): the limiter keeps no host nobody uses,
    and still holds two requests to one host at most while they wait."""
    limiter, inside, most = HostLimiter(), [], [0]
    lock = threading.Lock()

    def request(url: str) -> None:
        with limiter.slot(url):
            with lock:
                inside.append(url)
                most[0] = max(most[0], sum(1 for u in inside if u.startswith("http://a.example")))
            time.sleep(0.02)
            with lock:
                inside.remove(url)

    threads = [threading.Thread(target=request, args=(f"http://a.example/{n}",)) for n in range(6)]
    threads += [threading.Thread(target=request, args=(f"http://r{n}.example/feed",)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 2 and len(limiter) == 0


@pytest.mark.parametrize("count", [1, 10])
def test_progress_bar_only_on_a_terminal(tmp_path, feed_server, count):
    feed = fixture_bytes("feeds/dates.atom")
    config = write_config(tmp_path, [{"id": f"dates{i}", "url": feed_server.serve(f"/{i}.atom", feed)}
                                     for i in range(count)])
    plain = run_cli("once", "--force", config=config, check=True)
    assert "source/s" not in plain.stderr and "%|" not in plain.stderr

    leader, follower = pty.openpty()
    captured = bytearray()

    def drain():
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                return
            if not chunk:
                return
            captured.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    process = subprocess.Popen([sys.executable, "-m", "aggregator", "-c", str(config), "once", "--force"],
                               stdout=subprocess.PIPE, stderr=follower, cwd=str(ROOT))
    stdout, _ = process.communicate(timeout=60)
    os.close(follower)
    reader.join(timeout=5)
    os.close(leader)
    assert process.returncode == 0
    assert b"%|" in captured and b"source" in captured
    assert stdout.count(b": unchanged") == count


def test_poller_processes_store_each_outcome_as_a_poll_in_place_does(tmp_path, feed_server):
    """From eight sources on, `once` fetches in poller processes: what they learn crosses to the store whole."""
    feed = fixture_bytes("feeds/dates.atom")
    sources = [{"id": f"s{i}", "url": feed_server.serve(f"/s{i}.atom", feed)} for i in range(6)]
    sources += [
        {"id": "plain", "url": feed_server.serve("/plain.atom", feed, validators=False)},
        {"id": "moved", "url": feed_server.serve("/old.atom", status=301, headers={"Location": "/s0.atom"})},
        {"id": "busy", "url": feed_server.serve("/busy", b"later", status=503, headers={"Retry-After": "3600"})},
        {"id": "gone", "url": feed_server.serve("/gone", b"gone", status=410)},
        {"id": "html", "url": feed_server.serve("/html", b"<html><body><p>no feed</p></body></html>",
                                                content_type="text/html")},
    ]
    config = write_config(tmp_path, sources)
    first = run_cli("once", config=config, check=True)
    assert "total: 11 sources" in first.stdout and "3 failed" in first.stdout
    rows = status_json(config)
    entries = rows["s0"]["entries"]
    assert entries > 0
    assert all(rows[s]["state"] == "ok" and rows[s]["entries"] == entries for s in ("s1", "s5", "plain", "moved"))
    assert rows["moved"]["url"] == feed_server.url("/s0.atom")
    assert (rows["busy"]["state"], rows["busy"]["last_status"]) == ("failing", 503)
    assert (rows["gone"]["state"], rows["gone"]["last_status"]) == ("gone", 410)
    assert rows["html"]["state"] == "failing" and rows["html"]["last_error"].startswith("parse:")

    second = run_cli("once", config=config, check=True)
    assert all(f"s{i}: unchanged (304)" in second.stdout for i in range(6))
    assert "plain: unchanged\n" in second.stdout  # the same body, known by its hash
    assert "moved: unchanged (304)" in second.stdout and len(feed_server.seen("/old.atom")) == 1
    assert "busy: skipped: Retry-After until" in second.stdout and len(feed_server.seen("/busy")) == 1
    assert "gone: skipped: gone (HTTP 410)" in second.stdout
    assert "html: error: parse:" in second.stdout
    assert status_json(config)["s0"]["entries"] == entries


def test_a_killed_poller_costs_only_its_unfinished_sources(tmp_path, feed_server):
    feed = fixture_bytes("feeds/dates.atom")
    config = write_config(tmp_path, [{"id": f"s{i}", "url": feed_server.serve(f"/s{i}.atom", feed)} for i in range(10)])
    feed_server.gate.clear()  # every answer waits: both pollers are mid-request when one is killed
    process = subprocess.Popen([sys.executable, "-m", "aggregator", "-c", str(config), "once"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT))
    try:
        deadline = time.monotonic() + 30
        while len(feed_server.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        with open(f"/proc/{process.pid}/task/{process.pid}/children") as f:
            pollers = [int(pid) for pid in f.read().split()]
        assert len(pollers) == 2
        os.kill(pollers[0], 9)
    finally:
        feed_server.gate.set()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    died = [line for line in stdout.splitlines() if "poller process died" in line]
    stored = [line for line in stdout.splitlines() if ": new: " in line]
    assert died and stored and len(died) + len(stored) == 10
    rows = status_json(config)
    assert all(rows[line.split(":")[0]]["last_poll"] is None for line in died)  # not a failure of the source

    again = run_cli("once", config=config, check=True)
    assert all(f"{line.split(':')[0]}: new: " in again.stdout for line in died)
