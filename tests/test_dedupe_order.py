"""Dedup does not depend on arrival order (issue 19): the same three copies, polled in every order, one story.

Through the real CLI and a local feed server (see threecopies.py for the
copies): one `once --source` per copy so the order is controlled, and all at
once concurrently. Ids never change once published (SPEC §4), so when the
copy that ties two stories arrives last, the story holding the
earliest-published copy keeps its id and the other id is retired; `explain`
still finds the story by it.
"""

from __future__ import annotations

import itertools

import pytest

from conftest import run_cli, write_config
from threecopies import (ATOM, DIGEST_LINK, ORIGINAL_LINK, REPUB_LINK, SOURCES, entries, entry_id, feeds, links,
                         serve, shown_link, story_of)

ALL_LINKS = {ORIGINAL_LINK, DIGEST_LINK.replace("&amp;", "&"), REPUB_LINK}


def assert_one_story(config) -> object:
    """The output holds the story once, showing the original with the other two copies related, and the
    unrelated story apart."""
    found = entries(config)
    assert len(found) == 2, [(e.findtext(f"{ATOM}title"), sorted(links(e))) for e in found]
    story = story_of(config, ORIGINAL_LINK)
    assert shown_link(story) == ORIGINAL_LINK  # the earliest-published copy
    assert links(story) == ALL_LINKS
    return story


@pytest.mark.parametrize("order", list(itertools.permutations(SOURCES)), ids="-".join)
def test_every_arrival_order_gives_the_same_story(tmp_path, feed_server, order):
    config = write_config(tmp_path, serve(feed_server, feeds()))
    published, original_id = set(), None
    for source in order:
        run_cli("once", "--source", source, config=config, check=True)
        published |= {entry_id(e) for e in entries(config)}
        if source == "news":
            original_id = entry_id(story_of(config, ORIGINAL_LINK))  # the earliest-published copy's story
    story = assert_one_story(config)
    assert entry_id(story) == original_id
    for retired in published - {entry_id(e) for e in entries(config)}:  # ids that were published, then joined
        shown = run_cli("explain", retired, config=config, check=True)
        assert f"story {original_id}," in shown.stdout and f"story {retired} (republished" in shown.stdout
        assert "stories joined into this one" in shown.stdout
    again = run_cli("once", "--force", config=config, check=True)  # polling the same copies again changes nothing
    assert "total: 3 sources, 0 new entries" in again.stdout
    assert entry_id(assert_one_story(config)) == original_id


@pytest.mark.parametrize("run", range(3))
def test_all_copies_polled_concurrently_give_the_same_story(tmp_path, feed_server, run):
    feed_server.delay = 0.05 * run  # different interleavings of the three polls
    config = write_config(tmp_path, serve(feed_server, feeds()))
    result = run_cli("once", config=config, check=True)
    assert "total: 3 sources, 4 new entries" in result.stdout
    assert_one_story(config)


def test_the_tie_arriving_last_retires_the_later_story(tmp_path, feed_server):
    """digest, then news (two stories: they share no evidence), then repub, which matches both."""
    config = write_config(tmp_path, serve(feed_server, feeds()))
    run_cli("once", "--source", "digest", config=config, check=True)
    digest_id = entry_id(entries(config)[0])
    run_cli("once", "--source", "news", config=config, check=True)
    assert len(entries(config)) == 3
    news_id = entry_id(story_of(config, ORIGINAL_LINK))
    run_cli("once", "--source", "repub", config=config, check=True)
    story = assert_one_story(config)
    assert entry_id(story) == news_id  # the story of the earliest-published copy keeps its id
    assert digest_id not in {entry_id(e) for e in entries(config)}
    shown = run_cli("explain", digest_id, config=config, check=True).stdout
    assert f"story {digest_id} (republished" in shown and "[rules]: same canonical link" in shown
    assert "started story " + digest_id + ", since joined into this one" in shown
