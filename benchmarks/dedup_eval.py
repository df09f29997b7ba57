"""How well and how cheaply deduplication works: precision, recall and F1 on a labelled set of
pairs; the CPU cost an item of the dedup text work (new_copy) and of the whole dedup step; and the
cost of one new item against a store of 10k and 100k stories.

    .venv/bin/python benchmarks/dedup_eval.py                      # tests/fixtures/dedup/pairs.jsonl + cost
    .venv/bin/python benchmarks/dedup_eval.py --text-only --text-reps 5   # the text work alone
    valgrind --tool=callgrind .venv/bin/python benchmarks/dedup_eval.py --text-only --text-reps 1  # minus reps 0
    .venv/bin/python benchmarks/dedup_eval.py --sizes 10000,100000,1000000 --history-days 365  # a year's store
    .venv/bin/python benchmarks/dedup_eval.py --pairs OTHER.jsonl --no-cost -v
    .venv/bin/python benchmarks/dedup_eval.py --pairs tests/fixtures/dedup/families.jsonl --no-cost --half tune -v

Each pair goes through the real pipeline (RSS bytes → parse → sanitise →
dedupe → SQLite store): a fresh store, the first item polled from its source,
then the second from another; the pair counts as merged when both end in one
story. Each source's title decorations are learnt from the titles its feed
carries (<pairs>.sources.json), as a poll would learn them.

A set whose pairs have a `half` field (families.jsonl) is reported per half:
precision and recall, a table per family (kind) and per edit. The "holdout"
half is printed apart: rules are tuned on the "tune" half only, and the
holdout says whether they generalise (`--half tune` leaves it out entirely).
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

# --- The aggregator internals this benchmark uses: only here and in the functions down to judge_pair. ---
from aggregator.config import SourceConfig  # noqa: E402
from aggregator.dedup import copies, match as dedup_match  # noqa: E402
from aggregator.dedup.match import index_horizon  # noqa: E402
from aggregator.models import from_text, to_text  # noqa: E402
from aggregator.dedup import fingerprint, text, titles  # noqa: E402
from aggregator.reader.parse import parse_feed  # noqa: E402
from aggregator.reader.sanitize import clean_html  # noqa: E402
from aggregator.run.pipeline import store_entries  # noqa: E402
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


def learn_contexts(sources: dict) -> dict:
    """What a poll of each source learns from its feed (title decorations, shared links)."""
    return {sid: copies.learn_context(sid, s["title"], s["titles"], s.get("links", [])) for sid, s in sources.items()}


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


def open_store(path: Path) -> Store:
    return Store(path)


def fresh_context(source_id: str):
    """A source nothing has been learnt about yet."""
    return copies.SourceContext(source_id)


def prepare_index(db) -> None:
    Store.ensure_index(db)


def store_distinct(db, context, item: dict, raw_hash: str, first_seen: datetime = NOW) -> None:
    """An item straight into the store as a story of its own, indexed as the pipeline indexes it."""
    published = item["published"]
    copy = copies.new_copy(context, item["title"], item["link"], item["content"], published)
    story = Store.create_story(db, story_uid(item["source"], item["guid"]), NOW)
    item_id = Store.insert_item(db, story, item["source"], {
        "key": "guid:" + item["guid"], "guid": item["guid"], "link": item["link"], "title": item["title"],
        "content": item["content"], "published": published, "updated": published, "first_seen": first_seen,
        "raw_hash": raw_hash, **copy.columns()})
    Store.index(db, item_id, copy)


def text_inputs(item: dict) -> tuple:
    """What the pipeline hands new_copy for an item: its title, link and sanitised HTML."""
    return item["title"], item["link"], clean_html(item["content"], item["link"]), NOW


def text_work(context, title: str, link: str, html: str, published) -> object:
    """The dedup text work of one new item (tokens, shingle hashes, MinHash keys, title keys): new_copy."""
    return copies.new_copy(context, title, link, html, published)


TEXT_PARTS = {  # new_copy's text work a piece at a time, each on the previous piece's result
    "text_words": lambda title, link, html: text.text_words(html),
    "fingerprint": lambda title, link, html: fingerprint.fingerprint(*text.text_words(html)),
    "index_keys": lambda title, link, html: fingerprint.index_keys(fingerprint.fingerprint(*text.text_words(html))),
    "title_keys": lambda title, link, html: titles.title_keys(title),
}


def dedup_step(db, copy, item: dict, number: int) -> None:
    """The rest of the dedup step for one new copy, as store_entries takes it: its candidates from the store,
    the match, then its story (the match's or a new one), item row and index rows."""
    (match,) = dedup_match.match([copy], WINDOW, *Store.dedup_candidates(db, [copy], WINDOW))
    story = match.story_id if match else Store.create_story(db, story_uid(item["source"], f"step-{number}"), NOW)
    item_id = Store.insert_item(db, story, item["source"], {
        "key": f"step-{number}", "guid": item["guid"], "link": item["link"], "title": item["title"],
        "content": item["content"], "published": NOW, "updated": NOW, "first_seen": NOW,
        "raw_hash": f"step-{number}", **copy.columns()})
    Store.index_new(db, [(item_id, copy)])


# --- End of the aggregator adapter: everything below calls only the functions above. ---

OUTCOME = {(True, True): "tp", (False, True): "fp", (True, False): "fn", (False, False): "tn"}
HALVES = (("tune", "tune half"), ("holdout", "held out: never tune against this"))


def scores(counts: Counter) -> tuple[float, float, float]:
    precision = counts["tp"] / max(1, counts["tp"] + counts["fp"])
    recall = counts["tp"] / max(1, counts["tp"] + counts["fn"])
    return precision, recall, 2 * precision * recall / max(1e-9, precision + recall)


def step_name(step: str) -> str | None:
    """An edit as the per-edit table groups it: teaser lengths in bands, measured values left out."""
    if step.endswith("-words") and step.split("-")[0].isdigit():
        n = int(step.split("-")[0])
        return "teaser-14-19-words" if n < 20 else "teaser-20-25-words" if n <= 25 else "teaser-26-30-words"
    if any(c.isdigit() for c in step) or ":" in step.replace("a:", "", 1):
        return None
    return step


def report(title: str, results: list[tuple[dict, str, str]], with_steps: bool = False) -> dict:
    counts = Counter(outcome for _, outcome, _ in results)
    precision, recall, f1 = scores(counts)
    print(f"  {title}: {len(results)} pairs ({counts['tp'] + counts['fn']} duplicates, "
          f"{counts['fp'] + counts['tn']} distinct)")
    print(f"    precision {precision:.4f}  recall {recall:.4f}  F1 {f1:.4f}   "
          f"(tp {counts['tp']}, fp {counts['fp']}, fn {counts['fn']}, tn {counts['tn']})")
    by_kind: dict[str, Counter] = {}
    by_step: dict[str, Counter] = {}
    for pair, outcome, _ in results:
        by_kind.setdefault(pair["kind"], Counter())[outcome] += 1
        for step in pair["transformations"] if pair["label"] == "duplicate" else ():
            if step_name(step):
                by_step.setdefault(step_name(step), Counter())[outcome] += 1
    print(f"    {'family (kind)':36} {'pairs':>5}  {'tp':>3} {'fn':>3} {'fp':>3} {'tn':>3}   measure")
    for kind, c in sorted(by_kind.items(), key=lambda kv: (kv[1]["fp"] + kv[1]["tn"] > 0, kv[0])):
        positives = c["tp"] + c["fn"]
        measure = (f"recall {c['tp'] / positives:.3f}" if positives
                   else f"false merges {c['fp']}/{c['fp'] + c['tn']} ({c['fp'] / max(1, c['fp'] + c['tn']):.3f})")
        print(f"    {kind:36} {sum(c.values()):5}  {c['tp']:3} {c['fn']:3} {c['fp']:3} {c['tn']:3}   {measure}")
    if with_steps:
        for step, c in sorted(by_step.items()):
            print(f"      with {step:34} recall {c['tp'] / max(1, c['tp'] + c['fn']):.3f} of {c['tp'] + c['fn']}")
    return {"precision": precision, "recall": recall, "f1": f1,
            "kinds": {k: dict(c) for k, c in by_kind.items()}}


def evaluate(path: Path, verbose: bool, sides: str = "ab", halves: tuple[str, ...] = ("tune", "holdout"),
             steps: bool = False) -> dict:
    pairs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    split = any("half" in pair for pair in pairs)
    if split:
        pairs = [pair for pair in pairs if pair.get("half") in halves]
    sources = json.loads(path.with_suffix(".sources.json").read_text(encoding="utf-8"))
    contexts = learn_contexts(sources)
    results: list[tuple[dict, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in pairs:
            merged, evidence = judge_pair(pair, sources, contexts, Path(tmp), sides)
            results.append((pair, OUTCOME[(pair["label"] == "duplicate", merged)], evidence))
    order = "original first" if sides == "ab" else "copy first"
    if not split:  # a set without halves (pairs.jsonl): the report it always had
        counts = Counter(outcome for _, outcome, _ in results)
        by_kind: dict[str, Counter] = {}
        by_step: dict[str, Counter] = {}
        for pair, outcome, _ in results:
            by_kind.setdefault(pair["kind"], Counter())[outcome] += 1
            for step in pair["transformations"] if pair["label"] == "duplicate" else ():
                by_step.setdefault(step, Counter())[outcome] += 1
        precision, recall, f1 = scores(counts)
        print(f"{path.name}: {len(pairs)} pairs ({counts['tp'] + counts['fn']} duplicates, "
              f"{counts['fp'] + counts['tn']} distinct), {order}")
        print(f"  precision {precision:.4f}  recall {recall:.4f}  F1 {f1:.4f}   "
              f"(tp {counts['tp']}, fp {counts['fp']}, fn {counts['fn']}, tn {counts['tn']})")
        for kind, c in sorted(by_kind.items()):
            print(f"  {kind:40} " + " ".join(f"{k} {c[k]}" for k in ("tp", "fn", "fp", "tn") if c[k]))
        for step, c in sorted(by_step.items()):
            print(f"    with {step:34} recall {c['tp'] / max(1, c['tp'] + c['fn']):.3f} of {c['tp'] + c['fn']}")
        summary = {"precision": precision, "recall": recall, "f1": f1}
        wrong = results
    else:
        print(f"{path.name}: {len(pairs)} pairs, {order}")
        summary = {}
        for half, title in HALVES:
            if half not in halves:
                print(f"  ({title}: not evaluated)")
                continue
            if half == "holdout":
                print("  " + "=" * 92)
            summary[half] = report(title, [r for r in results if r[0]["half"] == half], steps)
        # Wrong decisions are listed for the tune half only: reading the holdout's would be tuning on it.
        wrong = [r for r in results if r[0]["half"] == "tune"] if "tune" in halves else results
    if verbose:
        for pair, outcome, evidence in wrong:
            if outcome in ("fp", "fn"):
                print(f"  {outcome.upper()} {pair['id']} {pair['kind']} {pair['transformations']}\n"
                      f"     a: {pair['a']['title'][:90]!r}\n     b: {pair['b']['title'][:90]!r}\n"
                      f"     {evidence}")
    return summary


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


def fill(db, synthetic: Synthetic, start: int, stop: int, span: timedelta, seen_then: bool = False) -> None:
    """Stories straight into the store (all distinct), indexed as the pipeline indexes them; `seen_then`: each
    first seen when it was published (a store's history), not now."""
    prepare_index(db)
    contexts = {}
    for number in range(start, stop):
        source = f"bulk{number % 50}"
        context = contexts.setdefault(source, fresh_context(source))
        published = NOW - span * synthetic.rng.random()
        store_distinct(db, context, synthetic.story(number, source, published), str(number),
                       published if seen_then else NOW)


def new_items(synthetic: Synthetic, db, count: int) -> list[dict]:
    """Half copies of stored stories (decorated, attributed), half new stories, published now."""
    rows = db.execute("SELECT title, link, content, published FROM items WHERE published >= ? ORDER BY random() "
                      "LIMIT ?", (to_text(NOW - timedelta(seconds=WINDOW)), count // 2)).fetchall()  # mergeable
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


def per_item_cost(store, synthetic: Synthetic, count: int = 1000) -> tuple[float, int]:
    """CPU milliseconds per new item through the pipeline path, rolled back afterwards."""
    db = store.db
    db.execute("BEGIN")
    try:
        items = new_items(synthetic, db, count)
        merged_before = db.execute("SELECT count(*) FROM merges").fetchone()[0]
        documents = [(item["source"], rss(item["source"], item)) for item in items]
        started = time.process_time()  # CPU: holds while other work shares the machine
        for source, document in documents:
            ingest(store, db, source, 0, document, fresh_context(source))
        elapsed = time.process_time() - started
        merged = db.execute("SELECT count(*) FROM merges").fetchone()[0] - merged_before
    finally:
        db.execute("ROLLBACK")
    return elapsed / count * 1000, merged


def cost(pairs_path: Path, sizes: list[int], rounds: int, history_days: float | None = None) -> None:
    """Every stored story inside the window (the worst case), or, with `history_days`, a history that long
    with the near-duplicate index trimmed to the window as the daily prune trims it."""
    synthetic = Synthetic(pairs_path)
    span = timedelta(days=history_days) if history_days else timedelta(seconds=WINDOW) * 0.95
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "big.db")
        filled = 0
        results = {}
        for size in sizes:
            started = time.perf_counter()
            with store.transaction() as db:
                fill(db, synthetic, filled, size, span, seen_then=bool(history_days))
            if history_days:
                store.trim_index(index_horizon(NOW, WINDOW), None)
            print(f"  filled the store to {size} stories in {time.perf_counter() - started:.0f}s"
                  + (f" over {history_days:g} days, index trimmed to the window" if history_days else ""), flush=True)
            filled = size
            runs = [per_item_cost(store, synthetic) for _ in range(rounds)]
            results[size] = statistics.median(r[0] for r in runs)
            print(f"  {size:>7} stories: {results[size]:.2f} ms CPU per new item (median of {rounds} rounds of 1000; "
                  f"{runs[0][1]} of 1000 merged, 500 were copies)", flush=True)
        store.close()
    if len(sizes) >= 2:
        ratio = results[sizes[-1]] / results[sizes[0]]
        print(f"  cost ratio {sizes[-1]}/{sizes[0]}: {ratio:.2f}x (must stay within 2x)")


# Cost of the text work and of the dedup step, per item

def pair_items(path: Path) -> list[dict]:
    pairs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [pair[side] for pair in pairs for side in "ab"]


def text_cost(path: Path, reps: int, parts: bool = True) -> float:
    """CPU milliseconds of dedup text work per item, over both items of every pair, `reps` times (after one warm-up)."""
    inputs = [text_inputs(item) for item in pair_items(path)]
    context = fresh_context("eval")
    for args in inputs:
        text_work(context, *args)
    if not reps:
        return 0.0
    started = time.process_time()
    for _ in range(reps):
        for args in inputs:
            text_work(context, *args)
    elapsed = (time.process_time() - started) * 1000 / (reps * len(inputs))
    print(f"dedup text work (new_copy: tokens, shingle hashes, MinHash keys, title keys): {elapsed:.3f} ms per item "
          f"({len(inputs)} items x {reps})")
    timed = {}
    for name, part in TEXT_PARTS.items() if parts else ():
        started = time.process_time()
        for _ in range(reps):
            for title, link, html, _ in inputs:
                part(title, link, html)
        timed[name] = (time.process_time() - started) * 1000 / (reps * len(inputs))
    if timed:
        print("  cumulative: " + ", ".join(f"{name} {ms:.3f}" for name, ms in timed.items()) + " ms")
    return elapsed


def dedup_step_cost(path: Path, stored: int = 2000) -> float:
    """CPU milliseconds per item of the whole dedup step (text work, candidates, match, story, item and index rows) against a
    store of `stored` synthetic stories and the pairs' first items; every pair's second item is judged."""
    items = pair_items(path)
    synthetic = Synthetic(path)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "step.db")
        with store.transaction() as db:
            fill(db, synthetic, 0, stored, timedelta(seconds=WINDOW) * 0.95)
            for number, item in enumerate(items[0::2]):
                store_distinct(db, fresh_context(item["source"]), dict(item, guid=f"{item['guid']}#{number}"),
                               f"a{number}")
        inputs = [(item, fresh_context(item["source"]), text_inputs(item)) for item in items[1::2]]
        db = store.db
        db.execute("BEGIN")
        try:
            started = time.process_time()
            for number, (item, context, args) in enumerate(inputs):
                dedup_step(db, text_work(context, *args), item, number)
            elapsed = (time.process_time() - started) * 1000 / len(inputs)
        finally:
            db.execute("ROLLBACK")
            store.close()
    print(f"whole dedup step (text work, candidates, match, story, item and index rows) against {stored + len(items) // 2} stories: "
          f"{elapsed:.3f} ms per item ({len(inputs)} items)")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description="Precision/recall and per-item cost of deduplication.")
    parser.add_argument("--pairs", type=Path, action="append",
                        help="labelled pairs (JSON lines); repeatable; default tests/fixtures/dedup/pairs.jsonl")
    parser.add_argument("--no-cost", action="store_true", help="skip the 10k/100k store measurement")
    parser.add_argument("--sizes", default="10000,100000", help="store sizes for the cost measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--history-days", type=float,
                        help="stored stories spread over this many days, the index trimmed to the window "
                             "(default: every one inside the window)")
    parser.add_argument("--copy-first", action="store_true", help="poll each pair's second item first")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print every wrong decision (of the tune half only, in a set with halves)")
    parser.add_argument("--half", choices=("tune", "holdout", "both"), default="both",
                        help="in a set with halves, evaluate only this one (default both, holdout printed apart)")
    parser.add_argument("--steps", action="store_true", help="in a set with halves, recall per edit too")
    parser.add_argument("--text-reps", type=int, default=5, help="passes over the items timing the text work")
    parser.add_argument("--text-only", action="store_true",
                        help="only the text work, --text-reps passes (0: setup only; for callgrind differences)")
    args = parser.parse_args()
    paths = args.pairs or [ROOT / "tests" / "fixtures" / "dedup" / "pairs.jsonl"]
    halves = ("tune", "holdout") if args.half == "both" else (args.half,)
    if args.text_only:
        text_cost(paths[0], args.text_reps, parts=False)
        return 0
    for path in paths:
        evaluate(path, args.verbose, "ba" if args.copy_first else "ab", halves, args.steps)
    text_cost(paths[0], args.text_reps)
    dedup_step_cost(paths[0])
    if not args.no_cost:
        print("cost per new item (RSS bytes → parse → sanitise → dedupe → store):")
        cost(paths[0], [int(s) for s in args.sizes.split(",")], args.rounds, args.history_days)
    return 0


if __name__ == "__main__":
    sys.exit(main())
