"""Which copy of a merged story an output shows (SPEC §6): priority, then earliest, then config order."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import write_config
from test_dedupe import DAY, NOW, ORIGINAL, poll, rss

from aggregator.config import load_config
from aggregator.output.select import select_entries
from aggregator.store import Store

REPUBLISHED = dict(ORIGINAL, guid="b1", link="https://beta.example/frog", published=ORIGINAL["published"] + DAY,
                   title=ORIGINAL["title"] + " | Beta Digest")
SUMMARY = dict(ORIGINAL, guid="c1", link="https://gamma.example/frog", published=ORIGINAL["published"] + 2 * DAY,
               text=" ".join(ORIGINAL["text"].replace("<p>", " ").replace("</p>", " ").split()[:45]))


def setup(tmp_path, priorities: dict[str, int] | None = None):
    priorities = priorities or {}
    sources = [{"id": sid, "url": f"https://{sid}.example/feed", "title": title,
                **({"priority": priorities[sid]} if sid in priorities else {})}
               for sid, title in (("gamma", "Gamma Wire"), ("beta", "Beta Digest"), ("alpha", "Alpha News"))]
    config = load_config(write_config(tmp_path, sources))
    return config, Store(config.state)


def entries(store, config):
    return select_entries(store, config, config.outputs[0], now=NOW)


def test_the_first_published_copy_is_shown_and_the_others_are_related(tmp_path):
    config, store = setup(tmp_path)
    poll(store, "gamma", rss("Gamma Wire", SUMMARY))
    poll(store, "beta", rss("Beta Digest", REPUBLISHED))
    poll(store, "alpha", rss("Alpha News", ORIGINAL))
    [entry] = entries(store, config)
    assert entry.source.id == "alpha" and entry.link == ORIGINAL["link"]
    assert entry.published == ORIGINAL["published"]
    assert [(r.source_title, r.link) for r in entry.related] == [
        ("Beta Digest", REPUBLISHED["link"]), ("Gamma Wire", SUMMARY["link"])]
    store.close()


def test_priority_beats_the_earlier_date(tmp_path):
    config, store = setup(tmp_path, {"gamma": 5})
    for sid, name, item in (("alpha", "Alpha News", ORIGINAL), ("beta", "Beta Digest", REPUBLISHED),
                            ("gamma", "Gamma Wire", SUMMARY)):
        poll(store, sid, rss(name, item))
    [entry] = entries(store, config)
    assert entry.source.id == "gamma"
    assert [r.source_title for r in entry.related] == ["Alpha News", "Beta Digest"]
    store.close()


def test_equal_priority_and_date_fall_back_to_config_order(tmp_path):
    config, store = setup(tmp_path)
    poll(store, "alpha", rss("Alpha News", ORIGINAL))
    poll(store, "beta", rss("Beta Digest", dict(REPUBLISHED, published=ORIGINAL["published"])))
    [entry] = entries(store, config)
    assert entry.source.id == "beta"  # listed before alpha in the config
    store.close()


@pytest.mark.parametrize("later", [timedelta(hours=1), 3 * DAY])
def test_an_earlier_copy_arriving_later_takes_over_keeping_id_and_republished(tmp_path, later):
    config, store = setup(tmp_path)
    poll(store, "beta", rss("Beta Digest", REPUBLISHED), now=NOW)
    [before] = entries(store, config)
    assert before.source.id == "beta" and before.republished == NOW
    poll(store, "alpha", rss("Alpha News", ORIGINAL), now=NOW + later)
    [after] = entries(store, config)
    assert after.source.id == "alpha"
    assert (after.uid, after.republished) == (before.uid, before.republished)
    assert [r.source_title for r in after.related] == ["Beta Digest"]
    store.close()


def test_a_change_at_the_source_updates_the_entry_not_its_id(tmp_path):
    config, store = setup(tmp_path)
    poll(store, "alpha", rss("Alpha News", ORIGINAL), now=NOW)
    poll(store, "beta", rss("Beta Digest", REPUBLISHED), now=NOW)
    [before] = entries(store, config)
    changed = dict(ORIGINAL, text=ORIGINAL["text"].replace("Monday", "Tuesday"))
    poll(store, "alpha", rss("Alpha News", changed), now=NOW + DAY)
    [after] = entries(store, config)
    assert (after.uid, after.republished, after.source.id) == (before.uid, before.republished, "alpha")
    assert "Tuesday" in after.summary and after.updated > before.updated
    assert len(after.related) == 1
    store.close()
