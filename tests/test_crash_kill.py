"""kill -9 at random moments during `once` (and `run`): the store and every output survive whole.

Each round adds items to small file: feeds, starts the real CLI, kills it
with SIGKILL after a random delay within one run's length, then checks:
PRAGMA integrity_check is ok, every output file parses, and nothing
collected before is lost or changed: items, stories, their republished
dates, and the entries already published. Set CRASH_SEED to replay a run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lxml import etree

from conftest import ROOT, run_cli, write_config
from hostile import ATOM, rss, rss_item

AGG = "{https://github.com/aggregator-project/aggregator/ns/1.0}republished"
SOURCES = ("alpha", "beta", "gamma", "delta")
ROUNDS = 30  # kills a test; a new seed each run, so CI runs add up to many more (CRASH_SEED replays one)


def _write_feeds(directory: Path, round_no: int) -> None:
    """Every source gains two items a round; one story each round is carried by two sources (a merge)."""
    for index, source in enumerate(SOURCES):
        items = []
        for r in range(round_no + 1):
            day = 1 + (r % 27)
            pub = f"Mon, {day:02d} Sep 2021 {index:02d}:{r % 60:02d}:00 GMT"
            items.append(rss_item(f"{source} story {r}", f"https://{source}.example/{r}", f"<p>{source} {r}</p>", pub))
            if index < 2:
                items.append(rss_item(f"Shared story {r}", f"https://shared.example/{r}", f"<p>shared {r}</p>", pub,
                                      guid=f"{source}-shared-{r}"))
        (directory / f"{source}.xml").write_bytes(rss("".join(reversed(items)), title=source))


def _config(directory: Path, **source_options) -> Path:
    return write_config(directory, [{"id": s, "url": f"file:{s}.xml", "tags": [s[0]], **source_options}
                                    for s in SOURCES],
                        [{"id": "all", "title": "All", "limit": 1000},
                         {"id": "first-two", "title": "Two", "sources": ["alpha", "beta"], "limit": 1000}])


def _snapshot(directory: Path, context: str) -> dict:
    """Integrity-checked store contents and parsed outputs; fails the test on any corruption."""
    db = sqlite3.connect(directory / "state" / "aggregator.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", context
        items = {(r[0], r[1]): r[2:] for r in db.execute(
            "SELECT i.source_id, i.key, i.title, i.link, i.summary, i.content, i.published, i.updated, i.first_seen, "
            "s.uid FROM items i JOIN stories s ON s.id = i.story_id")}
        stories = dict(db.execute("SELECT uid, republished FROM stories"))
    finally:
        db.close()
    outputs = {}
    for path in sorted((directory / "out").rglob("*")):
        if path.name.startswith(".") or path.is_dir() or path.suffix == ".css":
            continue  # a temporary file a killed writer left behind is never a published name
        data = path.read_bytes()
        if path.suffix == ".html":  # a page is whole, or not there yet
            assert data.rstrip().endswith(b"</html>"), f"{context}: {path.name} is cut short"
            continue
        if path.parent != directory / "out":
            continue
        if path.suffix == ".json":
            document = json.loads(data)
            outputs[path.name] = {i["id"]: i.get("_aggregator", {}).get("republished") for i in document["items"]}
        else:
            root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
            entries = root.findall(f"{ATOM}entry") or root.findall("channel/item")
            outputs[path.name] = {e.findtext(f"{ATOM}id") or e.findtext("guid"): e.findtext(AGG) for e in entries}
    return {"items": items, "stories": stories, "outputs": outputs}


def _assert_nothing_lost(before: dict, after: dict, context: str) -> None:
    for key, values in before["items"].items():
        assert after["items"].get(key) == values, f"{context}: item {key} lost or changed"
    for uid, republished in before["stories"].items():
        assert after["stories"].get(uid) == republished, f"{context}: story {uid} lost or its republished changed"
    for name, entries in before["outputs"].items():
        now = after["outputs"].get(name)
        assert now is not None, f"{context}: output {name} disappeared"
        for uid, republished in entries.items():
            assert now.get(uid) == republished, f"{context}: {name} lost {uid} or changed its republished"
            assert after["stories"][uid] == republished, f"{context}: {name} shows another republished for {uid}"


def _wait_until_store_open(process: subprocess.Popen, database: Path, limit: float = 30.0) -> float:
    """Seconds until the process has the state file open: the work starts there, after the imports.

    Reads /proc/PID/fd (Linux); elsewhere it returns at once and the delay counts from the start.
    """
    started = time.monotonic()
    fds = Path(f"/proc/{process.pid}/fd")
    target = str(database)
    while process.poll() is None and time.monotonic() - started < limit and Path("/proc/self/fd").exists():
        try:
            if any(os.readlink(fd) == target for fd in fds.iterdir()):
                break
        except OSError:
            pass
        time.sleep(0.002)
    return time.monotonic() - started


def _kill_loop(directory: Path, command: list[str], rounds: int, window: tuple[float, float], seed: int) -> int:
    """Rounds of: grow the feeds, start the command, SIGKILL it `window` seconds after it opened the store."""
    rng = random.Random(seed)
    database = directory / "state" / "aggregator.db"
    previous = _snapshot(directory, "start")
    killed = 0
    for round_no in range(1, rounds + 1):
        _write_feeds(directory, round_no)
        process = subprocess.Popen([sys.executable, "-m", "aggregator", *command], cwd=str(ROOT),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_until_store_open(process, database)
        time.sleep(rng.uniform(*window))
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            killed += 1
        _, stderr = process.communicate(timeout=30)
        context = f"seed {seed}, round {round_no}"
        assert b"Traceback" not in stderr, f"{context}: {stderr.decode(errors='replace')}"
        current = _snapshot(directory, context)
        _assert_nothing_lost(previous, current, context)
        previous = current
    return killed


def _seed() -> int:
    return int(os.environ.get("CRASH_SEED") or time.time_ns() % 2**32)


def _settle_and_check_everything_collected(directory: Path, config: Path, rounds: int) -> None:
    before = _snapshot(directory, "before the final run")
    run_cli("once", config=config, check=True)
    after = _snapshot(directory, "after the final run")
    _assert_nothing_lost(before, after, "final run")
    expected = len(SOURCES) * (rounds + 1) + 2 * (rounds + 1)
    assert len(after["items"]) == expected
    assert set(after["outputs"]["all.atom"]) == set(after["stories"])


def _work_time(scratch: Path) -> float:
    """How long `once` works after opening the store (the imports before are not worth killing), mid-loop size."""
    scratch.mkdir()
    _write_feeds(scratch, ROUNDS // 2)
    process = subprocess.Popen([sys.executable, "-m", "aggregator", "-c", str(_config(scratch)), "once"],
                               cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_until_store_open(process, scratch / "state" / "aggregator.db")
    opened = time.monotonic()
    assert process.wait(timeout=60) == 0
    return max(time.monotonic() - opened, 0.05)


def test_kill_9_during_once(tmp_path):
    work = _work_time(tmp_path / "scratch")
    directory = tmp_path / "crash"
    directory.mkdir()
    _write_feeds(directory, 0)
    config = _config(directory)
    run_cli("once", config=config, check=True)
    seed = _seed()
    killed = _kill_loop(directory, ["-c", str(config), "once"], ROUNDS, (0.0, work * 1.2), seed)
    assert killed >= ROUNDS // 3, f"seed {seed}: only {killed} of {ROUNDS} runs were killed mid-way"
    _settle_and_check_everything_collected(directory, config, ROUNDS)


def _has_run_command() -> bool:
    result = subprocess.run([sys.executable, "-m", "aggregator", "run", "--help"], cwd=str(ROOT),
                            capture_output=True, timeout=60)
    return result.returncode == 0


# TODO(issue 6 / run): `run` is being built on another branch. This variant is skipped ONLY while the
# command is missing; once `run` exists it runs, and must pass, without any change here.
@pytest.mark.skipif(not _has_run_command(), reason="`aggregator run` does not exist on this branch yet")
def test_kill_9_during_run(tmp_path):
    _write_feeds(tmp_path, 0)
    config = _config(tmp_path, interval="1s")
    run_cli("once", config=config, check=True)
    seed = _seed()
    _kill_loop(tmp_path, ["-c", str(config), "run"], ROUNDS, (0.0, 0.6), seed)
    _settle_and_check_everything_collected(tmp_path, config, ROUNDS)


def test_a_temporary_file_left_by_a_killed_writer_is_swept_later(tmp_path):
    from aggregator.output.files import write_atomic

    target = tmp_path / "all.atom"
    stale, fresh = tmp_path / ".all.atom.k1ll3d.tmp", tmp_path / ".all.atom.w0rk1ng.tmp"
    stale.write_bytes(b"<feed")
    fresh.write_bytes(b"<feed")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    assert write_atomic(target, b"<feed/>")
    assert not stale.exists()
    assert fresh.exists()  # may belong to a writer still at work
