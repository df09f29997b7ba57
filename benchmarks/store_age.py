"""Does a poll cost more into an old store? The same batch of new feeds into stores of 10k, 100k, 300k stories.

    .venv/bin/python benchmarks/store_age.py                      # stores of 10,000 and 100,000 stories
    .venv/bin/python benchmarks/store_age.py --sizes 10000,100000,300000 --rounds 3
    .venv/bin/python benchmarks/store_age.py --untrimmed          # the index left holding the whole history

Each store is filled the way a daemon fills it over a year (simulate_year's sources, polled every 5 days on
a simulated clock, retention `forever` so nothing is pruned, the prune after each poll trimming the
near-duplicate index to the dedup window). Then the same probe, 43 feeds of 60 new items each, is polled
into a copy of each store (run.pipeline.poll on file: sources, one transaction per feed), and the CPU
milliseconds a feed (wall time beside it) are printed, with the state's bytes per story; CPU time holds on
a busy machine. The ratio to the smallest store is the figure to watch.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections import deque
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulate_year import START, World  # noqa: E402

from aggregator.config import load_config  # noqa: E402
from aggregator.output.archive import PublishMemory  # noqa: E402
from aggregator.output.publish import publish_outputs  # noqa: E402
from aggregator.reader.hosts import HostLimiter  # noqa: E402
from aggregator.run.pipeline import poll  # noqa: E402
from aggregator.run.prune import prune  # noqa: E402
from aggregator.store import Store  # noqa: E402

FILL_SOURCES, PROBE_FEEDS, PROBE_ITEMS = 100, 43, 60
FILL_EVERY = 5  # days between the fill's polls (then a publish and a prune): a feed lists at least 20 items


def write_config(folder: Path, sources: int, probes: int) -> Path:
    lines = ["state: state/aggregator.db", "output: {dir: out}", "retention: {keep: forever}", "sources:"]
    lines += [f"  - {{id: s{n}, url: 'file:feeds/{n}.xml'}}" for n in range(sources)]
    lines += [f"  - {{id: p{n}, url: 'file:probe/{n}.xml'}}" for n in range(probes)]
    lines += ["outputs:", "  - {id: all, title: All, limit: 100}"]
    path = folder / "aggregator.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def fill(folder: Path, stories: int, untrimmed: bool, seed: int) -> tuple[Path, int]:
    """A store of about `stories` stories published over 365 simulated days; the day after its last."""
    world = World(FILL_SOURCES, seed)
    world.rates = [stories / 365 / FILL_SOURCES * 1.15] * FILL_SOURCES  # ~10% of stories have a second copy
    (folder / "feeds").mkdir(parents=True)
    (folder / "probe").mkdir()
    config = load_config(write_config(folder, FILL_SOURCES, PROBE_FEEDS))
    store, limiter, memory = Store(config.state), HostLimiter(), PublishMemory()
    for number in range(365):
        day = START + timedelta(days=number)
        world.day(day)
        if number % FILL_EVERY != FILL_EVERY - 1 and number != 364:
            continue
        for source in range(FILL_SOURCES):
            (folder / "feeds" / f"{source}.xml").write_bytes(world.rss(source))
        for source in config.sources[:FILL_SOURCES]:
            poll(store, config, source, limiter, now=day + timedelta(hours=23))
        publish_outputs(store, config, now=day + timedelta(hours=23, minutes=30), memory=memory)
        if not untrimmed:
            prune(store, config, day + timedelta(hours=23, minutes=40), memory=memory)
    count = store.stats().stories
    store.close()
    for probe in range(PROBE_FEEDS):  # new stories only: none of them a copy of a stored one
        world.feeds[0] = deque(maxlen=PROBE_ITEMS)
        for _ in range(PROBE_ITEMS):
            world.feeds[0].appendleft(world.story(0, START + timedelta(days=365, hours=probe % 24)))
        (folder / "probe" / f"{probe}.xml").write_bytes(world.rss(0).replace(b"source0.example", f"probe{probe}.example".encode()))
    return folder / "aggregator.yaml", count


def probe(config_path: Path, rounds: int) -> tuple[float, float, int]:
    """Median milliseconds a probe feed (CPU, wall), each round into a fresh copy of the store; the state's bytes."""
    state = config_path.parent / "state"
    runs, cpu_runs = [], []
    for _ in range(rounds):
        copy = config_path.parent / "state-copy"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(state, copy)
        config = load_config(config_path)
        store = Store(copy / "aggregator.db")
        now = START + timedelta(days=365, hours=12)
        started, cpu = time.perf_counter(), time.process_time()
        for source in config.sources[FILL_SOURCES:]:
            result = poll(store, config, source, HostLimiter(), now=now)
            assert result.new == PROBE_ITEMS, result
        runs.append((time.perf_counter() - started) / PROBE_FEEDS * 1000)
        cpu_runs.append((time.process_time() - cpu) / PROBE_FEEDS * 1000)
        store.close()
    store = Store(state / "aggregator.db")
    size = store.size_bytes()
    store.close()
    return statistics.median(cpu_runs), statistics.median(runs), size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--untrimmed", action="store_true", help="never trim the index (as before retention)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="store-age-", dir=str(Path(__file__).resolve().parent.parent)) as tmp:
            started = time.perf_counter()
            config, stories = fill(Path(tmp), size, args.untrimmed, args.seed)
            filled = time.perf_counter() - started
            per_feed, wall, size_bytes = probe(config, args.rounds)
            results.append((stories, per_feed))
            print(f"{stories:>8} stories (filled in {filled:.0f} s): {per_feed:6.1f} ms CPU a probe feed "
                  f"({wall:.1f} ms wall; median of {args.rounds}), {size_bytes / max(stories, 1) / 1024:.1f} KB a story",
                  flush=True)
    base = results[0][1]
    for stories, per_feed in results[1:]:
        print(f"{stories} / {results[0][0]} stories: {per_feed / base:.2f}x the CPU a feed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
