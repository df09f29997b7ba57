"""A year on a server, in-process on a simulated clock: does the cost of a day's work stay flat?

    .venv/bin/python benchmarks/simulate_year.py                       # 2,000 sources, 365 days, keep 90d
    .venv/bin/python benchmarks/simulate_year.py --sources 200 --days 120 --checkpoints 1,30,90,120

The real pipeline (run.pipeline.poll on file: sources, output.publish.publish_outputs, run.prune.prune)
with a simulated `now`: nothing is mocked. N sources publish at uneven rates (log-normal, a few a day to
~100 a day), ~10% of stories are carried by a second source too (another guid and link, a decorated
title, an attribution paragraph). Each simulated day every source is polled twice (once after it
published, once more with nothing new), every output is published, and retention runs as `run` would,
once a day. At each checkpoint day it prints: ms per poll (all polls, and the polls that brought a new
body), ms per new item, the state's bytes, stories, near-duplicate index rows, this process's peak RSS,
and the day's publish time, each from that day's totals, in CPU time (it holds on a busy machine); the ratios the issue asks about come last.
"""

from __future__ import annotations

import argparse
import cProfile
import math
import pstats
import random
import resource
import sys
import tempfile
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.config import load_config  # noqa: E402
from aggregator.output.archive import PublishMemory  # noqa: E402
from aggregator.output.publish import publish_outputs  # noqa: E402
from aggregator.reader.hosts import HostLimiter  # noqa: E402
from aggregator.run.pipeline import poll  # noqa: E402
from aggregator.run.prune import prune  # noqa: E402
from aggregator.store import Store  # noqa: E402
from aggregator.store.backend import DAEMON_CACHE_KIB  # noqa: E402

START = datetime(2025, 1, 6, 0, 0, tzinfo=timezone.utc)
SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]


class World:
    """The sources and what each has published so far: deterministic for a seed."""

    def __init__(self, sources: int, seed: int, shared: float = 0.10):
        self.rng = random.Random(seed)
        self.vocabulary = ["".join(self.rng.choices(SYLLABLES, k=self.rng.randint(1, 4))) for _ in range(20000)]
        self.weights = [1 / (rank + 10) for rank in range(len(self.vocabulary))]  # Zipf-like
        self.rates = [min(100.0, max(0.5, self.rng.lognormvariate(math.log(3), 1.2))) for _ in range(sources)]
        self.feeds = [deque(maxlen=max(20, int(2 * rate))) for rate in self.rates]
        self.shared = shared
        self.count = 0

    def words(self, count: int) -> list[str]:
        return self.rng.choices(self.vocabulary, self.weights, k=count)

    def story(self, source: int, when: datetime) -> dict:
        self.count += 1
        paragraphs = ["<p>" + " ".join(self.words(self.rng.randint(30, 90))).capitalize() + ".</p>"
                      for _ in range(self.rng.randint(2, 7))]
        return {"guid": f"s{source}-{self.count}", "link": f"https://source{source}.example/{self.count}",
                "title": " ".join(self.words(self.rng.randint(5, 11))).capitalize(), "html": "".join(paragraphs),
                "published": when}

    def day(self, day: datetime) -> int:
        """Every source's new items of this day (some also carried by a second source); how many in all."""
        made = 0
        for source, rate in enumerate(self.rates):
            for _ in range(self._poisson(rate)):
                when = day + timedelta(seconds=self.rng.randint(0, 86399))
                item = self.story(source, when)
                self.feeds[source].appendleft(item)
                made += 1
                if self.rng.random() < self.shared:
                    other = self.rng.randrange(len(self.rates))
                    if other != source:
                        self.feeds[other].appendleft(dict(
                            item, guid=f"s{other}-copy-{self.count}", link=f"https://source{other}.example/c{self.count}",
                            title=f"{item['title']} | Source {other}", published=when + timedelta(minutes=30),
                            html=f"<p>This story was originally published by Source {source}.</p>{item['html']}"))
                        made += 1
        return made

    def _poisson(self, rate: float) -> int:
        threshold, count, product = math.exp(-rate), 0, self.rng.random()
        while product > threshold:
            count += 1
            product *= self.rng.random()
        return count

    def rss(self, source: int) -> bytes:
        items = "".join(
            f"<item><title>{escape(i['title'])}</title><link>{i['link']}</link><guid>{i['guid']}</guid>"
            f"<pubDate>{format_datetime(i['published'])}</pubDate>"
            f"<description>{escape(i['html'])}</description></item>" for i in self.feeds[source])
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Source {source}'
                f"</title><link>https://source{source}.example/</link>{items}</channel></rss>").encode()


def write_config(folder: Path, sources: int, keep: str, outputs: int) -> Path:
    lines = ["state: state/aggregator.db", "output: {dir: out}", f"retention: {{keep: {keep}}}",
             "defaults: {interval: 12h}", "sources:"]
    lines += [f"  - {{id: s{n}, url: 'file:feeds/{n}.xml', tags: [t{n % outputs}]}}" for n in range(sources)]
    lines += ["outputs:"] + [f"  - {{id: out{n}, title: Output {n}, tags: [t{n}], limit: 100}}" for n in range(outputs)]
    path = folder / "aggregator.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def simulate(args) -> list[dict]:
    world = World(args.sources, args.seed)
    checkpoints = {int(d) for d in args.checkpoints.split(",")}
    rows = []
    with tempfile.TemporaryDirectory(prefix="simulate-year-") as tmp:
        folder = Path(tmp)
        (folder / "feeds").mkdir()
        config = load_config(write_config(folder, args.sources, args.keep, args.outputs))
        store, limiter, memory = Store(config.state, cache_kib=DAEMON_CACHE_KIB), HostLimiter(), PublishMemory()
        for number in range(1, args.days + 1):
            day = START + timedelta(days=number - 1)
            made = world.day(day)
            for source in range(args.sources):
                (folder / "feeds" / f"{source}.xml").write_bytes(world.rss(source))
            figures = {"day": number, "made": made}
            for poll_number, at in enumerate((day + timedelta(hours=23), day + timedelta(hours=23, minutes=30))):
                started, new, changed = time.process_time(), 0, 0
                for source in config.sources:
                    result = poll(store, config, source, limiter, now=at)
                    new += result.new
                    changed += result.outcome.changed
                elapsed = time.process_time() - started
                figures[f"poll{poll_number}"] = (elapsed, new, changed)
            started = time.process_time()
            profile = cProfile.Profile() if args.profile and number in checkpoints else None
            if profile:
                profile.enable()
            publish_outputs(store, config, now=day + timedelta(hours=23, minutes=45), memory=memory)
            figures["publish"] = time.process_time() - started
            if profile:
                profile.disable()
                pstats.Stats(profile).sort_stats("cumulative").print_stats(18)
            started = time.process_time()
            report = prune(store, config, day + timedelta(hours=23, minutes=50), memory=memory)
            figures["prune"] = (time.process_time() - started, report.stories)
            if number in checkpoints:
                rows.append(checkpoint(store, figures, args.sources))
                print(line(rows[-1]), flush=True)
                if args.tables:
                    print("  rows: " + ", ".join(f"{name} {count}" for name, count in table_rows(store)), flush=True)
        store.close()
    return rows


def checkpoint(store: Store, figures: dict, sources: int) -> dict:
    (busy, new, changed), (idle, _, _) = figures["poll0"], figures["poll1"]
    stats = store.stats()
    return {"day": figures["day"], "per_poll_ms": (busy + idle) / (2 * sources) * 1000,
            "per_changed_poll_ms": busy / max(changed, 1) * 1000, "per_item_ms": busy / max(new, 1) * 1000,
            "new": new, "bytes": stats.bytes, "stories": stats.stories, "tombstones": stats.tombstones,
            "index_rows": store.query("SELECT count(*) FROM near_keys")[0][0], "rss_mb": peak_rss_mb(),
            "publish_s": figures["publish"], "prune_s": figures["prune"][0], "pruned": figures["prune"][1]}


def table_rows(store: Store) -> list[tuple[str, int]]:
    """Each table of the state and its row count, largest first: what grows when the store does."""
    names = [r[0] for r in store.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
    counts = [(name, store.query(f'SELECT count(*) FROM "{name}"')[0][0]) for name in names]
    return sorted(counts, key=lambda pair: -pair[1])


def line(row: dict) -> str:
    return (f"day {row['day']:>3}: {row['per_poll_ms']:6.2f} ms/poll, {row['per_changed_poll_ms']:6.2f} ms/changed poll, "
            f"{row['per_item_ms']:5.2f} ms/new item ({row['new']} new), {row['bytes'] / 1e6:8.1f} MB, "
            f"{row['stories']:>8} stories, {row['tombstones']:>7} tombstones, {row['index_rows']:>8} index rows, "
            f"peak RSS {row['rss_mb']:5.0f} MB, publish {row['publish_s']:6.2f} s, prune {row['prune_s']:5.2f} s "
            f"({row['pruned']} pruned)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=2000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--outputs", type=int, default=4)
    parser.add_argument("--keep", default="90d")
    parser.add_argument("--checkpoints", default="1,30,90,120,180,365")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tables", action="store_true", help="at each checkpoint, the row count of every table")
    parser.add_argument("--profile", action="store_true", help="at each checkpoint, cProfile of the day's publish")
    args = parser.parse_args()
    print(f"{args.sources} sources, {args.days} days, keep {args.keep}, {args.outputs} outputs", flush=True)
    rows = {row["day"]: row for row in simulate(args)}
    if 30 in rows and args.days in rows:
        late, month = rows[args.days], rows[30]
        print(f"day {args.days} / day 30: per poll {late['per_poll_ms'] / month['per_poll_ms']:.2f}x, "
              f"per changed poll {late['per_changed_poll_ms'] / month['per_changed_poll_ms']:.2f}x, "
              f"per new item {late['per_item_ms'] / month['per_item_ms']:.2f}x (target ≤ 1.2x)")
    if 120 in rows and args.days in rows:
        print(f"database day {args.days} / day 120: {rows[args.days]['bytes'] / rows[120]['bytes']:.2f}x "
              f"(target ≤ 1.15x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
