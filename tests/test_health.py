"""/healthz fails (503, with the reason) when `aggregator run` is alive but stuck (SPEC §9).

Each case is made to happen for real, with `server.stuck_after: 2s` so that "too long" comes quickly:
- a poll overdue: a source whose server answers once and then never again (the poll hangs, its timeout
  an hour), polled every 0.3 s;
- the scheduler running no job: sixteen such sources, whose hanging polls take every polling thread, so
  the heartbeat job cannot run;
- a publish failing: the output folder is a regular file;
- a publish pending too long: `websub.hubs` names a hub that accepts connections and never answers, so
  publishing waits on its ping.
"""

from __future__ import annotations

import json
import threading

import pytest

from conftest import write_config
from feedserver import FeedServer
from test_daemon import daemons, fetch, free_port, rss, wait_for  # noqa: F401 (daemons: a fixture)

STUCK = {"stuck_after": "2s"}


@pytest.fixture
def hanging():
    """A feed server whose paths answer until each has answered once, then hang on every later request (so a
    busy machine's early second polls cannot hold the threads a first poll needs)."""
    server, stop, seen, lock, paths = FeedServer().start(), threading.Event(), set(), threading.Lock(), set()

    def handler(request):
        path = request.path
        with lock:
            hang = seen >= paths
            seen.add(path)
        if hang:
            stop.wait(120)
            return
        request._send(200, {"Content-Type": "application/rss+xml"}, rss(path.strip("/.xml"), 1).encode())

    def serve(path: str) -> str:
        paths.add(path)
        return server.serve(path, handler=handler)

    yield serve
    stop.set()
    server.stop()


def health(port: int) -> tuple[int, dict]:
    status, _, body = fetch(port, "/healthz")
    return status, json.loads(body) if body else {}


def unhealthy(port: int, fragment: str):
    status, detail = health(port)
    return detail if status == 503 and any(fragment in reason for reason in detail.get("reasons", [])) else None


def test_an_overdue_poll_fails_the_probe(tmp_path, hanging, feed_server, daemons):
    port = free_port()
    sources = [{"id": "hangs", "url": hanging("/hangs.xml"), "timeout": 3600},
               {"id": "fine", "url": feed_server.serve("/fine.xml", rss("fine", 1))}]
    config = write_config(tmp_path, sources, defaults={"interval": 0.3},
                          server={"listen": f"127.0.0.1:{port}", **STUCK})
    daemon = daemons(config)
    wait_for(lambda: health(port)[0] == 200 and health(port)[1]["sources"].get("ok") == 2, timeout=20,
             what="healthy first", log=daemon.log)
    detail = wait_for(lambda: unhealthy(port, "polls overdue: hangs by"), timeout=20, what="503: overdue",
                      log=daemon.log)
    assert detail["status"] == "unavailable" and len(detail["reasons"]) == 1  # the scheduler itself runs
    assert "(allowed 2s)" in detail["reasons"][0]


def test_a_scheduler_whose_threads_are_all_stuck_fails_the_probe(tmp_path, hanging, daemons):
    port = free_port()
    sources = [{"id": f"h{n}", "url": hanging(f"/h{n}.xml"), "timeout": 3600} for n in range(16)]
    config = write_config(tmp_path, sources, defaults={"interval": 0.3},
                          server={"listen": f"127.0.0.1:{port}", **STUCK})
    daemon = daemons(config)
    wait_for(lambda: health(port)[1].get("sources", {}).get("ok") == 16, timeout=30, what="every source polled",
             log=daemon.log)
    detail = wait_for(lambda: unhealthy(port, "the scheduler has run no job for"), timeout=30,
                      what="503: no job run", log=daemon.log)
    assert any(reason.startswith("polls overdue") for reason in detail["reasons"])


def test_a_failing_publish_fails_the_probe(tmp_path, feed_server, daemons):
    port = free_port()
    (tmp_path / "out").write_text("a file where the output folder should be")
    config = write_config(tmp_path, [{"id": "a", "url": feed_server.serve("/a.xml", rss("a", 1))}],
                          server={"listen": f"127.0.0.1:{port}", **STUCK})
    daemon = daemons(config)
    detail = wait_for(lambda: unhealthy(port, "publishing all has failed for"), timeout=30,
                      what="503: publish failing", log=daemon.log)
    assert str(tmp_path) not in json.dumps(detail)  # the probe names no local path; `status` has the error
    assert daemon.stop() == 0


def test_a_publish_pending_too_long_fails_the_probe(tmp_path, feed_server, daemons):
    theme = tmp_path / "theme"  # a theme whose river page never finishes rendering: publishing is stuck
    theme.mkdir()
    (theme / "river.html").write_text("{% for _ in range(10 ** 12) %}{% endfor %}")
    port = free_port()
    config = write_config(tmp_path, [{"id": "a", "url": feed_server.serve("/a.xml", rss("a", 1))}],
                          output={"dir": "out", "base_url": "http://feeds.test/", "templates": "theme"},
                          server={"listen": f"127.0.0.1:{port}", **STUCK})
    daemon = daemons(config)
    detail = wait_for(lambda: unhealthy(port, "to be published"), timeout=30, what="503: publish pending",
                      log=daemon.log)
    assert detail["reasons"][0].startswith("a change has waited")
    # (not stopped here: the publish it waits on never ends; the fixture kills it)
