"""Credentials and local paths out of what we show (SPEC §2, §4, §9): the one redaction function, and the
rule by which outputs name a source (atom:source id and self link), both pure."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from aggregator.config import SourceConfig
from aggregator.models import SourceState
from aggregator.output.select import source_meta, tag_uri
from aggregator.redaction import public_url, redact

BASE = "https://feeds.example.org/"


@pytest.mark.parametrize("text, expected", [
    ("http://user:secret@host/feed.rss?token=KEY", "http://***@host/feed.rss?token=***"),
    ("https://APIKEY@host/feed", "https://***@host/feed"),  # a user name alone is often the key
    ("https://h/x?a=1&api_key=Z&keyword=rust&monkey=2", "https://h/x?a=1&api_key=***&keyword=rust&monkey=2"),
    ("https://h/x?X-Amz-Signature=abc&X-Amz-Credential=d&apiKey=3&access_token=4&Password=5&sig=6",
     "https://h/x?X-Amz-Signature=***&X-Amz-Credential=***&apiKey=***&access_token=***&Password=***&sig=***"),
    ("https://h/cb#access_token=Q&state=1", "https://h/cb#access_token=***&state=1"),
    ("fetch: more than 5 redirects (last to http://reader:pw@127.0.0.1:8/loop-b?token=K)",
     "fetch: more than 5 redirects (last to http://***@127.0.0.1:8/loop-b?token=***)"),
    ("Max retries exceeded with url: /feed.rss?auth=KEY (Caused by ...)",
     "Max retries exceeded with url: /feed.rss?auth=*** (Caused by ...)"),
    ("mail bob@example.org about http://host/feed?page=2", "mail bob@example.org about http://host/feed?page=2"),
    ("file:feeds/local%20feed.atom", "file:feeds/local%20feed.atom"),
    ("https://www.wsws.org/en/rss.xml", "https://www.wsws.org/en/rss.xml"),
    ("https://h/app;jsessionid=0AF3/feed?jwt=eyJ&page=2", "https://h/app;jsessionid=***?jwt=***&page=2"),
    ("https://h/x?a=1;sig=ab/cd+ef", "https://h/x?a=1;sig=***"),  # masked whole, not up to its slash
])
def test_redact_masks_userinfo_and_secret_looking_parameters_only(text, expected):
    assert redact(text) == expected
    assert redact(expected) == expected  # idempotent: a masked value stays masked


@pytest.mark.parametrize("url, expected", [
    ("http://user:secret@host:8080/feed.rss?token=KEY&page=2#top", "http://host:8080/feed.rss?page=2"),
    ("https://h/app;jsessionid=0AF3;v=2/feed.rss?api_key=Z", "https://h/app;v=2/feed.rss"),
    ("https://www.wsws.org/en/rss.xml?lang=en", "https://www.wsws.org/en/rss.xml?lang=en"),
    ("https://h/x?a=1;token=x;b=2", "https://h/x?a=1;b=2"),
    ("https://h/x?session=S&page=2", "https://h/x?page=2"),
    ("http://[::1/feed", ""),  # unreadable: no base at all
])
def test_a_public_url_drops_what_redact_masks(url, expected):
    """The base a feed's relative links are resolved against: they are published (SPEC §4)."""
    assert public_url(url) == expected


def meta(url: str, **state):
    source = SourceConfig("src", url, 0)
    return source_meta(source, SourceState(id="src", **state), BASE)


def test_a_source_is_named_by_its_own_id_when_that_is_an_absolute_iri():
    named = meta("https://site.example/feed.rss", feed_id="tag:site.example,2021:feed",
                 feed_link="https://site.example/")
    assert (named.feed_id, named.self_url, named.site_url) == (
        "tag:site.example,2021:feed", "https://site.example/feed.rss", "https://site.example/")


@pytest.mark.parametrize("feed_id", [None, "95148ACD-C1A3-4F2B-9A4E-6C1B2D3E4F50", "file:///srv/feeds/x.rss",
                                     "an id with spaces", "http://user:pw@site.example/feed"])
def test_an_id_an_output_cannot_carry_gives_way_to_the_feed_url_then_a_tag_uri(feed_id):
    assert meta("https://site.example/feed.rss", feed_id=feed_id).feed_id == "https://site.example/feed.rss"
    local = meta("file:///srv/feeds/x.rss", feed_id=feed_id)
    assert (local.feed_id, local.self_url) == ("tag:feeds.example.org,2024:sources/src", None)
    own = meta("file:///srv/feeds/x.rss", feed_id=feed_id, feed_self="https://site.example/x.rss")
    assert (own.feed_id, own.self_url) == ("https://site.example/x.rss", "https://site.example/x.rss")


def test_a_url_with_credentials_is_never_what_an_output_names():
    private = meta("http://reader:pw@host.example/feed.rss?token=KEY", feed_link="https://host.example/?token=KEY",
                   feed_self="http://host.example/feed.rss?token=KEY")
    assert (private.feed_id, private.self_url, private.site_url) == ("tag:feeds.example.org,2024:sources/src",
                                                                     None, None)
    # a source with no date of its own or its items' is as new as its last new body, not its last poll
    changed, polled = datetime(2021, 9, 1, tzinfo=timezone.utc), datetime(2021, 9, 2, tzinfo=timezone.utc)
    assert meta("file:///x.rss", body_changed=changed, last_success=polled).updated == changed


@pytest.mark.parametrize("base, expected", [
    ("http://127.0.0.1:8080/", "tag:127.0.0.1,2024:sources/a"),
    ("https://Example.ORG/news/feeds/", "tag:example.org,2024:news/feeds/sources/a"),
    ("http://[::1]:8080/", "tag:localhost,2024:sources/a"),  # no DNS name to take
])
def test_tag_uris_follow_rfc_4151(base, expected):
    assert tag_uri(base, "a") == expected
