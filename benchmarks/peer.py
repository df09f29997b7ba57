"""The first sync against a peer: `aggregator once` and lemon24/reader cold, on the same loopback feeds in one run.

For each size: N generated feeds (feeds.py, as cycle.py serves them), then
rounds of, in an order that is reversed every other round so neither side
always runs second on a warm page cache:

  reader      a fresh database, `add_feed` for every URL, `update_feeds_iter(workers=K)`
              (what `update_feeds` runs; the iterator lets us count errors), once for
              each K in --reader-workers; the best K's median is the one compared
  aggregator  `aggregator once` on a fresh state through the CLI, as cycle.py runs it
  naive       benchmarks/naive.py on the first --naive-feeds feeds, as cycle.py runs it

Each is a child process, timed from start to exit (interpreter start and
imports included, for every side alike), with its peak RSS and user+system
CPU from wait4: its own, its waited-for children's, and that of the processes it
leaves behind (a publishing pool's fork server and workers, adopted as their
subreaper and waited for). The loopback server's
request count is read before and after each run, and the entries each side
stored are counted, so a side that fetched nothing cannot look fast.

    pip install -e '.[bench]'
    python benchmarks/peer.py --sizes 1000 --rounds 3 --reader-workers 1,4,8,16   # ~35 min: reader's best K
    python benchmarks/peer.py --sizes 1000,10000 --rounds 1 --reader-workers K    # ~45 min: the 1.3x scaling

reader spends ~140 ms of one core a feed here (its parse and store run in the
calling thread), so a reader run at 10,000 feeds takes ~25 minutes.

`python benchmarks/peer.py --reader-child DB --workers K < urls` is the
reader run alone (what the harness starts); it prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cycle import ROOT, adopt_orphans, children, orphans_cpu, write_config  # noqa: E402
from feeds import FeedServer  # noqa: E402


@dataclass
class Run:
    wall: float
    cpu: float
    rss: float
    requests: int
    stored: dict = field(default_factory=dict)


def timed(command: list[str], stdin: str | None = None) -> tuple[float, float, float, str]:
    """As cycle.timed (wait4 on the child), plus CPU seconds and the child's stdout."""
    started, before = time.perf_counter(), children()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                   stdout=out, stderr=err, cwd=str(ROOT))
        if stdin:
            process.stdin.write(stdin.encode())
            process.stdin.close()
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        left = orphans_cpu(before)  # a publishing pool's fork server and workers
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(command[:5])} failed: {err.read().decode()[-2000:]}")
        return elapsed, usage.ru_utime + usage.ru_stime + left, usage.ru_maxrss / 1024, out.read().decode()


# --- reader, in its own process -------------------------------------------------------------------

def reader_child(db: str, workers: int, synchronous: str, urls: list[str]) -> None:
    started = time.perf_counter()
    from reader import ParseError, make_reader

    reader = make_reader(db)
    if synchronous != "default":
        # reader leaves SQLite's synchronous=FULL (an fsync of the WAL at every feed's commit);
        # the aggregator runs NORMAL. Its storage thread is this one (retrieval alone is threaded).
        reader._storage.get_db().execute(f"PRAGMA synchronous={synchronous}")
    for url in urls:
        reader.add_feed(url)
    added = time.perf_counter()
    updated = not_modified = 0
    errors: list[str] = []
    for url, value in reader.update_feeds_iter(workers=workers):
        if isinstance(value, ParseError):
            errors.append(f"{url}: {value}")
        elif value is None:
            not_modified += 1
        else:
            updated += 1
    done = time.perf_counter()
    reader.close()
    # What it stored is counted by the harness from the file, as the aggregator's is: through reader's API,
    # a count for each feed took longer than the whole update at 10,000 feeds, and would be timed with it.
    print(json.dumps({"import_add_s": added - started, "update_s": done - added, "updated": updated,
                      "not_modified": not_modified, "errors": len(errors), "first_error": errors[:1]}))


# --- the harness ----------------------------------------------------------------------------------

def run_reader(server, urls: list[str], workers: int, synchronous: str) -> Run:
    folder = Path(tempfile.mkdtemp(prefix="bench-reader-"))
    try:
        before = server.answered()
        wall, cpu, rss, out = timed([sys.executable, str(Path(__file__).resolve()), "--reader-child",
                                     str(folder / "reader.sqlite"), "--workers", str(workers),
                                     "--synchronous", synchronous], "\n".join(urls))
        stored = json.loads(out.strip().splitlines()[-1]) | reader_counts(folder / "reader.sqlite")
        return Run(wall, cpu, rss, server.answered() - before, stored)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def reader_counts(db_path: Path) -> dict:
    """Entries, and feeds holding entries, read from reader's file (its schema: entries.feed)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    entries, feeds = db.execute("SELECT count(*), count(DISTINCT feed) FROM entries").fetchone()
    db.close()
    return {"entries": entries, "feeds_with_entries": feeds}


def aggregator_counts(state: Path) -> dict:
    """Items, stories, and sources holding items, read from the state file (schema of aggregator/store.py)."""
    try:
        db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
        items, sources = db.execute("SELECT count(*), count(DISTINCT source_id) FROM items").fetchone()
        stories = db.execute("SELECT count(*) FROM stories").fetchone()[0]
        db.close()
        return {"entries": items, "stories": stories, "feeds_with_entries": sources}
    except sqlite3.Error as exc:
        return {"entries": None, "error": str(exc)}


def run_aggregator(server, urls: list[str]) -> Run:
    folder = Path(tempfile.mkdtemp(prefix="bench-peer-agg-"))
    try:
        config = write_config(folder, urls)
        before = server.answered()
        wall, cpu, rss, _ = timed([sys.executable, "-m", "aggregator", "-c", str(config), "once"])
        requests = server.answered() - before
        return Run(wall, cpu, rss, requests, aggregator_counts(folder / "state.db"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_naive(server, urls: list[str]) -> Run:
    before = server.answered()
    wall, cpu, rss, _ = timed([sys.executable, str(ROOT / "benchmarks" / "naive.py"), os.devnull, "-"],
                              "\n".join(urls))
    return Run(wall, cpu, rss, server.answered() - before, {})


@dataclass
class Side:
    name: str
    feeds: int
    runs: list[Run] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def rate(self) -> float:
        return self.feeds / self.wall

    @property
    def ms(self) -> float:
        return 1000 * self.wall / self.feeds

    def row(self) -> str:
        cpu = statistics.median(r.cpu for r in self.runs)
        last = self.runs[-1]
        stored = last.stored.get("entries")
        extra = f" ({last.stored['stories']} stories)" if "stories" in last.stored else ""
        return (f"  {self.name:<22}{self.wall:8.2f} s {self.rate:8.1f} {self.ms:8.1f} {1000 * cpu / self.feeds:8.1f}"
                f" {max(r.rss for r in self.runs):7.0f} MB {last.requests:8d}  {stored if stored is not None else '-'}"
                f"{extra}")

    def check(self) -> list[str]:
        """What says this side did not really fetch and store every feed."""
        problems = []
        for r in self.runs:
            if r.requests < self.feeds:
                problems.append(f"{self.name}: the server answered {r.requests} requests for {self.feeds} feeds")
            with_entries = r.stored.get("feeds_with_entries")
            if with_entries is not None and with_entries < self.feeds:
                problems.append(f"{self.name}: {with_entries} of {self.feeds} feeds have entries stored")
            if r.stored.get("errors"):
                problems.append(f"{self.name}: {r.stored['errors']} errors, {r.stored['first_error']}")
        return sorted(set(problems))


def measure(count: int, args) -> dict[str, Side]:
    print(f"N = {count} feeds on {args.hosts} loopback host(s) (median of {args.rounds} rounds, order alternated)",
          flush=True)
    started = time.perf_counter()
    server = FeedServer(count, hosts=args.hosts)
    print(f"  (generated and serving in {time.perf_counter() - started:.0f} s)", flush=True)
    urls = server.urls()
    naive_urls = urls[:args.naive_feeds]
    sides = {"naive": Side(f"naive ({len(naive_urls)} feeds)", len(naive_urls))}
    for k in args.reader_workers:
        sides[f"reader{k}"] = Side(f"reader workers={k}", count)
    sides["aggregator"] = Side("aggregator once", count)
    jobs = {"naive": lambda: run_naive(server, naive_urls), "aggregator": lambda: run_aggregator(server, urls)}
    for k in args.reader_workers:
        jobs[f"reader{k}"] = lambda k=k: run_reader(server, urls, k, args.synchronous)
    try:
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for name in order:
                sides[name].runs.append(jobs[name]())
                r = sides[name].runs[-1]
                inside = f"  (update_feeds_iter {r.stored['update_s']:.2f} s)" if "update_s" in r.stored else ""
                print(f"    round {round_ + 1}: {sides[name].name:<22}{r.wall:8.2f} s{inside}", flush=True)
    finally:
        server.stop()
    print(f"  {'':<22}{'wall':>10} {'feeds/s':>8} {'ms/feed':>8} {'cpu ms/f':>8} {'peak RSS':>10} "
          f"{'requests':>8}  entries stored")
    for side in sides.values():
        print(side.row())
    best = min((s for key, s in sides.items() if key.startswith("reader")), key=lambda s: s.wall)
    agg, naive = sides["aggregator"], sides["naive"]
    print(f"  aggregator / reader ({best.name.split()[-1]}): {agg.rate / best.rate:.2f}x feeds/s;"
          f"  aggregator / naive: {agg.rate / naive.rate:.2f}x;  reader / naive: {best.rate / naive.rate:.2f}x")
    for problem in sum((s.check() for s in sides.values()), []):
        print(f"  WARNING {problem}")
    sides["reader best"] = best
    return sides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--naive-feeds", type=int, default=200, help="feeds the naive script is timed on")
    parser.add_argument("--reader-workers", default="1,4,8",
                        help="reader update_feeds workers to try (it threads retrieval only)")
    parser.add_argument("--hosts", type=int, default=1, help="loopback ports the feeds are spread over")
    parser.add_argument("--synchronous", default="NORMAL",
                        help="SQLite synchronous for reader's database (the aggregator's is NORMAL); "
                             "'default' leaves reader's FULL")
    parser.add_argument("--reader-child", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=8, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader_child:
        reader_child(args.reader_child, args.workers, args.synchronous, sys.stdin.read().split())
        return
    args.reader_workers = [int(k) for k in args.reader_workers.split(",")]
    adopt_orphans()
    import reader

    print(f"cpu cores: {os.cpu_count()}, python {sys.version.split()[0]}, reader {reader.__version__}")
    results = {count: measure(count, args) for count in (int(n) for n in args.sizes.split(","))}
    if len(results) > 1:
        small, large = min(results), max(results)
        for key, name in (("aggregator", "aggregator"), ("reader best", "reader (best workers)")):
            ratio = results[large][key].ms / results[small][key].ms
            print(f"ms a feed at {large} / at {small}: {name} {ratio:.2f} (target within 1.3)")


if __name__ == "__main__":
    main()
