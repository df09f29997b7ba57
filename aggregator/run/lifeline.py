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
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import threading
import time

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
