"""XML attacks through the real CLI: entity expansion stays bounded, external references are never followed.

One `once` run polls every hostile feed next to a good one (module fixture);
each test then asserts on what that run left in the outputs, the store and
the server's request log.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conftest import status_json, write_config
from feedserver import FeedServer
from hostile import hostile_fixture, output_entries, quadratic_blowup, rss, rss_item, run_cli_measured

MARKERS = {"file": "FILE-SECRET-7f2c", "feed": "FEED-SECRET-91ab", "/xxe-secret": "HTTP-SECRET-0d3e",
           "/evil.dtd": "DTD-SECRET-55c1", "/param.dtd": "PARAM-SECRET-c8a0"}
LEAKS = {"xxe_file": ("file",), "xinclude": ("file",), "xxe_http": ("/xxe-secret",), "external_dtd": ("/evil.dtd",),
         "parameter_entity": ("/param.dtd",)}
XML_CASES = ("billion_laughs", "billion_laughs_oneline", "xxe_file", "xxe_passwd", "xxe_http", "external_dtd",
             "parameter_entity", "xinclude")


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hostile-xml")
    secret = directory / "secret.txt"
    secret.write_text(MARKERS["file"] + "\n", encoding="utf-8")
    secret_feed = directory / "secret-feed.xml"
    secret_feed.write_bytes(rss(rss_item(MARKERS["feed"], "https://intranet.example/secret")))
    server = FeedServer().start()
    try:
        server.serve("/xxe-secret", MARKERS["/xxe-secret"], content_type="text/plain")
        server.serve("/evil.dtd", f'<!ENTITY evil "{MARKERS["/evil.dtd"]}">', content_type="application/xml-dtd")
        server.serve("/param.dtd", f'<!ENTITY exfil "{MARKERS["/param.dtd"]}">', content_type="application/xml-dtd")
        sources = [{"id": "good", "url": server.serve("/good.xml", rss(rss_item("A good story", "https://good.example/1")))},
                   {"id": "quadratic", "url": server.serve("/quadratic.xml", quadratic_blowup())},
                   {"id": "body-is-a-path", "url": server.serve("/path.xml", str(secret_feed))}]
        for case in XML_CASES:
            body = hostile_fixture(f"{case}.xml", server=server.base, secret=str(secret))
            sources.append({"id": case.replace("_", "-"), "url": server.serve(f"/{case}.xml", body)})
        config = write_config(directory, sources)
        result = run_cli_measured("once", config=config, memory_limit=3 * 1024**3)
        yield {"result": result, "config": config, "directory": directory, "server": server,
               "status": status_json(config)}
    finally:
        server.stop()


def _everything_written(directory: Path) -> str:
    """The outputs and the whole state database as text, to search for leaked content."""
    text = "".join(p.read_text(encoding="utf-8", errors="replace")
                   for p in (directory / "out").rglob("*") if p.is_file())
    db = sqlite3.connect(directory / "state" / "aggregator.db")
    try:
        rows = db.execute("SELECT title, summary, content, link FROM items").fetchall()
    finally:
        db.close()
    return text + repr(rows)


def test_a_run_with_every_xml_attack_completes_in_bounded_memory(hostile_run):
    result = hostile_run["result"]
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.max_rss_mb < 400, f"peak memory {result.max_rss_mb:.0f} MB"
    print(f"peak memory {result.max_rss_mb:.0f} MB in {result.seconds:.1f} s")
    titles = [e.findtext("{http://www.w3.org/2005/Atom}title") for e in output_entries(hostile_run["directory"] / "out" / "all.atom")]
    assert "A good story" in titles
    assert hostile_run["status"]["good"]["state"] == "ok"


def test_quadratic_blowup_is_refused_with_a_clear_error(hostile_run):
    row = hostile_run["status"]["quadratic"]
    assert row["state"] == "failing"
    assert "entit" in row["last_error"] and "\n" not in row["last_error"]
    assert "A" * 200_000 not in _everything_written(hostile_run["directory"])


@pytest.mark.parametrize("case", ["billion_laughs", "billion_laughs_oneline"])
def test_billion_laughs_never_expands(hostile_run, case):
    row = hostile_run["status"][case.replace("_", "-")]
    assert row["state"] in ("ok", "failing")
    assert "lol" * 1000 not in _everything_written(hostile_run["directory"])


@pytest.mark.parametrize("case", ["xxe_file", "xxe_http", "external_dtd", "parameter_entity", "xinclude"])
def test_external_references_are_never_read_or_fetched(hostile_run, case):
    assert row_is_recorded(hostile_run["status"][case.replace("_", "-")])
    written = _everything_written(hostile_run["directory"])
    for leak in LEAKS[case]:
        assert MARKERS[leak] not in written
        if leak.startswith("/"):
            assert not hostile_run["server"].seen(leak)


def test_etc_passwd_is_never_read(hostile_run):
    assert row_is_recorded(hostile_run["status"]["xxe-passwd"])
    assert "root:" not in _everything_written(hostile_run["directory"])


def test_a_body_that_names_a_local_file_is_not_opened(hostile_run):
    """feedparser opens a bytes argument as a file name when one exists by that name."""
    row = hostile_run["status"]["body-is-a-path"]
    assert row["state"] == "failing" and row["last_error"].startswith("parse:")
    assert MARKERS["feed"] not in _everything_written(hostile_run["directory"])


def row_is_recorded(row: dict) -> bool:
    """Polled, and either stored or failed with a one-line error."""
    return row["last_poll"] is not None and (row["state"] == "ok" or "\n" not in (row["last_error"] or ""))
