"""CPU per feed of each stage of a cold poll, against the naive script's parse and render, in one process.

What a cold `once` must do for every feed, timed a stage at a time on the
benchmark's generated feeds (no HTTP: cycle.py measures that): parse, sanitise
every item, fingerprint and key them for deduplication, store them, publish.
The last lines add up the stages with and without the deduplication text
work and turn each sum into the most feeds/s two fully busy cores could give,
next to what 5x the naive script (one core) would need.

    python benchmarks/stages.py --feeds 200 --rounds 3
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import feedparser
from feedgen.feed import FeedGenerator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from feeds import FeedSet  # noqa: E402

from aggregator.dedup import titles
from aggregator.output.publish import publish_outputs  # noqa: E402
from aggregator.run import pipeline  # noqa: E402
from aggregator.config import load_config  # noqa: E402
from aggregator.models import FetchResult  # noqa: E402
from aggregator.reader.parse import parse_feed  # noqa: E402
from aggregator.run.prepare import prepare_feed  # noqa: E402
from aggregator.reader.sanitize import clean_html  # noqa: E402
from aggregator.store import Store  # noqa: E402

HEADERS = {"content-type": "application/xml"}


def cpu_ms_per_feed(work, count: int) -> float:
    started = time.process_time()
    work()
    return (time.process_time() - started) * 1000 / count


def naive(bodies: list[bytes]) -> None:
    """naive.py's work on bodies already fetched: feedparser, then feedgen for the newest 100."""
    entries = []
    for body in bodies:
        entries += feedparser.parse(body).entries
    generator = FeedGenerator()
    generator.id("urn:x-naive:merged")
    generator.title("Merged")
    for entry in entries[:100]:
        item = generator.add_entry()
        item.id(entry.get("id") or entry.get("link"))
        item.title(entry.get("title", ""))
        item.content(entry.get("summary", ""), type="html")
    generator.atom_str()


def one_round(bodies: list[bytes]) -> dict[str, float]:
    count, now = len(bodies), datetime.now(timezone.utc)
    urls = [f"http://127.0.0.1:9/feed/{f}" for f in range(count)]
    titles.split_affix.cache_clear()
    folder = Path(tempfile.mkdtemp(prefix="bench-stages-"))
    (folder / "aggregator.yaml").write_text(
        "state: state.db\noutput:\n  dir: out\nsources:\n"
        + "".join(f"  - id: feed{f}\n    url: {url}\n" for f, url in enumerate(urls))
        + "outputs:\n  - id: all\n    limit: 100\n")
    config = load_config(folder / "aggregator.yaml")
    figures = {"naive: feedparser + feedgen": cpu_ms_per_feed(lambda: naive(bodies), count)}

    feeds = []
    figures["parse"] = cpu_ms_per_feed(
        lambda: feeds.extend(parse_feed(body, HEADERS, url=url, now=now, max_entries=500)
                             for body, url in zip(bodies, urls)), count)
    figures["sanitise every item"] = cpu_ms_per_feed(
        lambda: [(clean_html(e.summary, e.link), clean_html(e.content, e.link)) for f in feeds for e in f.entries],
        count)
    prepared = []
    whole = cpu_ms_per_feed(lambda: prepared.extend(
        prepare_feed(body, HEADERS, url, now, 500, f"feed{f}", []) for f, (body, url) in enumerate(zip(bodies, urls))),
        count)
    figures["dedupe text work (prepare - parse - sanitise)"] = whole - figures["parse"] - figures["sanitise every item"]

    store = Store(config.state)

    def store_all() -> None:
        for source, body, ready in zip(config.sources, bodies, prepared):
            outcome = FetchResult(source.url, 200, b"", HEADERS)
            pipeline.store_fetched(store, config, source, store.source_state(source.id), source.url, now, outcome,
                                   hashlib.sha256(body).hexdigest(), ready)
    figures["store"] = cpu_ms_per_feed(store_all, count)
    figures["publish (first: every archive page)"] = cpu_ms_per_feed(
        lambda: publish_outputs(store, config, now), count)
    store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bodies = FeedSet(args.feeds).bodies
    rounds = [one_round(bodies) for _ in range(args.rounds)]
    figures = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    print(f"{args.feeds} feeds, {statistics.mean(map(len, bodies)) / 1024:.0f} KB each; CPU ms a feed, "
          f"median of {args.rounds} rounds")
    for name, value in figures.items():
        print(f"  {name:<46} {value:7.1f}")
    naive_ms = figures.pop("naive: feedparser + feedgen")
    floor = figures["parse"] + figures["sanitise every item"] + figures["store"] + \
        figures["publish (first: every archive page)"]
    total = floor + figures["dedupe text work (prepare - parse - sanitise)"]
    print(f"  5x naive on one core needs                     {5 * 1000 / naive_ms:7.1f} feeds/s")
    print(f"  all stages, two cores fully busy, at most      {2 * 1000 / total:7.1f} feeds/s")
    print(f"  ... were dedupe's text work free, at most      {2 * 1000 / floor:7.1f} feeds/s")


if __name__ == "__main__":
    main()
