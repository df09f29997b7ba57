"""AMP links canonicalise to the article's own URL: each shape AMP pages, caches and viewers take."""

from __future__ import annotations

import pytest

from aggregator.dedup.links import amp_free_path, amp_page, canonical_link

ARTICLE = "https://www.example.com/2019/05/china-rejects-envoys-call.html"


@pytest.mark.parametrize("shape, url", [
    ("/amp/ path segment", "https://www.example.com/amp/2019/05/china-rejects-envoys-call.html"),
    ("trailing /amp", "https://www.example.com/2019/05/china-rejects-envoys-call.html/amp"),
    ("trailing /amp/", "https://www.example.com/2019/05/china-rejects-envoys-call.html/amp/"),
    ("?amp", "https://www.example.com/2019/05/china-rejects-envoys-call.html?amp"),
    ("?amp=1", "https://www.example.com/2019/05/china-rejects-envoys-call.html?amp=1"),
    ("?amp=true", "https://www.example.com/2019/05/china-rejects-envoys-call.html?amp=true"),
    ("?outputType=amp", "https://www.example.com/2019/05/china-rejects-envoys-call.html?outputType=amp"),
    ("amp. host", "https://amp.example.com/2019/05/china-rejects-envoys-call.html"),
    ("amp.www. host", "https://amp.www.example.com/2019/05/china-rejects-envoys-call.html"),
    (".amp.html suffix", "https://www.example.com/2019/05/china-rejects-envoys-call.amp.html"),
    ("AMP cache", "https://www-example-com.cdn.ampproject.org/c/s/www.example.com/2019/05/china-rejects-envoys-call.html"),
    ("AMP cache viewer", "https://www-example-com.cdn.ampproject.org/v/s/www.example.com/2019/05/china-rejects-envoys-call.html?amp_js_v=0.1"),
    ("Google AMP viewer", "https://www.google.com/amp/s/www.example.com/2019/05/china-rejects-envoys-call.html/amp/"),
    ("AMP cache params", "https://www.example.com/2019/05/china-rejects-envoys-call.html?amp=1&usqp=mq331AQFKAGwASA%3D"),
    ("with tracking", "https://amp.example.com/amp/2019/05/china-rejects-envoys-call.html?utm_source=digest&amp_js_v=0.1"),
])
def test_amp_links_are_the_articles(shape, url):
    assert canonical_link(url) == canonical_link(ARTICLE) == "example.com/2019/05/china-rejects-envoys-call.html"


def test_amp_marks_keep_the_pages_own_query():
    assert canonical_link("https://ex.example/story?id=12&amp=1") == "ex.example/story?id=12"
    assert canonical_link("https://ex.example/story?id=12&outputType=amp") == "ex.example/story?id=12"
    assert canonical_link("https://www-ex-example.cdn.ampproject.org/c/s/ex.example/story?id=12") == "ex.example/story?id=12"


def test_a_plain_http_page_behind_the_amp_cache():
    assert canonical_link("https://ex-example.cdn.ampproject.org/c/ex.example/a/b") == "ex.example/a/b"
    assert amp_page("ex-example.cdn.ampproject.org", "/c/ex.example/a") == "http://ex.example/a"
    assert amp_page("www.google.com", "/amp/s/ex.example/a") == "https://ex.example/a"
    assert amp_page("www.google.com", "/search") is None


def test_what_only_looks_like_amp_stays():
    assert canonical_link("https://ex.example/camp/ample-ramp") == "ex.example/camp/ample-ramp"
    assert canonical_link("https://ex.example/amplifiers/review") == "ex.example/amplifiers/review"
    assert canonical_link("https://amp.dev/documentation") == "amp.dev/documentation"  # a site of its own
    assert canonical_link("https://ex.example/page?outputType=json") == "ex.example/page?outputType=json"
    assert canonical_link("https://ex.example/page?amp=summer") == "ex.example/page?amp=summer"
    assert amp_free_path("/news/example.html") == "/news/example.html"
    assert amp_free_path("/amp") == "/"
