"""Every real and ill-formed feed in the fixtures, served over HTTP and run through `once`: nothing crashes,
every feed's entries are stored, every output stays valid XML."""

from __future__ import annotations

import csv
import re

from lxml import etree

from conftest import FIXTURES, run_cli, status_json, write_config

CORPUS = FIXTURES / "corpus"


def manifest(folder: str) -> list[dict]:
    with open(CORPUS / folder / "MANIFEST.tsv", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def source_id(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")[:60]


def test_whole_corpus_through_once(tmp_path, feed_server):
    sources, expected = [], {}
    for row in manifest("real"):
        if row["kind"] not in ("feed", "html-page"):
            continue
        url = feed_server.serve("/real/" + row["file"], (CORPUS / "real" / row["file"]).read_bytes(),
                                content_type="application/xml")
        sources.append({"id": source_id("real-" + row["file"]), "url": url})
        # One item per distinct guid: where a real reader (newsboat) read the feed, its count is the truth
        # (Scripting News repeats two guids); otherwise feedparser's entry count.
        count = row["newsboat_items"] if row["newsboat_exit"] == "0" else row["entries"]
        expected[sources[-1]["id"]] = (row["kind"], int(count or 0))
    for row in manifest("feedparser"):
        if not row["file"].startswith(("illformed/", "encoding/")):
            continue
        header = row.get("http_headers") or ""
        content_type = header.split(":", 1)[1].strip() if header.lower().startswith("content-type:") else "application/xml"
        url = feed_server.serve("/fp/" + row["file"], (CORPUS / "feedparser" / row["file"]).read_bytes(),
                                content_type=content_type)
        sources.append({"id": source_id("fp-" + row["file"]), "url": url})
    config = write_config(tmp_path, sources, [{"id": "all", "title": "Everything", "limit": 5000}],
                          defaults={"max_entries": 1000})
    result = run_cli("once", config=config, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert f"total: {len(sources)} sources" in result.stdout

    rows = status_json(config)
    for sid, (kind, entries) in expected.items():
        if kind == "html-page":
            assert rows[sid]["state"] == "failing" and rows[sid]["last_error"].startswith("parse:"), rows[sid]
        else:
            assert rows[sid]["state"] == "ok", rows[sid]
            assert rows[sid]["entries"] == entries, (sid, rows[sid]["entries"], entries)

    root = etree.parse(str(tmp_path / "out" / "all.atom")).getroot()
    stored = sum(r["entries"] for r in rows.values())
    shown = len(root.findall("{http://www.w3.org/2005/Atom}entry"))
    assert 0 < shown <= stored
