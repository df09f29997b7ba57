"""One publish of an output as one change on disk (output/journal.py), on real files: what a crash at each
step leaves, and what the next start makes of it. (The whole path, killed for real, is
test_defects_run.py::test_after_a_kill_during_publishing_every_story_is_in_one_document.)"""

from __future__ import annotations

import os
import time

import pytest

from aggregator.errors import PublishError
from aggregator.output import journal
from aggregator.output.journal import Publication, finish_all, journal_path


@pytest.fixture
def out(tmp_path):
    folder = tmp_path / "out"
    (folder / "archive" / "all").mkdir(parents=True)
    (folder / "all.atom").write_text("current v1")
    (folder / "archive" / "all" / "1.atom").write_text("page v1")
    return folder


def texts(out) -> tuple[str, str]:
    return (out / "all.atom").read_text(), (out / "archive" / "all" / "1.atom").read_text()


def staged_names(out):
    return sorted(p.name for p in out.rglob("*.staged"))


def test_a_commit_puts_every_staged_file_in_place_and_leaves_no_journal(out):
    publication = Publication(out, "all")
    assert publication.stage(out / "archive" / "all" / "1.atom", b"page v2")
    assert publication.stage(out / "all.atom", b"current v2")
    assert publication.stage(out / "all.json", b"{}")  # a new file is staged like any other
    assert (out / "all.atom").read_text() == "current v1"  # nothing in place before the commit
    assert set(publication.commit()) == {out / "archive" / "all" / "1.atom", out / "all.atom", out / "all.json"}
    assert texts(out) == ("current v2", "page v2")
    assert staged_names(out) == [] and not journal_path(out, "all").exists()


def test_identical_bytes_are_not_staged(out):
    publication = Publication(out, "all")
    assert publication.stage(out / "all.atom", b"current v1") is False
    assert publication.commit() == [] and staged_names(out) == []


def test_a_crash_before_the_journal_leaves_the_old_documents_and_an_orphan_swept_later(out):
    publication = Publication(out, "all")
    publication.stage(out / "archive" / "all" / "1.atom", b"page v2")
    publication.stage(out / "all.atom", b"current v2")  # ... and the process dies here
    assert finish_all(out) == []
    assert (out / "all.atom").read_text() == "current v1" and len(staged_names(out)) == 2  # young: maybe someone's
    old = time.time() - journal.ORPHAN_AGE - 10
    for staged in out.rglob("*.staged"):
        os.utime(staged, (old, old))
    finish_all(out)
    assert staged_names(out) == [] and (out / "archive" / "all" / "1.atom").read_text() == "page v1"


def test_a_crash_after_the_journal_is_finished_by_the_next_start_even_half_done(out):
    publication = Publication(out, "all")
    publication.stage(out / "archive" / "all" / "1.atom", b"page v2")
    publication.stage(out / "all.atom", b"current v2")
    journal._write_journal(publication.journal, out, publication.staged)  # commit's first step, then death
    page_staged, _ = publication.staged[0]
    os.replace(page_staged, out / "archive" / "all" / "1.atom")  # one rename done before the kill
    assert texts(out) == ("current v1", "page v2")
    assert finish_all(out) == [out / "all.atom"]
    assert texts(out) == ("current v2", "page v2")
    assert staged_names(out) == [] and not journal_path(out, "all").exists()
    assert finish_all(out) == []  # idempotent


def test_a_failed_stage_is_aborted_and_leaves_the_old_documents(out):
    (out / "archive" / "x").write_text("a file where a folder goes")
    publication = Publication(out, "all")
    publication.stage(out / "all.atom", b"current v2")
    with pytest.raises(PublishError, match="x/1.atom: Not a directory"):
        publication.stage(out / "archive" / "x" / "1.atom", b"page")
    publication.abort()  # what publish_output does on any failure before the commit
    assert staged_names(out) == [] and (out / "all.atom").read_text() == "current v1"


def test_a_commit_failing_midway_leaves_its_journal_and_the_next_start_says_what_blocks_it(out):
    (out / "archive" / "all" / "2.atom").mkdir()  # a folder where a page goes: it cannot be replaced
    publication = Publication(out, "all")
    publication.stage(out / "all.atom", b"current v2")
    publication.stage(out / "archive" / "all" / "2.atom", b"page 2")
    with pytest.raises(PublishError, match="cannot put the new documents of all in place"):
        publication.commit()
    assert journal_path(out, "all").exists()
    with pytest.raises(PublishError, match="cannot finish the interrupted publish of all"):
        finish_all(out)
    (out / "archive" / "all" / "2.atom").rmdir()
    assert finish_all(out) == [out / "archive" / "all" / "2.atom"]
    assert (out / "archive" / "all" / "2.atom").read_text() == "page 2" and not journal_path(out, "all").exists()
