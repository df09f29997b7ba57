"""One poll cycle on a SQLite state and on a PostgreSQL state, and migrate-state both ways.

The same loopback feeds as cycle.py; `aggregator once` cold (every feed new),
warm (every feed answers 304) and with 10% of the feeds changed, on each
backend; then migrate-state copies the cold SQLite state into PostgreSQL and
back, in rows per second. Each PostgreSQL state is a fresh schema of --url,
dropped afterwards.

    python benchmarks/postgres.py --feeds 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cycle import ROOT, aggregator_once, write_config  # noqa: E402
from feeds import FeedServer  # noqa: E402


class Schemas:
    """Fresh schemas of one database, each a state URL of its own; all dropped at the end."""

    def __init__(self, url: str):
        self.url, self.made = url, []

    def new(self) -> str:
        name = f"aggbench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f"CREATE SCHEMA {name}")
        self.made.append(name)
        return f"{self.url}{'&' if '?' in self.url else '?'}options=-csearch_path%3D{name}"

    def drop(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as db:
            for name in self.made:
                db.execute(f"DROP SCHEMA {name} CASCADE")


def configured(urls: list[str], state: str) -> Path:
    config = write_config(Path(tempfile.mkdtemp(prefix="bench-pg-")), urls)
    config.write_text(config.read_text().replace("state: state.db", f"state: '{state}'"))
    return config


def report(name: str, count: int, runs: list[tuple[float, float]]) -> None:
    seconds = statistics.median(r[0] for r in runs)
    print(f"  {name:<32} {seconds:8.2f} s  {count / seconds:9.1f} feeds/s", flush=True)


def cycle(label: str, urls: list[str], server: FeedServer, new_state, rounds: int) -> Path:
    """Cold, warm and 10%-changed runs on fresh states from new_state(); the last cold config."""
    cold = []
    for _ in range(rounds):
        config = configured(urls, new_state())
        cold.append(aggregator_once(config))
    report(f"{label} cold", len(urls), cold)
    report(f"{label} warm (304)", len(urls), [aggregator_once(config) for _ in range(rounds)])
    changed = []
    for _ in range(rounds):
        server.change(0.10)
        changed.append(aggregator_once(config))
    report(f"{label} 10% changed", len(urls), changed)
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(f"cpu cores: {os.cpu_count()}, N = {args.feeds} feeds, median of {args.rounds} rounds", flush=True)
    server = FeedServer(args.feeds)
    schemas = Schemas(args.url)
    try:
        urls = server.urls()
        sqlite = cycle("SQLite", urls, server, lambda: "state.db", args.rounds)
        cycle("PostgreSQL", urls, server, schemas.new, args.rounds)
        migrate_both_ways(str(sqlite.parent / "state.db"), schemas.new())
    finally:
        server.stop()
        schemas.drop()


def migrate_both_ways(state: str, url: str) -> None:
    """migrate-state from the SQLite state into PostgreSQL and back, in rows per second."""
    back = str(Path(tempfile.mkdtemp(prefix="bench-back-")) / "state.db")
    for label, source, target in (("SQLite → PostgreSQL", state, url), ("PostgreSQL → SQLite", url, back)):
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "aggregator", "migrate-state", source, target],
                                capture_output=True, text=True, cwd=str(ROOT), check=True)
        seconds = time.perf_counter() - started
        rows = int(result.stdout.split()[1])
        print(f"  migrate-state {label:<18} {seconds:8.2f} s  {rows / seconds:9.0f} rows/s  ({rows} rows)", flush=True)


if __name__ == "__main__":
    main()
