"""How well and how cheaply deduplication works: precision, recall and F1 on a labelled set of
pairs, and the cost of one new item against a store of 10k and 100k stories.

    .venv/bin/python benchmarks/dedup_eval.py                      # tests/fixtures/dedup/pairs.jsonl + cost
    .venv/bin/python benchmarks/dedup_eval.py --pairs OTHER.jsonl --no-cost -v

Each pair goes through the real pipeline (RSS bytes → parse → sanitise →
dedupe → SQLite store): a fresh store, the first item polled from its source,
then the second from another; the pair counts as merged when both end in one
story. Each source's title decorations are learnt from the titles its feed
carries (<pairs>.sources.json), as a poll would learn them.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator.dedup import copies  # noqa: E402
from aggregator.config import SourceConfig  # noqa: E402
from aggregator.reader.parse import parse_feed  # noqa: E402
from aggregator.run.pipeline import store_entries  # noqa: E402
from aggregator.models import from_text
from aggregator.store import Store, story_uid  # noqa: E402

WINDOW = 14 * 86400.0
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


def rss(source_title: str, item: dict) -> bytes:
    """One item as an RSS 2.0 document, the way a source would serve it."""
    body = item["content"].replace("]]>", "]]]]><![CDATA[>")
    published = format_datetime(from_text(item["published"]), usegmt=True)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        f"<title>{escape(source_title)}</title><link>https://{item['source']}.example/</link>"
        f"<item><title>{escape(item['title'])}</title><link>{escape(item['link'])}</link>"
        f'<guid isPermaLink="false">{escape(item["guid"])}</guid><pubDate>{published}</pubDate>'
        f"<content:encoded><![CDATA[{body}]]></content:encoded></item></channel></rss>"
    ).encode("utf-8")


def ingest(store, db, source_id: str, order: int, document: bytes, context) -> None:
    feed = parse_feed(document, now=NOW)
    source = SourceConfig(id=source_id, url=f"https://{source_id}.example/feed", order=order)
    store_entries(store, db, source, feed, NOW, WINDOW, context)


def judge_pair(pair: dict, sources: dict, contexts: dict, folder: Path, sides: str = "ab") -> tuple[bool, str]:
    store = Store(folder / f"{pair['id']}.db")
    try:
        with store.transaction() as db:
            for order, side in enumerate(sides):
                item = pair[side]
                ingest(store, db, item["source"], order, rss(sources[item["source"]]["title"], item),
                       contexts[item["source"]])
        rows = store.query("SELECT i.story_id, m.evidence FROM items i LEFT JOIN merges m ON m.item_id = i.id "
                           "ORDER BY i.id")
        return len({r[0] for r in rows}) == 1, rows[-1][1] or ""
    finally:
        store.close()


def evaluate(path: Path, verbose: bool, sides: str = "ab") -> dict:
    pairs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    sources = json.loads(path.with_suffix(".sources.json").read_text(encoding="utf-8"))
    contexts = {sid: copies.learn_context(sid, s["title"], s["titles"], s.get("links", []))
                for sid, s in sources.items()}
    counts = Counter()
    by_kind: dict[str, Counter] = {}
    by_step: dict[str, Counter] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for pair in pairs:
            merged, evidence = judge_pair(pair, sources, contexts, Path(tmp), sides)
            truth = pair["label"] == "duplicate"
            outcome = {(True, True): "tp", (False, True): "fp", (True, False): "fn", (False, False): "tn"}[
                (truth, merged)]
            counts[outcome] += 1
            by_kind.setdefault(pair["kind"], Counter())[outcome] += 1
            for step in pair["transformations"] if truth else ():
                by_step.setdefault(step, Counter())[outcome] += 1
            if verbose and outcome in ("fp", "fn"):
                print(f"  {outcome.upper()} {pair['id']} {pair['kind']} {pair['transformations']}\n"
                      f"     a: {pair['a']['title'][:90]!r}\n     b: {pair['b']['title'][:90]!r}\n"
                      f"     {evidence}")
    precision = counts["tp"] / max(1, counts["tp"] + counts["fp"])
    recall = counts["tp"] / max(1, counts["tp"] + counts["fn"])
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    print(f"{path.name}: {len(pairs)} pairs ({counts['tp'] + counts['fn']} duplicates, "
          f"{counts['fp'] + counts['tn']} distinct), {'original first' if sides == 'ab' else 'copy first'}")
    print(f"  precision {precision:.4f}  recall {recall:.4f}  F1 {f1:.4f}   "
          f"(tp {counts['tp']}, fp {counts['fp']}, fn {counts['fn']}, tn {counts['tn']})")
    for kind, c in sorted(by_kind.items()):
        print(f"  {kind:40} " + " ".join(f"{k} {c[k]}" for k in ("tp", "fn", "fp", "tn") if c[k]))
    for step, c in sorted(by_step.items()):
        print(f"    with {step:34} recall {c['tp'] / max(1, c['tp'] + c['fn']):.3f} of {c['tp'] + c['fn']}")
    return {"precision": precision, "recall": recall, "f1": f1}


# Cost against a large store

WORD = re.compile(r"[A-Za-z]+")


class Synthetic:
    """Distinct made-up stories whose words follow the real corpus' vocabulary."""

    def __init__(self, pairs_path: Path, seed: int = 7):
        self.rng = random.Random(seed)
        text = " ".join(json.loads(line)["a"]["content"] for line in pairs_path.read_text().splitlines()[:400])
        words = [w.lower() for w in WORD.findall(re.sub(r"<[^>]+>", " ", text))]
        frequency = Counter(words)
        self.vocabulary = [w for w, _ in frequency.most_common(20000)]
        self.weights = [n for _, n in frequency.most_common(20000)]

    def words(self, count: int) -> list[str]:
        return self.rng.choices(self.vocabulary, self.weights, k=count)

    def story(self, number: int, source: str, published: datetime) -> dict:
        paragraphs = [" ".join(self.words(self.rng.randint(30, 90))).capitalize() + "."
                      for _ in range(self.rng.randint(2, 8))]
        return {"source": source, "guid": f"{source}-{number}", "link": f"https://{source}.example/a/{number}",
                "title": " ".join(self.words(self.rng.randint(5, 11))).capitalize(),
                "content": "".join(f"<p>{p}</p>" for p in paragraphs), "published": published}


def fill(db, synthetic: Synthetic, start: int, stop: int, span: timedelta) -> None:
    """Stories straight into the store (all distinct), indexed as the pipeline indexes them."""
    Store.ensure_index(db)
    contexts = {}
    for number in range(start, stop):
        source = f"bulk{number % 50}"
        context = contexts.setdefault(source, copies.SourceContext(source))
        published = NOW - span * synthetic.rng.random()
        item = synthetic.story(number, source, published)
        copy = copies.new_copy(context, item["title"], item["link"], item["content"], published)
        story = Store.create_story(db, story_uid(source, item["guid"]), NOW)
        item_id = Store.insert_item(db, story, source, {
            "key": "guid:" + item["guid"], "guid": item["guid"], "link": item["link"], "title": item["title"],
            "content": item["content"], "published": published, "updated": published, "first_seen": NOW,
            "raw_hash": str(number), **copy.columns()})
        Store.index(db, item_id, copy)


def new_items(synthetic: Synthetic, db, count: int) -> list[dict]:
    """Half copies of stored stories (decorated, attributed), half new stories, published now."""
    rows = db.execute("SELECT title, link, content, published FROM items ORDER BY random() LIMIT ?",
                      (count // 2,)).fetchall()
    items = []
    for number, row in enumerate(rows):
        items.append({"source": f"new{number % 20}", "guid": f"copy-{number}", "title": row[0] + " | Copycat",
                      "link": f"https://copycat.example/{number}", "published": row[3],
                      "content": "<p>Originally published elsewhere.</p>" + row[2]})
    for number in range(count - len(items)):
        item = synthetic.story(number, f"new{number % 20}", NOW)
        items.append(dict(item, guid=f"fresh-{number}", published=NOW.strftime("%Y-%m-%dT%H:%M:%SZ")))
    synthetic.rng.shuffle(items)
    return items


def per_item_cost(store: Store, synthetic: Synthetic, count: int = 1000) -> tuple[float, int]:
    """Milliseconds per new item through the pipeline path, rolled back afterwards."""
    db = store.db
    db.execute("BEGIN")
    try:
        items = new_items(synthetic, db, count)
        merged_before = db.execute("SELECT count(*) FROM merges").fetchone()[0]
        documents = [(item["source"], rss(item["source"], item)) for item in items]
        started = time.perf_counter()
        for source, document in documents:
            ingest(store, db, source, 0, document, copies.SourceContext(source))
        elapsed = time.perf_counter() - started
        merged = db.execute("SELECT count(*) FROM merges").fetchone()[0] - merged_before
    finally:
        db.execute("ROLLBACK")
    return elapsed / count * 1000, merged


def cost(pairs_path: Path, sizes: list[int], rounds: int) -> None:
    synthetic = Synthetic(pairs_path)
    span = timedelta(seconds=WINDOW) * 0.95  # every stored story is inside the window: the worst case
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "big.db")
        filled = 0
        results = {}
        for size in sizes:
            started = time.perf_counter()
            with store.transaction() as db:
                fill(db, synthetic, filled, size, span)
            print(f"  filled the store to {size} stories in {time.perf_counter() - started:.0f}s", flush=True)
            filled = size
            runs = [per_item_cost(store, synthetic) for _ in range(rounds)]
            results[size] = statistics.median(r[0] for r in runs)
            print(f"  {size:>7} stories: {results[size]:.2f} ms per new item (median of {rounds} rounds of 1000; "
                  f"{runs[0][1]} of 1000 merged, 500 were copies)", flush=True)
        store.close()
    if len(sizes) >= 2:
        ratio = results[sizes[-1]] / results[sizes[0]]
        print(f"  cost ratio {sizes[-1]}/{sizes[0]}: {ratio:.2f}x (must stay within 2x)")


def main() -> int:
    parser = argparse.ArgumentParser(description="Precision/recall and per-item cost of deduplication.")
    parser.add_argument("--pairs", type=Path, action="append",
                        help="labelled pairs (JSON lines); repeatable; default tests/fixtures/dedup/pairs.jsonl")
    parser.add_argument("--no-cost", action="store_true", help="skip the 10k/100k store measurement")
    parser.add_argument("--sizes", default="10000,100000", help="store sizes for the cost measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--copy-first", action="store_true", help="poll each pair's second item first")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every wrong decision")
    args = parser.parse_args()
    paths = args.pairs or [ROOT / "tests" / "fixtures" / "dedup" / "pairs.jsonl"]
    for path in paths:
        evaluate(path, args.verbose, "ba" if args.copy_first else "ab")
    if not args.no_cost:
        print("cost per new item (RSS bytes → parse → sanitise → dedupe → store):")
        cost(paths[0], [int(s) for s in args.sizes.split(",")], args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
