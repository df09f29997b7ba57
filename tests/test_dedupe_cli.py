"""End to end through the CLI: one story carried by three sources on a local HTTP server ends as one entry."""

from __future__ import annotations

from conftest import run_cli, write_config
from lxml import etree
from test_dedupe import OTHER, STORY, html

from aggregator import NAMESPACE

ATOM = "{http://www.w3.org/2005/Atom}"


def rss(title: str, items: list[tuple[str, str, str, str, str]]) -> str:
    """(title, link, guid, pubDate, html) items as an RSS 2.0 document."""
    body = "".join(f"<item><title>{t}</title><link>{link}</link><guid>{guid}</guid><pubDate>{date}</pubDate>"
                   f"<description><![CDATA[{text}]]></description></item>" for t, link, guid, date, text in items)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>'
            f"<link>https://{title.split()[0].lower()}.example/</link>{body}</channel></rss>")


FROG = "Scientists discover new species of frog in Amazon rainforest"
ALPHA = [(FROG, "https://alpha.example/2021/09/frog", "alpha-1", "Mon, 27 Sep 2021 10:00:00 GMT", html(STORY))]
BETA = [
    (f"{FROG} | Beta Digest", "https://beta.example/p/123?utm_source=rss&amp;utm_medium=feed", "beta-77",
     "Tue, 28 Sep 2021 08:00:00 GMT", "<p>Originally published by Alpha News on 27 September 2021.</p>" + html(STORY)),
    ("Weekly roundup", "https://beta.example/p/124", "beta-78", "Tue, 28 Sep 2021 09:00:00 GMT", html(OTHER)),
]
GAMMA = [
    (f"Gamma Wire: {FROG}", "https://gamma.example/world/frog-found", "tag:gamma.example,2021:991",
     "Tue, 28 Sep 2021 12:00:00 GMT", " ".join(" ".join(STORY).split()[:60]) + "… <a href='#'>Read more</a>"),
    ("Weekly roundup", "https://gamma.example/roundup", "tag:gamma.example,2021:992", "Tue, 28 Sep 2021 13:00:00 GMT",
     html(STORY[3:] + OTHER[:1])),
]


def entries(config) -> dict[str, etree._Element]:
    """Entries of the output by their alternate link."""
    tree = etree.parse(str(config.parent / "out" / "all.atom"))
    return {e.find(f"{ATOM}link").get("href"): e for e in tree.getroot().iter(f"{ATOM}entry")}


def story_entry(config) -> etree._Element:
    found = [e for e in entries(config).values() if FROG in e.findtext(f"{ATOM}title")]
    assert len(found) == 1, [e.findtext(f"{ATOM}title") for e in found]
    return found[0]


def summary(entry) -> tuple:
    related = sorted((link.get("title"), link.get("href")) for link in entry.findall(f"{ATOM}link[@rel='related']"))
    return (entry.findtext(f"{ATOM}id"), entry.findtext(f"{{{NAMESPACE}}}republished"),
            entry.find(f"{ATOM}source").findtext(f"{ATOM}title"), related)


def test_one_story_from_three_sources_is_one_entry_with_two_related_links(tmp_path, feed_server):
    urls = {name: feed_server.serve(f"/{name}.xml", rss(title, items)) for name, title, items in (
        ("alpha", "Alpha News", ALPHA), ("beta", "Beta Digest", BETA), ("gamma", "Gamma Wire", GAMMA))}
    config = write_config(tmp_path, [{"id": "beta", "url": urls["beta"]}, {"id": "gamma", "url": urls["gamma"]},
                                     {"id": "alpha", "url": urls["alpha"]}])

    # The republishers arrive first: the earliest of their copies is shown.
    run_cli("once", "--source", "beta", "--source", "gamma", config=config, check=True)
    uid, republished, shown, related = summary(story_entry(config))
    assert shown == "Beta Digest" and [title for title, _ in related] == [f"Gamma Wire: Gamma Wire: {FROG}"]

    # The original turns up later, published earlier: it takes over; id and republished stay.
    run_cli("once", config=config, check=True)
    entry = story_entry(config)
    assert summary(entry) == (uid, republished, "Alpha News", [
        (f"Beta Digest: {FROG} | Beta Digest", "https://beta.example/p/123?utm_source=rss&utm_medium=feed"),
        (f"Gamma Wire: Gamma Wire: {FROG}", "https://gamma.example/world/frog-found")])
    assert entry.find(f"{ATOM}link").get("href") == "https://alpha.example/2021/09/frog"
    assert entry.findtext(f"{ATOM}published").startswith("2021-09-27T10:00:00")
    # Two different stories under one generic title stay two entries.
    assert {"https://beta.example/p/124", "https://gamma.example/roundup"} <= set(entries(config))
    assert len(entries(config)) == 3

    # Another poll changes nothing.
    run_cli("once", config=config, check=True)
    assert summary(story_entry(config)) == summary(entry)

    # The shown copy changes at its source: the entry is updated, not replaced.
    changed = [ALPHA[0][:4] + (html(STORY).replace("Monday", "Tuesday"),)]
    feed_server.serve("/alpha.xml", rss("Alpha News", changed))
    run_cli("once", config=config, check=True)
    updated = story_entry(config)
    assert summary(updated) == summary(entry)
    assert "Tuesday" in updated.findtext(f"{ATOM}content")
    assert updated.findtext(f"{ATOM}updated") > entry.findtext(f"{ATOM}updated")

    # explain shows the copies and the evidence of each merge.
    result = run_cli("explain", uid, config=config, check=True)
    assert f"story {uid}, republished {republished}" in result.stdout
    assert result.stdout.count("joined on") == 2 and "started the story" in result.stdout
    assert "* item" in result.stdout and "from alpha (Alpha News)" in result.stdout
    assert "rule: " in result.stdout and "containment" in result.stdout
    by_link = run_cli("explain", "http://www.alpha.example/2021/09/frog/?utm_source=x", config=config, check=True)
    assert by_link.stdout == result.stdout


def test_explain_exits_1_when_nothing_matches(tmp_path, feed_server):
    url = feed_server.serve("/alpha.xml", rss("Alpha News", ALPHA))
    config = write_config(tmp_path, [{"id": "alpha", "url": url}])
    run_cli("once", config=config, check=True)
    result = run_cli("explain", "urn:uuid:00000000-0000-0000-0000-000000000000", config=config)
    assert result.returncode == 1
    assert "no story" in result.stderr and "Traceback" not in result.stderr
