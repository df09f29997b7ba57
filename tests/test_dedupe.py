"""dedupe: which story a new copy joins, through the real pipeline path into a real SQLite store."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from aggregator.dedup import copies, fingerprint, match
from aggregator.config import SourceConfig
from aggregator.reader.parse import parse_feed
from aggregator.run.pipeline import store_entries
from aggregator.store import Store

NOW = datetime(2021, 10, 1, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
WINDOW = 14 * 86400.0
FIXTURES = Path(__file__).parent / "fixtures" / "dedup"

STORY = [
    "Researchers working deep in the Amazon rainforest have identified a previously unknown species of tree frog, "
    "according to a study published on Monday in a leading zoology journal.",
    "The frog, which is about two centimetres long, has bright orange markings and a distinctive call that the team "
    "recorded over several nights of fieldwork near the river, far from the nearest village.",
    "The scientists said the discovery highlights how much of the region's biodiversity remains undocumented, and "
    "warned that deforestation threatens many species before they can even be described.",
    "Local guides who helped the expedition said they had heard the call for years without knowing which animal "
    "made it, and hope the attention will bring protection to the forest around their community.",
]
OTHER = [
    "The city council voted on Tuesday to approve a new budget for the parks department after months of debate "
    "about maintenance costs, staffing levels and the future of several playgrounds in the northern districts.",
    "Residents had campaigned for repairs since the storms of last winter damaged fences, paths, lighting and the "
    "old bandstand that many families consider the heart of the neighbourhood and its summer concerts.",
]


def html(paragraphs: list[str]) -> str:
    return "".join(f"<p>{p}</p>" for p in paragraphs)


def rss(feed_title: str, *items: dict) -> bytes:
    entries = "".join(
        f"<item><title>{escape(i['title'])}</title><link>{escape(i['link'])}</link>"
        f"<guid isPermaLink='false'>{escape(i.get('guid', i['link']))}</guid>"
        f"<pubDate>{format_datetime(i.get('published', NOW - DAY), usegmt=True)}</pubDate>"
        f"<description>{escape(i.get('text', ''))}</description></item>" for i in items)
    return (f"<?xml version='1.0'?><rss version='2.0'><channel><title>{escape(feed_title)}</title>"
            f"<link>https://{feed_title.lower().replace(' ', '')}.example/</link>{entries}</channel></rss>").encode()


def poll(store: Store, source_id: str, document: bytes, window: float = WINDOW, now: datetime = NOW) -> None:
    feed = parse_feed(document, now=now)
    with store.transaction() as db:
        store_entries(store, db, SourceConfig(id=source_id, url=f"https://{source_id}.example/feed", order=0),
                       feed, now, window)


def stories(store: Store) -> dict[str, int]:
    """story id of each item, by guid."""
    return {r["guid"]: r["story_id"] for r in store.query("SELECT guid, story_id FROM items")}


def merges(store: Store) -> list[dict]:
    return [dict(r) for r in store.query("SELECT * FROM merges ORDER BY item_id")]


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "state.db")
    yield store
    store.close()


ORIGINAL = {"title": "Scientists discover new species of frog in Amazon rainforest", "guid": "a1",
            "link": "https://alpha.example/2021/09/frog", "text": html(STORY), "published": NOW - 2 * DAY}


def test_a_republished_copy_joins_the_original_story(store):
    poll(store, "alpha", rss("Alpha News", ORIGINAL))
    copy = {"title": "Scientists discover new species of frog in Amazon rainforest | Beta Digest", "guid": "b1",
            "link": "https://beta.example/p/123?utm_source=rss", "published": NOW - DAY,
            "text": "<p>Originally published by Alpha News on 29 September 2021.</p>" + html(STORY[:3])}
    poll(store, "beta", rss("Beta Digest", copy))
    assert stories(store)["a1"] == stories(store)["b1"]
    [merge] = merges(store)
    details = json.loads(merge["details"])
    assert merge["evidence"].startswith(("near-identical text", "100% of the shorter text"))
    assert details["containment"] == 1.0 and details["same_title"] is True


def test_the_same_link_with_tracking_parameters_merges(store):
    poll(store, "alpha", rss("Alpha News", ORIGINAL))
    poll(store, "hn", rss("Hacker News", {"title": "A new frog (2021)", "guid": "hn1", "text": "Comments",
                                          "link": "http://www.alpha.example/2021/09/frog/?utm_source=hn#top"}))
    assert stories(store)["a1"] == stories(store)["hn1"]
    assert merges(store)[0]["evidence"] == "same canonical link alpha.example/2021/09/frog"


def test_a_summary_of_the_story_joins_it(store):
    poll(store, "alpha", rss("Alpha News", ORIGINAL))
    words = " ".join(STORY).split()
    summary = {"title": "The Daily Reader: Scientists discover new species of frog in Amazon rainforest",
               "guid": "d1", "link": "https://daily.example/frog", "text": " ".join(words[:45]) + " [&#8230;]"}
    poll(store, "daily", rss("The Daily Reader", summary))
    assert stories(store)["a1"] == stories(store)["d1"]


def test_generic_titles_never_merge_on_title_alone(store):
    poll(store, "alpha", rss("Alpha News", {"title": "Weekly roundup", "guid": "a1", "link": "https://alpha.example/w1",
                                            "text": html(STORY)}))
    poll(store, "beta", rss("Beta Digest", {"title": "Weekly roundup", "guid": "b1", "link": "https://beta.example/w",
                                            "text": html(OTHER)}))
    poll(store, "gamma", rss("Gamma", {"title": "Weekly roundup", "guid": "g1", "link": "https://gamma.example/w"}))
    assert len(set(stories(store).values())) == 3


def test_a_title_alone_never_merges(store):
    poll(store, "alpha", rss("Alpha News", dict(ORIGINAL, text="")))
    poll(store, "beta", rss("Beta Digest", dict(ORIGINAL, guid="b1", link="https://beta.example/frog", text="")))
    assert len(set(stories(store).values())) == 2


def test_a_short_text_alone_never_merges(store):
    text = " ".join(STORY[0].split()[:30])
    poll(store, "alpha", rss("Alpha News", {"title": "Frog found", "guid": "a1", "link": "https://a.example/1",
                                            "text": text}))
    poll(store, "beta", rss("Beta Digest", {"title": "Parks budget approved", "guid": "b1",
                                            "link": "https://b.example/1", "text": text}))
    assert len(set(stories(store).values())) == 2


def test_a_quotation_under_another_title_is_not_a_copy(store):
    poll(store, "alpha", rss("Alpha News", dict(ORIGINAL, text=html(STORY[:2]))))
    quoting = {"title": "Why small discoveries matter", "guid": "b1", "link": "https://beta.example/essay",
               "text": html(OTHER[:1] + ["As Alpha News reported: “" + " ".join(STORY[:2]) + "”"] + OTHER[1:])}
    poll(store, "beta", rss("Beta Digest", quoting))
    assert len(set(stories(store).values())) == 2


def test_another_outlets_update_under_the_same_title_stays_apart(store):
    poll(store, "alpha", rss("Alpha News", dict(ORIGINAL, title="Live: flooding closes the river road")))
    update = {"title": "Live: flooding closes the river road", "guid": "b1", "link": "https://beta.example/live",
              "published": NOW - 2 * DAY + timedelta(hours=3),
              "text": html(["Update 14:00: " + STORY[0]] + OTHER + [OTHER[0].replace("Tuesday", "Friday")])}
    poll(store, "beta", rss("Beta Digest", update))
    assert len(set(stories(store).values())) == 2


@pytest.mark.parametrize("window_days, merged", [(14, False), (30, True)])
def test_only_stories_inside_the_window_are_candidates(tmp_path, window_days, merged):
    store = Store(tmp_path / "state.db")
    poll(store, "alpha", rss("Alpha News", dict(ORIGINAL, published=NOW - 25 * DAY)), window=window_days * 86400.0)
    poll(store, "beta", rss("Beta Digest", dict(ORIGINAL, guid="b1", link="https://beta.example/frog")),
         window=window_days * 86400.0)
    assert (stories(store)["a1"] == stories(store)["b1"]) is merged
    store.close()


REWORDED = {"title": "Bright orange amphibian turns up in the jungle", "guid": "c1",
            "link": "https://gamma.example/amphibian", "text": html(STORY).replace("Monday", "Tuesday")}


def test_the_near_duplicate_index_survives_a_restart(tmp_path):
    store = Store(tmp_path / "state.db")
    poll(store, "alpha", rss("Alpha News", ORIGINAL))
    store.close()
    store = Store(tmp_path / "state.db")  # another run: nothing but the store carries over
    poll(store, "gamma", rss("Gamma", REWORDED))  # no shared link, title or hash: only the index finds it
    assert stories(store)["a1"] == stories(store)["c1"]
    assert merges(store)[0]["evidence"].startswith("near-identical text")
    store.close()


def test_an_index_kept_in_the_layout_before_migration_8_is_carried_over(tmp_path):
    """Migration 8 moved the index into a (key, item id) B-tree: the keys stored before still find their items."""
    store = Store(tmp_path / "state.db")
    poll(store, "alpha", rss("Alpha News", ORIGINAL))
    before = sorted(tuple(r) for r in store.query("SELECT key, item_id FROM near_keys"))
    with store.transaction() as db:  # back to the layout of migration 4, as a state of an earlier version has it
        db.execute("CREATE TABLE near_keys_4 (key INTEGER NOT NULL, published TEXT NOT NULL, "
                   "item_id INTEGER NOT NULL REFERENCES items(id))")
        db.execute("INSERT INTO near_keys_4 SELECT k.key, i.published, k.item_id FROM near_keys k "
                   "JOIN items i ON i.id = k.item_id")
        db.execute("DROP TABLE near_keys")
        db.execute("ALTER TABLE near_keys_4 RENAME TO near_keys")
        db.execute("CREATE INDEX near_keys_lookup ON near_keys (key, published)")
        db.execute("CREATE INDEX near_keys_item ON near_keys (item_id)")
        db.execute("DELETE FROM schema_migrations WHERE version = 8")
    store.close()
    store = Store(tmp_path / "state.db")
    assert sorted(tuple(r) for r in store.query("SELECT key, item_id FROM near_keys")) == before
    poll(store, "gamma", rss("Gamma", REWORDED))  # no shared link, title or hash: only the index finds it
    assert stories(store)["a1"] == stories(store)["c1"]
    store.close()


def test_the_index_is_rebuilt_from_the_store_when_it_was_made_another_way(store):
    poll(store, "alpha", rss("Alpha News", ORIGINAL))
    with store.transaction() as db:
        db.execute("DELETE FROM near_keys")
        db.execute("UPDATE dedup_meta SET value = 'an older way'")
    poll(store, "gamma", rss("Gamma", REWORDED))
    assert stories(store)["a1"] == stories(store)["c1"]


def test_a_change_of_the_stored_hashes_refingerprints_the_stories_inside_the_window(store):
    """INDEX_VERSION names how fingerprints and keys are made: a store whose hashes were made another way
    (an older version's) is refingerprinted from its items' text by the next poll, inside the window only."""
    old = dict(ORIGINAL, guid="old", link="https://alpha.example/old", title="An old frog", published=NOW - 40 * DAY)
    poll(store, "alpha", rss("Alpha News", old), now=NOW - 40 * DAY)
    poll(store, "alpha", rss("Alpha News", ORIGINAL))
    with store.transaction() as db:  # the hashes and keys of the version before, as its store has them
        db.execute("UPDATE fingerprints SET hashes = ?", (bytes(4 * 10),))
        db.execute("UPDATE near_keys SET key = key + 1")
        db.execute("UPDATE dedup_meta SET value = 'minhash-affine32-32-8x4-lead40-shingle3-v2' "
                   "WHERE name = 'near_index'")
    poll(store, "gamma", rss("Gamma", REWORDED))  # no shared link, title or hash: only the rebuilt index finds it
    assert stories(store)["a1"] == stories(store)["c1"]
    rows = {r["guid"]: r for r in store.query(
        "SELECT i.id, i.guid, i.content, i.summary, f.hashes FROM items i LEFT JOIN fingerprints f ON f.item_id = i.id")}
    assert rows["old"]["hashes"] is None  # outside the window: neither fingerprinted nor indexed
    assert not store.query("SELECT 1 FROM near_keys WHERE item_id = ?", (rows["old"]["id"],))
    for guid in ("a1", "c1"):
        text, _ = fingerprint.text_fingerprint(copies.text_of(rows[guid]["content"], rows[guid]["summary"]))
        assert rows[guid]["hashes"] == text.hashes.astype("<u4").tobytes()
        keys = {r[0] for r in store.query("SELECT key FROM near_keys WHERE item_id = ?", (rows[guid]["id"],))}
        assert set(fingerprint.index_keys(text)) <= keys
    assert store.query("SELECT value FROM dedup_meta WHERE name = 'near_index'")[0][0] == fingerprint.INDEX_VERSION


def test_a_link_a_source_gives_several_items_identifies_none(store):
    day_page = "https://scripting.example/2017/06/23.html"
    poll(store, "alpha", rss("Alpha News", dict(ORIGINAL, link=day_page + "#a1"),
                             {"title": "Thin servers", "guid": "a2", "link": day_page + "#a2", "text": html(OTHER)}))
    poll(store, "beta", rss("Beta Digest", {"title": "Something else entirely", "guid": "b1",
                                            "link": day_page + "?utm_source=beta", "text": html(OTHER[:1])}))
    assert stories(store)["b1"] not in (stories(store)["a1"], stories(store)["a2"])


def test_items_of_one_source_never_merge(store):
    poll(store, "alpha", rss("Alpha News", ORIGINAL, dict(ORIGINAL, guid="a2", link="https://alpha.example/again")))
    assert len(set(stories(store).values())) == 2


def test_a_story_holds_one_copy_per_source(store):
    poll(store, "alpha", rss("Alpha News", ORIGINAL))
    poll(store, "beta", rss("Beta Digest", dict(ORIGINAL, guid="b1", link="https://beta.example/1")))
    poll(store, "beta", rss("Beta Digest", dict(ORIGINAL, guid="b2", link="https://beta.example/2")))
    found = stories(store)
    assert found["a1"] == found["b1"] != found["b2"]


def test_two_pages_of_one_site_merge_only_on_near_identical_text(store):
    long_text = (STORY + OTHER) * 3
    poll(store, "alpha", rss("Alpha News", dict(ORIGINAL, text=html(long_text))))
    edited = long_text[:6] + [p.replace("the", "a") for p in long_text[6:]]
    poll(store, "alpha-world", rss("Alpha World", dict(ORIGINAL, guid="w1", title="Frog story, second part",
                                                       link="https://alpha.example/2021/09/frog-2",
                                                       text=html(edited))))
    assert stories(store)["a1"] != stories(store)["w1"]


def test_judge_explains_every_rule_with_scores():
    context = copies.SourceContext("beta")
    full = copies.new_copy(context, "Frog found in the Amazon", "https://a.example/1", html(STORY), NOW)
    copy = copies.new_copy(copies.SourceContext("gamma"), "Frog found in the Amazon", "https://b.example/1",
                           html(STORY[:2] + ["We thank Alpha News, whose reporting this is, for letting us share it."]),
                           NOW + DAY)
    evidence = match.judge(copy, full)
    assert evidence.rule in match.RULES
    assert evidence.scores["core_words"] < evidence.scores["words"]  # the thank-you line is an addition
    assert evidence.scores["containment"] == 1.0


SHORT = " ".join(STORY[0].split()[:30])


@pytest.mark.parametrize("title_one, text_one, title_two, text_two, merged", [
    # identical short text: the same title makes it one story, a generic or different one does not
    ("Frog found in Amazon", SHORT, "Frog found in Amazon | Beta", SHORT, True),
    ("Weekly roundup", SHORT, "Weekly roundup", SHORT, False),
    ("Frog found in Amazon", SHORT, "Parks budget approved", SHORT, False),
    # a passage quoted whole under another title
    ("Frog found in Amazon", html(STORY[:2]), "Why small discoveries matter",
     html(OTHER[:1] + [" ".join(STORY[:2])] + OTHER[1:]), False),
    # the same generic title over different texts, and over nothing
    ("Open thread", html(STORY), "Open thread", html(OTHER), False),
    ("Frog found in Amazon", "", "Frog found in Amazon", "", False),
    # a summary under the same title
    ("Frog found in Amazon", html(STORY), "Frog found in Amazon", " ".join(" ".join(STORY).split()[:40]), True),
])
def test_judge(title_one, text_one, title_two, text_two, merged):
    one = copies.new_copy(copies.SourceContext("alpha"), title_one, "https://a.example/1", text_one, NOW)
    two = copies.new_copy(copies.SourceContext("beta", identity_decorations("Beta")), title_two,
                          "https://b.example/1", text_two, NOW + DAY)
    assert (match.judge(two, one) is not None) is merged
    assert (match.judge(one, two) is not None) is merged


@pytest.mark.parametrize("one, two, same", [
    ("Frog found in Amazon", "Report: Frog found in Amazon (via Alpha News)", True),
    ("Frog found in Amazon", "Alpha News | Frog found in Amazon", True),
    # titles that share only what is left of a decoration are not the same title
    ("Alpha News Daily | Frog found in Amazon", "Alpha News Daily | Parks budget approved", False),
    ("Open thread", "Report: Open thread", False),
])
def test_same_title_compares_each_title_with_the_others_keys(one, two, same):
    pair = [copies.new_copy(copies.SourceContext(sid), title, None, html(STORY), NOW)
            for sid, title in (("alpha", one), ("beta", two))]
    assert match.scores(*pair)["same_title"] is same


def identity_decorations(name: str):
    from aggregator.dedup.titles import learn_decorations

    return learn_decorations(name, [])


def pairs_outcome(path: Path) -> dict[str, int]:
    """Every labelled pair through the pipeline into a fresh store: original first, then the other copy."""
    from aggregator.models import from_text

    sources = json.loads(path.with_suffix(".sources.json").read_text(encoding="utf-8"))
    contexts = {sid: copies.learn_context(sid, s["title"], s["titles"], s.get("links", []))
                for sid, s in sources.items()}
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for line in path.read_text(encoding="utf-8").splitlines():
        pair = json.loads(line)
        store = Store(":memory:")
        with store.transaction() as db:
            for order, side in enumerate("ab"):
                item = pair[side]
                document = rss(sources[item["source"]]["title"], dict(
                    item, text=item["content"], published=from_text(item["published"])))
                feed = parse_feed(document, now=datetime(2030, 1, 1, tzinfo=timezone.utc))
                store_entries(store, db, SourceConfig(id=item["source"], url="https://x.example/", order=order), feed,
                               NOW, WINDOW, contexts[item["source"]])
        merged = len({r[0] for r in store.query("SELECT story_id FROM items")}) == 1
        store.close()
        counts[{(True, True): "tp", (False, True): "fp", (True, False): "fn", (False, False): "tn"}[
            (pair["label"] == "duplicate", merged)]] += 1
    return counts


def test_the_labelled_set_meets_the_targets():
    counts = pairs_outcome(FIXTURES / "pairs.jsonl")
    assert counts["tp"] + counts["fn"] >= 150 and counts["fp"] + counts["tn"] >= 150
    precision = counts["tp"] / (counts["tp"] + counts["fp"])
    recall = counts["tp"] / (counts["tp"] + counts["fn"])
    assert precision >= 0.995, counts
    assert recall >= 0.95, counts


def test_a_story_whose_original_date_is_outside_the_window_is_not_a_candidate(store):
    poll(store, "alpha", rss("Alpha News", dict(ORIGINAL, published=NOW - 20 * DAY)))
    poll(store, "beta", rss("Beta Digest", dict(ORIGINAL, guid="b1", link="https://beta.example/1",
                                                published=NOW - 10 * DAY)))
    poll(store, "gamma", rss("Gamma", dict(ORIGINAL, guid="c1", link="https://gamma.example/1", published=NOW)))
    found = stories(store)
    assert found["a1"] == found["b1"] != found["c1"]  # b1 is close enough, but the story began 20 days ago


def test_title_leftovers_do_not_meet_in_the_index(store):
    """Items sharing only an unlearnt decoration are not even candidates: no hot keys, no wasted work."""
    poll(store, "alpha", rss("Alpha", dict(ORIGINAL, title="Frog found in Amazon | Example Wire")))
    with store.transaction() as db:
        def title_candidates(title: str) -> list[int]:
            copy = copies.new_copy(copies.SourceContext("beta"), title, None, "", NOW)
            return sorted({i for _, i, _ in Store.near_key_rows(db, copy.title_lookup_keys(), NOW - 9 * DAY,
                                                                NOW + DAY, "beta")})
        assert title_candidates("Parks budget approved | Example Wire") == []
        assert title_candidates("Frog found in Amazon") == [1]
        assert title_candidates("Report: Frog found in Amazon | Example Wire") == [1]


def test_a_stored_copy_is_judged_on_the_fingerprint_kept_with_it(store):
    """The fingerprint kept in the store is the one its HTML gives; an item stored without one still has it."""
    poll(store, "alpha", rss("Alpha", ORIGINAL, dict(ORIGINAL, guid="a2", link="https://alpha.example/2",
                                                    title="Another story", text=html(STORY[:2]))))
    with store.transaction() as db:
        db.execute("DELETE FROM fingerprints WHERE item_id = 2")
        rows = Store.copy_rows(db, [1, 2])
    assert [r["hashes"] is None for r in rows] == [False, True]
    for row in rows:
        kept = copies.stored_copy(row).text
        made, _ = fingerprint.text_fingerprint(copies.text_of(row["content"], row["summary"]))
        assert (kept.words, kept.blocks, kept.hashes.tolist()) == (made.words, made.blocks, made.hashes.tolist())
        assert kept.words > 20
