"""`once` over many sources: worker processes fetch and prepare, this process stores.

A warm poll is mostly HTTP (requests, http.client) and a cold one mostly
parsing and fingerprints: Python under one GIL either way. `once` knows every
source and its state before it starts, so it deals the sources out to one
poller process per core, two at most. Each fetches its share on its own
threads, hashes what came back and prepares what changed, and sends the
outcome here, where it is stored as `poll` would store it: the store keeps
its one writer, and a poller sends no body this process would only hash
again. The rule of at most two requests in flight to one host (SPEC §5.1) is
split between the pollers, one each: exact without anything shared (for the
host a redirect leads to as well: a fetch takes a slot of each host it talks
to), and one busy host keeps both at work.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from multiprocessing.connection import wait

from ..config import Config, SourceConfig
from ..errors import AggregatorError, FailureKind
from ..models import FetchResult, Outcome, PollResult, SourceState, polled_url
from ..reader.hosts import HostLimiter
from ..store import Store
from ..store.backend import DAEMON_CACHE_KIB
from .lifeline import die_with_parent
from .pipeline import fetch_source, internal_error, known_items, store_fetched
from .prepare import PreparedFeed, prepare_feed

PER_HOST = 2  # requests in flight to one host (SPEC §5.1), split between the pollers
DIED = "its poller process died (killed, or out of memory); it is polled again on the next run"


@dataclass(frozen=True, eq=False)
class Fetched:
    """What a poller learnt of one source: when, from where, and the response (or failure) and preparing."""

    source_id: str
    url: str
    now: datetime
    outcome: FetchResult | AggregatorError
    body_hash: str | None = None
    prepared: PreparedFeed | None = None


def fetch_and_prepare(store: Store, source: SourceConfig, state: SourceState, limiter: HostLimiter,
                      preparing: threading.Lock) -> Fetched:
    """A poll up to what only the store's writer may do: fetch, hash, and prepare a changed body.

    One thread of a poller prepares at a time (`preparing`): the others fetch meanwhile, and no two
    CPU-bound threads take turns at the GIL (cold 1,000 feeds: 90 and 100 s against 98 and 103 s).
    """
    now = datetime.now(timezone.utc)
    url = polled_url(source, state)
    try:
        result = fetch_source(source, state, url, limiter)
        if result.not_modified:
            return Fetched(source.id, url, now, result)
        body_hash = hashlib.sha256(result.body).hexdigest()
        if body_hash == state.body_hash:
            return Fetched(source.id, url, now, replace(result, body=b""), body_hash)
        try:
            with store.snapshot() as db:
                latest = known_items(db, source.id)
        except AggregatorError:
            latest = []  # only a hint: without it every entry is prepared
        with preparing:
            try:
                prepared = prepare_feed(result.body, result.headers, result.url, now, source.max_entries,
                                        source.id, latest)
            except AggregatorError as exc:
                raise exc.answered(result.status)
        return Fetched(source.id, url, now, replace(result, body=b""), body_hash, prepared)
    except AggregatorError as exc:
        return Fetched(source.id, url, now, exc)
    except Exception as exc:  # noqa: BLE001 - stored as this source's failure, as poll does
        return Fetched(source.id, url, now, internal_error(exc))


def poll_in_processes(store: Store, config: Config, jobs: list[tuple[SourceConfig, SourceState | None]],
                      threads: int, progress) -> list[PollResult]:
    """Poll every (source, state) in `jobs`: fetched and prepared by the pollers (`threads` between them),
    stored here."""
    context = multiprocessing.get_context("fork")  # the config as it is: started before any thread of ours
    jobs = [(source, state or SourceState(id=source.id)) for source, state in jobs]
    processes = min(os.cpu_count() or 1, PER_HOST)
    pollers, started = {}, []
    for shard in (jobs[i::processes] for i in range(processes)):
        if not shard:
            continue
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(target=_poller, daemon=True, args=(
            config, shard, PER_HOST // processes, writer, max(1, threads // processes), os.getpid()))
        process.start()
        started.append(process)
        writer.close()
        pollers[reader] = (process, {source.id for source, _ in shard})
    by_id = {source.id: (source, state) for source, state in jobs}
    results = []
    try:
        while pollers:
            for reader in wait(list(pollers)):
                try:
                    fetched = reader.recv()
                except (EOFError, OSError):
                    fetched = None  # the poller ended without saying it was done: it died
                if not isinstance(fetched, Fetched):
                    _, missing = pollers.pop(reader)
                    reader.close()
                    results += [PollResult(source_id, Outcome.ERROR, error=DIED, failure=FailureKind.ABORTED)
                                for source_id in sorted(missing)]
                    continue
                pollers[reader][1].discard(fetched.source_id)
                source, state = by_id[fetched.source_id]
                results.append(store_fetched(store, config, source, state, fetched.url, fetched.now,
                                             fetched.outcome, fetched.body_hash, fetched.prepared))
                progress.update(1)
    finally:
        for reader, (process, _) in pollers.items():  # left only when this process is being interrupted
            process.kill()
            reader.close()
        for process in started:
            process.join()
    return results


def _poller(config: Config, shard: list[tuple[SourceConfig, SourceState]], per_host: int, writer,
            threads: int, parent: int) -> None:
    """A poller process: its share of the sources on its own threads, each outcome sent as it comes; it ends
    when `parent` (the `once` that forked it, from its main thread) ends, even by kill -9."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group: the parent decides
    try:
        store = Store(config.state, cache_kib=DAEMON_CACHE_KIB)  # read only: the latest items' hashes
        limiter, lock, preparing = HostLimiter(per_host), threading.Lock(), threading.Lock()

        def poll(job: tuple[SourceConfig, SourceState]) -> None:
            fetched = fetch_and_prepare(store, *job, limiter, preparing)
            with lock:
                writer.send(fetched)

        with ThreadPoolExecutor(max_workers=threads) as pool:
            for _ in pool.map(poll, shard):
                pass
        writer.send("done")
    except BaseException:  # noqa: BLE001 - the parent gone (a broken pipe) or the store unreadable:
        os._exit(1)  # the parent reports the sources it got nothing for
    os._exit(0)  # nothing of the parent's (its store connection) is finalised here
