"""Child processes that end when the process they work for ends, however it ends (kill -9, the OOM killer).

A killed parent runs no cleanup, so each child watches for itself:

- `die_with_parent`, first thing in a forked child: on Linux the kernel
  sends it SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG); a parent
  that died before the call is caught by comparing getppid() with the pid
  it had. Elsewhere (macOS has no prctl) a thread looks at getppid() every
  second. PR_SET_PDEATHSIG fires when the *thread* that forked the child
  ends, so fork only from a thread that lives as long as the process (the
  main thread).
- `die_with`, for a child whose parent is not the process it works for (the
  preparing pool's workers are forked by multiprocessing's fork server): a
  thread waits on a pidfd of that process (Linux 5.3+), else polls it, and
  ends the child the moment it is gone. Once the workers are gone, the fork
  server (which waits for the descriptors they inherited to close) and the
  resource tracker (for those of all three) end by themselves.

`worker_pool` makes such a pool, `LazyPool` one that starts only when first
given work, and `spare_cores` a LazyPool for the length of a with-block.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

PR_SET_PDEATHSIG = 1
POLL_EVERY = 1.0  # seconds between looks where the kernel cannot tell us


def die_with_parent(parent: int) -> None:
    """End this (forked) process when `parent`, the process that forked it, ends."""
    if not _parent_death_signal():
        _watch(lambda: os.getppid() != parent)
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)


def die_with(pid: int) -> None:
    """End this process when process `pid` (alive now) ends."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # not Linux 5.3+: look now and then
        _watch(lambda: not _alive(pid))
        return

    def wait() -> None:
        select.select([handle], [], [])  # readable once the process has ended
        os._exit(1)

    threading.Thread(target=wait, name=f"die-with-{pid}", daemon=True).start()


def _parent_death_signal() -> bool:
    """Ask Linux for SIGKILL when the parent dies; False where that cannot be done."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(gone) -> None:
    def look() -> None:
        while not gone():
            time.sleep(POLL_EVERY)
        os._exit(1)

    threading.Thread(target=look, name="lifeline", daemon=True).start()


def worker_pool(processes: int, preload: list[str]) -> ProcessPoolExecutor:
    """Worker processes started from a fork server, so the pool may be made while threads run (forking this
    threaded process itself could copy a lock some other thread holds); each ends with this process, kill -9
    included, and leaves Ctrl-C to it. `preload`: the modules the fork server imports once for all workers."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)
    return ProcessPoolExecutor(processes, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),))


def _start_worker(owner: int) -> None:
    """A pool worker ends with the fork server that forked it and with `owner`, the process it works for,
    however that ends; Ctrl-C in a terminal reaches the whole process group, and the owner decides how to stop."""
    die_with_parent(os.getppid())
    die_with(owner)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LazyPool(Executor):
    """A worker_pool started on the first submit: a run that turns out to have little work starts no process.

    A pool that breaks (a worker killed, by the OOM killer say) is replaced by a new one; after
    MAX_RESTARTS of those, work is done in place, in the caller's thread.
    """

    MAX_RESTARTS = 2

    def __init__(self, processes: int, preload: list[str]):
        self.processes, self.preload = processes, preload
        self._pool: ProcessPoolExecutor | None = None
        self._restarts = 0
        self._lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with self._lock:
            if self._pool is None and self._restarts <= self.MAX_RESTARTS:
                self._pool = worker_pool(self.processes, self.preload)
            pool = self._pool
        if pool is not None:
            try:
                return pool.submit(fn, *args, **kwargs)
            except BrokenProcessPool:
                with self._lock:
                    if self._pool is pool:
                        self._pool, self._restarts = None, self._restarts + 1
                pool.shutdown(wait=False)
                return self.submit(fn, *args, **kwargs)
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)


@contextlib.contextmanager
def spare_cores(preload: list[str]) -> Iterator[Executor | None]:
    """A LazyPool of one worker per core for the length of a with-block (None on one core), shut down after."""
    processes = os.cpu_count() or 1
    if processes < 2:
        yield None
        return
    pool = LazyPool(processes, preload)
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)
