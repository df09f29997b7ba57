"""Cycle throughput of 1, 2 and 3 `aggregator run` workers sharing one PostgreSQL state.

The realistic feeds of feeds.py, served from a process of their own on
--hosts ports (each a host:port to the politeness rules). Every source's
interval is 20 ms, so a source is due again as soon as it was polled and the
workers go round and round the list; a cycle is every source polled once.

- cold: a fresh state; the workers start with every source disabled, then a
  SIGHUP enables them all at once: the time until every source was polled
  once (all of its items parsed, sanitised, deduplicated and stored).
- warm: then every feed answers 304: polls per second over --window seconds,
  shown as the time of one cycle (feeds / rate).

For each measurement it also reads from /proc the CPU seconds spent by the
workers, by PostgreSQL (the workers' own backends) and by the feed server,
per poll: on a machine of C cores, C / (CPU seconds per poll) is the most
polls per second any number of workers can reach there.

    python benchmarks/workers.py --feeds 300 --workers 1,2,3
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cycle import ROOT  # noqa: E402
from feeds import FeedServer  # noqa: E402
from postgres import Schemas  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


class Run:
    """N workers on a fresh schema, their logs in a temporary folder."""

    def __init__(self, count: int, urls: list[str], state: str, application: str, url: str):
        self.folder = Path(tempfile.mkdtemp(prefix=f"bench-workers{count}-"))
        self.config = self.folder / "aggregator.yaml"
        self.urls, self.state, self.application, self.url = urls, state, application, url
        self.write_config(enabled=False)
        self.processes = []
        for n in range(count):
            log = (self.folder / f"worker{n}.log").open("wb")
            self.processes.append(subprocess.Popen([sys.executable, "-m", "aggregator", "-c", str(self.config), "run"],
                                                   stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT)))
        self.wait(lambda: all("running " in (self.folder / f"worker{n}.log").read_text() for n in range(count)),
                  "the workers to start")

    def write_config(self, enabled: bool) -> None:
        lines = [f"state: '{self.state}'", "output:", "  dir: out", "  base_url: http://127.0.0.1:8080/",
                 "defaults:", "  interval: 0.02", f"  enabled: {'true' if enabled else 'false'}", "sources:"]
        lines += [f"  - id: feed{i}\n    url: {url}" for i, url in enumerate(self.urls)]
        lines += ["outputs:", "  - id: all", "    title: Everything", "    limit: 100"]
        self.config.write_text("\n".join(lines) + "\n")

    def enable(self) -> None:
        self.write_config(enabled=True)
        for process in self.processes:
            process.send_signal(signal.SIGHUP)

    def polled(self) -> int:
        with psycopg.connect(self.state) as db:
            return db.execute("SELECT count(*) FROM sources WHERE last_poll IS NOT NULL").fetchone()[0]

    def cpu(self, server: FeedServer) -> dict[str, float]:
        with psycopg.connect(self.url) as db:
            backends = [row[0] for row in db.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                                     (self.application,))]
        return {"workers": sum(cpu_seconds(p.pid) for p in self.processes),
                "postgres": sum(cpu_seconds(pid) for pid in backends),
                "server": cpu_seconds(server.process.pid)}

    def wait(self, predicate, what: str, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise SystemExit(f"gave up waiting for {what}; see the logs in {self.folder}")
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.wait(30)


def report(label: str, seconds: float, polls: int, cpu: dict[str, float], feeds: int) -> None:
    per_poll = {k: v * 1000 / polls for k, v in cpu.items()}
    total = sum(per_poll.values())
    print(f"  {label:<6} cycle {feeds * seconds / polls:7.2f} s  {polls / seconds:7.1f} polls/s   CPU per poll: "
          f"workers {per_poll['workers']:5.1f} ms, PostgreSQL {per_poll['postgres']:4.1f} ms, "
          f"feed server {per_poll['server']:4.1f} ms = {total:5.1f} ms → 2-core bound {2000 / total:6.1f} polls/s",
          flush=True)


def measure(count: int, server: FeedServer, schemas: Schemas, url: str, window: float) -> None:
    application = f"aggbench-{uuid.uuid4().hex[:8]}"
    state = f"{schemas.new()}&application_name={application}"
    run = Run(count, server.urls(), state, application, url)
    try:
        before, started = run.cpu(server), time.perf_counter()
        run.enable()
        run.wait(lambda: run.polled() == server.count, "every source polled")
        seconds = time.perf_counter() - started
        after = run.cpu(server)
        print(f"{count} worker{'s' if count > 1 else ''}:", flush=True)
        report("cold", seconds, server.count, {k: after[k] - before[k] for k in after}, server.count)
        time.sleep(3)  # the publishing worker renders the outputs once the burst of new entries is over
        before, answered, started = run.cpu(server), server.answered(), time.perf_counter()
        time.sleep(window)
        after, polls, seconds = run.cpu(server), server.answered() - answered, time.perf_counter() - started
        report("warm", seconds, polls, {k: after[k] - before[k] for k in after}, server.count)
    finally:
        run.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=300)
    parser.add_argument("--hosts", type=int, default=10, help="ports the feeds are spread over")
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--window", type=float, default=10.0, help="seconds the warm rate is measured over")
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(f"cpu cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}, {args.feeds} feeds on "
          f"{args.hosts} hosts, PostgreSQL at {args.url}", flush=True)
    server = FeedServer(args.feeds, hosts=args.hosts)
    schemas = Schemas(args.url)
    try:
        for count in (int(n) for n in args.workers.split(",")):
            measure(count, server, schemas, args.url, args.window)
    finally:
        server.stop()
        schemas.drop()


if __name__ == "__main__":
    main()
