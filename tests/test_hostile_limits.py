"""Data limits through the real CLI: entries per poll, over-long fields, untrustworthy dates."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from conftest import run_cli, status_json, write_config
from hostile import ATOM, output_entries, rss, rss_item

NOW = datetime.now(timezone.utc)


def _rfc822(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


def _published(entry) -> datetime:
    return datetime.fromisoformat(entry.findtext(f"{ATOM}published").replace("Z", "+00:00"))


def _run(tmp_path, feeds: dict[str, bytes], outputs=None, **source_options) -> dict:
    sources = []
    for source_id, body in feeds.items():
        (tmp_path / f"{source_id}.xml").write_bytes(body)
        sources.append({"id": source_id, "url": f"file:{source_id}.xml", **source_options})
    config = write_config(tmp_path, sources, outputs or [{"id": "all", "title": "All", "limit": 1000}])
    result = run_cli("once", config=config)
    assert result.returncode == 0, result.stderr
    return status_json(config)


def _many(count: int) -> bytes:
    return rss("".join(rss_item(f"Story {i}", f"https://many.example/{i}") for i in range(count)))


def test_at_most_500_entries_are_taken_from_one_poll_by_default(tmp_path):
    status = _run(tmp_path, {"many": _many(520)})
    assert status["many"]["entries"] == 500
    titles = {e.findtext(f"{ATOM}title") for e in output_entries(tmp_path / "out" / "all.atom")}
    assert "Story 0" in titles and "Story 519" not in titles  # the first ones in the document: the newest


def test_max_entries_is_configurable(tmp_path):
    status = _run(tmp_path, {"many": _many(30)}, max_entries=10)
    assert status["many"]["entries"] == 10


def test_over_long_fields_are_truncated_and_the_output_stays_valid(tmp_path):
    authors = "".join(f"<category>tag {i}</category>" for i in range(500))
    item = (f"<item><title>{'T' * 100_000}</title><link>https://long.example/1</link>{authors}"
            f"<description>{'x' * 2_000_000}</description></item>")
    status = _run(tmp_path, {"long": rss(item)}, max_bytes="10MB")
    assert status["long"]["state"] == "ok"
    [entry] = output_entries(tmp_path / "out" / "all.atom")
    assert 0 < len(entry.findtext(f"{ATOM}title")) <= 1000
    assert len(entry.findtext(f"{ATOM}content")) <= 600_000
    assert len(entry.findall(f"{ATOM}category")) <= 50


@pytest.mark.parametrize("case,pub,expect", [
    ("two days ahead", NOW + timedelta(days=2), "first seen"),
    ("year 2999", datetime(2999, 1, 1, tzinfo=timezone.utc), "first seen"),
    ("before 1990", datetime(1985, 6, 1, tzinfo=timezone.utc), "first seen"),
    ("an hour ahead", NOW + timedelta(hours=1), "as given"),
    ("last week", NOW - timedelta(days=7), "as given"),
])
def test_untrustworthy_dates_are_treated_as_missing(tmp_path, case, pub, expect):
    status = _run(tmp_path, {"dates": rss(rss_item(case, "https://dates.example/1", pub=_rfc822(pub)))})
    assert status["dates"]["state"] == "ok"
    [entry] = output_entries(tmp_path / "out" / "all.atom")
    published = _published(entry)
    if expect == "as given":
        assert published == pub.replace(microsecond=0)
    else:  # SPEC §4: neither date usable, so the time the aggregator first saw it
        assert NOW - timedelta(minutes=5) <= published <= datetime.now(timezone.utc)


def test_a_distrusted_published_date_falls_back_to_updated(tmp_path):
    updated = NOW - timedelta(days=3)
    atom = (f'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>urn:a</id>'
            f'<updated>{updated:%Y-%m-%dT%H:%M:%SZ}</updated><entry><title>Future</title><id>urn:a:1</id>'
            f'<link href="https://atom.example/1"/><published>2999-01-01T00:00:00Z</published>'
            f'<updated>{updated:%Y-%m-%dT%H:%M:%SZ}</updated></entry></feed>').encode()
    _run(tmp_path, {"atom": atom})
    [entry] = output_entries(tmp_path / "out" / "all.atom")
    assert _published(entry) == updated.replace(microsecond=0)
