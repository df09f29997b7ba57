"""An operator's corrections (issue 19): merge, unmerge and explain --against, through the CLI.

Each command is a new process, so every check after a correction is one
after a restart; later `once` runs poll the same feeds again, with changed
bodies, and a new source whose copy matches both sides of an unmerge. The
merge/unmerge path runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from conftest import run_cli, write_config
from threecopies import (ATOM, DIGEST_LINK, ORIGINAL_LINK, PARAGRAPHS, REPUB_LINK, entries, entry_id, feeds, links,
                         serve, shown_link, story_of)

COUNCIL_LINK = "https://news.example/archives/4712"
MIRROR_LINK = "https://mirror.example/docks"
DIGEST_HREF = DIGEST_LINK.replace("&amp;", "&")


def mirror_feed() -> str:
    """A fourth source: a full copy of the story, which matches the original and the republisher's copy alike."""
    when = (datetime.now(timezone.utc) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    return ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Mirror</title>'
            f'<id>tag:mirror.example,2021:feed</id><updated>{when}</updated><entry><id>tag:mirror.example,1</id>'
            f'<title>Ports strike widens</title><link href="{MIRROR_LINK}"/><published>{when}</published>'
            f'<updated>{when}</updated><content type="html"><![CDATA[{text}]]></content></entry></feed>')


@pytest.fixture(params=["sqlite", "postgresql"])
def polled(request, tmp_path, feed_server):
    """A config whose three copies were polled into one story, on each backend; and the feeds, to change."""
    documents = feeds()
    extra = {"state": request.getfixturevalue("postgres_url")} if request.param == "postgresql" else {}
    sources = serve(feed_server, documents)
    sources.append({"id": "mirror", "url": feed_server.serve("/mirror.atom", "<feed/>", content_type="text/plain"),
                    "enabled": False})
    config = write_config(tmp_path, sources, **extra)
    run_cli("once", config=config, check=True)
    assert len(entries(config)) == 2
    return config, documents


def test_unmerge_sticks_and_merge_joins_again(polled, feed_server):
    config, documents = polled
    story_id = entry_id(story_of(config, ORIGINAL_LINK))

    moved = run_cli("unmerge", REPUB_LINK, config=config)
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.startswith("unmerged: item ") and moved.stdout.count("\n") == 1
    assert len(entries(config)) == 2  # outputs change at the next publish, not before
    run_cli("publish", config=config, check=True)
    assert len(entries(config)) == 3
    assert links(story_of(config, ORIGINAL_LINK)) == {ORIGINAL_LINK, DIGEST_HREF}
    assert entry_id(story_of(config, ORIGINAL_LINK)) == story_id  # the story it left keeps its id
    alone = story_of(config, REPUB_LINK)
    assert links(alone) == {REPUB_LINK}
    shown = run_cli("explain", REPUB_LINK, config=config, check=True).stdout
    assert "operator decisions" in shown and "unmerge (unmerge " + REPUB_LINK in shown

    # a later poll of the same copy (changed at its source) and a new copy matching both sides: still apart
    documents["repub"] = documents["repub"].replace("three more harbours", "three more ports")
    feed_server.serve("/repub.atom", documents["repub"], content_type="application/atom+xml")
    feed_server.serve("/mirror.atom", mirror_feed(), content_type="application/atom+xml")
    again = run_cli("once", "--force", "--source", "news", "--source", "digest", "--source", "repub",
                    "--source", "mirror", config=config, check=True)
    assert "repub: updated: 0 new, 1 updated" in again.stdout and "mirror: new: 1 new" in again.stdout
    found = entries(config)
    assert len(found) == 3, [sorted(links(e)) for e in found]
    assert {REPUB_LINK, ORIGINAL_LINK} not in [links(e) & {REPUB_LINK, ORIGINAL_LINK} for e in found]
    assert entry_id(story_of(config, REPUB_LINK)) == entry_id(alone)
    against = run_cli("explain", REPUB_LINK, "--against", ORIGINAL_LINK, config=config, check=True).stdout
    assert "not merged" in against and "kept apart by: an operator's unmerge (decision 1)" in against

    joined = run_cli("merge", ORIGINAL_LINK, REPUB_LINK, config=config)
    assert joined.returncode == 0, joined.stderr
    assert joined.stdout.startswith("merged: story ") and joined.stdout.count("\n") == 1
    assert run_cli("once", config=config, check=True)  # nothing new at the sources: the merge is published still
    found = entries(config)
    assert len(found) == 2, [sorted(links(e)) for e in found]
    story = story_of(config, ORIGINAL_LINK)
    assert entry_id(story) == story_id and shown_link(story) == ORIGINAL_LINK  # earliest copy, ids kept
    assert links(story) == {ORIGINAL_LINK, DIGEST_HREF, REPUB_LINK, MIRROR_LINK}
    shown = run_cli("explain", entry_id(alone), config=config, check=True).stdout  # the retired id still finds it
    assert f"story {story_id}," in shown and "[operator]: an operator's merge (decision 2)" in shown
    assert "decision 2" in shown and "merge (merge " in shown
    merged = run_cli("explain", REPUB_LINK, "--against", ORIGINAL_LINK, config=config, check=True).stdout
    assert "merged: both are copies of one story" in merged

    documents["repub"] = documents["repub"].replace("three more ports", "three other ports")
    feed_server.serve("/repub.atom", documents["repub"], content_type="application/atom+xml")
    run_cli("once", config=config, check=True)  # a later poll never splits an operator's merge
    assert links(story_of(config, REPUB_LINK)) == {ORIGINAL_LINK, DIGEST_HREF, REPUB_LINK, MIRROR_LINK}


def test_merge_of_two_different_stories_outlives_later_polls(polled, feed_server):
    config, documents = polled
    story_id = entry_id(story_of(config, ORIGINAL_LINK))
    council_id = entry_id(story_of(config, COUNCIL_LINK))
    apart = run_cli("explain", COUNCIL_LINK, "--against", DIGEST_HREF, config=config, check=True).stdout
    assert "not merged" in apart and "kept apart by: no rule is met" in apart
    assert "- same canonical link: the links differ" in apart and "jaccard" in apart
    run_cli("merge", council_id, DIGEST_HREF, config=config, check=True)
    documents["news"] = documents["news"].replace("new cycling plan", "cycling plan")
    feed_server.serve("/news.atom", documents["news"], content_type="application/atom+xml")
    result = run_cli("once", "--source", "news", config=config, check=True)
    assert "news: updated: 0 new, 1 updated" in result.stdout
    found = entries(config)
    assert len(found) == 1
    # the council story holds the earliest-published copy: its id stays, its copy is shown
    assert entry_id(found[0]) == council_id != story_id and shown_link(found[0]) == COUNCIL_LINK
    assert links(found[0]) == {COUNCIL_LINK, ORIGINAL_LINK, DIGEST_HREF, REPUB_LINK}
    shown = run_cli("explain", story_id, config=config, check=True).stdout
    assert f"story {council_id}," in shown and f"story {story_id} (republished" in shown


def test_bad_names_exit_1_or_2_with_one_line(tmp_path, feed_server):
    config = write_config(tmp_path, serve(feed_server, feeds()))
    run_cli("once", "--source", "news", config=config, check=True)  # the original makes the story
    run_cli("once", config=config, check=True)
    story_id = entry_id(story_of(config, ORIGINAL_LINK))
    for args, code in [(("merge", "https://nowhere.example/x", ORIGINAL_LINK), 1),
                       (("unmerge", "urn:uuid:00000000-0000-0000-0000-000000000000"), 1),
                       (("explain", ORIGINAL_LINK, "--against", "https://nowhere.example/x"), 1),
                       (("merge", ORIGINAL_LINK), 2), (("unmerge",), 2)]:
        result = run_cli(*args, config=config)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") <= 2
    made = run_cli("unmerge", story_id, config=config)  # the copy that made the story: the original
    assert made.returncode == 0 and "unmerged: item " in made.stdout
    assert run_cli("unmerge", ORIGINAL_LINK, config=config, check=True).stdout.endswith("already a story of its own\n")
    assert run_cli("merge", ORIGINAL_LINK, ORIGINAL_LINK, config=config, check=True).stdout.endswith(
        "already one story\n")
