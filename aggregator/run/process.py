"""What the daemon's process needs before it polls: its log format, fewer malloc arenas, the state's lock."""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import sys

from ..errors import AggregatorError
from ..store.backend import backend_for


class DaemonError(AggregatorError):
    """The daemon cannot start (another one holds the state)."""

    stage = "run"


def fewer_malloc_arenas() -> None:
    """At most two glibc malloc arenas, unless the operator set MALLOC_ARENA_MAX.

    glibc gives each thread that allocates an arena of its own (up to eight per
    core), and each keeps what it freed: with sixteen poll threads, mostly
    waiting on the network and the GIL, that is memory the daemon holds and
    never uses again (about 8 MB at 10,000 sources). Elsewhere: nothing.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


class StateLock:
    """One daemon per state: an exclusive flock on `<state>.lock`, which the kernel drops even on kill -9.

    A shared (PostgreSQL) state needs none: its workers coordinate through it.
    """

    def __init__(self, state: str):
        self.path = backend_for(state).lock_file()
        self._file = None

    def acquire(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.path.open("a+")
        except OSError as exc:
            raise DaemonError(f"cannot create {self.path}: {exc.strerror}; check the `state` folder") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise DaemonError(f"another `aggregator run` (pid {holder}) is already using {self.path.with_suffix('')}; "
                              "stop it first, or give this one its own `state`") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
