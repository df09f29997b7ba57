"""WebSub: feeds advertise the hub, and a real hub on 127.0.0.1 receives a publish ping after each change,
with retries when it fails for a while."""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from lxml import etree

from aggregator.output import websub
from conftest import run_cli, write_config
from test_daemon import daemons, wait_for  # noqa: F401 (daemons is a fixture)
from test_outputs_archive import atom_feed

ATOM = "{http://www.w3.org/2005/Atom}"


class Hub:
    """A hub that records every publish ping and answers with the next scripted status (then 204)."""

    def __init__(self, statuses: list[int] | None = None):
        self.pings: list[dict[str, list[str]]] = []
        self.statuses = list(statuses or [])
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode("ascii"))
                status = hub.statuses.pop(0) if hub.statuses else 204
                hub.pings.append({**form, "status": [str(status)],
                                  "content-type": [self.headers.get("Content-Type", "")]})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def topics(self) -> list[str]:
        return sorted(t for ping in self.pings if ping["status"][0].startswith("2") for t in ping["hub.url"])


@pytest.fixture
def hub():
    hub = Hub()
    hub.thread.start()
    yield hub
    hub.server.shutdown()
    hub.server.server_close()


def test_changed_outputs_are_pinged_and_unchanged_ones_are_not(tmp_path, hub):
    (tmp_path / "source.atom").write_text(atom_feed([1, 2]))
    config = write_config(tmp_path, [{"id": "src", "url": "file:source.atom"}],
                          [{"id": "news", "title": "News", "formats": ["atom", "rss", "json"]},
                           {"id": "other", "title": "Other", "tags": ["none"]}],
                          websub={"hubs": [hub.url]})
    run_cli("once", config=config, check=True)
    base = "http://feeds.test/"
    expected = sorted(base + name for name in ("news.atom", "news.rss", "news.json", "other.atom"))
    assert hub.topics() == expected
    assert all(p["hub.mode"] == ["publish"] for p in hub.pings)
    assert all(p["content-type"][0].startswith("application/x-www-form-urlencoded") for p in hub.pings)

    run_cli("once", config=config, check=True)
    assert hub.topics() == expected, "nothing changed, so no hub is pinged"

    (tmp_path / "source.atom").write_text(atom_feed([1, 2, 3]))
    run_cli("once", config=config, check=True)
    assert hub.topics() == sorted(expected + [base + n for n in ("news.atom", "news.rss", "news.json")])


def test_every_format_advertises_hub_and_self(tmp_path, hub):
    (tmp_path / "source.atom").write_text(atom_feed([1]))
    config = write_config(tmp_path, [{"id": "src", "url": "file:source.atom"}],
                          [{"id": "news", "title": "News", "formats": ["atom", "rss", "json"]}],
                          websub={"hubs": [hub.url]})
    run_cli("once", config=config, check=True)
    out = tmp_path / "out"
    atom = etree.parse(str(out / "news.atom")).getroot()
    assert atom.find(f"{ATOM}link[@rel='hub']").get("href") == hub.url
    assert atom.find(f"{ATOM}link[@rel='self']").get("href") == "http://feeds.test/news.atom"
    channel = etree.parse(str(out / "news.rss")).getroot().find("channel")
    assert channel.find(f"{ATOM}link[@rel='hub']").get("href") == hub.url
    assert channel.find(f"{ATOM}link[@rel='self']").get("href") == "http://feeds.test/news.rss"
    feed = json.loads((out / "news.json").read_text())
    assert feed["hubs"] == [{"type": "WebSub", "url": hub.url}]
    assert feed["feed_url"] == "http://feeds.test/news.json"


def test_a_failing_hub_is_retried_until_it_accepts(hub):
    hub.statuses = [503, 502]
    [result] = websub.ping([hub.url], ["http://feeds.test/a.atom"], delays=(0.01, 0.01))
    assert result.ok and result.attempts == 3
    assert [p["status"][0] for p in hub.pings] == ["503", "502", "204"]


def test_a_refusing_hub_is_not_retried_and_is_reported_in_one_line(hub, caplog):
    hub.statuses = [400]
    with caplog.at_level(logging.WARNING, logger="aggregator.output.websub"):
        [result] = websub.ping([hub.url], ["http://feeds.test/a.atom"], delays=(0.01, 0.01))
    assert not result.ok and result.attempts == 1 and result.error == "HTTP 400"
    assert len(hub.pings) == 1
    [message] = [r.getMessage() for r in caplog.records]
    assert "\n" not in message and hub.url in message and "HTTP 400" in message


def test_an_unreachable_hub_gives_up_after_the_retries():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again at once: nothing listens there
    [result] = websub.ping([f"http://127.0.0.1:{port}/"], ["http://feeds.test/a.atom"], delays=(0.01, 0.01))
    assert not result.ok and result.attempts == 3 and "ConnectionError" in result.error


def test_a_failing_hub_does_not_fail_the_command(tmp_path, hub):
    hub.statuses = [400]
    (tmp_path / "source.atom").write_text(atom_feed([1]))
    config = write_config(tmp_path, [{"id": "src", "url": "file:source.atom"}], websub={"hubs": [hub.url]})
    result = run_cli("publish", config=config)
    assert result.returncode == 0
    assert (tmp_path / "out" / "all.atom").exists()
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if hub.url in line]
    assert "HTTP 400" in line and "all.atom" in line


def test_a_hub_that_never_answers_holds_up_no_publish_of_the_daemon(tmp_path, daemons):
    """websub.hubs names a hub that takes the connection and never answers (10 s a try, three tries): the
    daemon pings from the side, so every output is written as soon as it changes, not one per 36 s."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel accepts; nobody reads or answers
    try:
        (tmp_path / "source.atom").write_text(atom_feed([1, 2]))
        outputs = [{"id": f"out{n}", "title": f"Out {n}"} for n in range(3)]
        config = write_config(tmp_path, [{"id": "src", "url": "file:source.atom", "interval": "1s"}], outputs,
                              websub={"hubs": [f"http://127.0.0.1:{silent.getsockname()[1]}/"]})
        daemon = daemons(config)
        wait_for(lambda: all((tmp_path / "out" / f"out{n}.atom").exists() for n in range(3)), timeout=8,
                 what="every output published", log=daemon.log)
        (tmp_path / "source.atom").write_text(atom_feed([1, 2, 3]))
        wait_for(lambda: all(len(etree.parse(str(tmp_path / "out" / f"out{n}.atom")).getroot().findall(
            f"{ATOM}entry")) == 3 for n in range(3)), timeout=8, what="the new entry in every output", log=daemon.log)
        assert daemon.stop() == 0
    finally:
        silent.close()
