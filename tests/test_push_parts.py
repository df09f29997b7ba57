"""The parts of WebSub push, each on its own: discovery from real bytes, signatures, the subscription plan,
the store's subscription queries on both backends, and the subscriber's lease clock moved by time-machine
against the stand-in hub."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta, timezone

import pytest
import time_machine

from aggregator.config import load_config
from aggregator.models import PushState, PushSubscription
from aggregator.reader.discovery import discover
from aggregator.run.callback import signature_ok
from aggregator.run.push import Action, Subscriber, plan, renew_at, retry_delay
from aggregator.store import Store
from conftest import FIXTURES, write_config
from websubhub import Hub

NOW = datetime(2031, 3, 4, 12, 0, tzinfo=timezone.utc)  # after 2025: urllib3 warns of older clocks
ATOM = "http://www.w3.org/2005/Atom"


# discovery (W3C WebSub §4)

def test_link_headers_come_before_the_documents_own_links():
    body = (f'<feed xmlns="{ATOM}"><link rel="hub" href="https://doc-hub.example/"/>'
            '<link rel="self" href="https://example.org/doc"/></feed>').encode()
    found = discover(body, {"link": '<https://header-hub.example/>; rel="hub", </topic>; rel="self"'},
                     "https://example.org/feed")
    assert (found.hubs, found.topic) == (("https://header-hub.example/",), "https://example.org/topic")
    found = discover(body, {"link": '</next>; rel="next"'}, "https://example.org/feed")
    assert (found.hubs, found.topic) == (("https://doc-hub.example/",), "https://example.org/doc")


def test_atom_rss_and_json_feed_hubs_are_found_and_entry_links_ignored():
    atom = (f'<?xml version="1.0"?><feed xmlns="{ATOM}"><title>t</title><link rel="hub" href="http://hub.example/"/>'
            '<link rel="hub" href="https://secure-hub.example/"/><link rel="self" href="/feed.atom"/>'
            '<entry><link rel="hub" href="https://evil.example/"/></entry></feed>').encode()
    found = discover(atom, {}, "https://site.example/x")
    assert found.hubs == ("http://hub.example/", "https://secure-hub.example/")
    assert found.hub == "https://secure-hub.example/"  # HTTPS preferred (§8.2)
    assert found.topic == "https://site.example/feed.atom"
    rss = (f'<rss version="2.0" xmlns:atom="{ATOM}"><channel><title>t</title><link>http://s.example/</link>'
           '<item><title>x</title><atom:link rel="hub" href="https://evil.example/"/></item>'
           '<atom:link rel="hub" href="https://late.example/"/></channel></rss>').encode()
    assert discover(rss, {}, "http://s.example/f") is None  # only links before the first item count
    rss = rss.replace(b"<item>", b'<atom:link rel="hub" href="https://hub.example/"/><item>')
    assert discover(rss, {}, "http://s.example/f").topic == "http://s.example/f"  # no self: the URL fetched
    json_feed = b'{"version": "https://jsonfeed.org/version/1.1", "feed_url": "https://j.example/feed.json", ' \
                b'"hubs": [{"type": "WebSub", "url": "https://hub.example/"}, {"type": "rssCloud", "url": "x"}]}'
    found = discover(json_feed, {}, "https://j.example/")
    assert (found.hubs, found.topic) == (("https://hub.example/",), "https://j.example/feed.json")


def test_real_feeds_name_their_hubs_and_hostile_documents_none():
    real = FIXTURES / "corpus" / "real"  # copies of public feeds, origins in its MANIFEST.tsv
    expected = {
        "rsparser/allthis.atom": (("http://pubsubhubbub.appspot.com", "http://aniat.superfeedr.com"),
                                  "http://leancrew.com/all-this/feed/"),  # atom:link in RSS, two hubs
        "rsparser/4fsodonline.atom": (("http://pubsubhubbub.appspot.com/",),  # Blogger's Atom; entries' own
                                      "http://www.blogger.com/feeds/3905741845175603023/posts/default"),  # self
        "rsparser/EMarley.rss": (("http://medium.superfeedr.com",), "https://medium.com/feed/@emarley"),
        "rss-parser/item-itunes-episodeType.rss": (("https://pubsubhubbub.appspot.com/",),
                                                   "https://baywatch-berlin.podigee.io/feed/mp3"),
    }
    for name, (hubs, topic) in expected.items():
        found = discover((real / name).read_bytes(), {}, "https://example.org/feed")
        assert (found.hubs, found.topic) == (hubs, topic), name
    for path in sorted(real.rglob("*")):
        if path.suffix in (".xml", ".rss", ".atom", ".rdf") and b"hub" not in path.read_bytes():
            assert discover(path.read_bytes(), {}, "https://example.org/feed") is None, path
    bomb = (b'<?xml version="1.0"?><!DOCTYPE f [<!ENTITY a "hub"><!ENTITY b "&a;&a;&a;&a;">]>'
            b'<feed xmlns="http://www.w3.org/2005/Atom"><link rel="&b;" href="https://hub.example/"/></feed>')
    assert discover(bomb, {}, "https://example.org/") is None
    for href in ("javascript:alert(1)", "file:///etc/passwd", "ftp://hub.example/"):
        body = f'<feed xmlns="{ATOM}"><link rel="hub" href="{href}"/></feed>'.encode()
        assert discover(body, {}, "https://example.org/") is None, href
    assert discover(b"<feed><link rel='hub' href='https://h.example/'", {}, "https://e.org/").hubs  # cut short


# signatures (§7.1)

@pytest.mark.parametrize("method", ["sha1", "sha256", "sha384", "sha512"])
def test_a_signature_is_the_hmac_of_the_raw_body_under_the_secret(method):
    body, secret = b"<rss>\xe2\x80\x94 raw bytes</rss>", "s3cret"
    good = hmac.new(secret.encode(), body, getattr(hashlib, method)).hexdigest()
    assert signature_ok(f"{method}={good}", body, secret)
    assert signature_ok(f"{method.upper()}={good.upper()}", body, secret)
    assert not signature_ok(f"{method}={good}", body + b" ", secret)
    assert not signature_ok(f"{method}={good}", body, "other")
    assert not signature_ok(f"{method}=", body, secret)
    assert not signature_ok(f"md5={hashlib.md5(body).hexdigest()}", body, secret)
    assert not signature_ok(None, body, secret) and not signature_ok("", body, secret)


# the plan

def test_what_a_due_subscription_needs():
    pending = PushSubscription("a", "https://hub.example/", "https://example.org/feed")
    assert plan(pending, NOW, wanted=True) == Action.REQUEST
    assert plan(pending, NOW, wanted=False) == Action.DROP
    assert plan(PushSubscription("a", "h", "t", requested=NOW), NOW, True) == Action.GIVE_UP_WAITING
    live = PushSubscription("a", "h", "t", state=PushState.LIVE, expires=NOW + timedelta(hours=1))
    assert plan(live, NOW, True) == Action.RENEW
    assert plan(live, NOW + timedelta(hours=1), True) == Action.LAPSE
    assert plan(PushSubscription("a", "h", "t", state=PushState.DENIED), NOW, True) == Action.NOTHING
    assert renew_at(NOW, 10 * 86400) == NOW - timedelta(days=1)
    assert renew_at(NOW, 3600) == NOW - timedelta(minutes=15)
    assert renew_at(NOW, 4) == NOW - timedelta(seconds=2)
    assert [retry_delay(n) for n in range(3)] == [60, 120, 240] and retry_delay(50) == 6 * 3600


# the store, both backends

def test_the_store_moves_a_subscription_only_as_the_hub_and_the_subscriber_may(store):
    assert store.push_subscription("a") is None
    assert store.push_discovered("a", "https://hub.example/", "https://example.org/feed", NOW)
    assert not store.push_discovered("a", "https://hub.example/", "https://example.org/feed", NOW)
    later = NOW + timedelta(days=10)
    # never requested: a verification for it is not ours
    assert not store.push_verified("a", "https://example.org/feed", 600, later, later)
    sub = store.push_subscription("a")
    assert (sub.state, sub.next_action, sub.secret) == (PushState.PENDING, NOW, None)
    assert [s.source_id for s in store.push_due(NOW)] == ["a"] and store.push_due(NOW - timedelta(seconds=1)) == []
    store.save_push(PushSubscription("a", sub.hub, sub.topic, secret="k", requested=NOW, next_action=NOW))
    assert not store.push_verified("a", "https://other.example/", 600, later, later)
    assert store.push_verified("a", "https://example.org/feed", 600, later, later - timedelta(days=1))
    sub = store.push_subscription("a")
    assert (sub.state, sub.expires, sub.lease, sub.requested, sub.secret) == (PushState.LIVE, later, 600, None, "k")
    store.push_failed("a", NOW, "late failure of a request verified meanwhile", later)  # guarded: no effect
    assert store.push_subscription("a").error is None
    assert not store.push_lapsed("a", NOW, "wrong expiry", NOW)
    assert store.push_lapsed("a", later, "the lease ended", NOW)
    assert store.push_subscription("a").state == PushState.PENDING
    assert store.push_denied("a", "https://example.org/feed", "no")
    assert not store.push_denied("a", "https://example.org/feed", "again")
    assert store.push_subscription("a").error == "no" and store.push_due(later) == []
    assert store.push_discovered("a", "https://new-hub.example/", "https://example.org/feed", NOW)  # a new hub
    assert store.push_subscriptions()["a"].state == PushState.PENDING
    assert store.drop_push("a") and not store.drop_push("a")


def test_size_bytes_counts_the_state_and_grows_with_it(store):
    before = store.size_bytes()
    assert before > 0
    with store.transaction() as db:
        db.cursor().executemany("INSERT INTO dedup_meta (name, value) VALUES (?, ?)",
                                [(f"k{n}", secrets.token_hex(1000)) for n in range(2000)])  # incompressible
    assert store.size_bytes() > before + 1_000_000


# the subscriber's clock, moved

def test_a_ten_day_lease_is_renewed_a_day_early_and_lapses_into_polling_when_unrenewed(tmp_path):
    hub = Hub(refuse=503).start()  # it takes no renewal: the lease will run out
    try:
        config = load_config(write_config(tmp_path, [{"id": "a", "url": "http://127.0.0.1:9/feed"}],
                                          server={"listen": "127.0.0.1:9", "public_url": "https://agg.example/"},
                                          websub={"subscribe": True}))
        store, polls = Store(config.state), []
        subscriber = Subscriber(lambda: config, store, lambda source, when: polls.append((source, when)),
                                lambda: True)
        with time_machine.travel(NOW, tick=False) as clock:
            expires = NOW + timedelta(days=10)
            store.save_push(PushSubscription("a", hub.url, "http://127.0.0.1:9/feed", state=PushState.LIVE,
                                             expires=expires, lease=864000, next_action=renew_at(expires, 864000)))
            assert subscriber.poll_after("a", NOW + timedelta(minutes=5), NOW) == NOW + timedelta(hours=6)
            clock.move_to(NOW + timedelta(days=8, hours=23))
            subscriber.tick(datetime.now(timezone.utc))
            assert hub.requests == []  # not yet
            clock.move_to(NOW + timedelta(days=9, seconds=1))
            subscriber.tick(datetime.now(timezone.utc))
            assert [r["hub.mode"] for r in hub.requests] == ["subscribe"]
            assert hub.requests[0]["hub.callback"] == "https://agg.example/websub/a"
            sub = store.push_subscription("a")
            assert sub.state == PushState.LIVE and sub.error.startswith("the hub answered HTTP 503")
            assert polls == []
            clock.move_to(expires + timedelta(seconds=1))
            subscriber.tick(datetime.now(timezone.utc))
            assert store.push_subscription("a").state == PushState.PENDING
            assert polls == [("a", expires + timedelta(seconds=1))]  # polled again at once
            assert subscriber.poll_after("a", NOW + timedelta(days=10, minutes=5), NOW) == \
                NOW + timedelta(days=10, minutes=5)  # no longer live: the normal interval
        store.close()
    finally:
        hub.stop()
