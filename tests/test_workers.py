"""Three `aggregator run` workers on one PostgreSQL state, as real processes against loopback feed servers.

Each feed server is one host:port; it records the most requests it had in
flight at once and any path asked for while a request for it was in flight.
Leases are shortened to LEASE seconds (AGGREGATOR_LEASE) so a dead worker's
sources are taken over within the test.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from contextlib import closing
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from aggregator.run.workers import REQUEST_GRACE
from aggregator.store import Store
from conftest import run_cli, write_config
from feedserver import FeedServer
from test_daemon import daemons, titles, wait_for  # noqa: F401 (daemons is a fixture)

LEASE = 3
ENV = {"AGGREGATOR_LEASE": str(LEASE)}
HANG_TIMEOUT = 6
BASE = datetime(2024, 3, 4, 12, 0, tzinfo=timezone.utc)


def item(title: str, link: str, guid: str, hours: int) -> str:
    return (f"<item><title>{title}</title><link>{link}</link><guid>{guid}</guid>"
            f"<pubDate>{format_datetime(BASE + timedelta(hours=hours))}</pubDate></item>")


def feed(n: int, extra: str = "", shared: int | None = None) -> str:
    """Feed n: two stories of its own, and one story that several feeds carry when `shared` names it."""
    items = [item(f"f{n} story {i}", f"http://example.org/f{n}/{i}", f"f{n}-{i}", i) for i in range(2)]
    if shared is not None:
        items.append(item(f"Shared story {shared} | Feed {n}", f"http://example.org/shared/{shared}?utm_source=f{n}",
                          f"f{n}-shared-{shared}", 40 + shared))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {n}</title>'
            f"<link>http://example.org/f{n}</link>{extra}{''.join(items)}</channel></rss>")


@pytest.fixture
def servers(request):
    """Feed servers, each a host:port of its own, each answer held 20 ms so overlaps would show."""
    started: list[FeedServer] = []

    def start(count: int) -> list[FeedServer]:
        for _ in range(count):
            server = FeedServer().start()
            server.delay = 0.02
            started.append(server)
        return started[-count:]

    yield start
    stopping = [threading.Thread(target=server.stop) for server in started]  # each takes up to half a second
    for thread in stopping:
        thread.start()
    for thread in stopping:
        thread.join()


def start_workers(daemons, config, count: int = 3) -> list:
    return [daemons(config, f"worker{n}", ENV) for n in range(count)]


def stop_all(workers) -> list[int]:
    """SIGTERM to every worker at once (each may take its grace period for polls in flight); their exit codes."""
    for worker in workers:
        worker.send(signal.SIGTERM)
    return [worker.process.wait(15) for worker in workers]  # once: a late second SIGTERM would kill an exiting one


def pids_polling(workers, source_pattern: str) -> set[int]:
    """The pids of the workers whose log shows a poll of a source matching the pattern."""
    line = re.compile(rf"INFO ({source_pattern}): ")
    return {w.process.pid for w in workers if line.search(w.text())}


def assert_clean_logs(workers) -> None:
    for worker in workers:
        assert "Traceback" not in worker.text() and " ERROR " not in worker.text(), worker.text()


def test_three_workers_share_the_sources_without_polling_one_twice(tmp_path, servers, daemons, postgres_url):
    hosts = servers(20)
    hosts[0].delay = 0.25  # a slow host whose ten feeds are due every 0.2 s: far more than 2 requests want to run
    sources = []
    for n in range(200):  # ten feeds per host; stories 0-9 are each carried by six feeds on six hosts
        body = feed(n, shared=n % 10 if n < 60 else None)
        sources.append({"id": f"f{n}", "url": hosts[n % 20].serve(f"/f{n}.xml", body)})
        if n % 20 == 0:
            sources[-1]["interval"] = 0.2
    config = write_config(tmp_path, sources, state=postgres_url, defaults={"interval": 2})
    for host in hosts:  # no answers until all three are up: a worker started late on a busy machine found the
        host.gate.clear()  # first 60 feeds polled by the others, and no sharing to check
    workers = start_workers(daemons, config)
    for worker in workers:
        worker.wait_log("sharing")
    for host in hosts:
        host.gate.set()

    def polled(times: int) -> bool:
        return all(len(hosts[n % 20].seen(f"/f{n}.xml")) >= times for n in range(200))

    wait_for(lambda: polled(2), timeout=45, what="every source polled twice", log=workers[0].log)
    out = tmp_path / "out" / "all.atom"
    wait_for(lambda: out.exists() and "Shared story 9 | Feed 9" in titles(out.read_bytes()), timeout=20,
             what="the outputs published", log=workers[0].log)
    # the files land before their worker logs "published"
    wait_for(lambda: any(" published " in w.text() for w in workers), timeout=10, what="the publish logged",
             log=workers[0].log)
    logs = [w.text() for w in workers]  # before stopping: a worker that stops hands publishing to another
    assert stop_all(workers) == [0, 0, 0]

    assert [path for server in hosts for path in server.overlaps] == []  # no source polled by two at once
    # at most 2 requests in flight per host, all workers together, and the slow host had its 2 busy
    assert hosts[0].peak == 2 and max(server.peak for server in hosts) <= 2
    with closing(Store(postgres_url)) as store:
        for shared in range(10):
            copies = store.query("SELECT source_id, story_id FROM items WHERE canonical_link = ?",
                                 (f"example.org/shared/{shared}",))
            assert len(copies) == 6 and len({row["story_id"] for row in copies}) == 1, copies
        assert store.query("SELECT count(*) FROM stories")[0][0] == 200 * 2 + 10
        assert store.query("SELECT count(*) FROM merges")[0][0] == 60 - 10
        assert store.query("SELECT count(*) FROM sources WHERE state = 'ok' AND lease_owner IS NULL")[0][0] == 200
    # the work was shared, and the copies of each shared story came in through more than one worker
    assert all(re.search(r"INFO f\d+: ", log) for log in logs)
    first_polls = {m[1]: worker for worker, log in enumerate(logs) for m in re.finditer(r"INFO (f\d+): 3 new", log)}
    # (any, not all: on a loaded machine one worker can claim every batch holding one story's six copies)
    assert any(len({first_polls[f"f{n}"] for n in range(shared, 60, 10)}) >= 2 for shared in range(10)), first_polls
    # exactly one worker rendered the outputs
    leaders = [n for n, log in enumerate(logs) if "publishing: this worker renders the outputs now" in log]
    assert len(leaders) == 1
    assert [n for n, log in enumerate(logs) if " published " in log] == leaders
    assert_clean_logs(workers)


def test_a_worker_killed_mid_poll_leaves_its_sources_to_the_others_once_its_leases_expire(
        tmp_path, servers, daemons, postgres_url):
    hosts = servers(4)
    release = threading.Event()

    def hang(request):  # the first poll of /hang.xml never gets an answer while its worker lives
        release.wait(60)
        try:
            request._send(200, {"Content-Type": "application/rss+xml"}, feed(99).encode())
        except OSError:
            pass

    hosts[3].serve("/hang.xml", handler=hang)
    sources = [{"id": f"f{n}", "url": hosts[n % 3].serve(f"/f{n}.xml", feed(n))} for n in range(30)]
    sources.append({"id": "hang", "url": hosts[3].url("/hang.xml")})
    # a request in flight keeps its lease until its deadline (timeout) plus REQUEST_GRACE: short timeouts, so that
    # the dead worker's requests no longer hold their sources back within the test
    config = write_config(tmp_path, sources, state=postgres_url, defaults={"interval": 1, "timeout": HANG_TIMEOUT})
    workers = start_workers(daemons, config)

    with closing(Store(postgres_url)) as store:
        def lease_of_hang():
            rows = store.query("SELECT lease_owner, lease_expires FROM sources WHERE id = 'hang'")
            return rows[0] if rows and rows[0][0] and hosts[3].in_flight.get("/hang.xml") else None

        owner, _ = wait_for(lease_of_hang, timeout=20, what="a worker polling hang", log=workers[0].log)
        victim = next(w for w in workers if owner.endswith(f":{w.process.pid}"))
        victim.process.send_signal(signal.SIGKILL)
        assert victim.process.wait(10) == -signal.SIGKILL
        hosts[3].serve("/hang.xml", feed(99))  # answers at once from now on
        release.set()  # the dead worker's request ends; nothing reads the answer
        killed = time.time()
        leased = store.query("SELECT id, lease_expires FROM sources WHERE lease_owner = ?", (owner,))
        assert "hang" in {row[0] for row in leased}
        seen = {row[0]: len(hosts[3 if row[0] == "hang" else int(row[0][1:]) % 3].seen(
            "/hang.xml" if row[0] == "hang" else f"/{row[0]}.xml")) for row in leased}

        survivors = [w for w in workers if w is not victim]
        wait_for(lambda: store.query("SELECT entries FROM (SELECT count(*) AS entries FROM items "
                                     "WHERE source_id = 'hang') AS c")[0][0] == 2,
                 timeout=max(LEASE, HANG_TIMEOUT + REQUEST_GRACE) + 15, what="hang polled by another worker",
                 log=survivors[0].log)
        assert pids_polling(survivors, "hang")
        expires = {row[0]: row[1] for row in leased}  # each lease as the dead worker left it
        for source_id, count in seen.items():  # every source the dead worker held was polled again…
            path = "/hang.xml" if source_id == "hang" else f"/{source_id}.xml"
            server = hosts[3] if source_id == "hang" else hosts[int(source_id[1:]) % 3]
            wait_for(lambda: len(server.seen(path)) > count, timeout=10, what=f"{source_id} polled again")
            retaken = server.seen(path)[count].time
            assert retaken >= expires[source_id] - 0.1, (source_id, retaken - killed)  # …only once its lease expired
        start = {n: len(hosts[n % 3].seen(f"/f{n}.xml")) for n in range(30)}
        wait_for(lambda: all(len(hosts[n % 3].seen(f"/f{n}.xml")) > start[n] for n in range(30)), timeout=15,
                 what="every source polled by the two left", log=survivors[0].log)
    assert stop_all(survivors) == [0, 0]
    assert [path for server in hosts for path in server.overlaps] == []
    assert_clean_logs(survivors)


def test_when_the_publishing_worker_is_killed_another_takes_over(tmp_path, servers, daemons, postgres_url):
    hosts = servers(2)
    sources = [{"id": f"f{n}", "url": hosts[n % 2].serve(f"/f{n}.xml", feed(n))} for n in range(20)]
    config = write_config(tmp_path, sources, state=postgres_url, defaults={"interval": 1})
    workers = start_workers(daemons, config)
    out = tmp_path / "out" / "all.atom"
    wait_for(lambda: out.exists() and len(titles(out.read_bytes())) == 40, timeout=30, what="40 entries published",
             log=workers[0].log)
    taking_over = "publishing: this worker renders the outputs now"
    leaders = [w for w in workers if taking_over in w.text()]
    assert len(leaders) == 1
    leader = leaders[0]
    # New stories at nine feeds while the leader is stopped (SIGSTOP keeps its connection, so the publishing lock),
    # so another worker polls them: left running, a worker that keeps finding due sources may poll every one of
    # them, round after round (as it did on a loaded machine). Once it runs again, the leader publishes them.
    leader.process.send_signal(signal.SIGSTOP)
    try:
        for n in range(10, 19):
            new = item(f"f{n} new story", f"http://example.org/f{n}/new", f"f{n}-new", 20)
            hosts[n % 2].serve(f"/f{n}.xml", feed(n, extra=new))
        wait_for(lambda: all(re.search(rf"INFO f{n}: 1 new", "".join(w.text() for w in workers if w is not leader))
                             for n in range(10, 19)),
                 timeout=LEASE + 20, what="the nine new stories polled by the other workers", log=workers[0].log)
        assert "f10 new story" not in titles(out.read_bytes())  # the leader, stopped, has not published them
    finally:
        leader.process.send_signal(signal.SIGCONT)
    wait_for(lambda: all(f"f{n} new story" in titles(out.read_bytes()) for n in range(10, 19)), timeout=30,
             what="the nine new stories published", log=leader.log)
    leader.process.send_signal(signal.SIGKILL)
    assert leader.process.wait(10) == -signal.SIGKILL

    hosts[1].serve("/f7.xml", feed(7, extra=item("f7 late story", "http://example.org/f7/late", "f7-late", 30)))
    survivors = [w for w in workers if w is not leader]
    wait_for(lambda: "f7 late story" in titles(out.read_bytes()), timeout=30, what="the new story published",
             log=survivors[0].log)
    wait_for(lambda: any(" published " in w.text() for w in survivors), timeout=10,  # logged once the publish ends
             what="the publish logged", log=survivors[0].log)
    logs = [w.text() for w in survivors]  # before stopping: a worker that stops hands publishing to another
    successors = [n for n, log in enumerate(logs) if taking_over in log]
    assert len(successors) == 1
    assert [n for n, log in enumerate(logs) if " published " in log] == successors  # the other never rendered
    assert stop_all(survivors) == [0, 0]
    assert_clean_logs(survivors)


def test_a_bad_lease_setting_stops_a_worker_with_one_line(tmp_path, postgres_url):
    config = write_config(tmp_path, [{"id": "a", "url": "http://127.0.0.1:9/a.xml"}], state=postgres_url)
    result = run_cli("run", config=config, env={"AGGREGATOR_LEASE": "soon"}, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().endswith("\naggregator: run: AGGREGATOR_LEASE='soon' is not a number of seconds "
                                          "≥ 1; fix or unset it")
    assert "Traceback" not in result.stderr
