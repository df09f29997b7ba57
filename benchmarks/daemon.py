"""Peak RSS and CPU of `aggregator run` holding 10,000 sources and 1,000,000 stored items.

The realistic feeds of feeds.py are served from a process of their own. The
store (SQLite, in a temporary folder) is generated straight into its tables,
as a daemon that has run for a long time would have it:

- every source has been polled: its ETag and body hash are the served
  feed's, its next poll falls somewhere in the next interval;
- each source holds --items / --sources stored items: the served feed's own
  items (key, raw hash and text exactly as a poll stores them, so a changed
  feed brings one new item, not sixty) and older ones below them, 5% of
  those cross-posted copies of another source's story;
- every output's archive (RFC 5005) already holds all but its newest
  stories, as stub pages: full pages are never read again, only the list of
  their story ids in the index beside them, which the aggregator writes.

Seeded items carry no near-duplicate keys or content hashes, so new items
find fewer dedupe candidates than in a real history.

Then `aggregator run` (the real CLI, a subprocess) polls on schedule for
--minutes; every source's interval is --interval (under 5 minutes an
interval is used as written), and every minute --change of the feeds gain a
new item. Every second the benchmark reads the daemon's VmRSS, VmHWM and
CPU time from /proc. It prints peak RSS, mean CPU, the polls done and when
the first publish (every output, at start) was over; then the time and peak
RSS of `aggregator publish` on the resulting state, and of one publish of
each output in this process.

    python benchmarks/daemon.py                 # 10,000 sources, 1M items, 10 minutes
    python benchmarks/daemon.py --minutes 2 --keep /tmp/daemon-bench   # reuse the generated store

With --keep DIR the generated store is kept in DIR/seed (and reused by the
next run with the same sizes); each run works on a copy of it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from feeds import BASE_TIME, FeedServer  # noqa: E402

from aggregator.output import archive  # noqa: E402
from aggregator.config import load_config  # noqa: E402
from aggregator.dedup.fingerprint import INDEX_VERSION  # noqa: E402
from aggregator.dedup.links import canonical_link  # noqa: E402
from aggregator.run.pipeline import item_values  # noqa: E402
from aggregator.run.prepare import prepare_feed  # noqa: E402
from aggregator.output.select import recent, story_refs  # noqa: E402
from aggregator.models import to_text
from aggregator.store import Store, story_uid  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
FILLER_BODY = ("<p>Older story {n} from feed {f}. " + "Lorem ipsum dolor sit amet, consectetur adipiscing elit, "
               "sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. " * 9 + "</p>")
ITEM_COLUMNS = ("id", "source_id", "key", "story_id", "guid", "link", "canonical_link", "title", "summary",
                "content", "authors", "categories", "language", "published", "updated", "first_seen", "raw_hash")


# the configuration

def write_config(folder: Path, urls: list[str], interval: float) -> Path:
    """Sources feed0…feedN-1; tech = every 10th, world = every 20th (filtered); four outputs."""
    lines = ["state: state.db", "output:", "  dir: out", "  base_url: http://127.0.0.1:8080/",
             "defaults:", f"  interval: {interval}", "sources:"]
    for f, url in enumerate(urls):
        tags = [t for t, hit in (("tech", f % 10 == 0), ("world", f % 20 == 1)) if hit]
        lines.append(f"  - id: feed{f}\n    url: {url}" + (f"\n    tags: [{', '.join(tags)}]" if tags else ""))
    picks = ", ".join(f"feed{f}" for f in range(0, min(len(urls), 20)))
    lines += ["outputs:",
              "  - id: all", "    title: Everything", "    limit: 100",
              "  - id: tech", "    title: Technology", "    tags: [tech]", "    limit: 100",
              "    formats: [atom, json]",
              "  - id: world", "    title: World, filtered", "    tags: [world]", "    limit: 50",
              "    include: [climate, '/\\.[0-9]*[02468]\\.[0-9]+\\)/']",
              "  - id: picks", "    title: Picks", f"    sources: [{picks}]", "    limit: 100"]
    path = folder / "aggregator.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


# generating the store

def served(holder: dict):
    """The feed server, once the thread starting it has put it (or its failure) in `holder`."""
    while "server" not in holder:
        if "error" in holder:
            raise SystemExit(f"the feed server did not start: {holder['error']}")
        time.sleep(0.5)
    return holder["server"]


def seed(folder: Path, server_holder: dict, sources: int, items: int, interval: float) -> None:
    started = time.perf_counter()
    state = folder / "state.db"
    Store(state).close()  # the schema, by the aggregator's own migrations
    db = sqlite3.connect(str(state), isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    per_source = items // sources
    feed_items = 60 if per_source >= 60 else per_source  # what FeedSet serves per feed
    filler = per_source - feed_items
    next_story = _insert_filler(db, sources, filler)
    print(f"  {sources * filler} older items stored in {time.perf_counter() - started:.0f} s", flush=True)
    server = served(server_holder)
    print(f"  feeds served after {time.perf_counter() - started:.0f} s", flush=True)
    _insert_feed_items(db, server.urls(), next_story, sources * filler + 1, feed_items)
    db.execute("INSERT INTO dedup_meta (name, value) VALUES ('near_index', ?) "
               "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (INDEX_VERSION,))
    db.close()
    print(f"  {items} items stored in {time.perf_counter() - started:.0f} s", flush=True)
    config = load_config(write_config(folder, server.urls(), interval))
    _stub_archives(config)
    print(f"  archives written in {time.perf_counter() - started:.0f} s", flush=True)


def _insert_filler(db: sqlite3.Connection, sources: int, filler: int) -> int:
    """`filler` older items per source, published below what the feed serves; the next free story id."""
    def original(f: int, j: int) -> dict:
        published = BASE_TIME - timedelta(hours=(60 + j) * 3 + f % 7)
        return {"key": f"guid:urn:x-bench:older:{f}:{j}", "link": f"https://site{f}.example/older/{j}",
                "title": f"Older story {j} of feed {f} about {'climate' if j % 2 else 'markets'}",
                "published": published}

    def is_copy(f: int, j: int) -> bool:  # 5%: a copy of the next source's story j
        return sources > 1 and (f * 31 + j) % 20 == 0

    db.execute("BEGIN")
    rows, stories = [], []
    item_id = 0
    for f in range(sources):
        for j in range(filler):
            item_id += 1
            if is_copy(f, j):
                g = (f + 1) % sources
                first = original(g, j)
                story, published = g * filler + j + 1, first["published"] + timedelta(hours=2)
                key, link = f"guid:urn:x-bench:older:{f}:{j}:copy", first["link"] + "?utm_source=feed"
                title = f"{first['title']} | Feed {f}"
            else:
                first = original(f, j)
                story, published, key, link, title = f * filler + j + 1, first["published"], first["key"], \
                    first["link"], first["title"]
                stories.append((story, story_uid(f"feed{f}", key), to_text(published)))
            when = to_text(published)
            rows.append((item_id, f"feed{f}", key, story, key[5:], link, canonical_link(link), title, None,
                         FILLER_BODY.format(n=j, f=f), '["Writer"]', "[]", "en", when, when, when,
                         hashlib.md5(key.encode()).hexdigest()))
        if len(rows) >= 50000 or f == sources - 1:
            db.executemany("INSERT INTO stories (id, uid, republished) VALUES (?, ?, ?)", stories)
            db.executemany(f"INSERT INTO items ({', '.join(ITEM_COLUMNS)}) VALUES ({', '.join('?' * len(ITEM_COLUMNS))})",
                           rows)
            rows, stories = [], []
    db.execute("COMMIT")
    return sources * filler + 1


def _parse_served(job: tuple[int, str]) -> tuple:
    """In a pool worker: one served feed as a poll would store it (validators, feed info, item rows)."""
    f, url = job
    with urllib.request.urlopen(url, timeout=60) as answer:
        body, etag = answer.read(), answer.headers.get("ETag")
    now = datetime.now(timezone.utc)
    prepared = prepare_feed(body, {"content-type": "application/xml"}, url, now, 500, f"feed{f}", [])
    entries = list({e.key: e for e in reversed(prepared.feed.entries)}.values())[::-1]  # as _store_entries
    rows = []
    for entry in entries:
        item = prepared.items[entry.key]
        values = {"key": entry.key, **item_values(entry, item, now, None)}
        values["first_seen"] = values["published"]  # first seen when it was published, long ago
        values.update(replace(item.copy, published=values["published"]).columns())
        rows.append({k: to_text(v) if isinstance(v, datetime) else json.dumps(list(v), ensure_ascii=False)
                     if isinstance(v, (tuple, list)) else v for k, v in values.items()})
    info = prepared.feed.info
    updated = info.updated or max((e.updated or e.published for e in entries if e.updated or e.published),
                                  default=None)
    return f, etag, hashlib.sha256(body).hexdigest(), (info.title, info.link, info.id, to_text(updated)), rows


def _insert_feed_items(db: sqlite3.Connection, urls: list[str], next_story: int, next_item: int,
                       per_feed: int) -> None:
    """Every served feed's items, stored as a poll stores them; copies of one link share a story."""
    story_of: dict[str, int] = {}
    db.execute("BEGIN")
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 2) as pool:
        for count, (f, etag, body_hash, info, rows) in enumerate(
                pool.imap_unordered(_parse_served, enumerate(urls), chunksize=16), start=1):
            items, stories = [], []
            for row in rows[:per_feed]:
                canonical = row["canonical_link"]
                story = story_of.get(canonical) if canonical else None
                if story is None:
                    story, next_story = next_story, next_story + 1
                    stories.append((story, story_uid(f"feed{f}", row["key"]), row["first_seen"]))
                    if canonical:
                        story_of[canonical] = story
                items.append({"id": next_item, "source_id": f"feed{f}", "story_id": story, **row})
                next_item += 1
            db.executemany("INSERT INTO stories (id, uid, republished) VALUES (?, ?, ?)", stories)
            if items:
                columns = list(items[0])
                db.executemany(f"INSERT INTO items ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                               [[item[c] for c in columns] for item in items])
            db.execute("INSERT INTO sources (id, state, configured_url, etag, body_hash, last_status, feed_title, "
                       "feed_link, feed_id, feed_updated) VALUES (?, 'ok', ?, ?, ?, 200, ?, ?, ?, ?)",
                       (f"feed{f}", urls[f], etag, body_hash, *info))
            if count % 2000 == 0:
                db.execute("COMMIT")
                db.execute("BEGIN")
    db.execute("COMMIT")


def _stub_archives(config) -> None:
    """Every output's archive as the aggregator would have filled it, as stub pages (ids only).

    The pages are planned by the aggregator's own archive.plan; full pages are
    never read again once their index is written, and the open page is
    rewritten with its stories' text on the daemon's first publish.
    """
    store = Store(config.state)
    now = datetime.now(timezone.utc)
    for output in config.outputs:
        refs = story_refs(store, config, output)
        plan = archive.plan([], refs, recent(output, refs, now)[:output.limit], output.limit, output.formats)
        directory = archive.archive_dir(config, output)
        directory.mkdir(parents=True, exist_ok=True)
        for page in plan.pages:
            entries = "".join(f"<entry><id>{ref.uid}</id></entry>" for ref in page.added)
            following = "<link rel='next-archive' href='next'/>" if page.full else ""
            stub = f"<feed xmlns='http://www.w3.org/2005/Atom'>{following}{entries}</feed>"
            for fmt in page.formats:
                (directory / f"{page.number}.{fmt}").write_text(stub if fmt == "atom" else "{}")
        archive.read_pages(directory)  # writes the index of full pages, in the aggregator's own format
    store.close()


def reschedule(state: Path, urls: list[str], interval: float, seed: int = 7) -> None:
    """Polled within the last interval, due within the next one, at this run's URLs: a daemon in its steady state."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    db = sqlite3.connect(str(state), isolation_level=None)
    rows = []
    for f, url in enumerate(urls):
        last = now - timedelta(seconds=rng.uniform(0, interval))
        rows.append((to_text(last), to_text(last), to_text(last + timedelta(seconds=interval)), url, f"feed{f}"))
    db.execute("BEGIN")
    db.executemany("UPDATE sources SET last_poll = ?, last_success = ?, next_poll = ?, configured_url = ? "
                   "WHERE id = ?", rows)
    db.execute("COMMIT")
    db.close()


# measuring

def proc_sample(pid: int) -> tuple[float, float, float] | None:
    """(VmRSS MB, VmHWM MB, CPU seconds) of a running process; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    kb = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.M)}
    return kb.get("VmRSS", 0) / 1024, kb.get("VmHWM", 0) / 1024, sum(map(int, fields[11:15])) / TICK


def descendants(pid: int) -> list[int]:
    """The processes started by `pid` and by those (the aggregator's worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def tree_sample(pid: int) -> tuple[float, float]:
    """(PSS MB of the process and its descendants, their CPU seconds) — PSS splits shared pages fairly."""
    pss = cpu = 0.0
    for member in [pid, *descendants(pid)]:
        try:
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text()
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        match = re.search(r"^Pss:\s+(\d+) kB", rollup, re.M)
        pss += int(match.group(1)) / 1024 if match else 0
        cpu += (int(fields[11]) + int(fields[12])) / TICK
    return pss, cpu


def run_daemon(code: Path, config: Path, server: FeedServer, minutes: float, change: float) -> dict:
    log_path = config.parent / "run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "aggregator", "-c", str(config), "run"],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=str(code))
    started = time.monotonic()
    samples, first_publish, last_change = [], None, started - 30  # the first change after 30 s
    try:
        while time.monotonic() - started < minutes * 60:
            time.sleep(1.0)
            sample = proc_sample(process.pid)
            if sample is None or process.poll() is not None:
                raise SystemExit(f"the daemon ended early; see {log_path}:\n{log_path.read_text()[-3000:]}")
            samples.append((time.monotonic() - started, *sample, *tree_sample(process.pid)))
            if first_publish is None and " published " in log_path.read_text():
                first_publish = time.monotonic() - started
            if time.monotonic() - last_change >= 60:
                server.change(change)
                last_change = time.monotonic()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(120)
    log = log_path.read_text()
    return {
        "samples": samples,
        "first_publish": first_publish,
        "polls": len(re.findall(r" INFO feed\d+: ", log)),
        "changed": len(re.findall(r" INFO feed\d+: \d+ new", log)),
        "publishes": len(re.findall(r" INFO published ", log)),
        "errors": len(re.findall(r" ERROR ", log)),
        "log": log_path,
    }


#: The CLI, reporting its own peak RSS as it exits (a child's ru_maxrss would include its parent's from before exec).
CLI = ("import atexit, runpy, sys; sys.argv[0] = 'aggregator'; atexit.register(lambda: print("
       "next(l for l in open('/proc/self/status') if l.startswith('VmHWM')), file=sys.stderr)); "
       "runpy.run_module('aggregator', run_name='__main__', alter_sys=True)")


def timed_cli(code: Path, config: Path, *args: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one aggregator command."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", CLI, "-c", str(config), *args], capture_output=True, text=True,
                            cwd=str(code))
    if result.returncode != 0:
        raise SystemExit(f"aggregator {' '.join(args)} failed: {result.stderr[-2000:]}")
    peak = re.findall(r"VmHWM:\s+(\d+) kB", result.stderr)
    return time.perf_counter() - started, int(peak[-1]) / 1024


IN_CODE = """
import json, statistics, sys, time
from aggregator.output import archive
from aggregator.config import load_config
from aggregator.output.publish import publish_outputs
from aggregator.store import Store
config = load_config(sys.argv[2])
if sys.argv[1] == "index":  # the archive index as this code writes it
    for output in config.outputs:
        archive.read_pages(archive.archive_dir(config, output))
    sys.exit()
store, times = Store(config.state), {}
for output in config.outputs:  # one publish of each output, nothing changed: median of 3
    runs = []
    for _ in range(3):
        begun = time.perf_counter()
        publish_outputs(store, config, only={output.id})
        runs.append(time.perf_counter() - begun)
    times[output.id] = statistics.median(runs)
print(json.dumps(times))
"""


def in_code(code: Path, action: str, config: Path) -> str:
    """Run IN_CODE with the aggregator package of `code` (a checkout), so a baseline can be measured."""
    result = subprocess.run([sys.executable, "-c", IN_CODE, action, str(config)], capture_output=True, text=True,
                            cwd=str(code))
    if result.returncode != 0:
        raise SystemExit(f"{action} failed: {result.stderr[-2000:]}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=10000)
    parser.add_argument("--items", type=int, default=1000000, help="stored items in all (spread over the sources)")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the daemon runs")
    parser.add_argument("--interval", type=float, default=240.0, help="every source's poll interval, seconds")
    parser.add_argument("--change", type=float, default=0.01, help="share of the feeds gaining an item each minute")
    parser.add_argument("--hosts", type=int, default=1000,
                        help="ports the feeds are spread over (each a host to the politeness rules: 1 request/s)")
    parser.add_argument("--keep", type=Path, help="keep the generated store in this folder and reuse it")
    parser.add_argument("--code", type=Path, default=ROOT,
                        help="the checkout whose aggregator package is measured (default: this one), for a baseline")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the feed server and the daemon too
    print(f"cpu cores: {os.cpu_count()}, python {sys.version.split()[0]}; {args.sources} sources, "
          f"{args.items} stored items, {args.minutes:g} minutes of `aggregator run`", flush=True)

    work = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    seeded = args.keep / f"seed-{args.sources}-{args.items}" if args.keep else work / "seed"
    holder: dict = {}

    def start_server():
        try:
            holder["server"] = FeedServer(args.sources, hosts=args.hosts)
        except Exception as exc:  # noqa: BLE001 - reported by the waiting thread
            holder["error"] = exc

    began = time.perf_counter()
    threading.Thread(target=start_server, daemon=True).start()
    try:
        if not (seeded / "done").exists():
            print(f"generating the store in {seeded}", flush=True)
            if seeded.exists():
                shutil.rmtree(seeded)
            seeded.mkdir(parents=True)
            seed(seeded, holder, args.sources, args.items, args.interval)
            (seeded / "done").write_text("ok\n")
        server = served(holder)
        print(f"ready after {time.perf_counter() - began:.0f} s", flush=True)
        run = work / "run"
        shutil.copytree(seeded, run)
        config = write_config(run, server.urls(), args.interval)
        reschedule(run / "state.db", server.urls(), args.interval)
        in_code(args.code, "index", config)

        result = run_daemon(args.code, config, server, args.minutes, args.change)
        samples = result["samples"]
        wall = samples[-1][0] - samples[0][0]
        cpu = (samples[-1][3] - samples[0][3]) / wall * 100 if wall else 0.0
        tree_cpu = (samples[-1][5] - samples[0][5]) / wall * 100 if wall else 0.0
        late = [s[1] for s in samples if s[0] >= samples[-1][0] - 60]
        print(f"aggregator run, {args.minutes:g} min ({args.sources} sources, {args.items} items, "
              f"interval {args.interval:g} s, {args.change:.0%} of feeds changed a minute):")
        print(f"  peak RSS {max(s[2] for s in samples):7.0f} MB (VmHWM)   RSS in the last minute "
              f"{statistics.median(late):5.0f} MB (median)")
        print(f"  with its worker processes: peak PSS {max(s[4] for s in samples):5.0f} MB (sampled every second)")
        print(f"  CPU {cpu:5.1f}% of one core (mean), with its worker processes {tree_cpu:5.1f}%")
        marks = [next(s for s in samples if s[0] >= 60 * m) for m in range(int(samples[-1][0] // 60) + 1)]
        print("  RSS at each minute: " + ", ".join(f"{s[1]:.0f}" for s in marks) + " MB")
        first = f"{result['first_publish']:.0f} s after start" if result["first_publish"] else "none seen"
        print(f"  polls {result['polls']} ({result['polls'] / wall:.1f}/s), {result['changed']} brought new items; "
              f"publishes {result['publishes']}; first publish over {first}; errors {result['errors']}")
        seconds, rss = timed_cli(args.code, config, "publish")
        print(f"aggregator publish after the run: {seconds:6.2f} s, peak RSS {rss:5.0f} MB")
        seconds, rss = timed_cli(args.code, config, "publish")
        print(f"aggregator publish, nothing changed: {seconds:6.2f} s, peak RSS {rss:5.0f} MB")
        times = json.loads(in_code(args.code, "publish", config))
        print("one publish of each output, nothing changed (median of 3): "
              + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in times.items()), flush=True)
    finally:
        if "server" in holder:
            holder["server"].stop()
        if not os.environ.get("BENCH_KEEP_RUN"):
            shutil.rmtree(work, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(seeded, ignore_errors=True)


if __name__ == "__main__":
    main()
