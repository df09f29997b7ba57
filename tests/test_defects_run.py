"""Issue 15, running: outages, memory, processes, crashes, the state file and leases. One test per defect,
through `once`, `publish` and `run` as real processes, their files, `status`, and the state read with sqlite3/psycopg.

Each test is marked xfail(strict=True) until its defect is fixed; the fixer removes the mark.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree

from conftest import FIXTURES, ROOT, run_cli, status_json, write_config
from feedserver import FeedServer
from hostile import run_cli_measured
from test_daemon import daemons, free_port, rss, wait_for  # noqa: F401 (daemons is a fixture)

ATOM = "{http://www.w3.org/2005/Atom}"
REAL = FIXTURES / "corpus" / "real"
START = datetime(2021, 9, 1, tzinfo=timezone.utc)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# processes (Linux /proc) ---------------------------------------------------------------------------------

def _stat(pid: int) -> tuple[int, int, str] | None:
    """(ppid, start time, state) of a live process, None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[19]), fields[0]


def descendants(root: int) -> set[tuple[int, int]]:
    """Every process below `root`, as (pid, start time) so a reused pid is not mistaken for it."""
    children: dict[int, list[tuple[int, int]]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat:
                children.setdefault(stat[0], []).append((int(name), stat[1]))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child[0])
    return found


def alive(process: tuple[int, int]) -> bool:
    stat = _stat(process[0])
    return stat is not None and stat[1] == process[1] and stat[2] not in ("Z", "X")


def end_leftovers(processes: set[tuple[int, int]]) -> None:
    """Kill, by pid, what a test's own command left behind (so one failure does not load the machine)."""
    for process in processes:
        if alive(process):
            try:
                os.kill(process[0], signal.SIGKILL)
            except OSError:
                pass


# 15.5 ------------------------------------------------------------------------------------------------------

NETWORK_DOWN = re.compile(r"network\W+(?:\w+\W+){0,3}down", re.IGNORECASE)


def _not_backed_off(row: dict, interval: float) -> bool:
    """The next poll is one interval (±20% jitter, plus the store's whole seconds) after the last."""
    gap = (parse_time(row["next_poll"]) - parse_time(row["last_poll"])).total_seconds()
    return gap <= interval * 1.2 + 2


def _full_backlog_servers(count: int) -> tuple[list[FeedServer], list[socket.socket]]:
    """Feed servers that listen but do not accept yet, their backlog filled: a connect to them times out."""
    servers, fillers = [], []
    for _ in range(count):
        server = FeedServer()
        for _ in range(server.httpd.request_queue_size + 6):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(server.httpd.server_address[:2])
            fillers.append(filler)
        servers.append(server)
    time.sleep(0.2)
    probe = socket.socket()
    probe.settimeout(0.5)
    try:
        with pytest.raises(OSError):
            probe.connect(servers[0].httpd.server_address[:2])
    finally:
        probe.close()
    return servers, fillers


def test_run_does_not_charge_sources_for_dns_failures_everywhere(tmp_path, daemons):
    """Asserts: three sources on three unresolvable hosts (*.invalid), each polled at least 4 times by `run`
    (interval 1s): every source keeps 0 errors, its next poll one interval after the last (no backoff), and
    its `status` row says the network was down. Today: each DNS failure is charged (errors ≥ 3, backing off)."""
    sources = [{"id": f"dns{n}", "url": f"http://feed{n}.outage-test.invalid/feed.xml"} for n in range(3)]
    config = write_config(tmp_path, sources, defaults={"interval": 1, "timeout": 2})
    daemon = daemons(config)
    for source in sources:
        daemon.wait_log(f"{source['id']}: error: fetch: ", count=4, timeout=60)
    assert daemon.stop(signal.SIGINT) == 0
    rows = status_json(config)
    for source in sources:
        row = rows[source["id"]]
        assert row["errors"] == 0, row
        assert _not_backed_off(row, 1), row
        assert NETWORK_DOWN.search(json.dumps(row)), row


def test_run_does_not_charge_sources_for_connect_timeouts_everywhere_and_recovers(tmp_path, daemons):
    """Asserts: three sources on three hosts whose connects time out (listening sockets with a full backlog,
    timeout 1s), polled at least 4 times each by `run`: 0 errors each, no backoff, `status` says the network
    was down; then the hosts answer again: every source is polled ok with 0 errors.
    Today: each timeout is charged and backs off."""
    servers, fillers = _full_backlog_servers(3)
    try:
        for n, server in enumerate(servers):
            server.serve("/feed.xml", rss(f"t{n}", 1))
        sources = [{"id": f"slow{n}", "url": server.url("/feed.xml")} for n, server in enumerate(servers)]
        config = write_config(tmp_path, sources, defaults={"interval": 1, "timeout": 1})
        daemon = daemons(config)
        for source in sources:
            daemon.wait_log(f"{source['id']}: error: fetch: timed out", count=4, timeout=90)
        rows = status_json(config)  # while the outage lasts
        for source in sources:
            row = rows[source["id"]]
            assert row["errors"] == 0 and _not_backed_off(row, 1), row
            assert NETWORK_DOWN.search(json.dumps(row)), row
        for filler in fillers:  # the network is back
            filler.close()
        fillers.clear()
        for server in servers:
            server.start()
        for server in servers:
            wait_for(lambda: any(r.status == 200 for r in server.seen("/feed.xml")), timeout=30,
                     what="a poll answered after the outage", log=daemon.log)
        assert daemon.stop(signal.SIGINT) == 0
        rows = status_json(config)
        for source in sources:
            assert rows[source["id"]]["errors"] == 0 and rows[source["id"]]["state"] == "ok", rows[source["id"]]
    finally:
        for filler in fillers:
            filler.close()
        for server in servers:
            if server.thread.is_alive():
                server.stop()
            else:
                server.httpd.server_close()


@pytest.mark.parametrize("kind", ["refused", "dns"])
def test_once_does_not_charge_sources_when_the_network_is_down(tmp_path, kind):
    """Asserts: three `once` runs with every source unreachable (refused connections on three ports, or
    three unresolvable hosts) leave every source with 0 errors, its next poll one interval (30m ±20%) after
    the last, and `status` saying the network was down. Today: errors 3 and a 2h backoff."""
    if kind == "refused":
        urls = [f"http://127.0.0.1:{free_port()}/feed.xml" for _ in range(3)]
    else:
        urls = [f"http://feed{n}.outage-test.invalid/feed.xml" for n in range(3)]
    config = write_config(tmp_path, [{"id": f"down{n}", "url": url} for n, url in enumerate(urls)],
                          defaults={"interval": "30m", "timeout": 2})
    for _ in range(3):
        result = run_cli("once", config=config, check=True)
    rows = status_json(config)
    for n in range(3):
        row = rows[f"down{n}"]
        assert row["errors"] == 0, (row, result.stdout)
        assert _not_backed_off(row, 1800), row
        assert NETWORK_DOWN.search(json.dumps(row)), row


def test_each_way_a_fetch_fails_has_its_kind(feed_server):
    """Asserts: the kind a fetch error carries (what outage detection reads, never the message): an
    unresolvable host is dns, a refused connection and a connect that times out are connect (no answer);
    an HTTP 500, a connected server that never answers, a connection closed mid-answer and an oversized
    body are http, timeout, broken and too_large (a server answered: not an outage)."""
    from aggregator.errors import FailureKind, FetchError
    from aggregator.reader.fetch import fetch

    def closes(request):  # headers promise a body, then the connection ends
        request.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\npartial")
        request.close_connection = True

    def silent(request):
        time.sleep(3)

    feed_server.serve("/500.xml", b"oops", status=500)
    feed_server.serve("/big.xml", b"x" * 5000)
    servers, fillers = _full_backlog_servers(1)
    cases = {
        "http://feed.outage-test.invalid/feed.xml": FailureKind.DNS,
        f"http://127.0.0.1:{free_port()}/feed.xml": FailureKind.CONNECT,
        servers[0].url("/feed.xml"): FailureKind.CONNECT,
        feed_server.url("/500.xml"): FailureKind.HTTP,
        feed_server.serve("/silent.xml", handler=silent): FailureKind.TIMEOUT,
        feed_server.serve("/closes.xml", handler=closes): FailureKind.BROKEN,
        feed_server.url("/big.xml"): FailureKind.TOO_LARGE,
    }
    try:
        kinds = {}
        for url, kind in cases.items():
            with pytest.raises(FetchError) as caught:
                fetch(url, timeout=1, max_bytes=1000)
            kinds[url] = caught.value.kind
        assert kinds == cases
        assert [k for k in FailureKind if k.no_answer] == [FailureKind.DNS, FailureKind.CONNECT]
    finally:
        for filler in fillers:
            filler.close()
        servers[0].httpd.server_close()


def test_once_charges_dead_hosts_while_another_host_answers(tmp_path, feed_server):
    """Asserts: the other side of 15.5 for `once`: two sources on hosts that refuse connections and one
    unresolvable host, beside one host that answers, are each charged (1 error after one run, 2 after two,
    backing off), and no row says the network was down: an answer from any server means the network is up."""
    sources = [{"id": "dead0", "url": f"http://127.0.0.1:{free_port()}/feed.xml"},
               {"id": "dead1", "url": f"http://127.0.0.1:{free_port()}/feed.xml"},
               {"id": "dead2", "url": "http://feed.outage-test.invalid/feed.xml"},
               {"id": "alive", "url": feed_server.serve("/alive.xml", rss("alive", 1))}]
    config = write_config(tmp_path, sources, defaults={"interval": "30m", "timeout": 2})
    for run in (1, 2):
        result = run_cli("once", config=config, check=True)
        assert "network" not in result.stdout, result.stdout
        rows = status_json(config)
        for n in range(3):
            row = rows[f"dead{n}"]
            assert row["errors"] == run and not NETWORK_DOWN.search(json.dumps(row)), row
        assert rows["alive"]["state"] == "ok", rows["alive"]
    assert not _not_backed_off(rows["dead0"], 1800), rows["dead0"]  # the second failure waits 2 intervals


# 15.6 ------------------------------------------------------------------------------------------------------

def test_publish_memory_on_postgresql_does_not_grow_with_the_items_table(tmp_path, postgres_url):
    """Asserts: the peak RSS of `aggregator publish` on a PostgreSQL state grows by less than 40 MB when the
    items table gains 50,000 rows of ~2 KB each (~100 MB of rows: copies kept from a source since removed from
    the config, which publishing scans and drops). Today it grows by about the size of the rows (≥ 100 MB):
    Store.stream runs the scan on a client-side cursor, so libpq holds the whole result.
    (A benchmark-like test: the rows are added with SQL, since polling 50,000 stories would take minutes.)"""
    import psycopg

    shutil.copy(REAL / "rss-parser" / "heise.atom", tmp_path / "heise.atom")
    config = write_config(tmp_path, [{"id": "heise", "url": "file:heise.atom"}], state=postgres_url)
    run_cli("once", config=config, check=True)
    before = run_cli_measured("publish", config=config)
    assert before.returncode == 0, before.stderr
    removed = "removed-" + "x" * 2000
    with psycopg.connect(postgres_url, autocommit=True) as db:
        story, item = db.execute("SELECT min(story_id), max(id) FROM items").fetchone()
        db.execute(
            "INSERT INTO items (id, source_id, key, story_id, title, published, updated, first_seen, raw_hash) "
            "SELECT %s + n, %s, 'k' || n, %s, 'Removed source story ' || n, '2021-01-01T00:00:00Z', "
            "'2021-01-01T00:00:00Z', '2021-01-01T00:00:00Z', md5(n::text) FROM generate_series(1, 50000) AS n",
            (item, removed, story))
    after = run_cli_measured("publish", config=config)
    assert after.returncode == 0, after.stderr
    assert after.max_rss_mb - before.max_rss_mb < 40, (before.max_rss_mb, after.max_rss_mb)


# 15.15 -----------------------------------------------------------------------------------------------------

BIG_FEEDS = ["rsparser/russcox.atom", "rsparser/dcrainmaker.xml", "rsparser/atp.rss", "rsparser/cloudblog.rss",
             "rsparser/DaringFireball.rss", "rss-parser/guardian.rss", "rss-parser/feedburner.atom",
             "rsparser/DaringFireball.atom"]  # each ≥ 32 KB: `run` prepares them in its worker processes


def _big_file_sources(directory: Path) -> list[dict]:
    sources = []
    for n, name in enumerate(BIG_FEEDS):
        shutil.copy(REAL / name, directory / f"big{n}{Path(name).suffix}")
        sources.append({"id": f"big{n}", "url": f"file:big{n}{Path(name).suffix}"})
    return sources


# run-sigterm did not reproduce before the fix (no resource_tracker warning, nothing left, in 4 tries with
# SIGTERM mid-poll and after the polls): it is kept so it stays true.
@pytest.mark.parametrize("case", ["once-killed", "run-killed", "run-sigterm"])
def test_no_process_outlives_its_command(tmp_path, feed_server, case):
    """Asserts: once-killed: `once` over 10 sources (so it starts its poller processes), killed -9 while
    every request hangs, leaves no descendant alive 15 s later. run-killed: `run` over 8 large file: feeds
    (so it starts its forkserver pool and resource tracker), killed -9, leaves none either. run-sigterm: the
    same stopped by SIGTERM exits 0, leaves none, and its output has no resource_tracker / leaked semaphore
    warning. Before the fix: the pollers lived on until their requests timed out; the forkserver, its workers
    and the resource tracker of a killed `run` stayed."""
    stop = threading.Event()
    if case == "once-killed":
        def hang(request):
            stop.wait(60)
            request.close_connection = True

        sources = [{"id": f"h{n}", "url": feed_server.serve(f"/h{n}.xml", handler=hang), "timeout": 60}
                   for n in range(10)]
        command = "once"
    else:
        sources = _big_file_sources(tmp_path)
        command = "run"
    config = write_config(tmp_path, sources, defaults={"interval": 60})
    log = (tmp_path / "command.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "aggregator", "-c", str(config), command], cwd=str(ROOT),
                               stdout=log, stderr=subprocess.STDOUT)
    seen: set[tuple[int, int]] = set()
    try:
        def children():
            seen.update(descendants(process.pid))
            if case == "once-killed":
                return len(seen) >= 1 and feed_server.requests
            if case == "run-sigterm":  # stopped while its pool may still be preparing
                return len(seen) >= 3
            # the resource tracker, the fork server and at least one pool worker (a grandchild)
            return len(seen) >= 3 and "big7: " in (tmp_path / "command.log").read_text()

        wait_for(children, timeout=90, what="the command's child processes", log=tmp_path / "command.log")
        seen.update(descendants(process.pid))
        if case == "run-sigterm":
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
        else:
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(alive(p) for p in seen):
            time.sleep(0.1)
        left = [p for p in seen if alive(p)]
        commands = {p: Path(f"/proc/{p[0]}/cmdline").read_bytes().replace(b"\0", b" ")[:120] for p in left
                    if Path(f"/proc/{p[0]}/cmdline").exists()}
        assert left == [], commands
        if case == "run-sigterm":
            time.sleep(1)
            text = (tmp_path / "command.log").read_text()
            assert "resource_tracker" not in text and "leaked semaphore" not in text, text[-3000:]
    finally:
        stop.set()
        if process.poll() is None:
            process.kill()
            process.wait(10)
        end_leftovers(seen)
        log.close()


# 15.16 -----------------------------------------------------------------------------------------------------

def numbered_atom(count: int) -> str:
    entries = "".join(
        f"<entry><id>tag:src.test,2021:{n}</id><title>Story {n}</title><link href='http://src.test/{n}'/>"
        f"<updated>{(START + timedelta(hours=n)).isoformat()}</updated><summary>Text of story {n}</summary></entry>"
        for n in range(1, count + 1))
    return ("<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
            f"<id>tag:src.test,2021:feed</id><title>Source</title><updated>{START.isoformat()}</updated>"
            f"<link rel='alternate' href='http://src.test/'/>{entries}</feed>")


def _document_ids(path: Path) -> list[str]:
    data = path.read_bytes()
    if path.suffix == ".json":
        return [i["id"] for i in json.loads(data)["items"]]
    root = etree.fromstring(data)
    if path.suffix == ".rss":
        return [i.findtext("guid") for i in root.findall("channel/item")]
    return [e.findtext(f"{ATOM}id") for e in root.findall(f"{ATOM}entry")]


def _stories_in_two_documents(out: Path) -> dict[str, list[str]]:
    """Per format, the entry ids found in more than one document (current and archive pages)."""
    repeated = {}
    for fmt in ("atom", "rss", "json"):
        documents = [out / f"all.{fmt}"] + sorted((out / "archive" / "all").glob(f"*.{fmt}"))
        counts = Counter(i for d in documents if d.exists() and not d.name.startswith(".")
                         for i in set(_document_ids(d)))
        twice = [i for i, c in counts.items() if c > 1]
        if twice:
            repeated[fmt] = twice
    return repeated


def _archive_state(directory: Path) -> dict[str, int]:
    try:
        return {e.name: e.stat().st_mtime_ns for e in os.scandir(directory) if not e.name.startswith(".")}
    except OSError:
        return {}


def _run_and_kill(config: Path, command: str, out: Path, rng: random.Random, targeted: bool) -> bool:
    """Start the command; kill -9 it as soon as an archive page changes (targeted) or at a random moment."""
    archive = out / "archive" / "all"
    before = _archive_state(archive)
    process = subprocess.Popen([sys.executable, "-m", "aggregator", "-c", str(config), command], cwd=str(ROOT),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + (60 if targeted else rng.uniform(0.4, 2.5))
    while process.poll() is None and time.monotonic() < deadline:
        if targeted and _archive_state(archive) != before:
            break
        time.sleep(0.0005 if targeted else 0.01)
    killed = process.poll() is None
    if killed:
        process.send_signal(signal.SIGKILL)
    process.wait(30)
    return killed


def _hold_while(holding: threading.Event):
    """A feed route that answers only once `holding` is cleared: it keeps a `once` in its polling."""
    body = b"<?xml version='1.0'?><rss version='2.0'><channel><title>Slow</title><link>http://slow.test/</link>" \
           b"<description>d</description></channel></rss>"

    def handler(request):
        deadline = time.monotonic() + 120
        while holding.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            request.send_response(200)
            request.send_header("Content-Type", "application/rss+xml")
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)
        except OSError:  # the `once` that asked was killed meanwhile
            request.close_connection = True
    return handler


def _next_start_holds_one_copy(config: Path, out: Path, feed_server: FeedServer, holding: threading.Event) -> dict:
    """Start the next `once` and look at the files while it is still polling (held by the slow source): by
    then it must have finished any interrupted publish. It is killed there, so the next command publishes."""
    asked = len(feed_server.seen("/slow.rss"))
    holding.set()
    process = subprocess.Popen([sys.executable, "-m", "aggregator", "-c", str(config), "once"], cwd=str(ROOT),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(feed_server.seen("/slow.rss")) > asked or process.poll() is not None, timeout=120,
                 what="the next `once` to be polling")
        assert process.poll() is None, "the next `once` ended before it polled the slow source"
        return _stories_in_two_documents(out)
    finally:
        process.kill()
        process.wait(30)
        holding.clear()


def test_after_a_kill_during_publishing_every_story_is_in_one_document(tmp_path, feed_server):
    """Asserts: rounds of 12 new stories (limit 3, atom+rss+json, so every publish writes archive pages), each
    `once` (and then a `publish`) killed -9 either the moment an archive page changes or at a random moment;
    after every kill, the next start (a `once`, looked at while it still polls a slow second source, so before
    it publishes anything) has finished the interrupted publish: no entry id is in two documents (current or
    archive pages) of any format; and at the end every story is in exactly one. Seed in the failure message
    (CRASH_SEED replays it). Design (issue 15.16): one output's files are staged and put in place together
    under a journal, which the next start completes before anything else, so the files seen right after a
    kill may still be mid-way; what a start leaves is never. Today: the pages are written before the current
    document, and nothing completes an interrupted publish but a later complete one."""
    seed = int(os.environ.get("CRASH_SEED") or time.time_ns() % 2**32)
    rng = random.Random(seed)
    feed = tmp_path / "source.atom"
    holding = threading.Event()
    feed_server.serve("/slow.rss", handler=_hold_while(holding))
    config = write_config(tmp_path, [{"id": "src", "url": "file:source.atom", "max_entries": 1000},
                                     {"id": "slow", "url": feed_server.url("/slow.rss"), "timeout": 300}],
                          [{"id": "all", "title": "All", "limit": 3, "formats": ["atom", "rss", "json"],
                            "sources": ["src"]}])
    out = tmp_path / "out"
    count, kills, found = 6, 0, []
    feed.write_text(numbered_atom(count))
    run_cli("once", config=config, check=True)
    for round_no in range(10):
        count += 12
        feed.write_text(numbered_atom(count))
        for command in ("once", "publish"):
            targeted = round_no % 2 == 0 or command == "once"
            kills += _run_and_kill(config, command, out, rng, targeted)
            repeated = _next_start_holds_one_copy(config, out, feed_server, holding)
            if repeated:
                found.append((round_no, command, {k: len(v) for k, v in repeated.items()}))
    assert kills >= 5, f"seed {seed}: only {kills} kills"
    assert found == [], f"seed {seed}: stories in two documents after kills (round, command, count): {found}"
    run_cli("once", config=config, check=True)
    for fmt in ("atom", "rss", "json"):
        documents = [out / f"all.{fmt}"] + sorted((out / "archive" / "all").glob(f"*.{fmt}"))
        ids = [i for d in documents if not d.name.startswith(".") for i in _document_ids(d)]
        assert len(ids) == len(set(ids)) == count, (fmt, len(ids), len(set(ids)), count)


# 15.17 -----------------------------------------------------------------------------------------------------

def _tree(out: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}


def test_an_emptied_state_file_is_refused_when_the_outputs_have_a_history(tmp_path):
    """Asserts: after `once` published, the state file truncated to 0 bytes makes `once`, `publish` and `run`
    and `status` each exit non-zero with one line (no traceback) naming the state file, saying it is empty and
    how to start afresh (delete it), and leave every file under out/ untouched (bytes and mtime) and the state
    file still empty; once the file is deleted as the line says, `once` starts afresh.
    Before the fix: `once` exited 0 and republished every story with new ids and republished dates."""
    shutil.copy(FIXTURES / "feeds" / "dates.atom", tmp_path / "dates.atom")
    config = write_config(tmp_path, [{"id": "dates", "url": "file:dates.atom"}],
                          [{"id": "all", "title": "All", "formats": ["atom", "rss", "json"]}])
    run_cli("once", config=config, check=True)
    state = tmp_path / "state" / "aggregator.db"
    for extra in (state.with_name(state.name + "-wal"), state.with_name(state.name + "-shm")):
        extra.unlink(missing_ok=True)
    state.write_bytes(b"")
    before = _tree(tmp_path / "out")
    for command in ("once", "publish", "run", "status"):
        try:
            result = run_cli(command, config=config, timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`{command}` kept running on an emptied state file")
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and len(lines) == 1, (command, result.stderr)
        assert "aggregator.db" in lines[0] and re.search(r"empty|0 bytes", lines[0], re.I), (command, lines)
        assert re.search(r"delete .*aggregator\.db", lines[0]), (command, lines)
        assert _tree(tmp_path / "out") == before, command
        assert state.stat().st_size == 0, command
    state.unlink()
    assert "dates: new: 3 new" in run_cli("once", config=config, check=True).stdout


def test_an_empty_state_file_without_published_feeds_is_a_new_state(tmp_path):
    """Asserts: a 0-byte state file beside an output folder that holds no feed (an operator's `touch`, a
    first run) is taken for a new state: `once` polls and publishes."""
    shutil.copy(FIXTURES / "feeds" / "dates.atom", tmp_path / "dates.atom")
    config = write_config(tmp_path, [{"id": "dates", "url": "file:dates.atom"}])
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "aggregator.db").write_bytes(b"")
    (tmp_path / "out").mkdir()
    assert "dates: new: 3 new" in run_cli("once", config=config, check=True).stdout
    assert (tmp_path / "out" / "all.atom").exists()


@pytest.mark.parametrize("damage", [
    "UPDATE items SET published = 'SECRET stored text' WHERE id = (SELECT min(id) FROM items)",
    "UPDATE items SET authors = '[SECRET stored text' WHERE id = (SELECT min(id) FROM items)",
    "UPDATE sources SET last_poll = 'SECRET stored text'",
    "UPDATE sources SET state = 'SECRET stored text'",
    "UPDATE stories SET republished = 'SECRET stored text'",
])
def test_a_damaged_stored_value_is_one_line_without_the_stored_text(tmp_path, damage):
    """Asserts: a state whose stored values were damaged (a time, a list, a source's state that are not
    one) makes `publish` and `status` fail, if they read that value, with one line (exit 1) that says the
    state is damaged and what to do, never a traceback and never the stored text.
    Before the fix: a 30-line traceback ending in `ValueError: Invalid isoformat string: 'SECRET…'`."""
    import sqlite3

    shutil.copy(FIXTURES / "feeds" / "dates.atom", tmp_path / "dates.atom")
    config = write_config(tmp_path, [{"id": "dates", "url": "file:dates.atom"}])
    run_cli("once", config=config, check=True)
    with sqlite3.connect(tmp_path / "state" / "aggregator.db") as db:
        db.execute(damage)
    (tmp_path / "out" / "all.atom").unlink()  # so that publishing reads every story again
    failed = 0
    for command in ("publish", "status"):
        result = run_cli(command, config=config)
        assert "SECRET" not in result.stdout + result.stderr and "Traceback" not in result.stderr, result.stderr
        if result.returncode:
            failed += 1
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 1 and len(lines) == 1 and "damaged" in lines[0], (command, result.stderr)
    assert failed, "neither command read the damaged value"


# 15.18 -----------------------------------------------------------------------------------------------------

LEASE = 2


def test_a_stalled_worker_keeps_the_lease_of_its_request_in_flight(tmp_path, postgres_url, daemons):
    """Asserts: two `run` workers (AGGREGATOR_LEASE=2) on a machine made busy by two CPU burners; a source whose
    answer takes 6 s (three leases; its timeout 30 s); the worker whose request for it is in flight is stopped
    (SIGSTOP: no heartbeat at all, a stall far longer than the lease) for 8 s, then continued: the other worker
    never requests that source while the first request is in flight (the feed server records no overlap and
    only one request during the stall), the first poll completes, and the source is polled again afterwards.
    Before the fix: the lease lapsed 2 s into the stall and the other worker sent a second request."""
    import psycopg

    host = FeedServer().start()
    other = FeedServer().start()
    burners: list[subprocess.Popen] = []
    stopped = None
    try:
        def slow(request):
            time.sleep(6)
            try:
                request._send(200, {"Content-Type": "application/rss+xml"}, rss("slow", 2).encode())
            except OSError:
                pass

        sources = [{"id": "slow", "url": host.serve("/slow.xml", handler=slow), "timeout": 30}]
        sources += [{"id": f"f{n}", "url": other.serve(f"/f{n}.xml", rss(f"f{n}", 2))} for n in range(6)]
        config = write_config(tmp_path, sources, state=postgres_url, defaults={"interval": 1})
        burners = [subprocess.Popen(["nice", sys.executable, "-c", "while True: pass"]) for _ in range(2)]
        workers = [daemons(config, f"worker{n}", {"AGGREGATOR_LEASE": str(LEASE)}) for n in range(2)]
        with psycopg.connect(postgres_url, autocommit=True) as db:
            def holder():
                try:
                    row = db.execute("SELECT lease_owner FROM sources WHERE id = 'slow'").fetchone()
                except psycopg.Error:  # the first worker has not made the tables yet
                    return None
                return row[0] if row and row[0] and host.in_flight.get("/slow.xml") else None

            owner = wait_for(holder, timeout=60, what="a worker requesting slow", log=workers[0].log)
        stopped = next(w for w in workers if owner.endswith(f":{w.process.pid}"))
        stopped.send(signal.SIGSTOP)
        time.sleep(8)  # four leases: the other worker claims every second
        during = len(host.seen("/slow.xml"))
        stopped.send(signal.SIGCONT)
        stopped = None
        wait_for(lambda: len(host.seen("/slow.xml")) >= 3, timeout=60, what="slow polled again after the stall",
                 log=workers[0].log)
        assert host.overlaps == [] and during == 1, (host.overlaps, during)
        assert all(w.process.poll() is None for w in workers)
    finally:
        if stopped is not None:
            stopped.send(signal.SIGCONT)
        for burner in burners:
            burner.kill()
            burner.wait(10)
        host.stop()
        other.stop()


# issue 15.18 did not reproduce: passed here as written, and also with AGGREGATOR_LEASE=1, six burners, 60 + 12
# slow sources and four feeds bringing 300 new items at every poll (6-9 s ingests): no "lease(s) expired"
# warning in any worker's log, no overlap. Kept as a plain test (not xfail) so it guards the contract.
def test_no_source_is_polled_twice_at_once_by_workers_on_a_busy_machine(tmp_path, postgres_url, daemons):
    """Asserts: three `run` workers on one PostgreSQL state (AGGREGATOR_LEASE=2), the machine made busy by four
    CPU burner processes, 30 sources on 3 hosts polled every second plus 6 sources whose answers take 3 s
    (longer than a lease: only renewals keep them leased), one worker killed -9 mid-poll: over 25 s, no
    feed server ever sees a request for a path while another request for it is in flight.
    Today: passes on this machine (the defect as reported did not reproduce here)."""
    hosts = [FeedServer().start() for _ in range(4)]
    burners: list[subprocess.Popen] = []
    workers = []
    release = threading.Event()
    try:
        for host in hosts[:3]:
            host.delay = 0.02

        def hang(request):  # the first poll of /hang.xml is held until its worker is dead
            release.wait(60)
            try:
                request._send(200, {"Content-Type": "application/rss+xml"}, rss("hang", 2).encode())
            except OSError:
                pass

        def slow(request):  # answers after more than a lease
            time.sleep(LEASE * 1.5)
            try:
                request._send(200, {"Content-Type": "application/rss+xml"}, rss(request.path.strip("/"), 2).encode())
            except OSError:
                pass

        hosts[3].serve("/hang.xml", handler=hang)
        sources = [{"id": f"f{n}", "url": hosts[n % 3].serve(f"/f{n}.xml", rss(f"f{n}", 3))} for n in range(30)]
        sources += [{"id": f"slow{n}", "url": hosts[n % 3].serve(f"/slow{n}.xml", handler=slow), "timeout": 30}
                    for n in range(6)]
        sources.append({"id": "hang", "url": hosts[3].url("/hang.xml"), "timeout": 60})
        config = write_config(tmp_path, sources, state=postgres_url, defaults={"interval": 1})
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]
        env = {"AGGREGATOR_LEASE": str(LEASE)}
        workers = [daemons(config, f"worker{n}", env) for n in range(3)]

        import psycopg

        with psycopg.connect(postgres_url, autocommit=True) as db:
            def holder():
                try:
                    row = db.execute("SELECT lease_owner FROM sources WHERE id = 'hang'").fetchone()
                except psycopg.Error:  # the first worker has not made the tables yet
                    return None
                return row[0] if row and row[0] and hosts[3].in_flight.get("/hang.xml") else None

            owner = wait_for(holder, timeout=60, what="a worker polling hang", log=workers[0].log)
        victim = next(w for w in workers if owner.endswith(f":{w.process.pid}"))
        at_kill = [len(host.overlaps) for host in hosts]
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)
        hosts[3].serve("/hang.xml", rss("hang", 2))
        release.set()
        survivors = [w for w in workers if w is not victim]
        # the dead worker's own requests stay in flight at the servers for up to 3 s (the slow answers): a
        # survivor taking its source over meanwhile is not an overlap of one worker's polls, so skip that time
        time.sleep(LEASE * 1.5 + LEASE + 1)
        settled = [len(host.overlaps) for host in hosts]
        time.sleep(25)
        assert all(w.process.poll() is None for w in survivors), [w.text()[-2000:] for w in survivors]
        polls = sum(len(h.requests) for h in hosts)
        overlaps = [path for n, host in enumerate(hosts)
                    for path in host.overlaps[:at_kill[n]] + host.overlaps[settled[n]:]]
        assert polls > 100, polls  # the workers did work under the load
        assert overlaps == [], (overlaps, [w.text().count("lease(s) expired") for w in survivors])
    finally:
        release.set()
        for worker in workers:  # SIGTERM, not the fixture's SIGKILL: a killed `run` leaves children (15.15)
            if worker.process.poll() is None:
                worker.send(signal.SIGTERM)
        for worker in workers:
            try:
                worker.process.wait(20)
            except subprocess.TimeoutExpired:
                pass
        for burner in burners:
            burner.kill()
            burner.wait(10)
        for host in hosts:
            host.stop()
