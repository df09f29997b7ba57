"""WebSub push end to end (SPEC §5.3): `aggregator run` and its server against a stand-in hub (websubhub.py).

The daemon polls a feed that names the hub, subscribes (the hub verifies intent at
`<public_url>websub/<source-id>`), and then takes the hub's pushes: a signed body lands in the served
output without a poll, a forged one never does, leases are renewed, and a denial or a hub that
disappears sends the source back to polling at its normal interval. The HTTPS hub gets a secret
(the daemon trusts a throwaway trustme CA through REQUESTS_CA_BUNDLE); an http one gets none, and its
pushes only make the daemon poll.
"""

from __future__ import annotations

import http.client
import json
import ssl
import signal
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import trustme

from conftest import run_cli, status_json, write_config
from test_daemon import daemons, fetch, free_port, titles, wait_for  # noqa: F401 (daemons: a fixture)
from websubhub import Hub

BASE = datetime(2024, 3, 4, 12, 0, tzinfo=timezone.utc)


def feed(hub: str, topic: str, stories: list[str], extra: str = "") -> str:
    """An RSS 2.0 feed advertising `hub` and its topic (atom:link), one item per story name, newest first
    (`extra` is markup added to the newest one's description)."""
    items = "".join(
        f"<item><title>{name}</title><link>http://example.org/{name.replace(' ', '-')}</link>"
        f"<guid>{name}</guid><pubDate>{format_datetime(BASE + timedelta(hours=n))}</pubDate>"
        f"<description>The story of {name}.{extra if n == len(stories) - 1 else ''}</description></item>"
        for n, name in reversed(list(enumerate(stories))))
    return (f'<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
            f"<title>Pushy</title><link>http://example.org/</link>"
            f'<atom:link rel="hub" href="{hub}"/><atom:link rel="self" href="{topic}"/>{items}</channel></rss>')


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A server TLS context for 127.0.0.1 and the CA bundle that makes the daemon trust it."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return context, str(bundle)


@pytest.fixture
def hubs():
    started = []

    def start(**options) -> Hub:
        hub = Hub(**options).start()
        started.append(hub)
        return hub

    yield start
    for hub in started:
        hub.stop()


class Site:
    """One source behind a hub, and `aggregator run` serving its output on a free port."""

    def __init__(self, tmp_path, feed_server, daemons, hub: Hub, tls_bundle: str | None, interval: float = 3600,
                 lease: float | None = None, stories=("first story",), state: str = "state/aggregator.db"):
        self.hub, self.server = hub, feed_server
        self.topic = feed_server.url("/pushy.xml")
        self.stories = list(stories)
        self.serve()
        self.port = free_port()
        websub = {"subscribe": True, **({"lease": lease} if lease else {})}
        self.config = write_config(tmp_path, [{"id": "pushy", "url": self.topic, "interval": interval}],
                                   server={"listen": f"127.0.0.1:{self.port}",
                                           "public_url": f"http://127.0.0.1:{self.port}/"},
                                   websub=websub, state=state)
        self.daemon = daemons(self.config, env={"REQUESTS_CA_BUNDLE": tls_bundle} if tls_bundle else None)

    def serve(self, *more: str) -> None:
        self.stories += more
        self.server.serve("/pushy.xml", feed(self.hub.url, self.topic, self.stories),
                          content_type="application/rss+xml")

    def polls(self) -> int:
        return len(self.server.seen("/pushy.xml"))

    def served(self) -> set[str]:
        status, _, body = fetch(self.port, "/all.atom")
        return titles(body) if status == 200 else set()

    def push_state(self) -> dict | None:
        return status_json(self.config)["pushy"]["push"]

    def wait_live(self) -> None:
        wait_for(lambda: self.hub.subscribers(self.topic), timeout=30, what="a verified subscription",
                 log=self.daemon.log)
        wait_for(lambda: (self.push_state() or {}).get("state") == "live", timeout=15, what="status: live",
                 log=self.daemon.log)


def request(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_a_signed_push_lands_in_the_output_without_a_poll_and_a_forged_one_never(
        tmp_path, feed_server, daemons, hubs, tls):
    context, bundle = tls
    hub = hubs(ssl_context=context)
    site = Site(tmp_path, feed_server, daemons, hub, bundle)
    wait_for(lambda: "first story" in site.served(), timeout=30, what="the first poll published", log=site.daemon.log)
    site.wait_live()

    form = hub.requests[0]
    assert form["hub.mode"] == "subscribe" and form["hub.topic"] == site.topic
    assert form["hub.callback"] == f"http://127.0.0.1:{site.port}/websub/pushy"
    assert int(form["hub.lease_seconds"]) == 10 * 86400
    secret = form["hub.secret"]  # an HTTPS hub gets a random secret
    assert 20 <= len(secret) < 200
    push = site.push_state()
    assert push["hub"] == hub.url and push["error"] is None
    assert datetime.fromisoformat(push["expires"]) > datetime.now(timezone.utc) + timedelta(days=9)
    polls = site.polls()

    # forged: signed with another key, and unsigned; answered like a good push (202), and dropped
    forged = feed(hub.url, site.topic, site.stories + ["forged story"]).encode()
    assert hub.publish(site.topic, forged, forge=True) == [202]
    assert hub.publish(site.topic, forged, signature="") == [202]
    assert hub.publish(site.topic, forged, signature="md5=0123") == [202]

    # signed, with a script to sanitise: through the same pipeline as a poll
    started = time.monotonic()
    body = feed(hub.url, site.topic, site.stories + ["pushed story"], "<script>alert(1)</script>").encode()
    assert hub.publish(site.topic, body, algorithm="sha512") == [202]
    wait_for(lambda: "pushed story" in site.served(), timeout=15, what="the pushed story served", log=site.daemon.log)
    print(f"push to served output: {time.monotonic() - started:.3f}s")
    document = fetch(site.port, "/all.atom")[2]
    assert b"alert(1)" not in document and b"The story of pushed story." in document
    assert "forged story" not in site.served()
    assert site.polls() == polls  # it came by push: no poll was made for it

    log = site.daemon.text()
    assert log.count("a push with a wrong signature was discarded") == 2  # forged and md5
    assert log.count("a push with a missing signature was discarded") == 1
    assert "pushed: 1 new, 0 updated" in log
    table = run_cli("status", config=site.config, check=True).stdout
    assert "live until 20" in table
    metrics = fetch(site.port, "/metrics")[2].decode()
    assert 'aggregator_pushes_total{result="rejected"} 3.0' in metrics
    assert 'aggregator_pushes_total{result="accepted"} 1.0' in metrics
    status_text = run_cli("status", "--json", config=site.config, check=True).stdout
    for shown in (log, status_text, table, metrics, fetch(site.port, "/")[2].decode()):
        assert secret not in shown
    assert site.daemon.stop() == 0
    assert "Traceback" not in site.daemon.text()


def test_the_callback_answers_only_what_was_asked_for(tmp_path, feed_server, daemons, hubs, tls):
    context, bundle = tls
    hub = hubs(ssl_context=context)
    site = Site(tmp_path, feed_server, daemons, hub, bundle)
    site.wait_live()
    topic = site.topic.replace("/", "%2F").replace(":", "%3A")
    # the intent-verification GET for an unknown topic, an unknown source, a mode we never asked for: 404
    for path in ("/websub/pushy?hub.mode=subscribe&hub.topic=http%3A%2F%2Fother.example%2F&hub.challenge=abc",
                 f"/websub/nosuch?hub.mode=subscribe&hub.topic={topic}&hub.challenge=abc",
                 f"/websub/pushy?hub.mode=unsubscribe&hub.topic={topic}&hub.challenge=abc",
                 f"/websub/pushy?hub.mode=subscribe&hub.topic={topic}",
                 "/websub/pushy?hub.mode=denied&hub.topic=http%3A%2F%2Fother.example%2F",
                 "/websub/..%2F..%2Fetc?hub.mode=subscribe"):
        assert request(site.port, "GET", path)[0] == 404, path
    # the known topic is confirmed again (a hub's periodic re-check), echoing the challenge
    assert request(site.port, "GET", f"/websub/pushy?hub.mode=subscribe&hub.topic={topic}&hub.challenge=c-123"
                   f"&hub.lease_seconds=600") == (200, b"c-123")
    assert site.push_state()["state"] == "live"
    # a push for a source with no subscription: 410 Gone, so the hub drops it
    assert request(site.port, "POST", "/websub/nosuch", b"<rss/>")[0] == 410
    assert request(site.port, "PUT", "/websub/pushy", b"x")[0] == 405
    assert site.daemon.stop() == 0


def test_leases_are_renewed_and_while_live_the_source_is_polled_only_as_a_safety_net(
        tmp_path, feed_server, daemons, hubs, tls):
    context, bundle = tls
    hub = hubs(ssl_context=context, lease=4)  # the hub grants 4 s, whatever is asked
    site = Site(tmp_path, feed_server, daemons, hub, bundle, interval=0.5)
    site.wait_live()
    wait_for(lambda: datetime.fromisoformat(status_json(site.config)["pushy"]["next_poll"])
             > datetime.now(timezone.utc) + timedelta(hours=5), timeout=15, what="the safety net's next poll")
    polls = site.polls()
    first = datetime.fromisoformat(site.push_state()["expires"])
    wait_for(lambda: len([v for v in hub.verifications if v[3]]) >= 4, timeout=30, what="three renewals",
             log=site.daemon.log)
    assert all(r["hub.secret"] == hub.requests[0]["hub.secret"] for r in hub.requests)  # renewed, same secret
    push = site.push_state()
    assert push["state"] == "live" and datetime.fromisoformat(push["expires"]) > first
    assert site.polls() == polls  # an interval of 0.5 s, and no poll while live
    assert site.daemon.stop() == 0
    assert "lapsed" not in site.daemon.text()


def test_when_the_hub_disappears_polling_resumes_at_the_normal_interval(tmp_path, feed_server, daemons, hubs, tls):
    context, bundle = tls
    hub = hubs(ssl_context=context, lease=3)
    site = Site(tmp_path, feed_server, daemons, hub, bundle, interval=0.5)
    site.wait_live()
    hub.stop()  # gone: the renewal cannot reach it, and the lease runs out
    site.daemon.wait_log("lapsed", timeout=20)
    polls = site.polls()
    wait_for(lambda: site.polls() >= polls + 3, timeout=15, what="polling again", log=site.daemon.log)
    push = site.push_state()
    assert push["state"] == "pending" and "cannot reach the hub" in push["error"]
    site.serve("a story after the hub left")
    wait_for(lambda: "a story after the hub left" in site.served(), timeout=15, what="the polled story")
    assert "pending (websub: cannot reach the hub" in run_cli("status", config=site.config, check=True).stdout
    assert site.daemon.stop() == 0


def test_turning_subscribe_off_at_a_reload_sends_the_source_back_to_polling(tmp_path, feed_server, daemons, hubs,
                                                                           tls):
    """SIGHUP with websub.subscribe: false drops the live subscription, and with it the 6 h safety net: the
    source is polled at its own interval again at once (it was left until the safety net's next poll)."""
    context, bundle = tls
    hub = hubs(ssl_context=context)
    site = Site(tmp_path, feed_server, daemons, hub, bundle, interval=0.5)
    site.wait_live()
    polls = site.polls()
    site.config.write_text(site.config.read_text().replace("subscribe: true", "subscribe: false"))
    site.daemon.send(signal.SIGHUP)
    site.daemon.wait_log("subscription dropped (websub.subscribe is off)")
    wait_for(lambda: site.polls() >= polls + 3, timeout=15, what="polling again", log=site.daemon.log)
    assert site.push_state() is None
    assert site.daemon.stop() == 0


def test_a_denial_sends_the_source_back_to_polling(tmp_path, feed_server, daemons, hubs, tls):
    context, bundle = tls
    hub = hubs(ssl_context=context)
    site = Site(tmp_path, feed_server, daemons, hub, bundle, interval=0.5)
    site.wait_live()
    polls = site.polls()
    hub.deny(site.topic, "the publisher withdrew this topic")
    wait_for(lambda: site.polls() >= polls + 3, timeout=15, what="polling again", log=site.daemon.log)
    assert site.push_state() == {"state": "denied", "hub": hub.url, "expires": None,
                                 "error": "the publisher withdrew this topic"}
    assert "denied: the publisher withdrew this topic" in run_cli("status", config=site.config, check=True).stdout
    before = len(hub.requests)
    time.sleep(1.5)
    assert len(hub.requests) == before  # a denied subscription is not asked for again
    assert site.daemon.stop() == 0


def test_a_hub_that_refuses_is_retried_later_and_the_source_polled_meanwhile(
        tmp_path, feed_server, daemons, hubs, tls):
    context, bundle = tls
    hub = hubs(ssl_context=context, refuse=503)
    site = Site(tmp_path, feed_server, daemons, hub, bundle, interval=0.5)
    wait_for(lambda: (site.push_state() or {}).get("error"), timeout=30, what="the refusal recorded",
             log=site.daemon.log)
    assert site.push_state()["state"] == "pending"
    assert site.push_state()["error"].startswith("the hub answered HTTP 503")
    polls = site.polls()
    wait_for(lambda: site.polls() >= polls + 3, timeout=15, what="polling as usual")
    assert site.daemon.stop() == 0


def test_an_http_hub_gets_no_secret_and_its_push_only_makes_the_daemon_poll(tmp_path, feed_server, daemons, hubs):
    hub = hubs()  # http: a secret would travel in clear, so none is sent and no body is trusted
    site = Site(tmp_path, feed_server, daemons, hub, None)
    site.wait_live()
    assert "hub.secret" not in hub.requests[0]
    polls = site.polls()
    site.serve("polled story")  # what the source really says
    untrusted = feed(hub.url, site.topic, ["injected story"]).encode()
    assert hub.publish(site.topic, untrusted) == [202]
    wait_for(lambda: "polled story" in site.served(), timeout=30, what="the hinted poll", log=site.daemon.log)
    assert site.polls() == polls + 1
    assert "injected story" not in site.served()
    assert 'aggregator_pushes_total{result="hint"} 1.0' in fetch(site.port, "/metrics")[2].decode()
    assert site.daemon.stop() == 0


def test_a_worker_on_postgresql_subscribes_and_takes_pushes(tmp_path, feed_server, daemons, hubs, tls, postgres_url):
    context, bundle = tls
    hub = hubs(ssl_context=context)
    site = Site(tmp_path, feed_server, daemons, hub, bundle, state=postgres_url)
    site.daemon.wait_log("publishing: this worker renders the outputs now", timeout=30)
    site.wait_live()
    polls = site.polls()
    assert hub.publish(site.topic, feed(hub.url, site.topic, ["forged story"]).encode(), forge=True) == [202]
    assert hub.publish(site.topic, feed(hub.url, site.topic, site.stories + ["pushed story"]).encode()) == [202]
    wait_for(lambda: "pushed story" in site.served(), timeout=20, what="the pushed story served", log=site.daemon.log)
    assert "forged story" not in site.served() and site.polls() == polls
    assert site.daemon.stop() == 0


def test_websub_subscribe_needs_a_public_url(tmp_path):
    config = write_config(tmp_path, [{"id": "a", "url": "http://example.org/feed"}],
                          server={"listen": "127.0.0.1:8080", "public_url": "ftp://x/"},
                          websub={"subscribe": "yes", "lease": "soon"}, metrics={"per_source": 1})
    result = run_cli("check", config=config)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert any(f"{config}:" in line and "server.public_url: 'ftp://x/' is not an http(s) URL" in line for line in lines)
    assert any("websub.subscribe: expected true or false" in line for line in lines)
    assert any("websub.lease: 'soon' is not a duration" in line for line in lines)
    assert any("metrics.per_source: expected true or false" in line for line in lines)
    config = write_config(tmp_path, [{"id": "a", "url": "http://example.org/feed"}], websub={"subscribe": True})
    result = run_cli("check", config=config)
    assert result.returncode == 2
    assert "websub.subscribe: needs server.listen and server.public_url" in result.stderr
    line = next(n for n, text in enumerate(config.read_text().splitlines(), 1) if "subscribe" in text)
    assert f"{config}:{line}: websub.subscribe" in result.stderr
    assert json.loads(run_cli("status", "--json", config=write_config(
        tmp_path, [{"id": "a", "url": "http://example.org/feed"}]), check=True).stdout)["sources"][0]["push"] is None
