"""`once` polls concurrently, but never more than two requests at a time to one host; a progress bar on a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
import time

from conftest import ROOT, fixture_bytes, run_cli, write_config


def test_at_most_two_requests_in_flight_per_host(tmp_path, feed_server):
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
    for i in range(6):
        feed_server.serve(f"/slow{i}", handler=slow)
        sources.append({"id": f"slow{i}", "url": feed_server.url(f"/slow{i}")})
    config = write_config(tmp_path, sources)
    started = time.monotonic()
    result = run_cli("once", config=config, check=True)
    elapsed = time.monotonic() - started
    assert "total: 6 sources" in result.stdout
    assert state["peak"] == 2, state
    assert elapsed >= 1.2  # 6 requests, 2 at a time, 0.4 s each


def test_progress_bar_only_on_a_terminal(tmp_path, feed_server):
    feed_server.serve("/dates.atom", fixture_bytes("feeds/dates.atom"))
    config = write_config(tmp_path, [{"id": "dates", "url": feed_server.url("/dates.atom")}])
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
    assert b"dates: unchanged" in stdout
