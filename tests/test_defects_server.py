"""Issue 15, the HTTP server of `aggregator run`: one test per defect, against a real daemon over real sockets.

Each test is marked xfail(strict=True) until its defect is fixed; the fixer removes the mark.
"""

from __future__ import annotations

import resource
import shutil
import socket
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from conftest import FIXTURES, write_config
from test_daemon import daemons, fetch, free_port, wait_for  # noqa: F401 (daemons is a fixture)


@pytest.fixture
def served(tmp_path, daemons):
    """`run` serving its outputs (one file: source) on a free port, started with a soft limit of 1,024 open
    descriptors; (port, daemon) once all.atom is served."""
    shutil.copy(FIXTURES / "feeds" / "dates.atom", tmp_path / "dates.atom")
    port = free_port()
    config = write_config(tmp_path, [{"id": "dates", "url": "file:dates.atom"}],
                          server={"listen": f"127.0.0.1:{port}"}, defaults={"interval": 60})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))  # as a login shell's `ulimit -n` often is
    try:
        daemon = daemons(config)  # it inherits the soft limit of 1024; it may raise it up to the hard limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    wait_for(lambda: fetch(port, "/all.atom")[0] == 200, timeout=30, what="all.atom served", log=daemon.log)
    return port, daemon


# 15.11 -----------------------------------------------------------------------------------------------------

def test_a_long_path_segment_is_a_404_without_a_traceback(served):
    """Asserts: GET of a path segment of 300 characters (and of a 5,000-character path) answers 404 or 414,
    the daemon stays up (all.atom still 200), and its log has no traceback and at most one line about each
    request. Before the fix: 500 and `OSError: [Errno 36] File name too long` with a traceback."""
    port, daemon = served
    before = len(daemon.text().splitlines())
    for path in ("/" + "a" * 300 + ".atom", "/" + "/".join(["b" * 250] * 20)):
        status, _, _ = fetch(port, path)
        assert status in (404, 414), (len(path), status)
    assert fetch(port, "/all.atom")[0] == 200
    time.sleep(0.5)  # let the log catch up
    log = daemon.text()
    assert "Traceback" not in log, log
    new_lines = log.splitlines()[before:]
    assert len(new_lines) <= 2 and all(len(line) < 400 for line in new_lines), new_lines


# 15.12 -----------------------------------------------------------------------------------------------------

def test_a_normal_client_is_answered_while_a_thousand_idle_connections_are_held(served):
    """Asserts: with 1,000 connections open to the server, each having sent half a request line and then
    nothing, a new client's GET /healthz and GET /all.atom are answered (200) within a generous 5 s each
    (the contract says within a second), though the daemon started with a soft limit of 1,024 descriptors.
    Before the fix: no answer at all (waitress stopped accepting at 100)."""
    port, _ = served
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1300 + 256:
        pytest.skip(f"a hard limit of {hard} descriptors cannot hold 1,000 connections on both sides")
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    idle: list[socket.socket] = []
    try:
        for _ in range(1000):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /all.atom HTTP/1.1\r\nHost: x")  # never finished
            idle.append(sock)
        time.sleep(1.0)  # the server has seen them all
        for path in ("/healthz", "/all.atom"):
            started = time.monotonic()
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=5)
                conn.settimeout(5)
                conn.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                first = conn.recv(64)
                conn.close()
            except OSError as exc:
                first = repr(exc).encode()
            elapsed = time.monotonic() - started
            assert first.startswith(b"HTTP/1.1 200"), (path, first, elapsed)
            assert elapsed < 5, (path, elapsed)
    finally:
        for sock in idle:
            sock.close()


def test_an_if_modified_since_in_the_future_is_ignored(served):
    """Asserts: GET /all.atom with If-Modified-Since a year ahead of the server's clock answers 200 with the
    document (RFC 9110 §13.1.3: an invalid date is ignored), while one equal to Last-Modified still gets 304.
    Before the fix: 304 for the future date."""
    port, _ = served
    status, headers, body = fetch(port, "/all.atom")
    assert status == 200
    assert fetch(port, "/all.atom", **{"If-Modified-Since": headers["last-modified"]})[0] == 304
    future = format_datetime(datetime.now(timezone.utc) + timedelta(days=365), usegmt=True)
    status, _, again = fetch(port, "/all.atom", **{"If-Modified-Since": future})
    assert (status, again) == (200, body)
