"""Fuzzing parse → store → publish with hypothesis: nothing raises out of a poll, every output stays valid XML.

Inputs: random bytes, truncated real feeds from tests/fixtures/corpus, feeds
with hostile snippets spliced in (entities, character references, DOCTYPEs,
CDATA ends), re-declared and re-encoded feeds, and generated feeds whose
text carries any character at all. The default profile is derandomised so
the suite is stable; HYPOTHESIS_PROFILE=fuzz runs many more random examples.
"""

from __future__ import annotations

import codecs
import os
import re
import shutil
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st
from lxml import etree

from aggregator.config import load_config
from aggregator.models import PollResult
from aggregator.output.publish import publish_outputs
from aggregator.reader.hosts import HostLimiter
from aggregator.run.pipeline import poll
from aggregator.store import Store
from conftest import FIXTURES, write_config
from hostile import ATOM, unsafe_html

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("fuzz", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

CORPUS = sorted(p for p in (FIXTURES / "corpus").rglob("*") if p.suffix in (".xml", ".rss", ".atom", ".rdf"))
SNIPPETS = [b"&#xD800;", b"&#0;", b"&#x110000;", b"&#99999999999;", b"&bogus;", b"&amp", b"&", b"<", b"]]>",
            b"<![CDATA[", b"\x00", b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"<!ENTITY a \"aaaa\">",
            b"<!DOCTYPE rss [<!ENTITY a \"&b;\"><!ENTITY b \"&a;\">]>", b"&a;" * 50, b"<script>alert(1)</script>",
            b"<title>", b"</item>", b"<item><title>x</title></item>", b"\x1b[31m", b"\xef\xbb\xbf", b"\r", b"\x0c",
            b"<a href='javascript:alert(1)'>x</a>", b"&lt;img src=x onerror=alert(1)&gt;", b"<?xml version='1.0'?>"]
ENCODINGS = ["utf-8", "utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "shift_jis", "euc-kr", "big5", "koi8-r",
             "utf-7", "cp037", "ascii", "bogus-charset"]


class Pipeline:
    """One state file, one file: source and one output, reused across examples like a long-lived daemon."""

    def __init__(self):
        self.directory = Path(tempfile.mkdtemp(prefix="aggregator-fuzz-"))
        self.feed = self.directory / "feed.xml"
        self.config = load_config(write_config(self.directory, [{"id": "fuzz", "url": "file:feed.xml"}],
                                               [{"id": "all", "title": "All", "formats": ["atom"]}]))
        self.store = Store(self.config.state)
        self.limiter = HostLimiter()

    def run(self, body: bytes) -> PollResult:
        """Poll and publish; assert every output is valid XML carrying nothing executable."""
        self.feed.write_bytes(body)
        result = poll(self.store, self.config, self.config.sources[0], self.limiter)
        assert result.outcome in ("new", "updated", "unchanged", "error")
        assert result.error is None or "\n" not in result.error
        assert "internal error" not in (result.error or ""), result.error  # pipeline.poll's safety net caught a bug
        publish_outputs(self.store, self.config)
        for path in (self.directory / "out").rglob("*"):
            if path.suffix not in (".atom", ".rss", ".opml", ".xsl"):
                continue
            root = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
            for entry in root.iter(f"{ATOM}entry"):
                assert not re.search(r"<[a-zA-Z!/?]", entry.findtext(f"{ATOM}title") or "")
                assert unsafe_html(entry.findtext(f"{ATOM}content")) == []
                assert unsafe_html(entry.findtext(f"{ATOM}summary")) == []
                for link in entry.findall(f"{ATOM}link"):
                    assert link.get("href", "").startswith(("http://", "https://")), link.get("href")
        return result


_pipelines: dict[str, Pipeline] = {}


@pytest.fixture(scope="module", autouse=True)
def _remove_pipelines():
    yield
    for pipeline_ in _pipelines.values():
        pipeline_.store.close()
        shutil.rmtree(pipeline_.directory, ignore_errors=True)
    _pipelines.clear()


def pipeline(name: str) -> Pipeline:
    if name not in _pipelines:
        _pipelines[name] = Pipeline()
    return _pipelines[name]


def corpus_feed():
    return st.sampled_from(CORPUS).map(lambda p: p.read_bytes())


@given(st.binary(max_size=4000))
def test_random_bytes(body):
    pipeline("bytes").run(body)


@given(corpus_feed(), st.floats(0, 1))
def test_truncated_real_feeds(body, fraction):
    pipeline("truncated").run(body[: int(len(body) * fraction)])


@given(corpus_feed(), st.lists(st.tuples(st.floats(0, 1), st.sampled_from(SNIPPETS)), min_size=1, max_size=6))
@example(CORPUS[0].read_bytes(),
         [(0.5, b"&#xD800;"), (0.6, b"&#x110000;")])
def test_real_feeds_with_hostile_snippets(body, splices):
    for fraction, snippet in splices:
        at = int(len(body) * fraction)
        body = body[:at] + snippet + body[at:]
    pipeline("snippets").run(body)


@given(corpus_feed(), st.sampled_from(ENCODINGS), st.sampled_from(ENCODINGS), st.booleans())
def test_real_feeds_redeclared_and_reencoded(body, declared, actual, bom):
    text = body.decode("utf-8", "replace")
    if text.startswith("<?xml"):
        text = text[text.find("?>") + 2:]
    text = f'<?xml version="1.0" encoding="{declared}"?>' + text
    try:
        data = text.encode(actual, "replace")
    except LookupError:
        data = text.encode("utf-8")
    if bom:
        data = {"utf-16-le": codecs.BOM_UTF16_LE}.get(actual, codecs.BOM_UTF8) + data
    pipeline("encodings").run(data)


ODD_CHARACTERS = st.one_of(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),  # lone surrogates
                           st.characters(max_codepoint=0x1F),  # C0 controls
                           st.sampled_from("\ufffe\uffff\u2028<>&\"'"), st.characters())
ANY_TEXT = st.text(ODD_CHARACTERS, max_size=200)


@given(st.lists(st.tuples(ANY_TEXT, ANY_TEXT, ANY_TEXT), min_size=1, max_size=5), st.booleans())
@example([("\ud800 lone surrogate", "a", "\x01 \U0010ffff")], True)  # failed the whole feed before parse.py's fix
@example([("\x0b\x0c title", "b", "<script>alert(1)</script>")], False)
def test_generated_items_with_any_characters(items, as_references):
    def field(text: str) -> str:
        if as_references:  # every character as a numeric reference, surrogates and controls included
            return "".join(f"&#{ord(c)};" for c in text)
        return escape(text.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))

    body = "".join(f"<item><title>{field(t)}</title><link>https://fuzz.example/{field(l)}</link>"
                   f"<description>{field(d)}</description></item>" for t, l, d in items)
    result = pipeline("generated").run(f'<?xml version="1.0"?><rss version="2.0"><channel><title>f</title>{body}'
                                       f"</channel></rss>".encode("utf-8", "surrogatepass"))
    assert result.outcome != "error", result.error  # odd characters cost at most themselves, never the feed


def test_a_bug_met_by_one_source_is_recorded_on_it_and_costs_nothing_else():
    """The safety net under the fuzzed properties: an unexpected exception becomes that source's error."""
    fresh = _pipelines["bug"] = Pipeline()
    fresh.feed.write_bytes(b'<rss version="2.0"><channel><title>t</title></channel></rss>')

    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    result = poll(fresh.store, fresh.config, fresh.config.sources[0], fresh.limiter, prepare=broken)
    assert result.outcome == "error"
    assert result.error == "aggregator: internal error on this source's data: RuntimeError: boom second line; please report it"
    assert fresh.store.source_state("fuzz").state == "failing"
