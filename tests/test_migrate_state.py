"""migrate-state between SQLite files, and its refusals; the PostgreSQL round trip is in test_postgres.py."""

from __future__ import annotations

import json
from contextlib import closing

from aggregator.store import Store
from conftest import FIXTURES, run_cli, write_config


def sqlite_state(tmp_path):
    config = write_config(tmp_path, [{"id": "dates", "url": (FIXTURES / "feeds" / "dates.atom").as_uri()}])
    run_cli("once", config=config, check=True)
    return tmp_path / "state" / "aggregator.db"


def test_copies_into_a_new_file_and_refuses_a_file_that_holds_a_state(tmp_path):
    state = sqlite_state(tmp_path)
    copy = tmp_path / "copy.db"
    done = run_cli("migrate-state", str(state), str(copy), check=True)
    assert all(part in done.stdout for part in ("sources 1", "stories 3", "items 3", "merges 0"))
    again = run_cli("migrate-state", str(state), str(copy))
    assert again.returncode == 2 and "already holds a state (1 sources, 3 stories" in again.stderr


def test_one_line_errors_and_no_file_left_behind(tmp_path):
    state = sqlite_state(tmp_path)
    target = tmp_path / "target.db"
    cases = {
        (str(tmp_path / "missing.db"), str(target)): "holds no aggregator state",
        (str(state), str(state)): "name the same state",
        (str(state), "postgresql://postgres@127.0.0.1:1/test"): "cannot connect to postgresql://postgres@127.0.0.1:1/test",
        ("postgresql://postgres:secret@127.0.0.1:1/test", str(target)): "cannot connect to postgresql://postgres:***@",
    }
    for (source, destination), message in cases.items():
        result = run_cli("migrate-state", source, destination)
        assert result.returncode == 2, result
        assert message in result.stderr and "secret" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert not target.exists() and not (tmp_path / "missing.db").exists()


def test_enclosures_are_copied_with_their_items(tmp_path):
    feed = tmp_path / "heraldsun.rss"
    feed.write_bytes((FIXTURES / "corpus" / "real" / "rss-parser" / "heraldsun.rss").read_bytes())
    run_cli("once", config=write_config(tmp_path, [{"id": "herald", "url": feed.as_uri()}]), check=True)
    state, copy = tmp_path / "state" / "aggregator.db", tmp_path / "copy.db"
    run_cli("migrate-state", str(state), str(copy), check=True)
    rows = {}
    for name in (state, copy):
        with closing(Store(str(name))) as store:
            rows[name] = [tuple(r) for r in store.query("SELECT id, enclosures FROM items ORDER BY id")]
    assert rows[copy] == rows[state]
    assert [json.loads(e) for _, e in rows[copy]] == [
        [{"url": f"http://www.oreilly.com/00{n}.mp3", "type": "audio/mpeg", "length": 54321}] for n in (1, 2)]
