"""Publishing speed: rendering and writing outputs of 500, 5,000 and 50,000 entries in Atom, RSS and JSON Feed,
what a publish re-renders when little or nothing changed, and a long history with filters.

    .venv/bin/python benchmarks/publish.py                                  # every part, default sizes
    .venv/bin/python benchmarks/publish.py --parts sizes --sizes 5000 --runs 7
    .venv/bin/python benchmarks/publish.py --parts history --history 20000

Stories are inserted straight into a real SQLite store in a temporary folder: 2 KB of HTML each, one in 14
also carried by a second source (so entries have related links).

- sizes: per N, outputs with `limit: N` over 1.5 N stories, so the current document carries N entries
  and one archive page N/2. Per format: `select` is archive.prepare (which stories, their text),
  `render` and `write` are the current document's, `current` their sum (an output in that format
  alone) and `(cpu)` its CPU seconds, steadier than wall time when other work shares the cores;
  `naive` is a plain feedgen render of the same entries (json.dumps for JSON), the script an operator
  would write, and `x naive` how many times faster our render is. `everything` is `publish_outputs`
  into an empty folder: site files, the archive page and the current document, for an Atom-only
  output and one in all three formats. Medians of --runs runs (at most 3 at 50,000).
- changes: two outputs of N stories each (one source each, all three formats). Files written and
  documents rendered by a first publish, a publish where nothing changed, and one after a new story
  in one source.
- history: (formerly publish_outputs.py) 20,000 stories, two outputs of `limit: 100` in all three
  formats, one with include/exclude filters: first publish (every archive page), unchanged, 20 new.
- pages: what the HTML pages add to publishing one output of N entries (--pages, default 5,000; all three
  formats, an archive page of N/2): the time publish_outputs spends in pages.Site (story pages, the river
  pages, index.html, pages.css) against the whole publish, for a first publish into an empty folder (a
  page per story), a publish after one new story, and one where nothing changed. Medians of --runs runs.
  Temporary folders are made where TMPDIR says (creating files is much slower in some /tmp than others).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import write_config  # noqa: E402
from feedgen.feed import FeedGenerator  # noqa: E402

from aggregator.output import archive, pages, publish  # noqa: E402
from aggregator.config import load_config  # noqa: E402
from aggregator.output.documents import Document  # noqa: E402
from aggregator.output.publish import publish_outputs  # noqa: E402
from aggregator.store import Store, story_uid  # noqa: E402

START = datetime(2020, 1, 1, tzinfo=timezone.utc)
BODY = "<p>" + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 35 + "</p>"
FORMATS = ("atom", "rss", "json")
CROSS_POSTED = 14  # one story in this many has a second copy, from source "copy"


def add_stories(store: Store, first: int, count: int, source: str = "src") -> None:
    """Stories first … first+count-1 of `source`, an hour apart; every 14th also carried by source "copy"."""
    with store.transaction() as db:
        for n in range(first, first + count):
            when = START + timedelta(hours=n)
            story = Store.create_story(db, story_uid(source, f"k{n}"), when)
            copies = [source, "copy"] if n % CROSS_POSTED == 0 else [source]
            for number, sid in enumerate(copies):
                key = f"k{n}" if sid == source else f"{source}-k{n}"
                Store.insert_item(db, story, sid, {
                    "key": key, "guid": key, "link": f"https://{sid}.example/{n}", "canonical_link": None,
                    "title": f"Story number {n} about {'Mali' if n % 3 else 'Peru'}" + " (copy)" * number,
                    "title_key": None, "summary": None, "content": BODY, "authors": ("Writer",),
                    "categories": ("news",), "language": "en", "published": when + timedelta(minutes=number),
                    "updated": when, "first_seen": when, "raw_hash": f"{sid}{n}", "content_hash": None})


@contextmanager
def site(sources: list[str], outputs: list[dict]):
    """A config and its real SQLite store in a temporary folder."""
    with tempfile.TemporaryDirectory() as directory:
        path = write_config(Path(directory), [{"id": s, "url": f"https://{s}.example/feed"} for s in sources], outputs)
        config = load_config(path)
        store = Store(config.state)
        try:
            yield config, store
        finally:
            store.close()


class Renders:
    """Counts publish.render calls (documents rendered), by wrapping the module function publish_output calls."""

    def __init__(self):
        self.count = 0
        self._render = publish.render

    def __enter__(self):
        def counted(*args, **kwargs):
            self.count += 1
            return self._render(*args, **kwargs)
        publish.render = counted
        return self

    def __exit__(self, *exc):
        publish.render = self._render


def naive_render(entries, fmt: str) -> bytes:
    """The baseline: the same entries through plain feedgen (as benchmarks/naive.py does), or json.dumps."""
    if fmt == "json":
        return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Naive", "items": [
            {"id": e.uid, "url": e.link, "title": e.title, "content_html": e.content,
             "date_published": e.published.isoformat()} for e in entries]}, ensure_ascii=False, indent=2).encode()
    fg = FeedGenerator()
    fg.id("urn:x-naive:merged")
    fg.title("Merged")
    fg.description("Merged")
    fg.link(href="http://127.0.0.1/merged.atom", rel="self")
    fg.link(href="http://127.0.0.1/", rel="alternate")
    for entry in reversed(entries):
        fe = fg.add_entry()
        fe.id(entry.uid)
        fe.title(entry.title)
        fe.link(href=entry.link)
        fe.published(entry.published)
        fe.updated(entry.updated)
        fe.content(entry.content, type="html")
        fe.source(url=entry.source.self_url, title=entry.source.title)
    return fg.atom_str(pretty=True) if fmt == "atom" else fg.rss_str(pretty=True)


def clock(action):
    """(wall seconds, CPU seconds of this process, result): on a shared machine CPU time is the steadier figure."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def sizes(ns: list[int], runs: int) -> None:
    print(f"{'N':>7} {'format':<6} {'select':>8} {'render':>8} {'write':>8} {'current':>8} {'(cpu)':>8} "
          f"{'naive':>8} {'x naive':>8}")
    for n in ns:
        repeat = runs if n < 50000 else min(runs, 3)
        outputs = [{"id": "atom", "title": "Atom only", "limit": n},
                   {"id": "all", "title": "All formats", "formats": list(FORMATS), "limit": n}]
        with site(["src", "copy"], outputs) as (config, store):
            add_stories(store, 0, n + n // 2)
            output = config.outputs[1]
            wall: dict[str, list[float]] = {}
            cpu: dict[str, list[float]] = {}

            def timed(key, action):
                took, used, result = clock(action)
                wall.setdefault(key, []).append(took)
                cpu.setdefault(key, []).append(used)
                return result

            files = {}
            for _ in range(repeat):
                shutil.rmtree(config.output_dir, ignore_errors=True)
                entries, update = timed("select", lambda: archive.prepare(store, config, output))
                current = Document(output, prev_archive=update.newest)
                for fmt in FORMATS:
                    data = timed(f"render {fmt}", lambda: publish.render(config, current, fmt, entries))
                    path = config.output_dir / current.name(fmt)
                    timed(f"write {fmt}", lambda: publish.write_atomic(path, data))
                    timed(f"naive {fmt}", lambda: naive_render(entries, fmt))
                del entries, data
                for o in config.outputs:
                    shutil.rmtree(config.output_dir)
                    files[o.id] = len(timed(f"everything {o.id}", lambda: publish_outputs(store, config, only={o.id})))
            w = {k: statistics.median(v) for k, v in wall.items()}
            c = {k: statistics.median(v) for k, v in cpu.items()}
            for fmt in FORMATS:
                parts = ("select", f"render {fmt}", f"write {fmt}")
                print(f"{n:>7,} {fmt:<6} {w['select']:>7.3f}s {w[f'render {fmt}']:>7.3f}s {w[f'write {fmt}']:>7.3f}s "
                      f"{sum(w[k] for k in parts):>7.3f}s {sum(c[k] for k in parts):>7.3f}s "
                      f"{w[f'naive {fmt}']:>7.3f}s {w[f'naive {fmt}'] / w[f'render {fmt}']:>7.1f}x")
            for o in config.outputs:
                print(f"{n:>7,} everything, {'/'.join(o.formats)}: {w[f'everything {o.id}']:.3f} s "
                      f"(cpu {c[f'everything {o.id}']:.3f} s; {files[o.id]} files: site, current document and "
                      f"archive page of {n // 2:,} entries)")


def changes(n: int) -> None:
    outputs = [{"id": sid, "title": sid, "sources": [sid], "formats": list(FORMATS), "limit": n}
               for sid in ("one", "two")]
    with site(["one", "two"], outputs) as (config, store):
        add_stories(store, 0, n, "one")
        add_stories(store, 0, n, "two")
        print(f"two outputs of {n:,} entries (one source each), {len(FORMATS)} formats")

        def step(label: str) -> None:
            with Renders() as renders:
                took, _, written = clock(lambda: publish_outputs(store, config))
            names = sorted({p.relative_to(config.output_dir).as_posix() for p in written})
            print(f"  {label:<38} {took:6.2f} s  {renders.count:3d} documents rendered  {len(written):3d} files "
                  f"written  {' '.join(names) if len(names) <= 8 else ''}")

        step("first publish")
        step("publish, nothing changed")
        add_stories(store, n, 1, "two")
        step("publish after 1 new story in source two")


def history(stories: int) -> None:
    outputs = [{"id": "all", "title": "All", "formats": list(FORMATS)},
               {"id": "mali", "title": "Mali", "formats": list(FORMATS), "include": ["Mali", "/^Story/"],
                "exclude": ["/number 1\\d\\d\\b/"]}]
    with site(["src", "copy"], outputs) as (config, store):
        add_stories(store, 0, stories)
        print(f"{stories:,} stories, 2 outputs x {len(FORMATS)} formats, limit 100")
        for label, before in (("first publish (all archive pages)", None), ("publish, nothing changed", None),
                              ("publish after 20 new stories", lambda: add_stories(store, stories, 20))):
            if before:
                before()
            with Renders() as renders:
                took, _, written = clock(lambda: publish_outputs(store, config))
            print(f"  {label:<38} {took:6.2f} s  {renders.count:4d} documents rendered  {len(written):4d} files written")


class PageClock:
    """Wall time spent inside pages.Site's rendering and writing (each call timed once, not nested)."""

    METHODS = ("stories", "river", "index", "stylesheet")

    def __init__(self):
        self.seconds = self.cpu = 0.0
        self._saved = {}

    def __enter__(self):
        for name in self.METHODS:
            original = self._saved[name] = getattr(pages.Site, name)

            def timed(site, *args, _original=original, **kwargs):
                start, cpu = time.perf_counter(), time.process_time()
                try:
                    return _original(site, *args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - start
                    self.cpu += time.process_time() - cpu
            setattr(pages.Site, name, timed)
        return self

    def __exit__(self, *exc):
        for name, original in self._saved.items():
            setattr(pages.Site, name, original)


def pages_part(n: int, runs: int) -> None:
    outputs = [{"id": "all", "title": "All formats", "formats": list(FORMATS), "limit": n}]
    print(f"one output of {n:,} entries ({len(FORMATS)} formats, an archive page of {n // 2:,}): "
          f"seconds in the pages / the whole publish, median of {runs}")
    results: dict[str, list[tuple[float, float, int]]] = {}
    for run in range(runs):
        with site(["src", "copy"], outputs) as (config, store):
            add_stories(store, 0, n + n // 2)
            for label, before in (("first publish (a page per story)", None),
                                  ("after 1 new story", lambda: add_stories(store, n + n // 2 + run, 1)),
                                  ("nothing changed", None)):
                if before:
                    before()
                with PageClock() as page_clock:
                    took, used, written = clock(lambda: publish_outputs(store, config))
                results.setdefault(label, []).append((page_clock.seconds, took, page_clock.cpu, used, len(written)))
    for label, values in results.items():
        in_pages, whole, cpu_pages, cpu_whole = (statistics.median(v[i] for v in values) for i in range(4))
        print(f"  {label:<34} pages {in_pages:6.3f} s of {whole:6.3f} s ({in_pages / whole:4.0%}); "
              f"cpu {cpu_pages:6.3f} s of {cpu_whole:6.3f} s; {values[0][4]:,} files written")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="sizes,changes,history,pages")
    parser.add_argument("--sizes", default="500,5000,50000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--changes", type=int, default=5000, help="entries per output in the changes part")
    parser.add_argument("--history", type=int, default=20000, help="stories in the history part")
    parser.add_argument("--pages", type=int, default=5000, help="entries in the pages part")
    args = parser.parse_args()
    parts = args.parts.split(",")
    if "sizes" in parts:
        sizes([int(n) for n in args.sizes.split(",")], args.runs)
    if "changes" in parts:
        changes(args.changes)
    if "history" in parts:
        history(args.history)
    if "pages" in parts:
        pages_part(args.pages, args.runs)


if __name__ == "__main__":
    main()
