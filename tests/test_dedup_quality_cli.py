"""End to end through the CLI (`once` against a local HTTP server): the copies issue 19 is about.

A real story (Slashdot, from the labelled set's tune half: tests/fixtures/dedup/
families.jsonl, pair f1-0579) reaches the aggregator four ways: the original; a
digest linking its AMP page (Google's AMP viewer, tracking parameters) with a
trimmed excerpt; a republisher's copy through a typography filter (soft
hyphens, curly quotes, no-break spaces) under a theme's drop cap; and a
16-word teaser under the same title. A second real story that opens with the
same stock paragraph comes from a fifth source. The four copies are one entry;
the other story stays its own; `explain` names the rules.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import run_cli, write_config
from lxml import etree
from test_dedupe_cli import rss

ATOM = "{http://www.w3.org/2005/Atom}"
PAIR = next(json.loads(line) for line in (Path(__file__).parent / "fixtures/dedup/families.jsonl").open(encoding="utf-8")
            if '"f1-0579"' in line)
STORY, STOCK_LEDE_STORY = PAIR["a"], PAIR["b"]
TITLE = STORY["title"]
LINK = "https://tech.slashdot.org/story/09/01/22/1554224/generational-windows-multicore-performance-tests"
PARAGRAPHS = re.findall(r"<p>(.*?)</p>", STORY["content"], re.S)


def typography(html: str) -> str:
    """A CMS typography filter: soft hyphens in long words, curly quotes, a no-break space after short words."""
    html = re.sub(r"(?<=[A-Za-z]{4})(?=[a-z]{4})", "\u00ad", html)
    html = re.sub(r'"(?=\w)', "\u201c", html).replace('"', "\u201d")
    html = re.sub(r"(\w)'(\w)", "\\1\u2019\\2", html)
    return re.sub(r"\b(a|an|the|of|in) ", "\\1\u00a0", html)


def test_amp_digest_typography_copy_and_teaser_are_one_entry_and_a_stock_lede_is_not(tmp_path, feed_server):
    first = PARAGRAPHS[0]
    teaser = " ".join(re.sub(r"<[^>]+>", "", PARAGRAPHS[1]).split()[:16])
    feeds = {
        "slashdot": ("Slashdot", [(TITLE, LINK, "sd-1", "Thu, 22 Jan 2009 16:23:00 GMT", STORY["content"])]),
        "digest": ("Morning Digest", [(f"{TITLE} | Morning Digest",
                                       "https://www.google.com/amp/s/tech.slashdot.org/story/09/01/22/1554224/"
                                       "generational-windows-multicore-performance-tests/amp?utm_source=digest",
                                       "md-9", "Fri, 23 Jan 2009 06:00:00 GMT",
                                       f"<p>{first}</p><p>{' '.join(PARAGRAPHS[1].split()[:40])} […]</p>")]),
        "reprint": ("Reprint Weekly", [(TITLE, "https://reprint.example/2009/01/windows-multicore", "rp-3",
                                        "Fri, 23 Jan 2009 09:00:00 GMT",
                                        '<p><span class="dropcap">' + first[0] + "</span>"
                                        + typography(first[1:]) + "</p>"
                                        + "".join(f"<p>{typography(p)}</p>" for p in PARAGRAPHS[1:]))]),
        "teasers": ("Teaser Feed", [(TITLE, "https://teasers.example/t/4411", "tf-1", "Thu, 22 Jan 2009 20:00:00 GMT",
                                     f"<p>{teaser}</p>")]),
        "metrodesk": ("Metro Desk", [(STOCK_LEDE_STORY["title"], "https://metrodesk.example/news/layoffs", "m-1",
                                      "Fri, 23 Jan 2009 07:17:00 GMT", STOCK_LEDE_STORY["content"])]),
    }
    urls = {sid: feed_server.serve(f"/{sid}.xml", rss(title, items)) for sid, (title, items) in feeds.items()}
    config = write_config(tmp_path, [{"id": sid, "url": url} for sid, url in urls.items()])

    run_cli("once", config=config, check=True)

    tree = etree.parse(str(tmp_path / "out" / "all.atom"))
    found = {e.findtext(f"{ATOM}title"): e for e in tree.getroot().iter(f"{ATOM}entry")}
    assert len(found) == 2, sorted(found)
    story = next(e for title, e in found.items() if TITLE in title)
    related = {link.get("href") for link in story.findall(f"{ATOM}link[@rel='related']")}
    assert related == {"https://www.google.com/amp/s/tech.slashdot.org/story/09/01/22/1554224/"
                       "generational-windows-multicore-performance-tests/amp?utm_source=digest",
                       "https://reprint.example/2009/01/windows-multicore", "https://teasers.example/t/4411"}
    assert any(STOCK_LEDE_STORY["title"] in title for title in found)

    explained = run_cli("explain", LINK, config=config, check=True).stdout
    assert "rule: same canonical link" in explained  # the AMP viewer's link is the article's
    assert "rule: teaser under the same title;" in explained
    assert "words contained 1.0" in explained  # what the teaser rule measured, beside the basic scores
    assert re.search(r"rule: (near-identical text|same content hash)", explained)  # the typography copy
