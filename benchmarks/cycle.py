"""One poll cycle, the naive script against `aggregator once`, on the same loopback feeds in one run.

Scenarios: cold (every feed new to the aggregator), warm (every feed answers
304), unchanged without validators (same bytes, no ETag: recognised by the
body hash), 10% changed. Prints the median of several rounds, feeds/s, the
ratio against the naive script measured in the same run, and peak RSS.

The naive script has no state: it fetches and parses everything in every
scenario, so it is timed on the cold scenario only (on at most --naive-feeds
feeds, as a rate) and that rate is its figure for every scenario.

    python benchmarks/cycle.py --sizes 1000,10000 --rounds 3
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from feeds import FeedServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def timed(command: list[str], stdin: str | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(ROOT))
    if stdin:
        process.stdin.write(stdin.encode())
        process.stdin.close()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed: {process.stderr.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024


def adopt_orphans() -> None:
    """Become the parent of whatever our children leave running (Linux: a child subreaper), so that a publishing
    pool's fork server and its workers, which `aggregator once` does not wait for, can be waited for and counted."""
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def children() -> set[int]:
    mine = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            parent = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid():
            mine.append(int(pid))
    return set(mine)


def orphans_cpu(before: set[int]) -> float:
    """Waits for the processes a finished child left us (adopt_orphans), and returns their CPU seconds, their
    own waited-for children's included; `before` are our children that are not its."""
    seconds = 0.0
    for pid in children() - before:
        _, _, usage = os.wait4(pid, 0)
        seconds += usage.ru_utime + usage.ru_stime
    return seconds


def write_config(folder: Path, urls: list[str]) -> Path:
    lines = ["state: state.db", "output:", "  dir: out", "  base_url: http://127.0.0.1:8080/", "sources:"]
    lines += [f"  - id: feed{i}\n    url: {url}" for i, url in enumerate(urls)]
    lines += ["outputs:", "  - id: all", "    title: Everything", "    limit: 100"]
    path = folder / "aggregator.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def aggregator_once(config: Path) -> tuple[float, float]:
    return timed([sys.executable, "-m", "aggregator", "-c", str(config), "once"])


def report(name: str, count: int, runs: list[tuple[float, float]], naive_rate: float | None) -> None:
    seconds = statistics.median(r[0] for r in runs)
    rate = count / seconds
    ratio = f"{rate / naive_rate:6.1f}x naive" if naive_rate else ""
    print(f"  {name:<28} {seconds:8.2f} s  {rate:9.1f} feeds/s  {ratio}  peak RSS {max(r[1] for r in runs):6.0f} MB",
          flush=True)


def cycle(count: int, rounds: int, naive_feeds: int) -> None:
    print(f"N = {count} feeds (median of {rounds} rounds)", flush=True)
    started = time.perf_counter()
    server = FeedServer(count)
    print(f"  (generated and serving in {time.perf_counter() - started:.0f} s)", flush=True)
    urls = server.urls()
    try:
        naive_urls = urls[:naive_feeds]
        naive = [timed([sys.executable, str(ROOT / "benchmarks" / "naive.py"), os.devnull, "-"], "\n".join(naive_urls))
                 for _ in range(rounds)]
        naive_rate = len(naive_urls) / statistics.median(r[0] for r in naive)
        report(f"naive ({len(naive_urls)} feeds)", len(naive_urls), naive, None)

        cold = []
        for _ in range(rounds):
            folder = Path(tempfile.mkdtemp(prefix="bench-cold-"))
            cold.append(aggregator_once(write_config(folder, urls)))
        report("aggregator cold", count, cold, naive_rate)
        config = write_config(folder, urls)  # the last cold state: every feed now known
        report("aggregator warm (304)", count, [aggregator_once(config) for _ in range(rounds)], naive_rate)
        server.validators(False)
        report("aggregator unchanged, no ETag", count, [aggregator_once(config) for _ in range(rounds)], naive_rate)
        server.validators(True)
        aggregator_once(config)  # pick up the validators again
        changed = []
        for _ in range(rounds):
            server.change(0.10)
            changed.append(aggregator_once(config))
        report("aggregator 10% changed", count, changed, naive_rate)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--naive-feeds", type=int, default=500, help="feeds the naive script is timed on")
    args = parser.parse_args()
    print(f"cpu cores: {os.cpu_count()}, python {sys.version.split()[0]}")
    for count in (int(n) for n in args.sizes.split(",")):
        cycle(count, args.rounds, args.naive_feeds)


if __name__ == "__main__":
    main()
