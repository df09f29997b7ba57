"""Three copies of one story, as the issue-19 report saw them, served by a local feed server.

- news: the original, linked by its short archive URL;
- digest: a digest's item linking the original's permalink with tracking
  parameters, under its own title, with a trimmed excerpt (too short to match
  on text, and on the original's own site under another URL: it never matches
  the original directly);
- repub: a republisher's full copy under a reworded title, naming the
  original's permalink as canonical: the same link as the digest's, the same
  text as the original's. It is the copy that ties the other two together.

Plus one unrelated story in the news feed, which must stay alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from lxml import etree

ATOM = "{http://www.w3.org/2005/Atom}"

PARAGRAPHS = [
    "Dock workers at three more container ports walked off the job on Monday morning, widening a strike that "
    "began last week at the country's largest harbour and has already left dozens of ships waiting at anchor "
    "outside the breakwater with cargo that cannot be unloaded.",
    "Union officials said the stoppage would continue until the port operators withdrew a plan to introduce "
    "automated cranes and cut the number of shifts, a plan the workers say would put more than two thousand "
    "jobs at risk over the next three years without any retraining offered.",
    "The operators' association said in a statement that it regretted the escalation and remained open to talks, "
    "but insisted that the modernisation programme was needed to keep the ports competitive with rival harbours "
    "across the border, where automated terminals opened two years ago.",
    "Shipping lines have begun diverting vessels to other ports, and freight forwarders warned that supermarkets "
    "could see shortages of fresh fruit and some imported goods within a fortnight if the dispute drags on "
    "into the busy autumn season that precedes the holidays.",
    "A spokesperson for the transport ministry said the government was following the situation closely and urged "
    "both sides to return to the negotiating table, adding that mediation by the labour inspectorate was "
    "available at short notice if the parties asked for it.",
]
OTHER = [
    "The city council approved a new cycling plan on Tuesday evening after a debate that lasted more than four "
    "hours, with councillors arguing over the cost of protected lanes, the loss of parking spaces in the old town "
    "and the timetable for the first stretch along the river embankment.",
    "Residents who spoke at the meeting were divided, with shop owners worried about deliveries and parents asking "
    "for safer routes to the two primary schools near the market square, where several accidents were recorded.",
]
TITLE = "Dockworkers' strike spreads to three more ports"
PERMALINK = "https://news.example/2021/09/27/dockworkers-strike-spreads"
ORIGINAL_LINK = "https://news.example/archives/4711"
DIGEST_LINK = PERMALINK + "?utm_source=digest&amp;utm_medium=email&amp;utm_campaign=daily"
REPUB_LINK = "https://repub.example/world/strike-at-the-docks-widens"
SOURCES = ("news", "digest", "repub")


def _atom(title: str, entries: list[str]) -> str:
    return (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>{title}</title>'
            f'<id>tag:{title.split()[0].lower()}.example,2021:feed</id><updated>2021-09-27T12:00:00Z</updated>'
            + "".join(entries) + "</feed>")


def _entry(id_: str, title: str, links: str, when: datetime, html: str) -> str:
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f"<entry><id>{id_}</id><title>{title}</title>{links}<published>{stamp}</published>"
            f"<updated>{stamp}</updated><content type=\"html\"><![CDATA[{html}]]></content></entry>")


def _html(paragraphs: list[str]) -> str:
    return "".join(f"<p>{p}</p>" for p in paragraphs)


def feeds(now: datetime | None = None) -> dict[str, str]:
    """source id -> feed document. The original is the earliest-published copy, then the digest, then repub."""
    now = now or datetime.now(timezone.utc).replace(microsecond=0)
    first = now - timedelta(hours=6)
    excerpt = " ".join(" ".join(PARAGRAPHS).split()[:38]) + " […]"
    return {
        "news": _atom("News Example", [
            _entry("tag:news.example,2021:4711", TITLE, f'<link rel="alternate" href="{ORIGINAL_LINK}"/>', first,
                   _html(PARAGRAPHS)),
            _entry("tag:news.example,2021:4712", "Council approves the new cycling plan",
                   '<link rel="alternate" href="https://news.example/archives/4712"/>', first - timedelta(hours=3),
                   _html(OTHER)),
        ]),
        "digest": _atom("Daily Digest", [
            _entry("tag:digest.example,2021:d-99", "Today's pick: ports shut as dock strike grows",
                   f'<link rel="alternate" href="{DIGEST_LINK}"/>', first + timedelta(hours=1), f"<p>{excerpt}</p>"),
        ]),
        "repub": _atom("Republisher", [
            _entry("tag:repub.example,2021:r-5", "Strike at the docks widens as three more harbours walk out",
                   f'<link rel="alternate" href="{REPUB_LINK}"/><link rel="canonical" href="{PERMALINK}"/>',
                   first + timedelta(hours=2), _html(PARAGRAPHS) + "<p>Republished with permission.</p>"),
        ]),
    }


def serve(feed_server, documents: dict[str, str]) -> list[dict]:
    """The sources of a config, in the order news, digest, repub."""
    return [{"id": name, "url": feed_server.serve(f"/{name}.atom", documents[name],
                                                  content_type="application/atom+xml")} for name in SOURCES]


def entries(config) -> list[etree._Element]:
    tree = etree.parse(str(config.parent / "out" / "all.atom"))
    return list(tree.getroot().iter(f"{ATOM}entry"))


def links(entry) -> set[str]:
    """Every link of an entry: its own (alternate) and its related copies'."""
    return {link.get("href") for link in entry.findall(f"{ATOM}link")
            if link.get("rel", "alternate") in ("alternate", "related")}


def shown_link(entry) -> str:
    """The link of the copy an entry shows."""
    return next(link.get("href") for link in entry.findall(f"{ATOM}link") if link.get("rel", "alternate") == "alternate")


def story_of(config, link: str):
    """The output entry showing or relating the copy at `link`."""
    found = [e for e in entries(config) if link in links(e)]
    assert len(found) == 1, [e.findtext(f"{ATOM}title") for e in found]
    return found[0]


def entry_id(entry) -> str:
    return entry.findtext(f"{ATOM}id")
